"""Datasets -> float32 NHWC arrays in [0, 1] plus metadata. Never imports models.

`load(config.data)` returns a `Dataset` whose `train` and `test` are dicts with
`image` [N,H,W,C], `label` [N] (or -1 where unlabelled) and `id` [N], the example's
index in the source dataset, which the split preserves so users can name images by id.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ae_jax.errors import ConfigError, DataError


@dataclasses.dataclass
class DatasetInfo:
  name: str
  image_shape: tuple[int, int, int]
  num_classes: int
  class_names: tuple[str, ...]


@dataclasses.dataclass
class Dataset:
  train: dict
  test: dict
  info: DatasetInfo


def _digits(cfg):
  from sklearn.datasets import load_digits  # bundled with scikit-learn: no download
  d = load_digits()
  images = (d.images.astype(np.float32) / 16.0)[..., None]  # [1797, 8, 8, 1]
  return images, d.target.astype(np.int32), tuple(str(i) for i in range(10))


def _wafer(cfg):
  from ae_jax.data import wafer
  size = cfg.image_size or 26
  maps, labels = wafer.generate(cfg.num_examples or 2000, size, cfg.wafer.balance,
                                cfg.wafer.seed)
  return wafer.render(maps, cfg.wafer.render), labels, wafer.CLASS_NAMES


SOURCES = {'digits': _digits, 'wafer': _wafer}


def resize(images: np.ndarray, size: int, method: str = 'linear') -> np.ndarray:
  """Square resize of float NHWC images (antialiased when shrinking)."""
  import jax
  n, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  out = jax.image.resize(images, (n, size, size, c), method=method, antialias=True)
  return np.asarray(out, np.float32)


def convert_channels(images: np.ndarray, channels: int, where: str) -> np.ndarray:
  c = images.shape[-1]
  if channels in (0, c):
    return images
  if c == 1 and channels == 3:
    return np.repeat(images, 3, axis=-1)
  if c == 3 and channels == 1:
    return (images @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
  raise ConfigError(f'data.channels={channels}: cannot convert {where} images with {c} '
                    'channels; expected 1 or 3')


def check_images(images: np.ndarray, where: str) -> None:
  if images.ndim != 4:
    raise DataError(f'{where}: expected images [N, H, W, C], got shape {images.shape}')
  if images.shape[0] == 0:
    raise DataError(f'{where}: the dataset is empty')
  if not np.isfinite(images).all():
    bad = int(np.flatnonzero((~np.isfinite(images.reshape(images.shape[0], -1))).any(1))[0])
    raise DataError(f'{where}: image {bad} contains NaN or inf values')


def split(n: int, test_fraction: float, seed: int):
  """Deterministic (train_idx, test_idx), each sorted so ids keep their order."""
  perm = np.random.default_rng(seed).permutation(n)
  n_test = max(1, int(round(n * test_fraction)))
  if n - n_test < 1:
    raise DataError(f'{n} examples cannot be split with test_fraction={test_fraction}')
  return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def load(cfg) -> Dataset:
  """cfg: `config.data`."""
  if cfg.name not in SOURCES:
    raise ConfigError(f'data.name={cfg.name!r} is unknown; expected one of {sorted(SOURCES)}')
  images, labels, class_names = SOURCES[cfg.name](cfg)
  where = f'dataset {cfg.name!r}'
  if cfg.image_size and images.shape[1:3] != (cfg.image_size, cfg.image_size):
    method = 'nearest' if cfg.name == 'wafer' else 'linear'
    images = resize(images, cfg.image_size, method)
  images = convert_channels(images, cfg.channels, where)
  images = np.clip(images, 0.0, 1.0).astype(np.float32)
  check_images(images, where)
  ids = np.arange(images.shape[0], dtype=np.int32)
  tr, te = split(images.shape[0], cfg.test_fraction, cfg.split_seed)
  part = lambda i: {'image': images[i], 'label': labels[i], 'id': ids[i]}
  info = DatasetInfo(cfg.name, tuple(images.shape[1:]), len(class_names), tuple(class_names))
  return Dataset(part(tr), part(te), info)
