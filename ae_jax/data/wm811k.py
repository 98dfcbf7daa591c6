"""The public WM-811K LSWMD.pkl: a pandas pickle of wafer maps of varying size, read only
when the user opts in (unpickling runs code from the file)."""
from __future__ import annotations

import numpy as np

from ae_jax.data.files import require
from ae_jax.errors import ConfigError, DataError

CLASS_NAMES = ('Center', 'Donut', 'Edge-Loc', 'Edge-Ring', 'Loc', 'Near-full', 'Random',
                  'Scratch', 'none')


def load(cfg, size: int):
  """The public LSWMD.pkl (pandas DataFrame: waferMap arrays of varying size,
  failureType like [['Center']] or [] when unlabelled) -> (maps uint8 [N, size, size]
  in {0,1,2}, labels [N] with -1 for unlabelled)."""
  path = cfg.path
  require(path, 'data.name=wm811k')
  if not cfg.allow_pickle:
    raise ConfigError(f'{path}: LSWMD.pkl is a Python pickle, and loading a pickle runs code '
                      'from the file. Set --config.data.allow_pickle=True if you trust it.')
  try:
    import pandas as pd  # the optional extra ae_jax[wm811k]
  except ImportError as e:
    raise DataError('reading LSWMD.pkl needs pandas: pip install "ae_jax[wm811k]"') from e
  try:
    df = pd.read_pickle(path)
  except Exception as e:  # noqa: BLE001 - anything unpicklable is the file's fault
    raise DataError(f'{path}: cannot unpickle ({type(e).__name__}: {e})') from e
  for col in ('waferMap', 'failureType'):
    if col not in getattr(df, 'columns', ()):
      raise DataError(f'{path}: no {col!r} column; expected the LSWMD.pkl schema '
                      '(waferMap, failureType, ...)')
  maps, labels = [], []
  for m, t in zip(df['waferMap'], df['failureType']):
    name = np.asarray(t).ravel()
    known = name.size and str(name[0]) in CLASS_NAMES
    label = CLASS_NAMES.index(str(name[0])) if known else -1
    if label < 0 and cfg.wm811k_unlabeled == 'drop':
      continue
    m = np.asarray(m)
    ys = (np.arange(size) * m.shape[0] / size).astype(int)  # nearest neighbour
    xs = (np.arange(size) * m.shape[1] / size).astype(int)
    maps.append(m[np.ix_(ys, xs)].astype(np.uint8))
    labels.append(label)
  if not maps:
    raise DataError(f'{path}: no wafer maps left (data.wm811k_unlabeled={cfg.wm811k_unlabeled!r})')
  return np.stack(maps), np.asarray(labels, np.int32)
