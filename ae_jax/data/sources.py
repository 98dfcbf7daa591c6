"""The sources registry: `data.name` -> a function of `config.data` returning a `Raw` (the
images before preprocessing, with labels, ids, class names and a fixed split if the source
has one). Embedded datasets are generated or read from installed packages; file sources
read the user's files."""
from __future__ import annotations

import gzip
import importlib.util
import logging
import os

import numpy as np

from ae_jax.data import dsprites, files, folder, idx, skimage_sets, wafer, wm811k
from ae_jax.data.records import Raw
from ae_jax.errors import ConfigError, DataError

log = logging.getLogger('ae_jax')

TFDS_NAMES = ('mnist', 'fashion_mnist', 'cifar10', 'celeb_a')
# schema.py's default of data.test_fraction (schema imports data, so data cannot import it;
# tests/test_data_idx.py checks that the two agree)
DEFAULT_TEST_FRACTION = 0.2


def _array_raw(images, where, labels=None, class_names=(), **kw) -> Raw:
  return Raw(len(images), lambda idx: np.asarray(images[idx]), where, labels=labels,
             class_names=tuple(class_names), **kw)


def _digits_table() -> np.ndarray:
  """scikit-learn's copy of the UCI digits, [1797, 65] (64 pixels in 0..16, then the
  label), read from the file load_digits reads without importing scikit-learn, whose
  import took 2.3 s of every process that trains on digits; load_digits itself where the
  file is not where scikit-learn 1.x keeps it (tests/test_data.py compares the two)."""
  spec = importlib.util.find_spec('sklearn')  # finds the package without importing it
  path = os.path.join(spec.submodule_search_locations[0], 'datasets', 'data', 'digits.csv.gz')
  if os.path.isfile(path):
    with gzip.open(path, 'rt') as f:
      return np.loadtxt(f, delimiter=',')
  from sklearn.datasets import load_digits
  d = load_digits()
  return np.concatenate([d.data, d.target[:, None]], axis=1)


def _digits(cfg):
  # bundled with scikit-learn: no download
  table = _digits_table()
  images = (table[:, :64].reshape(-1, 8, 8).astype(np.float32) / 16.0)[..., None]  # [1797, 8, 8, 1]
  labels = table[:, 64].astype(np.int32)
  return _array_raw(images, 'digits', labels, [str(i) for i in range(10)])


def _wafer(cfg):
  size = cfg.image_size or 26
  maps, labels = wafer.generate(cfg.num_examples or 2000, size, cfg.wafer.balance,
                                cfg.wafer.seed)
  return _array_raw(wafer.render(maps, cfg.wafer.render), 'wafer', labels, wafer.CLASS_NAMES,
                    resize_method='nearest', color_key=wafer.color_key(cfg.wafer.render),
                    storage={'wafer': cfg.wafer.render})


def _dsprites(cfg):
  d = cfg.dsprites
  ranges = {name: tuple(d[name]) for name in dsprites.FACTOR_NAMES if d[name] is not None}
  try:
    images, factors = dsprites.generate(cfg.num_examples or 10000, d.seed, ranges)
  except ValueError as e:
    raise ConfigError(f'data.dsprites: {e}') from e
  return _array_raw(images[..., None], 'dsprites', factors[:, 0], dsprites.SHAPES,
                    factors=factors)


def _photos(cfg):
  size = cfg.image_size or 50
  try:
    images, labels, is_test, names, _ = skimage_sets.photo_patches(
        size, cfg.num_examples or 2000, cfg.test_fraction, cfg.split_seed)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  pos = np.arange(len(images))
  return _array_raw(images, 'photos', labels, names, split=(pos[~is_test], pos[is_test]))


def _faces(cfg):
  images, labels, names = skimage_sets.lfw_faces()
  return _array_raw(images, 'faces (lfw_subset)', labels, names)


def _npy(cfg):
  images, labels, ids, layout = files.load_arrays(cfg)
  storage = {'layout': layout, 'dtype': str(images.dtype)}
  if images.dtype.kind in 'ui':
    storage['int_max'] = int(cfg.int_max) or None  # None: decided from the data (see below)
  if files.is_nchw(images.shape):
    read = lambda idx: np.moveaxis(np.asarray(images[idx]), 1, -1)  # NCHW -> NHWC
  else:
    read = lambda idx: np.asarray(images[idx])
  return Raw(images.shape[0], read, cfg.path, labels=labels, ids=ids, user_files=True,
             storage=storage)


def _folder(cfg):
  found = folder.load_folder(cfg, cfg.image_size)
  labels = found.labels if found.class_names else None  # no subfolders: unlabelled
  return _array_raw(found.images, cfg.path, labels, found.class_names,
                    note='; '.join(found.notes), int_max=255,  # 8-bit pixels, never binary
                    class_values=np.asarray(found.class_names) if found.class_names else None)


def _wm811k(cfg):
  maps, labels = wm811k.load(cfg, cfg.image_size or 26)
  return _array_raw(wafer.render(maps, cfg.wafer.render), cfg.path, labels,
                    wm811k.CLASS_NAMES, resize_method='nearest',
                    color_key=wafer.color_key(cfg.wafer.render),
                    storage={'wafer': cfg.wafer.render},
                    note=f'wafer maps resized to {cfg.image_size or 26}x{cfg.image_size or 26} by '
                         'nearest neighbour')


def _idx(cfg):
  found = idx.open_folder(cfg.path)
  train, test = found.train, found.test
  n_train, n_test = len(train.images), len(test.images)
  if cfg.test_fraction != DEFAULT_TEST_FRACTION:
    log.warning('data.test_fraction=%g is ignored: IDX files keep their own train/test split '
                '(%d / %d images)', cfg.test_fraction, n_train, n_test)

  def read(positions):
    """Positions 0..N-1 are the training file's images, N.. the test file's."""
    positions = np.asarray(positions)
    out = np.empty((len(positions), *train.images.shape[1:]), np.uint8)  # [B, rows, cols]
    first = positions < n_train
    out[first] = train.images[positions[first]]
    out[~first] = test.images[positions[~first] - n_train]
    return out

  pub = found.published
  pos = np.arange(n_train + n_test)
  used = min(n_train, cfg.num_examples) if cfg.num_examples else n_train
  split_note = 'the published train/test split' if pub else "the files' train/t10k split"
  if used < n_train:
    split_note = f'the first {used} of the {n_train} training images of {split_note}'
  return Raw(n_train + n_test, read, f'{found.folder} ({pub.title})' if pub else found.folder,
             labels=np.concatenate([train.labels, test.labels]).astype(np.int32),
             class_names=found.class_names, split=(pos[:used], pos[n_train:]),
             int_max=255, storage={'layout': 'NHW', 'dtype': 'uint8', 'int_max': 255},
             published=pub.name if pub else '', split_note=split_note)


def _tfds(cfg):
  # tfds takes seconds to import and only its datasets need it
  import tensorflow_datasets as tfds
  name = cfg.name
  data_dir = cfg.path or None
  try:
    # download=False: these machines have no network, and tfds would otherwise try to
    # download and prepare the dataset (which also needs TensorFlow).
    train = tfds.data_source(name, split='train', data_dir=data_dir, download=False)
    test = tfds.data_source(name, split='test', data_dir=data_dir, download=False)
  except Exception as e:  # noqa: BLE001 - tfds raises many kinds; say what to do
    where = cfg.path or '~/tensorflow_datasets'
    raise DataError(
        f'tfds dataset {name!r} is not prepared in {where} ({type(e).__name__}); prepare it '
        'once on a machine with network (this needs TensorFlow, only for preparing): pip '
        f'install tensorflow && tfds build {name} --file_format=array_record --data_dir DIR, '
        'then copy DIR here and set data.path=DIR') from e
  n_train, n_test = len(train), len(test)

  def item(i):
    source, j = (train, i) if i < n_train else (test, i - n_train)
    return source[int(j)]  # tfds data sources are read one item at a time

  first = item(0)
  labels = None
  label_key = next((k for k in ('label', 'attributes') if k in first), None)
  if label_key == 'label':
    labels = np.array([int(item(i)['label']) for i in range(n_train + n_test)], np.int32)

  def read(idx):
    return np.stack([np.asarray(item(int(i))['image']) for i in idx])

  pos = np.arange(n_train + n_test)
  return Raw(n_train + n_test, read, f'tfds:{name}', labels=labels,
             split=(pos[:n_train], pos[n_train:]), user_files=True)


SOURCES = {'digits': _digits, 'wafer': _wafer, 'dsprites': _dsprites, 'photos': _photos,
           'faces': _faces, 'npy': _npy, 'folder': _folder, 'wm811k': _wm811k, 'idx': _idx,
           **{n: _tfds for n in TFDS_NAMES}}

