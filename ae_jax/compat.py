"""Workdirs written by older versions of ae_jax, in one place.

- Format 1 (before model.json): checkpoints numbered by epoch, the image shape and steps
  per epoch only in summary.json. It loads as it is (`model_record`, `checkpoint_step`)
  and its checkpoints are renumbered by step the first time training resumes it
  (`migrate_epoch_checkpoints`).
- config.json of an older schema: keys it lacks take their defaults, keys it has that are
  no longer read are ignored (`merge_config`), and a renamed key is read under its new
  name with a note, once per process (`RENAMED`).
"""
from __future__ import annotations

import logging
import os

import ml_collections

from ae_jax import checkpoint
from ae_jax.errors import WorkdirError

log = logging.getLogger('ae_jax')
MODEL_FORMAT = 2  # model.json's format; workdirs without one are format 1
RENAMED: dict[str, str] = {}  # old dotted key -> new dotted key, as keys are renamed
_told: set[str] = set()


def model_record(wd) -> dict:
  """model.json, or for a format-1 workdir what it implies (from summary.json)."""
  info = wd.read_model()
  if info is not None:
    return info
  summary = wd.read_json('summary.json', default={})
  if 'image_shape' not in summary or 'steps_per_epoch' not in summary:
    raise WorkdirError(
        f'{wd.path} was written by an older ae_jax and lacks model.json and the image shape '
        'in summary.json; run its training command once more on this workdir (it resumes, '
        'trains nothing new and records model.json)')
  return {'format': 1, 'image_shape': summary['image_shape'], 'class_names': [],
          'color_key': [], 'steps_per_epoch': summary['steps_per_epoch'],
          'checkpoint_unit': 'epoch'}


def by_step(info: dict) -> bool:
  """Whether the workdir's checkpoints are numbered by optimizer step (format 2)."""
  return info.get('checkpoint_unit') == 'step'


def checkpoint_step(info: dict, epoch: int) -> int:
  """The checkpoint number of the end of `epoch`."""
  return epoch * info['steps_per_epoch'] if by_step(info) else epoch


def trained_epochs(wd) -> int | None:
  """Epochs of the newest checkpoint (without restoring it), or None."""
  steps = checkpoint.saved_steps(wd.checkpoints)
  if not steps:
    return None
  try:
    info = wd.read_model()
  except WorkdirError:  # damaged: training rewrites it; the epochs are not known till then
    return None
  if info is None:  # format 1: numbered by epoch
    return steps[-1]
  return steps[-1] // max(1, info['steps_per_epoch'])


def migrate_epoch_checkpoints(wd, steps_per_epoch: int) -> None:
  """Renumber a format-1 workdir's epoch-numbered checkpoints by step, once."""
  # a model.json, even a damaged one (training rewrites it), means format 2: by step
  if wd.has_model_record() or not wd.is_trained() or steps_per_epoch == 1:
    return
  for epoch in reversed(checkpoint.saved_steps(wd.checkpoints)):
    wd.rename(os.path.join(wd.checkpoints, str(epoch)),
              os.path.join(wd.checkpoints, str(epoch * steps_per_epoch)))
  log.warning('%s: renumbered its checkpoints by optimizer step (format 2)', wd.checkpoints)


def complete_members(members: list[dict], config) -> list[dict]:
  """members.json of a run recorded before a sweep axis existed: each member takes the
  config's value of the axes it lacks (the value it was trained with)."""
  from ae_jax import schema, sweep
  base = {axis: typ(schema.get(config, key)) for axis, (key, typ) in sweep.AXES.items()}
  return [{**base, **m} for m in members]


def merge_config(cfg: ml_collections.ConfigDict, values: dict, where: str,
                 fix: str = 'restore the file from a copy, or fix that key') -> None:
  """Set `values` (a config.json) on `cfg` (the base config), in place: renamed keys
  under their new names (said once), unknown keys ignored, lists as tuples. A value of
  the wrong kind, or a value where a section belongs, is one WorkdirError naming the key
  and `fix`."""
  flat = _flatten(values)
  for old, new in RENAMED.items():
    if old in flat and new not in flat:
      flat[new] = flat.pop(old)
      if old not in _told:
        _told.add(old)
        log.warning('%s: config key %s is now %s; read under its new name', where, old, new)
  for name, value in flat.items():
    parent, _, leaf = name.rpartition('.')
    node = cfg
    for part in parent.split('.') if parent else ():
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        node = None
        break
      node = node[part]
    if node is None or leaf not in node:
      continue  # a key of another version of ae_jax
    if isinstance(node[leaf], ml_collections.ConfigDict):  # (_flatten: `value` is no dict)
      raise WorkdirError(f'{where}: {name!r} is {value!r}; expected an object of the {name} '
                         f'settings; {fix}')
    try:
      node[leaf] = _tuples(value)
    except (TypeError, ValueError) as e:
      raise WorkdirError(f'{where}: {name}={value!r} is not a value this key takes ({e}); '
                         f'{fix}') from e


def _flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _tuples(v):
  return tuple(_tuples(x) for x in v) if isinstance(v, list) else v
