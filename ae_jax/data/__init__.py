"""Datasets -> float32 NHWC images in [0, 1] plus metadata. Never imports models.

`load(config.data)` returns a `Dataset` whose `train` and `test` are dicts with
`image`, `label` [N] (-1 where unlabelled) and `id` [N], the example's index in the
source dataset, which the split preserves so users can name images by id.

Two tiers: small data is materialised as one float32 array (the trainer puts it on the
device and scans epochs over it); data over `data.device_max_mb` (or with
`data.tier='stream'`) stays where it is, a `StreamSource` that reads and preprocesses
one batch at a time (memory-mapped arrays, per-item readers), prefetched by the trainer.
The test split is always materialised.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ae_jax.data.pixels import BACKGROUNDS, composite, parse_background  # noqa: F401
from ae_jax.errors import ConfigError, DataError

TFDS_NAMES = ('mnist', 'fashion_mnist', 'cifar10', 'celeb_a')


@dataclasses.dataclass
class DatasetInfo:
  name: str
  image_shape: tuple[int, int, int]
  num_classes: int
  class_names: tuple[str, ...]
  tier: str = 'device'
  factors: np.ndarray | None = None  # dsprites: ground-truth factor indices [N, 5]
  color_key: tuple = ()  # ((colour, meaning), ...) for images whose channels are categories
  where: str = ''  # the source (a path, or the embedded dataset's name)
  preprocessing: tuple[str, ...] = ()  # what loading did to the images, in order
  num_train: int = 0
  num_test: int = 0
  # How the source stores images, so generated ones can be written back the same way:
  # {'layout': 'NHWC'|'NCHW'|'NHW', 'dtype': 'float32'|'uint8'|..., 'int_max': 255} or
  # {'wafer': 'onehot'|'gray'} for WM-811K maps (integer 0 off-wafer, 1 good, 2 failing).
  storage: dict = dataclasses.field(default_factory=lambda: {'layout': 'NHWC',
                                                             'dtype': 'float32'})
  # The label of class i as the source gave it (class_names[i] is its text): the user's own
  # values for .npy/.npz labels (ints with gaps, floats, strings, ...), the folder names of
  # an image folder, and 0..K-1 for sources whose labels are class indices already.
  class_values: np.ndarray | None = None

  def describe(self) -> str:
    """One line a run prints at start: the source, the split and the preprocessing."""
    steps = '; '.join(self.preprocessing) or 'used as stored'
    h, w, c = self.image_shape
    return (f'data: {self.where or self.name}: {self.num_train} train / {self.num_test} test '
            f'images, {h}x{w}x{c} ({steps}; {self.tier} tier)')

  def label_record(self) -> dict:
    """class_values for model.json (JSON holds no bytes: those go as latin-1 text)."""
    if self.class_values is None:
      return {}
    v = np.asarray(self.class_values)
    return {'class_values': [x.decode('latin-1') if isinstance(x, bytes) else x
                             for x in v.tolist()], 'label_dtype': v.dtype.str}


def class_values_from(record: dict) -> np.ndarray | None:
  """model.json's class_values back in their stored dtype (None: written before they were)."""
  if record.get('class_values') is None:
    return None
  dtype = np.dtype(record.get('label_dtype', '<i8'))
  values = record['class_values']
  if dtype.kind == 'S':
    return np.array([x.encode('latin-1') for x in values], dtype)
  return np.asarray(values, dtype)


def label_text(value) -> str:
  """A class's name from its label value: 5, -1, 0.5 (the shortest text that reads back
  as the same float), cat, True."""
  if isinstance(value, (bytes, np.bytes_)):
    return bytes(value).decode('utf-8', 'backslashreplace')
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, (float, np.floating)):
    return np.format_float_positional(value, trim='-')
  if isinstance(value, (int, np.integer)):
    return str(int(value))
  return str(value)


def label_classes(labels, where: str, ids=None):
  """The user's labels of any kind -> (class indices int32 [N] in 0..K-1, class names,
  class values [K]): the sorted unique values, so every tool matches classes by index."""
  labels = np.asarray(labels)
  if labels.dtype.kind not in 'biufSU':
    raise DataError(f'{where}: labels have dtype {labels.dtype}; expected integers, floats, '
                    'bools or strings')
  if labels.dtype.kind == 'f' and not np.isfinite(labels).all():
    raise DataError(f'{where}: labels contain NaN or inf{_first_bad(~np.isfinite(labels), ids)}'
                    '; expected a class value for every image')
  values, index = np.unique(labels, return_inverse=True)
  return (index.reshape(-1).astype(np.int32), tuple(label_text(v) for v in values), values)


def original_labels(indices, class_values) -> np.ndarray:
  """Class indices -> the source's own label values (class_values[i], in their dtype);
  -1 (unlabelled) stays -1. Without class_values (an old model.json) the indices."""
  idx = np.asarray(indices)
  if class_values is None or len(class_values) == 0:
    return idx.astype(np.int64)
  values = np.asarray(class_values)
  out = values[np.clip(idx, 0, len(values) - 1)]
  return np.where(idx < 0, -1, out) if (idx < 0).any() else out


@dataclasses.dataclass
class Dataset:
  train: dict
  test: dict
  info: DatasetInfo


@dataclasses.dataclass
class Raw:
  """A source before preprocessing: read(idx) -> raw images [len(idx), ...]."""
  num: int
  read: Callable[[np.ndarray], np.ndarray]
  where: str
  labels: np.ndarray | None = None
  ids: np.ndarray | None = None
  class_names: tuple[str, ...] = ()
  split: tuple[np.ndarray, np.ndarray] | None = None  # fixed (train, test) positions
  resize_method: str = 'linear'
  factors: np.ndarray | None = None
  color_key: tuple = ()
  user_files: bool = False  # the user's own images (resizing them is worth a warning)
  note: str = ''  # preprocessing the source itself did ('; '-separated steps)
  int_max: int = 0  # what the source's integer pixels are out of, when it knows (0: decide)
  class_values: np.ndarray | None = None  # label values of class_names (default 0..K-1)
  storage: dict | None = None  # how the source stores images (see to_storage)


class StreamSource:
  """Training images read from their source `batch` by batch (never all in memory)."""

  def __init__(self, raw: Raw, positions: np.ndarray, prep: Callable, shape):
    self.raw, self.positions, self.prep, self.shape = raw, positions, prep, (len(positions), *shape)

  def __len__(self):
    return len(self.positions)

  def read(self, idx) -> np.ndarray:
    """idx: positions in this split -> float32 [len(idx), H, W, C]."""
    idx = np.asarray(idx)
    order = np.argsort(idx, kind='stable')  # sorted reads are kinder to memory maps
    src = self.positions[idx[order]]
    batch = self.prep(self.raw.read(src), src)
    out = np.empty_like(batch)
    out[order] = batch
    return out


# ---- sources ---------------------------------------------------------------------------


def _array_raw(images, where, labels=None, class_names=(), **kw) -> Raw:
  return Raw(len(images), lambda idx: np.asarray(images[idx]), where, labels=labels,
             class_names=tuple(class_names), **kw)


def _digits(cfg):
  from sklearn.datasets import load_digits  # bundled with scikit-learn: no download
  d = load_digits()
  images = (d.images.astype(np.float32) / 16.0)[..., None]  # [1797, 8, 8, 1]
  return _array_raw(images, 'digits', d.target.astype(np.int32), [str(i) for i in range(10)])


def _wafer(cfg):
  from ae_jax.data import wafer
  size = cfg.image_size or 26
  maps, labels = wafer.generate(cfg.num_examples or 2000, size, cfg.wafer.balance,
                                cfg.wafer.seed)
  return _array_raw(wafer.render(maps, cfg.wafer.render), 'wafer', labels, wafer.CLASS_NAMES,
                    resize_method='nearest', color_key=wafer.color_key(cfg.wafer.render),
                    storage={'wafer': cfg.wafer.render})


def _dsprites(cfg):
  from ae_jax.data import dsprites
  d = cfg.dsprites
  ranges = {name: tuple(d[name]) for name in dsprites.FACTOR_NAMES if d[name] is not None}
  try:
    images, factors = dsprites.generate(cfg.num_examples or 10000, d.seed, ranges)
  except ValueError as e:
    raise ConfigError(f'data.dsprites: {e}') from e
  return _array_raw(images[..., None], 'dsprites', factors[:, 0], dsprites.SHAPES,
                    factors=factors)


def _photos(cfg):
  from ae_jax.data import skimage_sets
  size = cfg.image_size or 50
  try:
    images, labels, is_test, names, _ = skimage_sets.photo_patches(
        size, cfg.num_examples or 2000, cfg.test_fraction, cfg.split_seed)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  pos = np.arange(len(images))
  return _array_raw(images, 'photos', labels, names, split=(pos[~is_test], pos[is_test]))


def _faces(cfg):
  from ae_jax.data import skimage_sets
  images, labels, names = skimage_sets.lfw_faces()
  return _array_raw(images, 'faces (lfw_subset)', labels, names)


def _npy(cfg):
  from ae_jax.data import files
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
  from ae_jax.data import files
  folder = files.load_folder(cfg, cfg.image_size)
  labels = folder.labels if folder.class_names else None  # no subfolders: unlabelled
  return _array_raw(folder.images, cfg.path, labels, folder.class_names,
                    note='; '.join(folder.notes), int_max=255,  # 8-bit pixels, never binary
                    class_values=np.asarray(folder.class_names) if folder.class_names else None)


def _wm811k(cfg):
  from ae_jax.data import files, wafer
  maps, labels = files.load_wm811k(cfg, cfg.image_size or 26)
  return _array_raw(wafer.render(maps, cfg.wafer.render), cfg.path, labels,
                    files.WM811K_CLASSES, resize_method='nearest',
                    color_key=wafer.color_key(cfg.wafer.render),
                    storage={'wafer': cfg.wafer.render},
                    note=f'wafer maps resized to {cfg.image_size or 26}x{cfg.image_size or 26} by '
                         'nearest neighbour')


def _tfds(cfg):
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
           'faces': _faces, 'npy': _npy, 'folder': _folder, 'wm811k': _wm811k,
           **{n: _tfds for n in TFDS_NAMES}}


# ---- preprocessing ---------------------------------------------------------------------


def resize(images: np.ndarray, size: int, method: str = 'linear') -> np.ndarray:
  """Square resize of float NHWC images (antialiased when shrinking)."""
  import jax
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


def _first_bad(mask_per_image, ids) -> str:
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
                  f'expected 0..{int_max}{_first_bad((raw < 0) | (raw > int_max), ids)}')
    return raw.astype(np.float32) / int_max
  x = raw.astype(np.float32)
  if x.size and not np.isfinite(x).all():
    raise error(f'{where}: images contain NaN or inf values{_first_bad(~np.isfinite(x), ids)}')
  if x.size and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
    raise error(f'{where}: float images range over [{x.min():.4g}, {x.max():.4g}]; '
                f'expected [0, 1] (or uint8 0..{int_max}; divide floats by {int_max})'
                f'{_first_bad((x < -1e-6) | (x > 1 + 1e-6), ids)}')
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


def _preprocessor(cfg, raw: Raw):
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


def split(n: int, test_fraction: float, seed: int):
  """Deterministic (train_idx, test_idx), each sorted so ids keep their order."""
  perm = np.random.default_rng(seed).permutation(n)
  n_test = max(1, int(round(n * test_fraction)))
  if n - n_test < 1:
    raise DataError(f'{n} examples cannot be split with test_fraction={test_fraction}')
  return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _materialize(raw, prep, positions, chunk=2048):
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
  prep = _preprocessor(cfg, raw)
  first = raw.read(tr[:1])
  shape = prep(first, tr[:1]).shape[1:]
  steps = _describe_preprocessing(cfg, raw, first.shape[1:], shape)
  train_mb = len(tr) * int(np.prod(shape)) * 4 / 2**20
  tier = cfg.tier if cfg.tier != 'auto' else ('device' if train_mb <= cfg.device_max_mb
                                              else 'stream')
  if tier == 'device':
    train_images = _materialize(raw, prep, tr)
    check_images(train_images, raw.where)
  else:
    train_images = StreamSource(raw, tr, prep, shape)
  test_images = _materialize(raw, prep, te)
  check_images(test_images, f'{raw.where} (test split)')
  ids = raw.ids if raw.ids is not None else np.arange(raw.num, dtype=np.int32)
  labels, names, values = _classes(raw, ids)

  def part(idx, images):
    return {'image': images, 'label': np.asarray(labels)[idx], 'id': np.asarray(ids)[idx]}

  storage = dict(raw.storage or {'layout': 'NHWC', 'dtype': 'float32'})
  if 'int_max' in storage and not storage['int_max']:
    storage['int_max'] = integer_scale(cfg, raw)
  info = DatasetInfo(cfg.name, tuple(int(s) for s in shape), len(names), tuple(names), tier,
                     raw.factors, raw.color_key, raw.where, steps, len(tr), len(te), storage,
                     values)
  return Dataset(part(tr, train_images), part(te, test_images), info)


def _classes(raw: Raw, ids):
  """-> (labels as class indices [N], -1 unlabelled; class names; class values)."""
  if raw.labels is None:
    values = raw.class_values if raw.class_values is not None else np.zeros(0, np.int64)
    return np.full(raw.num, -1, np.int32), tuple(raw.class_names), values
  if raw.class_names:  # the source's labels are indices into its names already
    values = (raw.class_values if raw.class_values is not None
              else np.arange(len(raw.class_names), dtype=np.int64))
    return np.asarray(raw.labels, np.int32), tuple(raw.class_names), values
  # the user's own labels (.npy/.npz, tfds): every distinct value is a class
  return label_classes(raw.labels, raw.where, ids)


def _describe_preprocessing(cfg, raw: Raw, native, final) -> tuple[str, ...]:
  """What loading does to the images, and a warning when data.image_size resizes the
  user's own images (a config written for other data would do it silently)."""
  import logging
  native = tuple(native) if len(native) == 3 else (*native, 1)
  steps = [raw.note] if raw.note else []
  h, w = native[0], native[1]
  if cfg.crop:
    steps.append(f'center-cropped {h}x{w} -> {cfg.crop}x{cfg.crop} (data.crop)')
    h = w = cfg.crop
  if cfg.image_size and (h, w) != (cfg.image_size, cfg.image_size) and not raw.note:
    steps.append(f'resized {h}x{w} -> {cfg.image_size}x{cfg.image_size} (data.image_size)')
    if raw.user_files:
      logging.getLogger('ae_jax').warning(
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


def by_ids(dataset: 'Dataset', ids) -> tuple[np.ndarray, np.ndarray]:
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
    split, pos = where[i]
    part = getattr(dataset, split)
    x = part['image']
    images.append(x.read(np.array([pos]))[0] if isinstance(x, StreamSource) else
                  np.asarray(x[pos]))
    labels.append(int(part['label'][pos]))
  return np.stack(images), np.asarray(labels, np.int32)
