"""Expand `config.sweep` into members and the programs that train them.

Two kinds of axes:
- vmapped axes keep parameter shapes (`beta`, `learning_rate`, `seed`,
  `kl_warmup_epochs`, and `latent_dim` by masking): their members train together in one
  compiled, vmapped program.
- outer axes change shapes or the data order (`batch_size`, `num_epochs`, `image_size`,
  `hidden`, `channels`, `preset`): each value combination is its own program, compiled
  once, trained one after another.

A sweep with more members than `sweep.max_members_per_program` (or than fit in device
memory, estimated, when it is 0) is split into equal chunks, each its own program.
An unswept run is one program with one member named 'run'.
"""
from __future__ import annotations

import itertools
import math
import os
from typing import NamedTuple

import jax
import numpy as np

from ae_jax import config_values, schema
from ae_jax.errors import ConfigError
from ae_jax.models import abstract_variables, build_model, resolve_latent_dim

_TYPES = {'int': int, 'float': float}
# vmapped axis -> (config key holding the unswept value, type), from the schema's
# declarations (sweep='vmap')
AXES = {axis: (k.name, _TYPES[k.kind]) for axis, k in schema.axes('vmap').items()}
# every axis -> its key's declaration: a swept value passes the check its key declares
DECLARED = {**schema.axes('vmap'), **schema.axes('outer')}
# outer axis -> config key it sets (sweep='outer')
OUTER = {axis: k.name for axis, k in schema.axes('outer').items()}
SETTINGS = tuple(k.name.split('.', 1)[1] for k in schema.keys() if k.name.startswith('sweep.'))


def _fmt(v) -> str:
  if isinstance(v, float):
    return f'{v:g}'
  if isinstance(v, (tuple, list)):
    return '-'.join(_fmt(x) for x in v)
  return str(v)


def axis_values(config, key):
  """The axis's values, or None when unset (None, or `--config.sweep.X=None`, which the
  command line turns into (None,))."""
  values = config.sweep[key]
  if values is None or (isinstance(values, (tuple, list)) and tuple(values) == (None,)):
    return None
  if not isinstance(values, (tuple, list)):
    values = (values,)
  if len(values) == 0:
    raise ConfigError(f'config.sweep.{key}=() is empty; give at least one value or leave it '
                      'unset (None)')
  return tuple(values)


def _check_scalar(key, values, typ):
  out = []
  for v in values:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (typ is int and v != int(v)):
      article = 'an' if typ.__name__[0] in 'aeiou' else 'a'
      raise ConfigError(f'config.sweep.{key}={tuple(values)!r}: {v!r} is not {article} '
                        f'{typ.__name__}')
    if not math.isfinite(v):
      raise ConfigError(f'config.sweep.{key}={tuple(values)!r}: {v!r} is not finite')
    out.append(typ(v))
  return out


def check_member_value(axis: str, value, values, member: str = '') -> None:
  """A swept value through the check its key declares (config_values.check_value: kind,
  range, choices), one line naming the axis, its values and the member."""
  try:
    config_values.check_value(DECLARED[axis], value)
  except ConfigError as e:
    who = f'member {member}' if member else f'value {value!r}'
    raise ConfigError(f'config.sweep.{axis}={tuple(values)!r}: {who}: {e}') from None


def check_keys(config):
  for key in config.sweep.keys():
    if key not in AXES and key not in OUTER and key not in SETTINGS:
      raise ConfigError(f'config.sweep.{key} is not a sweep axis; vmapped axes: {sorted(AXES)}; '
                        f'outer axes: {sorted(OUTER)}')


def expand(config) -> list[dict]:
  """The vmapped members of one program: [{'name': 'beta=4', 'beta': 4.0, ...}]."""
  check_keys(config)
  axes = {}
  for key, (_, typ) in AXES.items():
    values = axis_values(config, key)
    if values is not None:
      axes[key] = _check_scalar(key, values, typ)
  if config.sweep.mode == 'zip' and len({len(v) for v in axes.values()}) > 1:
    raise ConfigError('config.sweep.mode=zip needs vmapped axes of equal length; got '
                      + ', '.join(f'{k}: {len(v)}' for k, v in axes.items()))
  names = list(axes)
  if config.sweep.mode == 'zip':
    points = list(zip(*axes.values())) if axes else [()]
  else:
    points = list(itertools.product(*axes.values()))
  base = {k: typ(schema.get(config, cfg_key)) for k, (cfg_key, typ) in AXES.items()}
  base['latent_dim'] = resolve_latent_dim(config.model)  # 0 = the preset's own size
  members = []
  for point in points:
    m = dict(base)
    m.update(dict(zip(names, point)))
    m['name'] = ','.join(f'{k}={_fmt(m[k])}' for k in names) or 'run'
    members.append(m)
  for key, values in axes.items():  # each value once, named by the first member with it
    for v in dict.fromkeys(values):
      check_member_value(key, v, values, next(m['name'] for m in members if m[key] == v))
  for m in members:  # 0 is no latent size in a sweep (unswept, it means the preset's own)
    if m['latent_dim'] <= 0:
      raise ConfigError(f'latent_dim={m["latent_dim"]!r} (member {m["name"]}) must be > 0')
  return members


def swept_latent(config) -> bool:
  return axis_values(config, 'latent_dim') is not None


def eval_epochs(config) -> tuple | None:
  return axis_values(config, 'eval_epochs')


def hparams(members: list[dict]) -> dict:
  """Stacked per-member hyperparameters for the vmapped step: {axis: [K]}, every vmapped
  axis but seed (the members' initial states differ instead) and latent_dim (a mask)."""
  return {axis: np.array([m[axis] for m in members],
                         np.int32 if typ is int else np.float32)
          for axis, (_, typ) in AXES.items() if axis not in ('seed', 'latent_dim')}


def latent_masks(members: list[dict], latent_shape: tuple[int, ...]) -> np.ndarray:
  """[K, 1, ..., 1, L_max] 0/1 masks over the last latent axis (units or channels)."""
  lmax = latent_shape[-1]
  masks = np.zeros((len(members),) + (1,) * (len(latent_shape) - 1) + (lmax,), np.float32)
  for i, m in enumerate(members):
    masks[i, ..., :m['latent_dim']] = 1.0
  return masks


class Program(NamedTuple):
  name: str            # '' for the only program, else e.g. 'batch_size=16' or 'part=2'
  config: object       # the config this program trains (outer values applied)
  members: list        # its members, named with outer values too


def programs(config, image_shape_of=None) -> list[Program]:
  """Every program the sweep needs, in order. Their configs are derived from `config`
  (outer values set) and not yet resolved: config_lib.programs resolves them.
  `image_shape_of(program config) -> (H, W, C)`: the data's image shape, for the memory
  estimate that splits a large sweep (training passes its loaded data's; without it the
  estimate takes data.image_size, or 64, and data.channels, or 3)."""
  outer = outer_axes(config)
  out = []
  for point in itertools.product(*outer.values()):
    cfg = schema.thaw(config)
    with cfg.unlocked():
      for key, value in zip(outer, point):
        schema.set_value(cfg, OUTER[key], tuple(value) if isinstance(value, list) else value)
        cfg.sweep[key] = None
    prefix = ','.join(f'{k}={_fmt(v)}' for k, v in zip(outer, point))
    members = expand(cfg)
    for m in members:
      m['name'] = ','.join(p for p in (prefix, '' if m['name'] == 'run' else m['name']) if p) \
          or 'run'
      m.update({k: v for k, v in zip(outer, point)})
    chunk = members_per_program(cfg, len(members), image_shape_of)
    n_parts = -(-len(members) // chunk)
    # Near-equal parts: at most two distinct sizes, so at most two compilations.
    bounds = np.linspace(0, len(members), n_parts + 1).round().astype(int)
    parts = [members[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    for j, part in enumerate(parts):
      name = ','.join(p for p in (prefix, f'part={j + 1}' if len(parts) > 1 else '') if p)
      part_cfg = cfg
      if len(parts) > 1 and swept_latent(cfg):
        # a part is built at its own largest latent size, not the whole sweep's
        part_cfg = schema.thaw(cfg)
        with part_cfg.unlocked():
          part_cfg.sweep.latent_dim = tuple(dict.fromkeys(m['latent_dim'] for m in part))
      out.append(Program(name, part_cfg, part))
  if len(out) == 1:
    out = [out[0]._replace(name='')]
  return out


def outer_axes(config) -> dict:
  """{outer axis: its values} of the swept outer axes, each value checked as its key's."""
  check_keys(config)
  outer = {}
  for key in OUTER:
    values = axis_values(config, key)
    if values is None:
      continue
    values = list(values)
    if DECLARED[key].kind == 'int':
      values = _check_scalar(key, values, int)
    for v in values:  # its key's own check: train.batch_size > 0, a known preset, ...
      check_member_value(key, tuple(v) if isinstance(v, list) else v, values)
    if key in ('batch_size', 'num_epochs', 'image_size') and any(v <= 0 for v in values):
      raise ConfigError(f'config.sweep.{key}={tuple(values)!r}: values must be > 0')
    outer[key] = values
  return outer


def members_per_program(config, num_members: int, image_shape_of=None) -> int:
  limit = int(config.sweep.max_members_per_program)
  if limit < 0:
    raise ConfigError(f'config.sweep.max_members_per_program={limit} must be >= 0 (0 = auto)')
  if num_members == 1:
    return 1
  if limit == 0:
    limit = _auto_limit(config, image_shape_of)
  return max(1, min(limit, num_members))


def _auto_limit(config, image_shape_of=None) -> int:
  """Members that fit in half the free device memory, from a rough per-member estimate.

  Per member: parameters, gradients and two Adam moments (16 bytes per parameter) plus
  activations (about 3 float32 copies of every layer's output per batch example, bounded
  here by 64 image-sized tensors per example).
  """
  free = None
  try:
    stats = jax.devices()[0].memory_stats() or {}
    if 'bytes_limit' in stats:
      free = stats['bytes_limit'] - stats.get('bytes_in_use', 0)
  except Exception:  # noqa: BLE001 - backends without memory stats
    free = None
  if free is None:
    try:
      free = os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError):
      return 1 << 30
  shape = image_shape_of(config) if image_shape_of is not None else None
  return max(1, int(0.5 * free // estimate_member_bytes(config, shape)))


def estimate_member_bytes(config, image_shape=None) -> int:
  """A rough per-member device footprint of `config` on images of `image_shape`."""
  size = config.data.image_size or 64
  shape = tuple(image_shape) if image_shape is not None else (size, size,
                                                              config.data.channels or 3)
  model = build_model(config.model, shape)
  variables = abstract_variables(model, shape)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(variables))
  activations = 64 * 4 * int(np.prod(shape)) * config.train.batch_size
  return 16 * n_params + activations
