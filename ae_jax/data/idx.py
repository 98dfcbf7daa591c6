"""MNIST-family IDX files: Fashion-MNIST, MNIST, KMNIST and torchvision's `raw/` folders.

An IDX file (LeCun's format for MNIST) is a big-endian header, two zero bytes, a type byte
(0x08 = uint8), the number of dimensions, each size as a 4-byte int, then the array in C
order. A dataset is four files, gzipped or not, whose train/t10k split is the published
one and is kept:

  train-images-idx3-ubyte  [N, rows, cols]    train-labels-idx1-ubyte  [N]
  t10k-images-idx3-ubyte   [M, rows, cols]    t10k-labels-idx1-ubyte   [M]

An uncompressed file is memory-mapped (a training split larger than memory streams from
disk); a gzipped one is decompressed once, into memory.

Files are recognised as a published dataset (its class names, its sample-quality
classifier) by their shapes and the SHA-256 of both decompressed label files: the labels
pin down the dataset and its order in 70 KB, where hashing the images would read 55 MB at
every start. The images are not hashed, so other images put beside a published dataset's
label files would pass for it.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import os
import struct
import zlib

import numpy as np

from ae_jax.errors import ConfigError, DataError

# (images, labels) per split, as published; Kaggle's copies spell them 'train-images.idx3-ubyte'
FILES = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
         'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}
TYPES = {0x08: 'uint8', 0x09: 'int8', 0x0B: 'int16', 0x0C: 'int32', 0x0D: 'float32',
         0x0E: 'float64'}  # the IDX type bytes; only uint8 is read
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'
INSTALL_FASHION_MNIST = 'apt-get install dataset-fashion-mnist'


@dataclasses.dataclass(frozen=True)
class Published:
  """A published IDX dataset, recognised by its shapes and label files' digests."""
  name: str                        # the sample-quality classifier's name: 'fashion_mnist'
  title: str                       # 'Fashion-MNIST'
  class_names: tuple[str, ...]
  train_labels_sha256: str         # of the decompressed train-labels-idx1-ubyte
  test_labels_sha256: str          # of the decompressed t10k-labels-idx1-ubyte
  num_train: int = 60000
  num_test: int = 10000
  size: tuple[int, int] = (28, 28)


# Digests of the decompressed files. Fashion-MNIST: Debian's dataset-fashion-mnist
# (0.0~git20200523.55506a9-1); its label files decompress to the same bytes as the
# zalandoresearch/fashion-mnist repository's, whose .gz MD5s are the published ones
# (25c81989..., bb300cfd...). MNIST: label files whose .gz MD5s are LeCun's published
# d53e105e... (train) and ec29112d... (t10k).
PUBLISHED = (
    Published('fashion_mnist', 'Fashion-MNIST', FASHION_MNIST_CLASSES,
              'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
              '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34'),
    Published('mnist', 'MNIST', tuple(str(d) for d in range(10)),
              '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
              'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2'),
)


@dataclasses.dataclass
class Split:
  images: np.ndarray       # uint8 [N, rows, cols]; a memory map for an uncompressed file
  labels: np.ndarray       # uint8 [N]
  images_path: str
  labels_path: str
  labels_sha256: str


@dataclasses.dataclass
class Files:
  folder: str
  train: Split
  test: Split
  published: Published | None  # None: not a dataset ae_jax knows

  @property
  def class_names(self) -> tuple[str, ...]:
    """The published names, or the label values as text: '0' .. str(largest label)."""
    if self.published is not None:
      return self.published.class_names
    top = max(int(self.train.labels.max(initial=0)), int(self.test.labels.max(initial=0)))
    return tuple(str(i) for i in range(top + 1))


# ---- one file -----------------------------------------------------------------------------


def _header(head: bytes, path: str, ndim: int) -> tuple[int, ...]:
  """The sizes an IDX header declares, after checking its magic number, type and rank."""
  if len(head) < 4:
    raise DataError(f'{path}: truncated: {len(head)} bytes, shorter than an IDX header')
  if head[0] or head[1]:
    raise DataError(f'{path}: wrong magic number 0x{head[:4].hex()}; an IDX file starts with '
                    f'two zero bytes, a type byte and its rank (0x0000080{ndim} here)')
  if head[2] != 0x08:
    kind = TYPES.get(head[2], 'not an IDX type')
    raise DataError(f'{path}: IDX type byte 0x{head[2]:02x} ({kind}); expected 0x08 (uint8)')
  if head[3] != ndim:
    what = '[images, rows, columns]' if ndim == 3 else '[labels]'
    raise DataError(f'{path}: {head[3]} dimensions; expected {ndim}: {what}')
  if len(head) < 4 + 4 * ndim:
    raise DataError(f'{path}: truncated: the header ends after {len(head)} bytes, '
                    f'before its {ndim} sizes')
  return struct.unpack(f'>{ndim}I', head[4:4 + 4 * ndim])


def _check_body(path: str, dims, available: int) -> None:
  need = math.prod(dims)  # Python ints: a damaged header cannot overflow it
  shape = 'x'.join(str(d) for d in dims)
  if available < need:
    raise DataError(f'{path}: truncated: {available} bytes of data after the header, which '
                    f'declares {shape} = {need}')
  if available > need:
    raise DataError(f'{path}: {available - need} bytes after the {shape} array its header '
                    'declares; expected the file to end there')


def _decompress(path: str) -> bytes:
  try:
    with gzip.open(path, 'rb') as f:
      return f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f'{path}: not a readable gzip file ({" ".join(str(e).split())})') from e


def read(path: str, ndim: int) -> tuple[np.ndarray, bytes | None]:
  """An IDX file of rank `ndim` -> (uint8 array, the file's decompressed bytes or None).

  Uncompressed: a read-only memory map (bytes None). Gzipped: decompressed once, the array a
  view of the returned bytes."""
  if path.endswith('.gz'):
    content = _decompress(path)
    dims = _header(content[:4 + 4 * ndim], path, ndim)
    offset = 4 + 4 * ndim
    _check_body(path, dims, len(content) - offset)
    return np.frombuffer(content, np.uint8, offset=offset).reshape(dims), content
  with open(path, 'rb') as f:
    head = f.read(4 + 4 * ndim)
  dims = _header(head, path, ndim)
  offset = 4 + 4 * ndim
  _check_body(path, dims, os.path.getsize(path) - offset)
  if not math.prod(dims):
    return np.zeros(dims, np.uint8), None  # numpy cannot map zero bytes
  return np.memmap(path, np.uint8, 'r', offset=offset, shape=tuple(dims)), None


# ---- a folder -----------------------------------------------------------------------------


def _variants(name: str) -> tuple[str, ...]:
  """Uncompressed first (it can be memory-mapped), then gzipped; then Kaggle's spelling."""
  dotted = name.replace('-idx', '.idx')
  return (name, name + '.gz', dotted, dotted + '.gz')


def _find(folder: str, name: str) -> str | None:
  return next((os.path.join(folder, v) for v in _variants(name)
               if os.path.isfile(os.path.join(folder, v))), None)


def _holds_idx(folder: str) -> bool:
  return os.path.isdir(folder) and any(
      _find(folder, n) for pair in FILES.values() for n in pair)


def _names() -> str:
  return ', '.join(n for pair in FILES.values() for n in pair)


def find_folder(path: str) -> str:
  """data.path -> the folder holding the IDX files: the path itself, its raw/ (a
  torchvision dataset folder), or the one <name>/raw/ below it (a torchvision root)."""
  if not path:
    raise ConfigError('data.path is empty: data.name=idx needs the folder of IDX files '
                      '(--config.data.path=...)')
  if not os.path.isdir(path):
    what = 'not a folder' if os.path.exists(path) else 'no such folder'
    raise DataError(f'{path}: {what}; data.name=idx reads a folder of the four IDX files '
                    f'({_names()}, gzipped or not). Fashion-MNIST: `{INSTALL_FASHION_MNIST}` '
                    f'installs them in {DEBIAN_FASHION_MNIST}/')
  for folder in (path, os.path.join(path, 'raw')):
    if _holds_idx(folder):
      return folder
  below = [os.path.join(path, d, 'raw') for d in sorted(os.listdir(path))]
  found = [f for f in below if _holds_idx(f)]
  if len(found) > 1:
    rel = ', '.join(os.path.relpath(f, path) for f in found)
    raise DataError(f'{path}: IDX files in several folders ({rel}); set data.path to one of '
                    'them')
  if not found:
    raise DataError(f'{path}: no IDX files ({_names()}, gzipped or not) here, in raw/ or in '
                    'a <dataset>/raw/ folder below it')
  return found[0]


def _split(folder: str, split: str) -> Split:
  paths = []
  for name, what in zip(FILES[split], ('images', 'labels')):
    path = _find(folder, name)
    if path is None:
      raise DataError(f'{os.path.join(folder, name)}[.gz]: missing (the {split} split\'s '
                      f'{what}); data.name=idx needs all four files: {_names()}')
    paths.append(path)
  images, _ = read(paths[0], 3)
  labels, content = read(paths[1], 1)
  if content is None:  # uncompressed: the labels are small, read them whole for the digest
    with open(paths[1], 'rb') as f:
      content = f.read()
    labels = np.frombuffer(content, np.uint8, offset=8)
  if len(labels) != len(images):
    raise DataError(f'{paths[1]}: {len(labels)} labels, but {paths[0]} holds {len(images)} '
                    'images; expected one label per image')
  if 0 in images.shape[1:]:
    raise DataError(f'{paths[0]}: images of {images.shape[1]}x{images.shape[2]} pixels')
  return Split(images, labels, paths[0], paths[1], hashlib.sha256(content).hexdigest())


def recognise(train: Split, test: Split) -> Published | None:
  """The published dataset these splits are (shapes and label digests), or None."""
  for p in PUBLISHED:
    if (train.images.shape == (p.num_train, *p.size) and
        test.images.shape == (p.num_test, *p.size) and
        train.labels_sha256 == p.train_labels_sha256 and
        test.labels_sha256 == p.test_labels_sha256):
      return p
  return None


def open_folder(path: str) -> Files:
  """data.path -> the four files read (memory-mapped or decompressed) and checked."""
  folder = find_folder(path)
  train, test = _split(folder, 'train'), _split(folder, 'test')
  if test.images.shape[1:] != train.images.shape[1:]:
    raise DataError(f'{test.images_path}: images of {test.images.shape[1]}x'
                    f'{test.images.shape[2]}, but the training images ({train.images_path}) '
                    f'are {train.images.shape[1]}x{train.images.shape[2]}')
  return Files(folder, train, test, recognise(train, test))
