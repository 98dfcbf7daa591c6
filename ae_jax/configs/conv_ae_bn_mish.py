"""Report 001's AE, preset conv_ae_bn_mish (five 4x4 stride-2 convs 3->64->...->1024 with
BatchNorm and Mish, mirrored by transposed convs, a 3x3 conv and tanh; Kaiming-normal conv
weights), with the report's settings: 256x256 RGB images in [-1, 1], Adam(lr 1e-4, betas
(0.5, 0.999)), ReduceLROnPlateau(factor 0.5, patience 10) on the epoch's mean training
loss, F.mse_loss (the per-pixel mean, loss.reduction='mean'). Its code is the last conv
layer: 1024 channels of 8x8 at 256x256.

  python -m ae_jax.main --config configs/conv_ae_bn_mish.py --workdir runs/conv_ae_bn_mish
  # the report's own images: --config.data.name=folder --config.data.path=images/

Data: 256x256 patches of the embedded photographs; only two of them (retina, hubble) hold
a 256-pixel patch on each side of a train/test split, at data.test_fraction=0.5. The report
gives no batch size; this config uses 16. On a CPU this model is slow at 256x256
(docs/performance.md); data.image_size=64 (any multiple of 32) trains the same architecture.

Published by report 001 (its test images): PSNR 29.38 dB, SSIM 0.78, LPIPS 0.23.
"""
from ae_jax.configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'photos'
  config.data.image_size = 256
  config.data.test_fraction = 0.5  # the photographs large enough for 256-px test patches
  config.data.num_examples = 400
  config.model.preset = 'conv_ae_bn_mish'  # Kaiming-normal init is part of the preset
  config.model.kind = 'ae'
  config.loss.reconstruction = 'mse'
  config.loss.reduction = 'mean'  # F.mse_loss
  config.optim.b1, config.optim.b2 = 0.5, 0.999
  config.optim.plateau_factor = 0.5  # ReduceLROnPlateau(mode='min', factor=0.5, patience=10)
  config.optim.plateau_patience = 10
  config.train.learning_rate = 1e-4
  config.train.batch_size = 16
  config.train.num_epochs = 1000
  config.train.eval_every = 50
  config.checkpoint.every_epochs = 50
  config.eval.max_images = 200  # LPIPS at 256x256 is slow on a CPU; 200 test images
  return config
