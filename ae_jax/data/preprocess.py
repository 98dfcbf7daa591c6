"""Preprocessing: source pixels -> float32 NHWC in [0, 1] (integer scale, crop, resize,
channels), the checks on the result, the data line's account of what was done, and the way
back to a source's own storage (`to_storage`)."""
from __future__ import annotations

import logging

import jax
import numpy as np

from ae_jax.data.pixels import BACKGROUNDS, composite, parse_background
from ae_jax.data.records import Raw
from ae_jax.errors import ConfigError, DataError

log = logging.getLogger('ae_jax')


def resize(images: np.ndarray, size: int, method: str = 'linear') -> np.ndarray:
  """Square resize of float NHWC images (antialiased when shrinking)."""
  n, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  out = jax.image.resize(images, (n, size, size, c), method=method, antialias=True)
  return np.asarray(out, np.float32)


def center_crop(images: np.ndarray, size: int, where: str) -> np.ndarray:
  h, w = images.shape[1:3]
  if size > min(h, w):
    raise DataError(f'{where}: images are {h}x{w}, smaller than data.crop={size}')
  y, x = (h - size) // 2, (w - size) // 2
  return images[:, y:y + size, x:x + size]


def convert_channels(images: np.ndarray, channels: int, where: str,
                     background=BACKGROUNDS['white']) -> np.ndarray:
  c = images.shape[-1]
  if c == 4 and channels != 4:  # RGBA: what a viewer shows is the colour over a background
    images, c = composite(images[..., :3], images[..., 3:], background), 3
  if channels in (0, c):
    return images
  if c == 1 and channels == 3:
    return np.repeat(images, 3, axis=-1)
  if c == 3 and channels == 1:
    return (images @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
  raise ConfigError(f'data.channels={channels}: cannot convert {where} images with {c} '
                    'channels; expected 1 or 3')


def first_bad(mask_per_image, ids) -> str:
  """'image id 17' for the first True row of [N, ...] (ids: the rows' dataset ids), or
  'image 3' (its position) without ids."""
  rows = np.flatnonzero(mask_per_image.reshape(mask_per_image.shape[0], -1).any(1))
  if not len(rows):
    return ''
  return (f' (first: image id {int(ids[rows[0]])})' if ids is not None else
          f' (first: image {int(rows[0])})')


def to_unit_float(raw, where: str, int_max: int = 255, ids=None,
                  error: type = DataError) -> np.ndarray:
  """uint8/bool/int/float images -> float32 in [0, 1], refusing what cannot be meant. The
  loader and inference.Trained both convert through here, so their rules cannot drift.

  Integer images are divided by `int_max`: 255, or 1 for binary {0, 1} data. Errors (of
  class `error`) name the first offending image by its id (`ids`: the batch's dataset ids).
  """
  raw = np.asarray(raw)
  if raw.dtype.kind not in 'buif':
    raise error(f'{where}: images of dtype {raw.dtype} given; expected uint8 0..{int_max}, '
                'bool, or float in [0, 1]')
  if raw.dtype == np.bool_:
    return raw.astype(np.float32)
  if raw.dtype.kind in 'ui':
    if raw.size and (raw.min() < 0 or raw.max() > int_max):
      raise error(f'{where}: integer images range over [{raw.min()}, {raw.max()}]; '
                  f'expected 0..{int_max}{first_bad((raw < 0) | (raw > int_max), ids)}')
    return raw.astype(np.float32) / int_max
  x = raw.astype(np.float32)
  if x.size and not np.isfinite(x).all():
    raise error(f'{where}: images contain NaN or inf values{first_bad(~np.isfinite(x), ids)}')
  if x.size and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
    raise error(f'{where}: float images range over [{x.min():.4g}, {x.max():.4g}]; '
                f'expected [0, 1] (or uint8 0..{int_max}; divide floats by {int_max})'
                f'{first_bad((x < -1e-6) | (x > 1 + 1e-6), ids)}')
  return x


def check_images(images: np.ndarray, where: str) -> None:
  if images.ndim != 4:
    raise DataError(f'{where}: expected images [N, H, W, C], got shape {images.shape}')
  if images.shape[0] == 0:
    raise DataError(f'{where}: the dataset is empty')
  if not np.isfinite(images).all():
    bad = int(np.flatnonzero((~np.isfinite(images.reshape(images.shape[0], -1))).any(1))[0])
    raise DataError(f'{where}: image {bad} contains NaN or inf values')


def integer_scale(cfg, raw: Raw) -> int:
  """What integer pixel values are out of: data.int_max, or (0 = auto) 1 when a sample of
  up to 512 examples holds only 0 and 1 (binary data such as dSprites), else 255."""
  if raw.int_max:
    return raw.int_max
  if cfg.int_max:
    return int(cfg.int_max)
  sample = np.linspace(0, raw.num - 1, min(raw.num, 512)).astype(int)
  probe = raw.read(np.unique(sample))
  return 1 if probe.dtype.kind in 'ui' and probe.size and probe.max() <= 1 else 255


def preprocessor(cfg, raw: Raw):
  int_max = integer_scale(cfg, raw)
  background = parse_background(cfg.background)

  def prep(batch, src_positions):
    ids = raw.ids[src_positions] if raw.ids is not None else src_positions
    where = raw.where
    if batch.ndim == 3:
      batch = batch[..., None]
    x = to_unit_float(batch, where, int_max, ids)
    if cfg.crop:
      x = center_crop(x, cfg.crop, where)
    if cfg.image_size and x.shape[1:3] != (cfg.image_size, cfg.image_size):
      x = resize(x, cfg.image_size, raw.resize_method)
    x = convert_channels(x, cfg.channels, where, background)
    return np.clip(x, 0.0, 1.0).astype(np.float32)
  return prep



def describe_preprocessing(cfg, raw: Raw, native, final) -> tuple[str, ...]:
  """What loading does to the images, and a warning when data.image_size resizes the
  user's own images (a config written for other data would do it silently)."""
  native = tuple(native) if len(native) == 3 else (*native, 1)
  steps = [raw.note] if raw.note else []
  h, w = native[0], native[1]
  if cfg.crop:
    steps.append(f'center-cropped {h}x{w} -> {cfg.crop}x{cfg.crop} (data.crop)')
    h = w = cfg.crop
  if cfg.image_size and (h, w) != (cfg.image_size, cfg.image_size) and not raw.note:
    steps.append(f'resized {h}x{w} -> {cfg.image_size}x{cfg.image_size} (data.image_size)')
    if raw.user_files:
      log.warning(
          'data.image_size=%d resizes the %dx%d images of %s to %dx%d; set '
          '--config.data.image_size=0 to keep their size', cfg.image_size, h, w, raw.where,
          cfg.image_size, cfg.image_size)
  if native[-1] == 4 and final[-1] != 4:
    bg = cfg.background
    steps.append(f'4th channel taken as alpha and composited onto {bg} (data.background; '
                 'data.channels=4 keeps it)')
    native = (*native[:-1], 3)
  if final[-1] != native[-1] and cfg.channels:
    steps.append(f'{native[-1]} -> {final[-1]} channels (data.channels)')
  return tuple(steps)


def to_storage(images: np.ndarray, storage: dict) -> np.ndarray:
  """Float NHWC images in [0, 1] -> the dataset's own layout and range (DatasetInfo.storage):
  WM-811K integer maps (0 off-wafer, 1 good, 2 failing), integer pixels 0..int_max, or
  floats in [0, 1]; NHWC, NCHW or NHW as the source stored them."""
  x = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  if 'wafer' in storage:
    if storage['wafer'] == 'onehot':
      return np.argmax(x, axis=-1).astype(np.uint8)  # [N, H, W]
    return np.clip(np.rint(x[..., 0] * 2.0), 0, 2).astype(np.uint8)
  dtype = np.dtype(storage.get('dtype', 'float32'))
  if dtype.kind in 'ui':
    x = np.rint(x * storage.get('int_max', 255)).astype(dtype)
  elif dtype.kind == 'b':
    x = x >= 0.5
  else:
    x = x.astype(dtype)
  layout = storage.get('layout', 'NHWC')
  if layout == 'NCHW':
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))
  if layout == 'NHW':
    return x[..., 0]
  return x

