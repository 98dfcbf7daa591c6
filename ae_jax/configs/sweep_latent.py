"""Latent-size sweep of the MLP VAE on digits: every size trains in one vmapped program.

  python -m ae_jax.main --config configs/sweep_latent.py --config.sweep.latent_dim='(2,16,64,256)'

The model is built at the largest size; each member masks the units above its own, so
it behaves exactly as a model of its own latent size (docs/sweeps.md).
"""
from ae_jax.configs import vae_mlp


def get_config():
  config = vae_mlp.get_config()
  config.sweep.latent_dim = (2, 8, 32)
  config.sweep.eval_epochs = (10, 30)
  return config
