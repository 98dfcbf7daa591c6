"""The VAE of configs/ae_photos.py: the same residual conv model started at the whitened
PCA (so codes start near the N(0, I) prior), the same budget, beta = 1 on the calibrated
Gaussian likelihood (loss.reconstruction='log_mse': each image's own best variance).

  python -m ae_jax.main --config configs/vae_photos.py --workdir runs/vae_photos
  python -m ae_jax.latent sample --workdir runs/vae_photos --out runs/vae_photos/samples
"""
from ae_jax.configs import ae_photos


def get_config():
  config = ae_photos.get_config()
  config.model.kind = 'vae'
  config.loss.beta = 1.0
  return config
