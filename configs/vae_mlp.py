"""MLP VAE on scikit-learn's handwritten digits (embedded, 8x8 upsampled to 16x16).

  python -m ae_jax.main --config configs/vae_mlp.py --workdir runs/vae_mlp
"""
from configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'digits'
  config.data.image_size = 16
  config.model.kind = 'vae'
  config.model.arch = 'mlp'
  config.model.hidden = (512, 256)
  config.model.latent_dim = 16
  config.loss.reconstruction = 'bce'  # digits are near-binary; a Bernoulli decoder fits
  config.train.batch_size = 64
  config.train.num_epochs = 60
  config.train.eval_every = 10
  config.checkpoint.every_epochs = 20
  return config
