"""The dataset record types: what a source hands the loader (`Raw`), what the loader hands
the trainer (`Dataset` of split dicts, `DatasetInfo`), and the streamed training split
(`StreamSource`). Only numpy below this module."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np


@dataclasses.dataclass(kw_only=True)
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
  # the published dataset the files were recognised as ('fashion_mnist', 'mnist': IDX
  # files), which picks the sample-quality classifier; '' for any other data
  published: str = ''
  split_note: str = ''  # how the split was made, when the source fixed it (the data line)

  def describe(self) -> str:
    """One line a run prints at start: the source, the split and the preprocessing."""
    steps = '; '.join(self.preprocessing) or 'used as stored'
    h, w, c = self.image_shape
    split = f' ({self.split_note})' if self.split_note else ''
    return (f'data: {self.where or self.name}: {self.num_train} train / {self.num_test} test '
            f'images{split}, {h}x{w}x{c} ({steps}; {self.tier} tier)')

  def label_record(self) -> dict:
    """class_values for model.json (JSON holds no bytes: those go as latin-1 text)."""
    if self.class_values is None:
      return {}
    v = np.asarray(self.class_values)
    return {'class_values': [x.decode('latin-1') if isinstance(x, bytes) else x
                             for x in v.tolist()], 'label_dtype': v.dtype.str}



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
  published: str = ''  # see DatasetInfo.published
  split_note: str = ''  # see DatasetInfo.split_note


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

