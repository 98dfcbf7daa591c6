"""Starting a new run from another workdir's weights (`train.init_from`): a fine-tune of an
imported or trained autoencoder with this config's own loss, optimizer, schedule, critic
and data (big_vision's model_init, flax's restore-then-train).

  --config.train.init_from=runs/sd_vae            every member from the source's only member,
                                                  or from the source member of its own name
  --config.train.init_from=runs/sweep:beta=4      every member from member beta=4
  --config.train.init_from=runs/sweep@20          ... at the source's epoch 20

Each parameter (and BatchNorm statistic, and a VQ-VAE's codebook state) the new model has
is taken from the source where the source has it, with the same shape, else the run's own
initialisation keeps it; the fresh ones (a discriminator, a learned log-variance) are named
in one line. A shape that differs is one line naming the parameter and both shapes. The
source is only read. Only a new run starts this way: a resumed one continues from its own
checkpoint.
"""
from __future__ import annotations

import hashlib
import os

import jax
import numpy as np

from ae_jax.errors import ConfigError
from ae_jax.inference import Loaded, open_workdir


def parse(text: str) -> tuple[str, str | None, int | None]:
  """'path[:member][@epoch]' -> (path, member or None, epoch or None)."""
  path, epoch = text, None
  if '@' in os.path.basename(path):
    path, _, e = path.rpartition('@')
    try:
      epoch = int(e)
    except ValueError:
      raise ConfigError(f'config.train.init_from={text!r}: @{e} is not an epoch; expected '
                        'WORKDIR[:MEMBER][@EPOCH], e.g. runs/sd_vae or runs/sweep:beta=4@20'
                        ) from None
  member = None
  if ':' in os.path.basename(path):
    path, _, member = path.rpartition(':')
  return path, member, epoch


def _flat(tree) -> dict:
  return {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def digest(tree) -> str:
  """A SHA-256 of a parameter tree's names, shapes and bytes (the source's fingerprint)."""
  h = hashlib.sha256()
  for name, v in sorted(_flat(tree).items()):
    a = np.ascontiguousarray(np.asarray(v))
    h.update(name.encode())
    h.update(str(a.shape).encode() + a.dtype.str.encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _source_members(loaded: Loaded, member: str | None, names: list[str], text: str):
  """The source member each new member starts from."""
  have = [m['name'] for m in loaded.members]
  if member is not None:
    if member not in have:
      raise ConfigError(f'config.train.init_from={text!r}: member {member!r} is not in '
                        f'{loaded.wd.path}; its members are {have}')
    return [have.index(member)] * len(names)
  if len(have) == 1:
    return [0] * len(names)
  missing = [n for n in names if n not in have]
  if missing:
    raise ConfigError(f'config.train.init_from={text!r}: {loaded.wd.path} holds {len(have)} '
                      f'members {have} and this run\'s {missing} are not among them; name '
                      'one: --config.train.init_from=WORKDIR:MEMBER')
  return [have.index(n) for n in names]


def start(stacked, text: str, names: list[str]):
  """The [K, ...] `stacked` train state with its model's parameters, BatchNorm statistics
  and model state taken from the workdir `text` names -> (state, record for model.json,
  the one-line note of what starts fresh or is left out)."""
  path, member, epoch = parse(text)
  if not os.path.isdir(path):
    raise ConfigError(f'config.train.init_from={text!r}: {path} is not a folder; expected a '
                      'trained workdir (WORKDIR[:MEMBER][@EPOCH])')
  loaded = open_workdir(path, epoch)
  picks = _source_members(loaded, member, names, text)
  fresh, unused = [], []
  parts = {}
  for part in ('params', 'batch_stats', 'model_state'):
    ours = _flat(getattr(stacked, part))
    theirs = _flat(loaded.variables.get(part, {}))
    for name, value in ours.items():
      if name not in theirs:
        fresh.append(f'{part}{name}')
        continue
      want, have = tuple(value.shape[1:]), tuple(theirs[name].shape[1:])
      if want != have:
        raise ConfigError(f'config.train.init_from={text!r}: {part}{name} has shape {have} '
                          f'in {path} and {want} in this model; the two models differ there '
                          '(a size or a layer of the config)')
    unused += [f'{part}{n}' for n in theirs if n not in ours]
    parts[part] = jax.tree_util.tree_map_with_path(
        lambda p, v, theirs=theirs: (np.stack([np.asarray(theirs[jax.tree_util.keystr(p)][k])
                                               for k in picks]).astype(v.dtype)
                                     if jax.tree_util.keystr(p) in theirs else v),
        getattr(stacked, part))
  state = stacked.replace(**parts)
  sources = sorted({loaded.members[k]['name'] for k in picks})
  record = {'workdir': os.path.abspath(path), 'members': [loaded.members[k]['name']
                                                           for k in picks],
            'epoch': loaded.epoch, 'step': int(loaded.step),
            'digest': digest(loaded.variables['params'])}
  what = (f'started from {path} (member{"s" if len(sources) > 1 else ""} '
          f'{", ".join(sources)}, epoch {loaded.epoch})')
  if fresh:
    what += f'; initialised fresh: {", ".join(_short(fresh))}'
  if stacked.critic:
    what += '; the discriminator starts fresh'
  if unused:
    what += f'; not in this model, left out: {", ".join(_short(unused))}'
  return state, record, what


def _short(names: list[str], most: int = 6) -> list[str]:
  shown = [n.replace("']['", '/').replace("['", '/').replace("']", '') for n in names[:most]]
  return shown + ([f'... ({len(names) - most} more)'] if len(names) > most else [])
