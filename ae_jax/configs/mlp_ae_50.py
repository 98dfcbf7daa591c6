"""Report 000's AE, preset mlp_ae_50 (MLP 7500-256-128 with a ReLU code, decoder 128-256-7500,
sigmoid), with the report's settings: 50x50 RGB images, batch 20, Adam at lr 1e-3, and
nn.MSELoss (the per-pixel mean, loss.reduction='mean', so the loss reads as the report's).

  python -m ae_jax.main --config configs/mlp_ae_50.py --workdir runs/mlp_ae_50
  # the report's own images: --config.data.name=folder --config.data.path=images/

Data: 50x50 patches of the embedded photographs (the report's images are its own).

Published by report 000 (test images, its epoch budget): PSNR 24.04 dB, SSIM 0.684. Its
tables vary one setting around these (training loss / PSNR / SSIM):

  epoch 20: 0.007452 / 21.88 / 0.576       batch 15: 0.004494 / 23.83 / 0.684
  epoch 80: 0.005042 / 23.44 / 0.653       batch 20: 0.004600 / 23.81 / 0.676
  epoch 100: 0.004594 / 23.74 / 0.681      batch 25: 0.004804 / 22.00 / 0.646
  epoch 200: 0.003934 / 24.38 / 0.711
  lr 0.1: 0.1951 / 7.17 / 0.099            lr 0.001: 0.004640 / 23.78 / 0.676
  lr 0.01: 0.01499 / 18.62 / 0.445         lr 0.0001: 0.007134 / 21.91 / 0.573

Its two extra 7500->7500 layers after the decoder (preset mlp_ae_50_refine) reached PSNR
32.16 dB, SSIM 0.938.
"""
from ae_jax.configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'photos'
  config.data.image_size = 50
  config.data.num_examples = 2000
  config.model.preset = 'mlp_ae_50'  # its published 128-unit code (model.latent_dim 0)
  config.model.kind = 'ae'
  config.loss.reconstruction = 'mse'
  config.loss.reduction = 'mean'  # nn.MSELoss: the mean over pixels
  config.train.batch_size = 20
  config.train.learning_rate = 1e-3
  config.train.num_epochs = 100
  config.train.eval_every = 10
  config.checkpoint.every_epochs = 20
  return config
