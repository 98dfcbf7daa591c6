"""The small conv AE preset (3->16->32->64, transposed back) on one-hot wafer maps, 26x26.

  python -m ae_jax.main --config configs/conv_ae_small.py --workdir runs/conv_ae_small

As the original: Adam, lr 1e-3, weight decay 1e-5, MSE, 100 epochs.
"""
from ae_jax.configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'wafer'
  config.data.image_size = 26
  config.model.preset = 'conv_ae_small'
  config.model.kind = 'ae'
  config.loss.reconstruction = 'mse'
  config.optim.weight_decay = 1e-5
  config.train.batch_size = 64
  config.train.num_epochs = 100
  config.train.eval_every = 10
  config.checkpoint.every_epochs = 20
  return config
