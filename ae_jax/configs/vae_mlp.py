"""MLP VAE on scikit-learn's handwritten digits (embedded, 8x8 upsampled to 16x16).

  python -m ae_jax.main --config configs/vae_mlp.py --workdir runs/vae_mlp
"""
from ae_jax.configs import ae_mlp


def get_config():
  config = ae_mlp.get_config()
  config.model.kind = 'vae'
  config.loss.reconstruction = 'bce'  # digits are near-binary; a Bernoulli decoder fits
  return config
