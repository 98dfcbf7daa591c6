"""Loading: a source's `Raw` -> a `Dataset`. Splits deterministically (or keeps the
source's own split), preprocesses, picks the tier (the training split materialised as one
float32 array, or left as a `StreamSource` read batch by batch), and finds examples by id."""
from __future__ import annotations

import numpy as np

from ae_jax.data.labels import classes
from ae_jax.data.preprocess import (check_images, describe_preprocessing, integer_scale,
                                    preprocessor)
from ae_jax.data.records import Dataset, DatasetInfo, Raw, StreamSource
from ae_jax.data.sources import SOURCES
from ae_jax.errors import ConfigError, DataError
from ae_jax.memory import host_available, size


def split(n: int, test_fraction: float, seed: int):
  """Deterministic (train_idx, test_idx), each sorted so ids keep their order."""
  perm = np.random.default_rng(seed).permutation(n)
  n_test = max(1, int(round(n * test_fraction)))
  if n - n_test < 1:
    raise DataError(f'{n} examples cannot be split with test_fraction={test_fraction}')
  return np.sort(perm[n_test:]), np.sort(perm[:n_test])


CHUNK_BYTES = 256 * 2**20  # preprocessed (resized) images made at a time, at most


def _materialize(raw: Raw, prep, positions, shape, chunk=2048):
  # chunks bounded in bytes too: resizing 2048 images at once to a large size would hold
  # several times the result in temporaries
  chunk = max(1, min(chunk, CHUNK_BYTES // (4 * int(np.prod(shape)))))
  parts = [prep(raw.read(positions[i:i + chunk]), positions[i:i + chunk])
           for i in range(0, len(positions), chunk)]
  return np.concatenate(parts) if parts else np.zeros((0, 1, 1, 1), np.float32)


def load(cfg) -> Dataset:
  """cfg: `config.data`."""
  if cfg.name not in SOURCES:
    raise ConfigError(f'data.name={cfg.name!r} is unknown; expected one of {sorted(SOURCES)}')
  raw = SOURCES[cfg.name](cfg)
  if raw.num == 0:
    raise DataError(f'{raw.where}: the dataset is empty')
  tr, te = raw.split if raw.split is not None else split(raw.num, cfg.test_fraction,
                                                          cfg.split_seed)
  prep = preprocessor(cfg, raw)
  first = raw.read(tr[:1])
  shape = prep(first, tr[:1]).shape[1:]
  steps = describe_preprocessing(cfg, raw, first.shape[1:], shape)
  train_mb = len(tr) * int(np.prod(shape)) * 4 / 2**20
  tier = cfg.tier if cfg.tier != 'auto' else ('device' if train_mb <= cfg.device_max_mb
                                              else 'stream')
  check_memory(cfg, raw.where, shape, len(tr), len(te), tier)  # before anything is resized
  if tier == 'device':
    train_images = _materialize(raw, prep, tr, shape)
    check_images(train_images, raw.where)
  else:
    train_images = StreamSource(raw, tr, prep, shape)
  test_images = _materialize(raw, prep, te, shape)
  check_images(test_images, f'{raw.where} (test split)')
  ids = raw.ids if raw.ids is not None else np.arange(raw.num, dtype=np.int32)
  labels, names, values = classes(raw, ids)

  def part(idx, images):
    return {'image': images, 'label': np.asarray(labels)[idx], 'id': np.asarray(ids)[idx]}

  storage = dict(raw.storage or {'layout': 'NHWC', 'dtype': 'float32'})
  if 'int_max' in storage and not storage['int_max']:
    storage['int_max'] = integer_scale(cfg, raw)
  info = DatasetInfo(name=cfg.name, image_shape=tuple(int(s) for s in shape),
                     num_classes=len(names), class_names=tuple(names), tier=tier,
                     factors=raw.factors, color_key=raw.color_key, where=raw.where,
                     preprocessing=steps, num_train=len(tr), num_test=len(te),
                     storage=storage, class_values=values, published=raw.published,
                     split_note=raw.split_note)
  return Dataset(part(tr, train_images), part(te, test_images), info)


def check_memory(cfg, where: str, shape, num_train: int, num_test: int, tier: str,
                 available: int | None = None) -> None:
  """Refuse data that cannot fit in this machine's memory after preprocessing, estimated
  from the shape and the counts alone (nothing resized yet): the test split is always held
  as float32, the training split too on the device tier. One ConfigError line with the
  estimate and the keys to turn."""
  available = host_available() if available is None else available
  one = 4 * int(np.prod(shape))
  need = one * (num_test + (num_train if tier == 'device' else 0))
  if available is None or need <= available:
    return
  h, w, c = shape
  held = f'{num_test} test images' + (f' and {num_train} training images (the device tier)'
                                      if tier == 'device' else '')
  lower = ['data.image_size' if cfg.image_size else 'data.crop or data.image_size',
           'data.test_fraction']
  stream = (", or set data.tier='stream' (training images read batch by batch)"
            if tier == 'device' else '')
  raise ConfigError(f'{where} at {h}x{w}x{c} needs {size(need)} as float32 for its {held}; '
                    f'this machine has {size(available)} available: lower '
                    f'{" or ".join(lower)}{stream}')


def by_ids(dataset: Dataset, ids) -> tuple[np.ndarray, np.ndarray]:
  """(images [N, H, W, C], labels [N]) of the examples with dataset ids `ids`, from either
  split; an unknown id is a ConfigError naming the valid range."""
  ids = [int(i) for i in ids]
  where = {}
  for name in ('train', 'test'):
    for pos, i in enumerate(np.asarray(getattr(dataset, name)['id'])):
      where[int(i)] = (name, pos)
  missing = [i for i in ids if i not in where]
  if missing:
    known = sorted(where)
    raise ConfigError(f'image id(s) {missing} are not in this dataset; its ids run from '
                      f'{known[0]} to {known[-1]} ({len(known)} images)')
  images, labels = [], []
  for i in ids:
    which, pos = where[i]
    part = getattr(dataset, which)
    x = part['image']
    images.append(x.read(np.array([pos]))[0] if isinstance(x, StreamSource) else
                  np.asarray(x[pos]))
    labels.append(int(part['label'][pos]))
  return np.stack(images), np.asarray(labels, np.int32)
