"""Report 000's VAE, preset mlp_vae_50 (MLP 7500-4096-1024-512, mean and log-variance heads
of 256, mirrored decoder, sigmoid), with the report's settings: 50x50 RGB images, batch 20,
Adam at lr 5e-4, the squared error summed over pixels plus the KL (loss.reduction='sum',
beta 1).

  python -m ae_jax.main --config configs/mlp_vae_50.py --workdir runs/mlp_vae_50
  # the report's own images: --config.data.name=folder --config.data.path=images/

Data: 50x50 patches of the embedded photographs (the report's images are its own). The
report's KL was not the standard one: with v its encoder's log-sigma it summed
sigma^2 + m^2 - log(sigma) - 1/2 (twice the standard weight on sigma^2 and m^2); this config
trains the standard KL, 1/2 (sigma^2 + m^2 - 2 log(sigma) - 1) per unit.

Published by report 000 (test images, its epoch budget): PSNR 25.30 dB, SSIM 0.808. Its
tables vary one setting around these (training loss, the sum over a batch of 20 / PSNR /
SSIM):

  epoch 100: 4322 / 18.63 / 0.444     batch 15: 2254 / 22.65 / 0.691
  epoch 200: 3564 / 20.44 / 0.561     batch 20: 2597 / 24.70 / 0.786
  epoch 400: 2597 / 24.70 / 0.786     batch 25: 3565 / 22.64 / 0.696
  epoch 500: 2530 / 25.22 / 0.806
  latent 2: 2547 / 18.53 / 0.450; 64: 1325 / 24.31 / 0.759; 256: 2597 / 24.70 / 0.786;
  512: 4999 / 21.77 / 0.643
"""
from ae_jax.configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'photos'
  config.data.image_size = 50
  config.data.num_examples = 2000
  config.model.preset = 'mlp_vae_50'  # its published 256 latents (model.latent_dim 0)
  config.model.kind = 'vae'
  config.loss.reconstruction = 'mse'
  config.loss.reduction = 'sum'  # ((x - x')**2).sum() + KL, as the report
  config.loss.beta = 1.0
  config.train.batch_size = 20
  config.train.learning_rate = 5e-4
  config.train.num_epochs = 500
  config.train.eval_every = 50
  config.checkpoint.every_epochs = 50
  return config
