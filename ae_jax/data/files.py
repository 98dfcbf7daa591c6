"""User arrays: .npy/.npz files, opened memory-mapped and returned raw (uint8 or float,
NHWC or NCHW); the caller converts what it reads, so a file larger than RAM can stream.
Also `require`, the check every file-based source makes of data.path first.
"""
from __future__ import annotations

import os

import numpy as np

from ae_jax.errors import ConfigError, DataError

IMAGE_KEYS = ('image', 'images', 'x', 'data', 'arr_0')
LABEL_KEYS = ('label', 'labels', 'y', 'target')
ID_KEYS = ('id', 'ids')


def require(path: str, what: str) -> None:
  """data.path (or another path key) is set and exists, else one line naming it."""
  if not path:
    raise ConfigError(f'data.path is empty: {what} needs a file or folder '
                      '(--config.data.path=...)')
  if not os.path.exists(path):
    raise DataError(f'{path}: no such file or folder')


NPY_MAGIC = b'\x93NUMPY'
ZIP_MAGIC = b'PK\x03\x04'


def _magic(path: str, n: int) -> bytes:
  with open(path, 'rb') as f:
    return f.read(n)


def _load_array(path: str):
  """A .npy file, memory-mapped; never unpickled (pickle runs code from the file)."""
  if not path.endswith('.npy'):
    raise DataError(f'{path}: expected a .npy file')
  if _magic(path, len(NPY_MAGIC)) != NPY_MAGIC:
    # numpy would take anything without the header for a pickle and suggest allow_pickle
    raise DataError(f'{path}: not a NumPy .npy file (no NPY header); save arrays with np.save')
  if _header_dtype(path).hasobject:
    raise DataError(_OBJECTS.format(path))
  try:
    return np.load(path, mmap_mode='r', allow_pickle=False)
  except ValueError as e:
    raise DataError(_not_numeric(path, e)) from e


_OBJECTS = ('{}: holds an object array (dtype object), which only unpickling can read, and '
            'ae_jax never unpickles .npy files; save a numeric array (uint8 or float32 '
            'images; int, float or str labels)')


def _header_dtype(path: str) -> np.dtype:
  """The dtype an .npy header declares (without reading the data)."""
  fmt = np.lib.format
  with open(path, 'rb') as f:
    try:
      version = fmt.read_magic(f)
      read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
      return read(f)[2] if read else np.dtype(np.uint8)  # a newer format: np.load decides
    except ValueError as e:
      raise DataError(f'{path}: a damaged .npy header ({" ".join(str(e).split())})') from e


def _not_numeric(path: str, e: Exception) -> str:
  if 'allow_pickle' in str(e) or 'Object arrays' in str(e):
    return _OBJECTS.format(path)
  return f'{path}: not a readable .npy array ({" ".join(str(e).split())})'


def _member(z, key: str, path: str) -> np.ndarray:
  """One array of an .npz archive (read now: members are not memory-mapped)."""
  try:
    return np.asarray(z[key])
  except ValueError as e:
    raise DataError(_not_numeric(f'{path}[{key!r}]', e)) from e


def load_arrays(cfg):
  """-> (images raw array [N, ...4 dims], labels or None, ids or None, stored layout
  'NHWC' | 'NCHW' | 'NHW') from data.path (+ label/id files)."""
  path = cfg.path
  require(path, 'data.name=npy')
  ext = os.path.splitext(path)[1].lower()
  labels = ids = None
  if ext == '.npy':
    images = _load_array(path)
  elif ext == '.npz':
    if _magic(path, len(ZIP_MAGIC)) != ZIP_MAGIC:
      raise DataError(f'{path}: not a NumPy .npz archive (no zip header); save arrays with '
                      'np.savez')
    try:
      z = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
      raise DataError(f'{path}: not a readable .npz archive ({e})') from e
    key = next((k for k in IMAGE_KEYS if k in z.files), None)
    if key is None:
      raise DataError(f'{path}: no image array; expected one of the keys {IMAGE_KEYS}, '
                      f'found {z.files}')
    images = _member(z, key, path)
    lk = next((k for k in LABEL_KEYS if k in z.files), None)
    ik = next((k for k in ID_KEYS if k in z.files), None)
    labels = None if lk is None else _member(z, lk, path)
    ids = None if ik is None else _member(z, ik, path)
  else:
    raise DataError(f'{path}: unsupported extension {ext!r} for data.name=npy; expected .npy '
                    'or .npz (image folders: data.name=folder)')
  if cfg.labels_path:
    require(cfg.labels_path, 'data.labels_path')
    labels = np.asarray(_load_array(cfg.labels_path))
  if cfg.ids_path:
    require(cfg.ids_path, 'data.ids_path')
    ids = np.asarray(_load_array(cfg.ids_path))
  if images.dtype.kind not in 'uifb':
    raise DataError(f'{path}: image dtype {images.dtype} is not numeric; expected uint8 or float')
  layout = 'NHW' if images.ndim == 3 else None
  if images.ndim == 3:
    images = images[..., None]  # [N, H, W] gray
  if images.ndim != 4:
    raise DataError(f'{path}: image array has shape {images.shape}; expected [N, H, W, C], '
                    '[N, C, H, W] or [N, H, W]')
  for name, arr, src in (('labels', labels, cfg.labels_path or path),
                         ('ids', ids, cfg.ids_path or path)):
    if arr is not None and (arr.ndim != 1 or len(arr) != images.shape[0]):
      raise DataError(f'{src}: {name} have shape {arr.shape} but there are {images.shape[0]} '
                      f'images; expected [{images.shape[0]}]')
  if ids is not None and ids.dtype.kind not in 'ui':
    raise DataError(f'{cfg.ids_path or path}: ids have dtype {ids.dtype}; expected integers')
  layout = layout or ('NCHW' if is_nchw(images.shape) else 'NHWC')
  return images, labels, ids, layout


def is_nchw(shape) -> bool:
  """[N, C, H, W] when dim 1 looks like channels and the last does not."""
  return shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4)

