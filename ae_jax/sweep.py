"""Expand `config.sweep` into members: one model per point of the grid.

Every axis here keeps parameter shapes, so all members train in one vmapped program.
An unswept run is a sweep of one member named 'run'.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ae_jax.errors import ConfigError

# axis -> (config key holding the unswept value, type)
AXES = {
    'beta': ('loss.beta', float),
    'learning_rate': ('train.learning_rate', float),
    'seed': ('train.seed', int),
    'kl_warmup_epochs': ('loss.kl_warmup_epochs', float),
}
NON_AXIS_KEYS = ('mode',)


def _fmt(v) -> str:
  return f'{v:g}' if isinstance(v, float) else str(v)


def expand(config) -> list[dict]:
  """-> [{'name': 'beta=4,seed=1', 'beta': 4.0, 'learning_rate': ..., 'seed': ..., ...}]."""
  from ae_jax.config_lib import get
  axes = {}
  for key in config.sweep.keys():
    if key in NON_AXIS_KEYS:
      continue
    if key not in AXES:
      raise ConfigError(f'config.sweep.{key} is not a sweep axis; expected one of {sorted(AXES)}')
    values = config.sweep[key]
    if values is None or (isinstance(values, (tuple, list)) and len(values) == 0):
      continue
    if not isinstance(values, (tuple, list)):
      values = (values,)
    typ = AXES[key][1]
    converted = []
    for v in values:
      if isinstance(v, bool) or not isinstance(v, (int, float)) or (typ is int and v != int(v)):
        raise ConfigError(f'config.sweep.{key}={tuple(values)!r}: {v!r} is not a {typ.__name__}')
      if typ is float and not math.isfinite(v):
        raise ConfigError(f'config.sweep.{key}={tuple(values)!r}: {v!r} is not finite')
      converted.append(typ(v))
    axes[key] = converted
  if config.sweep.mode == 'zip' and len({len(v) for v in axes.values()}) > 1:
    raise ConfigError('config.sweep.mode=zip needs axes of equal length; got '
                      + ', '.join(f'{k}: {len(v)}' for k, v in axes.items()))
  names = list(axes)
  if config.sweep.mode == 'zip':
    points = list(zip(*axes.values())) if axes else [()]
  else:
    points = list(itertools.product(*axes.values()))
  members = []
  for point in points:
    m = {k: typ(get(config, cfg_key)) for k, (cfg_key, typ) in AXES.items()}
    m.update(dict(zip(names, point)))
    m['name'] = ','.join(f'{k}={_fmt(m[k])}' for k in names) or 'run'
    members.append(m)
  for m in members:
    for k in ('beta', 'kl_warmup_epochs'):
      if m[k] < 0:
        raise ConfigError(f'{k}={m[k]!r} (member {m["name"]}) must be >= 0')
    if m['learning_rate'] <= 0:
      raise ConfigError(f'learning_rate={m["learning_rate"]!r} (member {m["name"]}) must be > 0')
  return members


def hparams(members: list[dict]) -> dict:
  """Stacked per-member hyperparameters for the vmapped step: {name: [K]}."""
  return {
      'beta': np.array([m['beta'] for m in members], np.float32),
      'learning_rate': np.array([m['learning_rate'] for m in members], np.float32),
      'kl_warmup_epochs': np.array([m['kl_warmup_epochs'] for m in members], np.float32),
  }
