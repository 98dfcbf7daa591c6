"""Convolutional autoencoder on procedural WM-811K-style wafer maps (26x26, one-hot).

  python -m ae_jax.main --config configs/ae_conv.py --workdir runs/ae_conv
"""
from ae_jax.configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'wafer'
  config.data.image_size = 26
  config.data.num_examples = 2000
  config.model.kind = 'ae'
  config.model.arch = 'conv'
  config.model.conv.channels = (32, 64, 128)  # 26 -> 13 -> 6 -> 3
  config.model.conv.latent = 'flat'
  config.model.latent_dim = 32
  config.model.norm = 'batch'
  config.loss.reconstruction = 'bce'  # one-hot die states
  config.train.batch_size = 64
  config.train.num_epochs = 30
  config.train.eval_every = 5
  config.checkpoint.every_epochs = 10
  return config
