"""Convolutional VAE on procedural WM-811K-style wafer maps (26x26, one-hot).

  python -m ae_jax.main --config configs/vae_conv.py --workdir runs/vae_conv
"""
from ae_jax.configs import ae_conv


def get_config():
  config = ae_conv.get_config()
  config.model.kind = 'vae'
  config.model.latent_dim = 32
  config.loss.beta = 1.0
  return config
