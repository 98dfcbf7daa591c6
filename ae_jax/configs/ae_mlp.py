"""MLP autoencoder on scikit-learn's handwritten digits (embedded, upsampled to 16x16).

  python -m ae_jax.main --config configs/ae_mlp.py --workdir runs/ae_mlp
"""
from ae_jax.configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'digits'
  config.data.image_size = 16
  config.model.kind = 'ae'
  config.model.arch = 'mlp'
  config.model.hidden = (512, 256)
  config.model.latent_dim = 16
  config.loss.reconstruction = 'mse'
  config.train.num_epochs = 60
  config.train.eval_every = 10
  config.checkpoint.every_epochs = 20
  return config
