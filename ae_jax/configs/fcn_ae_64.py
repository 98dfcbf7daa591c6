"""Report 004's AE, preset fcn_ae_64 (MLP 12288-1024-256-64-10, mirrored decoder, tanh; a
10-unit code), on 64x64 RGB faces.

  python -m ae_jax.main --config configs/fcn_ae_64.py --workdir runs/fcn_ae_64
  python -m ae_jax.latent edit --workdir runs/fcn_ae_64 --edits 0*2,2+5   # the report's edits
  # the report's own faces: --config.data.name=folder --config.data.path=faces/

Data: the embedded faces (scikit-image's lfw_subset, gray, as 3 channels at 64x64); tanh
models see images in [-1, 1], as the report's did. Report 004 publishes no numbers and no
optimiser settings (it shows the original, the reconstruction and two edited codes); this
config uses those of the latent_edits study that reproduces it: Adam 1e-3, batch 32, MSE
summed over pixels.
"""
from ae_jax.configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'faces'
  config.data.image_size = 64
  config.data.channels = 3
  config.model.preset = 'fcn_ae_64'  # its published 10-unit code (model.latent_dim 0)
  config.model.kind = 'ae'
  config.loss.reconstruction = 'mse'
  config.loss.reduction = 'sum'
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.num_epochs = 60
  config.train.eval_every = 10
  config.checkpoint.every_epochs = 20
  return config
