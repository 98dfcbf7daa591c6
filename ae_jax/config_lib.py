"""Config checks that run before any data is loaded or anything compiles."""
from __future__ import annotations

import ml_collections

from ae_jax.errors import ConfigError
from ae_jax.models.layers import ACTIVATIONS, NORMS, OUTPUT_ACTIVATIONS

_CHOICES = {
    'model.kind': ('ae', 'vae'),
    'model.arch': ('mlp', 'conv'),
    'model.activation': tuple(k for k in ACTIVATIONS if k != 'none'),
    'model.latent_activation': tuple(ACTIVATIONS),
    'model.output_activation': OUTPUT_ACTIVATIONS,
    'model.norm': NORMS,
    'model.init': ('default', 'kaiming_normal'),
    'model.conv.latent': ('flat', 'spatial'),
    'model.conv.upsample': ('phases', 'subpixel', 'dilated'),
    'data.wafer.render': ('onehot', 'gray'),
    'data.wafer.balance': ('uniform', 'wm811k'),
    'data.tier': ('auto', 'device', 'stream'),
    'data.wm811k_unlabeled': ('keep', 'drop'),
    'optim.name': ('adam', 'adamw'),
    'train.loop': ('auto', 'scan', 'python'),
    'dtype': ('float32', 'bfloat16'),
    'optim.schedule': ('constant', 'cosine', 'warmup_cosine'),
    'loss.reconstruction': ('mse', 'l1', 'bce', 'gaussian_nll'),
    'loss.reduction': ('sum', 'mean'),
    'checkpoint.best_mode': ('min', 'max'),
    'sweep.mode': ('product', 'zip'),
    'sweep.vectorize': ('auto', 'vmap', 'unroll'),
}
_POSITIVE = ('data.stream_chunk_steps', 'model.latent_dim', 'train.batch_size', 'train.num_epochs',
             'train.learning_rate', 'train.eval_every', 'train.eval_batch_size',
             'checkpoint.every_epochs', 'checkpoint.max_to_keep', 'loss.nll_sigma')
_NON_NEGATIVE = ('data.int_max', 'data.crop', 'data.prefetch', 'data.device_max_mb', 'loss.beta', 'loss.kl_warmup_epochs', 'optim.weight_decay',
                 'optim.warmup_epochs', 'optim.plateau_factor', 'optim.grad_clip_norm',
                 'data.image_size', 'data.num_examples')


def get(config, dotted: str):
  node = config
  for part in dotted.split('.'):
    node = node[part]
  return node


def set_value(config, dotted: str, value) -> None:
  parent, _, last = dotted.rpartition('.')
  (get(config, parent) if parent else config)[last] = value


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key, its value and what is expected."""
  for key, choices in _CHOICES.items():
    value = get(config, key)
    if value not in choices:
      raise ConfigError(f'config.{key}={value!r} is not valid; expected one of {list(choices)}')
  for key in _POSITIVE:
    value = get(config, key)
    if not value > 0:
      raise ConfigError(f'config.{key}={value!r} must be > 0')
  for key in _NON_NEGATIVE:
    value = get(config, key)
    if value < 0:
      raise ConfigError(f'config.{key}={value!r} must be >= 0')
  if not 0.0 < config.data.test_fraction < 1.0:
    raise ConfigError(f'config.data.test_fraction={config.data.test_fraction!r} must be in (0, 1)')
  if config.data.channels not in (0, 1, 3):
    raise ConfigError(f'config.data.channels={config.data.channels!r}: expected 0 (native), 1 or 3')
  if config.optim.plateau_factor >= 1.0:
    raise ConfigError(f'config.optim.plateau_factor={config.optim.plateau_factor!r} must be < 1 '
                      '(0 turns reduce-on-plateau off)')
  if any(int(w) <= 0 for w in config.model.hidden):
    raise ConfigError(f'config.model.hidden={tuple(config.model.hidden)!r}: widths must be > 0')
  if not config.model.conv.channels or any(int(c) <= 0 for c in config.model.conv.channels):
    raise ConfigError(f'config.model.conv.channels={tuple(config.model.conv.channels)!r}: '
                      'expected a non-empty tuple of positive ints')
  if config.loss.reconstruction == 'bce' and not config.model.preset \
      and config.model.output_activation != 'sigmoid':
    raise ConfigError("config.loss.reconstruction='bce' needs model.output_activation='sigmoid' "
                      f'(got {config.model.output_activation!r})')
