"""beta-VAE sweep on procedural wafer maps: beta in (0, 1, 4, 100), trained together.

  python -m ae_jax.main --config configs/vae_beta.py --workdir runs/vae_beta

All four conv VAEs train in one compiled program; the run ends with the sweep table
(also in sweep.md / sweep.csv) and figures/sweep_beta.png, figures/rate_distortion.png.
beta multiplies the KL summed over latent units, against a reconstruction term summed
over pixels (loss.reduction='sum'); docs/losses.md has the kld_weight conversion.
A single beta: --config.sweep.beta='(4.,)' (or set loss.beta and --config.sweep.beta=None).
"""
from ae_jax.configs import vae_conv


def get_config():
  config = vae_conv.get_config()
  config.model.conv.channels = (16, 32, 64)  # 26 -> 13 -> 6 -> 3
  config.sweep.beta = (0.0, 1.0, 4.0, 100.0)  # x0 (an AE with noise), x1, x4, x100
  config.loss.kl_warmup_epochs = 5.0  # ramp beta in over the first epochs
  config.train.num_epochs = 40
  config.train.eval_every = 10
  config.sweep.eval_epochs = (5,)
  config.optim.plateau_factor = 0.5  # as the reports: ReduceLROnPlateau(factor=0.5, patience=10)
  config.optim.plateau_patience = 10
  config.checkpoint.every_epochs = 10
  return config
