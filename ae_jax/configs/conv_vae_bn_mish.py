"""The BN + Mish conv VAE preset on 64x64 photo patches.

  python -m ae_jax.main --config configs/conv_vae_bn_mish.py --workdir runs/conv_vae_bn_mish

As the original: Adam(lr 1e-4, betas (0.5, 0.999)), ReduceLROnPlateau(0.5, patience 10),
per-pixel mean MSE; its kld_weight 2.5e-5 on torch.mean(kl) over a 2x2x128 latent is
beta = 2.5e-5 / 512 here (loss.reduction='mean').
"""
from ae_jax.configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'photos'
  config.data.image_size = 64
  config.data.num_examples = 2000
  config.model.preset = 'conv_vae_bn_mish'
  config.model.kind = 'vae'
  config.model.latent_dim = 128
  config.loss.reconstruction = 'mse'
  config.loss.reduction = 'mean'
  config.loss.beta = 2.5e-5 / 512
  config.optim.b1 = 0.5
  config.optim.plateau_factor = 0.5
  config.optim.plateau_patience = 10
  config.train.learning_rate = 1e-4
  config.train.batch_size = 16
  config.train.num_epochs = 50
  config.train.eval_every = 5
  return config
