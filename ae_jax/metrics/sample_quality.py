"""Sample quality without Inception: Fréchet distance and precision/recall in the feature
space of a small classifier trained on the dataset itself.

FID needs an ImageNet Inception network (a download, and meaningless on 8x8 digits or
wafer maps). Here the feature space is the penultimate layer (64 ReLU units) of a small
CNN that ae_jax trains on the labelled dataset and caches: the embedded `digits`
(scikit-learn's 8x8 digits, 10 classes) and `wafer` (the procedural WM-811K-style maps, 9
classes) in seconds on a CPU; `fashion_mnist` and `mnist` from the published training
split of the IDX files a run trained on (data.name='idx', recognised by data/idx.py), its
accuracy measured on their test split. The numbers are therefore "FD in a
digits-classifier feature space" (`fd_digits`, `fd_wafer`, ...): comparable between models
scored with the same classifier (same dataset, shape and VERSION), never with published
FIDs.

Each dataset has one canonical classifier shape (digits 8x8x1, wafer 26x26x1 with the
map's values off 0, good 0.5, fail 1, Fashion-MNIST and MNIST 28x28x1), and `score` brings
both image sets to it, so runs at any data.image_size share one feature space:
- images: float NHWC in [0, 1] ([N, H, W] is read as one channel), square; values are
  clipped to [0, 1] as an image writer would, NaN/inf is refused;
- channels: 1 or 3. digits RGB -> luminance; wafer 3 channels are the one-hot
  (off, good, fail) render -> 0.5 * good + fail, the gray render's values (and back,
  for a classifier asked for at 3 channels);
- size: resized (antialiased bilinear) to the classifier's size.
Anything else raises ConfigError. `classifier(name, shape)` also trains one for another
shape (e.g. native 28x28x3) if a caller wants it.

The cache is `$AE_JAX_CACHE`, else `$XDG_CACHE_HOME/ae_jax`, else `~/.cache/ae_jax`
(folder `classifiers/`), one file per (dataset, shape, VERSION): bump VERSION whenever the
network, its data or its training change, and every cache retrains.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import pathlib
import time

import numpy as np

from ae_jax import data
from ae_jax.data import idx, wafer
from ae_jax.errors import ConfigError
from ae_jax.metrics.distances import (  # noqa: F401 - the scores' distances, named here too
    PR_NEIGHBOURS, frechet_distance, frechet_distance_from_stats, precision_recall)
from ae_jax.workdir import write_bytes

log = logging.getLogger('ae_jax')
VERSION = 1  # bump on any change to Net, _training_data or _train: invalidates caches
SHAPES = {'digits': (8, 8, 1), 'wafer': (26, 26, 1),  # canonical classifier inputs
          'fashion_mnist': (28, 28, 1), 'mnist': (28, 28, 1)}
FROM_FILES = ('fashion_mnist', 'mnist')  # trained from the IDX files a run read (no copy here)
FEATURES = 64
EPOCHS = 20
# IDX datasets: 3 epochs (60,000 images: 2,800 steps, where the embedded sets take 20
# epochs), and at least FILES_MIN_STEPS for a small set of files
FILES_EPOCHS, FILES_MIN_STEPS = 3, 500
SEED = 0
WAFER_NUM, WAFER_SEED = 4000, 1_000_003  # a seed no default wafer dataset uses
TEST_FRACTION = 0.2
_MEMO: dict = {}  # (cache dir, name, shape, VERSION) -> Classifier, within one process


def cache_dir() -> pathlib.Path:
  """Where trained classifiers are kept (see the module docstring)."""
  if os.environ.get('AE_JAX_CACHE'):
    return pathlib.Path(os.environ['AE_JAX_CACHE']).expanduser()
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
  return pathlib.Path(base).expanduser() / 'ae_jax'


# ---- the classifier --------------------------------------------------------------------


def _net(num_classes: int):
  import flax.linen as nn

  class Net(nn.Module):
    """Two stride-2 convolutions, a 64-unit feature layer, the class logits."""

    @nn.compact
    def __call__(self, x, features: bool = False):  # x [B, H, W, C]
      # Strided convolutions rather than conv + pool: a third of the FLOPs for the same
      # accuracy, and XLA:CPU convolution gradients are what training time is spent on.
      x = nn.relu(nn.Conv(16, (4, 4), strides=2)(x))  # [B, H/2, W/2, 16]
      x = nn.relu(nn.Conv(32, (3, 3), strides=2)(x))  # [B, H/4, W/4, 32]
      h = nn.relu(nn.Dense(FEATURES)(x.reshape(x.shape[0], -1)))  # [B, 64]
      return h if features else nn.Dense(num_classes)(h)
  return Net()


def _check_shape(dataset_name: str, image_shape) -> tuple[int, int, int]:
  if dataset_name not in SHAPES:
    raise ConfigError(f'sample-quality metrics have classifiers for data.name in '
                      f'{sorted(SHAPES)}, not {dataset_name!r}')
  shape = tuple(int(s) for s in (image_shape or SHAPES[dataset_name]))
  if len(shape) != 3 or shape[0] != shape[1] or shape[2] not in (1, 3) or shape[0] < 4:
    raise ConfigError(f'classifier image shape {shape}: expected (S, S, 1 or 3) with S >= 4')
  return shape


def _training_data(dataset_name: str, shape, source: str = ''):
  """-> (train images [N, S, S, C], labels [N], held-out images, labels, num_classes),
  built the way data.load builds the dataset at that shape (digits resized bilinearly and
  split 80/20, wafer maps drawn at size S and split 80/20, IDX files' published split)."""
  size, _, channels = shape
  if dataset_name in FROM_FILES:
    return _idx_training_data(dataset_name, shape, source)
  if dataset_name == 'digits':
    # bundled with scikit-learn; sklearn.datasets takes seconds to import, paid only here
    from sklearn.datasets import load_digits
    d = load_digits()
    images = (d.images.astype(np.float32) / 16.0)[..., None]  # [1797, 8, 8, 1]
    images = np.clip(data.resize(images, size, 'linear'), 0.0, 1.0)
    images = data.convert_channels(images, channels, dataset_name)
    labels, num_classes = d.target.astype(np.int32), 10
  else:
    maps, labels = wafer.generate(WAFER_NUM, size, 'uniform', WAFER_SEED)
    images = wafer.render(maps, 'onehot' if channels == 3 else 'gray')
    num_classes = len(wafer.CLASS_NAMES)
  tr, te = data.split(len(images), TEST_FRACTION, SEED)
  return images[tr], labels[tr], images[te], labels[te], num_classes


def _idx_training_data(dataset_name: str, shape, source: str):
  """The published training split of the IDX files in `source` (data.path), and its test
  split for the accuracy, at the classifier's shape."""
  if not source:
    raise ConfigError(f'the {dataset_name} classifier is trained from the dataset\'s IDX '
                      'files and none is cached: score a run with data.name=idx on them')
  files = idx.open_folder(source)
  if files.published is None or files.published.name != dataset_name:
    raise ConfigError(f'{files.folder}: these IDX files are not {dataset_name}; its '
                      'classifier trains only on the published files')

  def at_shape(split):
    x = np.asarray(split.images, np.float32)[..., None] / 255.0  # [N, 28, 28, 1]
    return prepare(x, dataset_name, shape), split.labels.astype(np.int32)

  return (*at_shape(files.train), *at_shape(files.test), len(files.published.class_names))


def _init(net, shape, seed: int):
  """LeCun-normal kernels and zero biases drawn with numpy: flax's truncated-normal init
  takes XLA seconds to compile, more than the training itself on a CPU."""
  import jax
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0),
                          jax.ShapeDtypeStruct((1, *shape), np.float32))

  def draw(path, leaf):
    if path[-1].key == 'bias':
      return np.zeros(leaf.shape, np.float32)
    fan_in = int(np.prod(leaf.shape[:-1]))
    return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
  return jax.tree_util.tree_map_with_path(draw, shapes)


def _train(dataset_name: str, shape, source: str = '') -> Classifier:
  """-> the trained classifier, its accuracy measured on its held-out split. Adam with a
  cosine-decayed learning rate, EPOCHS epochs of batch 64 (IDX datasets: see FILES_EPOCHS)."""
  import jax
  import optax

  start = time.perf_counter()
  x_tr, y_tr, x_te, y_te, num_classes = _training_data(dataset_name, shape, source)
  batch = 64
  epochs = EPOCHS
  if dataset_name in FROM_FILES:
    epochs = max(FILES_EPOCHS, -(-FILES_MIN_STEPS // max(1, len(x_tr) // batch)))
  net = _net(num_classes)
  params = _init(net, shape, SEED)
  opt = optax.adam(optax.cosine_decay_schedule(3e-3, epochs * (len(x_tr) // batch)))
  state = opt.init(params)

  @jax.jit
  def step(params, state, x, y):
    def loss(p):
      return optax.softmax_cross_entropy_with_integer_labels(net.apply(p, x), y).mean()
    grads = jax.grad(loss)(params)
    updates, state = opt.update(grads, state)
    return optax.apply_updates(params, updates), state

  rng = np.random.default_rng(SEED)
  for _ in range(epochs):
    order = rng.permutation(len(x_tr))
    for i in range(0, len(order) - batch + 1, batch):
      idx = order[i:i + batch]  # gathered on the host: one transfer, no dispatched gather
      params, state = step(params, state, x_tr[idx], y_tr[idx])
  seconds = time.perf_counter() - start
  clf = Classifier(dataset_name, shape, num_classes, params, 0.0, seconds, loaded=False)
  clf.accuracy = float(np.mean(clf.logits(x_te).argmax(-1) == y_te))
  return clf


@dataclasses.dataclass
class Classifier:
  dataset: str
  image_shape: tuple[int, int, int]
  num_classes: int
  params: dict
  accuracy: float        # on its held-out split (20% of the data; IDX: the test split)
  train_seconds: float
  loaded: bool           # True: read from the cache, False: trained in this call

  @functools.cached_property
  def _apply(self):
    import jax
    net = _net(self.num_classes)
    return (jax.jit(lambda p, x: net.apply(p, x, features=True)),
            jax.jit(lambda p, x: net.apply(p, x)))

  def _run(self, fn, images, batch):
    images = np.asarray(images, np.float32)
    if images.shape[1:] != self.image_shape:
      raise ConfigError(f'{self.dataset} classifier takes images {self.image_shape}, got '
                        f'{images.shape[1:]} (score() converts them)')
    return np.concatenate([np.asarray(fn(self.params, images[i:i + batch]))
                           for i in range(0, len(images), batch)])

  def features(self, images, batch: int = 1024) -> np.ndarray:
    """Images [N, *image_shape] -> penultimate activations float32 [N, 64]."""
    return self._run(self._apply[0], images, batch)

  def logits(self, images, batch: int = 1024) -> np.ndarray:
    return self._run(self._apply[1], images, batch)

  @property
  def feature_space(self) -> str:
    h, w, c = self.image_shape
    return f'{self.dataset}-classifier {h}x{w}x{c} v{VERSION}'


def _paths(dataset_name: str, shape):
  stem = f'{dataset_name}_{shape[0]}x{shape[1]}x{shape[2]}_v{VERSION}'
  folder = cache_dir() / 'classifiers'
  return folder / f'{stem}.msgpack', folder / f'{stem}.json'


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
  # Sweeps may score in several processes at once: readers see a whole file or none
  # (workdir.write_bytes, the one write; its WriteError is an OSError).
  write_bytes(str(path), data)


def _load(dataset_name: str, shape) -> Classifier | None:
  import jax
  from flax import serialization
  weights, meta_path = _paths(dataset_name, shape)
  if not (weights.exists() and meta_path.exists()):
    return None
  try:
    meta = json.loads(meta_path.read_text())
    if meta['version'] != VERSION or tuple(meta['image_shape']) != shape:
      return None
    params = serialization.msgpack_restore(weights.read_bytes())
    # The file must hold exactly the parameters this network expects.
    template = jax.eval_shape(_net(meta['num_classes']).init, jax.random.PRNGKey(0),
                              jax.ShapeDtypeStruct((1, *shape), np.float32))
    same = jax.tree.map(lambda t, p: t.shape == np.shape(p), template, params)
    if not all(jax.tree.leaves(same)):
      raise ValueError('parameter shapes differ from the network')
  except (OSError, ValueError, KeyError, TypeError) as e:
    log.warning('ignoring unreadable classifier cache %s (%s); retraining', weights, e)
    return None
  return Classifier(dataset_name, shape, meta['num_classes'], params, meta['test_accuracy'],
                    meta['train_seconds'], loaded=True)


def classifier(dataset_name: str, image_shape=None, source: str = '') -> Classifier:
  """The dataset's feature classifier at `image_shape` (default: its canonical shape),
  from the cache, or trained (seconds; a minute for an IDX dataset, from the files in the
  folder `source`) and cached."""
  shape = _check_shape(dataset_name, image_shape)
  key = (str(cache_dir()), dataset_name, shape, VERSION)
  if key in _MEMO:
    return _MEMO[key]
  clf = _load(dataset_name, shape)
  if clf is None:
    from flax import serialization
    clf = _train(dataset_name, shape, source)
    weights, meta_path = _paths(dataset_name, shape)
    meta = {'dataset': dataset_name, 'image_shape': list(shape), 'version': VERSION,
            'num_classes': clf.num_classes, 'test_accuracy': clf.accuracy,
            'train_seconds': clf.train_seconds}
    try:  # the score does not depend on the cache: an unwritable one only costs time
      _atomic_write(weights, serialization.to_bytes(clf.params))
      _atomic_write(meta_path, json.dumps(meta, indent=1).encode())
    except OSError as e:
      log.warning('could not cache the %s classifier in %s (%s); set AE_JAX_CACHE to a '
                  'writable folder', dataset_name, weights.parent, e)
  _MEMO[key] = clf
  return clf


# ---- inputs ----------------------------------------------------------------------------


def prepare(images, dataset_name: str, shape, what: str = 'images') -> np.ndarray:
  """Bring float NHWC images in [0, 1] to the classifier's shape (module docstring)."""
  x = np.asarray(images)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[1] != x.shape[2] or x.shape[0] == 0:
    raise ConfigError(f'{what}: expected square images [N, S, S, C], got shape {x.shape}')
  x = x.astype(np.float32)
  if not np.isfinite(x).all():
    raise ConfigError(f'{what}: images contain NaN or inf values')
  x = np.clip(x, 0.0, 1.0)
  size, _, channels = shape
  c = x.shape[-1]
  if c not in (1, 3):
    raise ConfigError(f'{what}: images have {c} channels; expected 1 or 3')
  if c == 3 and channels == 1 and dataset_name == 'wafer':
    x = 0.5 * x[..., 1:2] + x[..., 2:3]  # one-hot (off, good, fail) -> gray render values
  elif c == 1 and channels == 3 and dataset_name == 'wafer':
    v = 2 * x  # gray 0, 1, 2 (off, good, fail) -> one-hot, piecewise linear in between
    x = np.concatenate([np.maximum(0, 1 - v), 1 - np.abs(v - 1), np.maximum(0, v - 1)], -1)
  elif c != channels:
    x = data.convert_channels(x, channels, what)
  if x.shape[1] != size:
    x = np.clip(data.resize(x, size, 'linear'), 0.0, 1.0)
  return x


# ---- the score -------------------------------------------------------------------------


def classifier_dataset(info, data_config) -> tuple[str, str]:
  """A run's dataset (its DatasetInfo, or None, and config.data) -> (the classifier's
  dataset name, the folder its training images are read from: '' for embedded data). IDX
  files score in the classifier of the published dataset they were recognised as."""
  if info is not None and info.published:
    return info.published, data_config.path
  name = info.name if info is not None else data_config.name
  if name == 'idx':
    raise ConfigError(f'sample-quality metrics: the IDX files in {data_config.path} are not '
                      f'recognised as one of {[p.title for p in idx.PUBLISHED]}, and only '
                      'those have a classifier (docs/data.md)')
  return name, ''


def check_dataset(info, data_config) -> str:
  """The classifier dataset of a run's data, refused up front when there is none
  (ConfigError); -> its name."""
  name, _ = classifier_dataset(info, data_config)
  _check_shape(name, None)
  return name


def score(dataset_name: str, real_images, fake_images, k: int = 3, image_shape=None,
          source: str = '') -> dict:
  """FD and precision/recall of fake vs real images in the dataset classifier's feature
  space -> dict(fd, precision, recall, classifier_accuracy, feature_space, num_real,
  num_fake). FD is biased upwards at small N: compare scores at equal sample sizes.
  `source`: the IDX folder an IDX dataset's classifier trains from (classifier_dataset)."""
  shape = _check_shape(dataset_name, image_shape)
  real_shape, fake_shape = np.shape(real_images)[1:], np.shape(fake_images)[1:]
  if real_shape != fake_shape:
    raise ConfigError(f'real images {real_shape} and fake images {fake_shape} differ in '
                      'shape; score both at the data shape')
  real = prepare(real_images, dataset_name, shape, 'real images')  # checked before training
  fake = prepare(fake_images, dataset_name, shape, 'fake images')
  clf = classifier(dataset_name, shape, source)
  real, fake = clf.features(real), clf.features(fake)
  precision, recall = precision_recall(real, fake, k)
  return {'fd': frechet_distance(real, fake), 'precision': precision, 'recall': recall,
          'classifier_accuracy': clf.accuracy, 'feature_space': clf.feature_space,
          'num_real': len(real), 'num_fake': len(fake)}
