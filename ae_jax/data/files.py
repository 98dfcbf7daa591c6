"""User data: .npy/.npz arrays, image folders, and the WM-811K LSWMD.pkl.

Arrays are opened memory-mapped and returned raw (uint8 or float, NHWC or NCHW); the
caller converts what it reads, so a file larger than RAM can stream.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ae_jax.errors import ConfigError, DataError

IMAGE_KEYS = ('image', 'images', 'x', 'data', 'arr_0')
LABEL_KEYS = ('label', 'labels', 'y', 'target')
ID_KEYS = ('id', 'ids')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp')


def _require(path: str, what: str) -> None:
  if not path:
    raise ConfigError(f'data.path is empty: {what} needs a file or folder '
                      '(--config.data.path=...)')
  if not os.path.exists(path):
    raise DataError(f'{path}: no such file or folder')


def _load_array(path: str):
  if path.endswith('.npy'):
    try:
      return np.load(path, mmap_mode='r', allow_pickle=False)
    except ValueError as e:
      raise DataError(f'{path}: not a numeric .npy array ({e})') from e
  raise DataError(f'{path}: expected a .npy file')


def load_arrays(cfg):
  """-> (images raw array [N, ...4 dims], labels or None, ids or None, stored layout
  'NHWC' | 'NCHW' | 'NHW') from data.path (+ label/id files)."""
  path = cfg.path
  _require(path, 'data.name=npy')
  ext = os.path.splitext(path)[1].lower()
  labels = ids = None
  if ext == '.npy':
    images = _load_array(path)
  elif ext == '.npz':
    try:
      z = np.load(path, mmap_mode='r', allow_pickle=False)
    except (ValueError, OSError) as e:
      raise DataError(f'{path}: not a readable .npz archive ({e})') from e
    key = next((k for k in IMAGE_KEYS if k in z.files), None)
    if key is None:
      raise DataError(f'{path}: no image array; expected one of the keys {IMAGE_KEYS}, '
                      f'found {z.files}')
    images = z[key]
    lk = next((k for k in LABEL_KEYS if k in z.files), None)
    ik = next((k for k in ID_KEYS if k in z.files), None)
    labels = None if lk is None else np.asarray(z[lk])
    ids = None if ik is None else np.asarray(z[ik])
  else:
    raise DataError(f'{path}: unsupported extension {ext!r} for data.name=npy; expected .npy '
                    'or .npz (image folders: data.name=folder)')
  if cfg.labels_path:
    _require(cfg.labels_path, 'data.labels_path')
    labels = np.asarray(_load_array(cfg.labels_path))
  if cfg.ids_path:
    _require(cfg.ids_path, 'data.ids_path')
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
  layout = layout or ('NCHW' if is_nchw(images.shape) else 'NHWC')
  return images, labels, ids, layout


def is_nchw(shape) -> bool:
  """[N, C, H, W] when dim 1 looks like channels and the last does not."""
  return shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4)


def load_folder(cfg, size: int):
  """Images under data.path (class = first-level subfolder, if any), center-cropped to a
  square and resized to `size` on load. -> (uint8 [N, size, size, 3], labels, names, files)."""
  from PIL import Image, UnidentifiedImageError
  root = cfg.path
  _require(root, 'data.name=folder')
  if not os.path.isdir(root):
    raise DataError(f'{root}: data.name=folder needs a folder of images')
  if size <= 0:
    raise ConfigError('data.name=folder needs data.image_size > 0 (images are resized on load)')
  subdirs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  classes = subdirs or ['']
  files, labels = [], []
  for k, c in enumerate(classes):
    d = os.path.join(root, c)
    for f in sorted(os.listdir(d)):
      if f.lower().endswith(IMAGE_EXTENSIONS):
        files.append(os.path.join(d, f))
        labels.append(k if subdirs else -1)
  if not files:
    raise DataError(f'{root}: no images ({", ".join(IMAGE_EXTENSIONS)}) found')
  images, keep = [], []
  for i, f in enumerate(files):
    try:
      with Image.open(f) as im:
        im = im.convert('RGB')
        w, h = im.size
        side = min(w, h)
        im = im.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side,
                      (h - side) // 2 + side)).resize((size, size), Image.BILINEAR)
        images.append(np.asarray(im, np.uint8))
        keep.append(i)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
      if not cfg.skip_corrupt:
        raise DataError(f'{f}: cannot read this image ({type(e).__name__}: {e}); remove it or '
                        'set data.skip_corrupt=True to skip unreadable files') from e
      warnings.warn(f'skipping unreadable image {f}: {e}')
  if not images:
    raise DataError(f'{root}: none of the {len(files)} images could be read')
  names = tuple(classes) if subdirs else ('',)
  return (np.stack(images), np.asarray(labels, np.int32)[keep], names,
          [files[i] for i in keep])


WM811K_CLASSES = ('Center', 'Donut', 'Edge-Loc', 'Edge-Ring', 'Loc', 'Near-full', 'Random',
                  'Scratch', 'none')


def load_wm811k(cfg, size: int):
  """The public LSWMD.pkl (pandas DataFrame: waferMap arrays of varying size,
  failureType like [['Center']] or [] when unlabelled) -> (maps uint8 [N, size, size]
  in {0,1,2}, labels [N] with -1 for unlabelled)."""
  path = cfg.path
  _require(path, 'data.name=wm811k')
  if not cfg.allow_pickle:
    raise ConfigError(f'{path}: LSWMD.pkl is a Python pickle, and loading a pickle runs code '
                      'from the file. Set --config.data.allow_pickle=True if you trust it.')
  try:
    import pandas as pd
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
    label = WM811K_CLASSES.index(str(name[0])) if name.size and str(name[0]) in WM811K_CLASSES else -1
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
