"""beta-VAE (beta = 4) on procedural wafer maps: the conv VAE with a heavier KL term.

  python -m ae_jax.main --config configs/vae_beta.py --workdir runs/vae_beta

beta multiplies the KL summed over latent units, against a reconstruction term summed
over pixels (loss.reduction='sum'); see the README for the kld_weight conversion.
"""
from configs import vae_conv


def get_config():
  config = vae_conv.get_config()
  config.loss.beta = 4.0
  config.loss.kl_warmup_epochs = 5.0  # ramp beta in over the first epochs
  config.train.num_epochs = 40
  config.optim.plateau_factor = 0.5  # as the reports: ReduceLROnPlateau(factor=0.5, patience=10)
  config.optim.plateau_patience = 10
  config.checkpoint.best_metric = 'loss'
  return config
