"""Report 001's VAE, preset conv_vae_bn_mish (the conv_ae_bn_mish encoder, then a 3x3 conv to
2 x 1024 channels: mean and log-variance of an 8x8x1024 code at 256x256; the decoder
mirrors it; Kaiming-normal conv weights), with the report's settings: 256x256 RGB images
in [-1, 1], Adam(lr 1e-4, betas (0.5, 0.999)), ReduceLROnPlateau(factor 0.5, patience 10),
F.mse_loss plus kld_weight x the KL.

  python -m ae_jax.main --config configs/conv_vae_bn_mish.py --workdir runs/conv_vae_bn_mish
  # the report's own images: --config.data.name=folder --config.data.path=images/

The report's loss is mean((x - x')^2) + kld_weight * mean(KL) with kld_weight 2.5e-5 in its
code (its table says 0.00025), both means over every element of the batch. Here the
reconstruction term is the per-pixel mean (loss.reduction='mean') and the KL is summed over
the 8x8x1024 latent units, so beta = 2.5e-5 / 65536.

Data: 256x256 patches of the embedded photographs, as configs/conv_ae_bn_mish.py. The
report gives no batch size; this config uses 16.

Published by report 001 (its test images): PSNR 26.55 dB, SSIM 0.69, LPIPS 0.35.
"""
from ae_jax.configs import conv_ae_bn_mish

LATENT_UNITS = 8 * 8 * 1024  # the code at 256x256: 8x8 positions x 1024 channels


def get_config():
  config = conv_ae_bn_mish.get_config()
  config.model.preset = 'conv_vae_bn_mish'
  config.model.kind = 'vae'
  config.model.latent_dim = 1024  # VAE(latent_dim=1024), the preset's published size
  config.loss.beta = 2.5e-5 / LATENT_UNITS
  return config
