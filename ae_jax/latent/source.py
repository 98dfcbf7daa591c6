"""Where the latent tools get their models and images: a `Source` (a trained model with
its dataset, loaded on first use, only when a tool needs images, so tools fetch images by
the dataset's own ids), the id and edit parsers of the command line, and `one_run`, which
makes a tool's outputs one run of its folder."""
from __future__ import annotations

import dataclasses
import functools
import inspect

import numpy as np

from ae_jax import data
from ae_jax.errors import ConfigError

DEFAULT_GENERATE_IDS = '1-5,226-230,841-845,1471-1475'  # report 000's chosen wafer maps
GAUSSIAN = 'gaussian.npz'  # an AE's fitted code distribution, in latent/fit/


def parse_ids(text: str | None) -> list[int]:
  """'3,227' or '1-5,226-230' -> [3, 227] / [1, 2, 3, 4, 5, 226, ...]."""
  if text is None or str(text).strip() == '':
    return []
  ids = []
  for part in str(text).split(','):
    part = part.strip()
    try:
      if '-' in part:
        a, b = (int(v) for v in part.split('-', 1))
        if b < a or a < 0:
          raise ValueError
        ids += list(range(a, b + 1))
      else:
        ids.append(int(part))
        if ids[-1] < 0:
          raise ValueError
    except ValueError:
      raise ConfigError(f'--ids {text!r}: expected image ids such as 3,227 or 1-5,226-230 '
                        f'({part!r} is not an id or a rising range)') from None
  return ids


def parse_edits(text: str) -> list[tuple[int, float, float, str]]:
  """'0*2,2+5,3-1' -> [(dim, scale, shift, label)]."""
  edits = []
  for part in str(text).split(','):
    part = part.strip().replace('x', '*').replace('×', '*')
    try:
      for op in ('*', '+', '-'):
        if op in part:
          d, v = part.split(op, 1)
          d, v = int(d), float(v)
          scale, shift = (v, 0.0) if op == '*' else (1.0, v if op == '+' else -v)
          edits.append((d, scale, shift, f'dim {d} {"×" if op == "*" else op}{v:g}'))
          break
      else:
        raise ValueError
    except ValueError:
      raise ConfigError(f'--edits {text!r}: expected edits such as 0*2,2+5 (dimension, then '
                        f'*scale, +shift or -shift); {part!r} is not one') from None
  return edits


@dataclasses.dataclass
class Source:
  """A trained member and (lazily) its dataset."""
  model: object  # inference.Trained
  workdir: str

  @functools.cached_property
  def dataset(self):
    return data.load(self.model.config.data)

  def label_name(self, label: int) -> str:
    """A class index's name ('' for -1, unlabelled)."""
    names = self.model.class_names
    return names[label] if 0 <= label < len(names) else (str(label) if label >= 0 else '')

  @property
  def class_values(self):
    """The label value of each class (the user's own: 5, 0.5, 'cat'), from model.json, or
    from the dataset for a model.json written before it recorded them."""
    values = getattr(self.model, 'class_values', None)
    return values if values is not None else self.dataset.info.class_values

  def label_values(self, labels) -> np.ndarray:
    """Class indices -> the labels' own values, for arrays written for the user."""
    return data.original_labels(labels, self.class_values)

  def images(self, ids) -> tuple[np.ndarray, np.ndarray]:
    images, labels = data.by_ids(self.dataset, ids)
    if tuple(images.shape[1:]) != tuple(self.model.image_shape):
      raise ConfigError(f'the dataset of {self.workdir} now gives {images.shape[1:]} images; '
                        f'the model was trained on {tuple(self.model.image_shape)}')
    return images, labels

  def split(self, name: str = 'test', limit: int | None = None):
    """(images, labels, ids) of a split, read whole (or its first `limit` images)."""
    part = getattr(self.dataset, name)
    n = len(part['id']) if limit is None else min(limit, len(part['id']))
    x = part['image']
    images = x.read(np.arange(n)) if hasattr(x, 'read') else np.asarray(x[:n])
    return images, np.asarray(part['label'][:n]), np.asarray(part['id'][:n])

  def random_ids(self, n: int, seed: int = 0, split: str = 'test') -> list[int]:
    ids = np.asarray(getattr(self.dataset, split)['id'])
    pick = np.random.default_rng(seed).choice(len(ids), size=min(n, len(ids)), replace=False)
    return [int(i) for i in ids[np.sort(pick)]]

  def titles(self, ids, labels) -> list[str]:
    return [f'id {i}' + (f'\n{self.label_name(int(label))}' if label >= 0 else '')
            for i, label in zip(ids, labels)]


def check_dims(model, dims) -> None:
  n = int(model.latent_shape[-1])
  used = min(n, int(model.latent_dim)) if len(model.latent_shape) == 1 else n
  bad = [d for d in dims if not 0 <= d < used]
  if bad:
    what = 'channels' if len(model.latent_shape) > 1 else 'dims'
    raise ConfigError(f'dimension(s) {bad} are beyond the latent size of {model.describe()} '
                      f'({used} {what}: 0..{used - 1})')


def codes(model, images):
  mean, logvar = model.encode(images)
  return mean, logvar


def class_index(text: str, names, values=None) -> int | None:
  """The class a user names: by its name ('5', '-1', '0.5', 'cat'; exact, else the one
  name equal ignoring case), else by numeric value ('5.0' names class 5). None: no class."""
  names = list(names)
  if text in names:
    return names.index(text)
  folded = [i for i, n in enumerate(names) if n.lower() == text.lower()]
  if len(folded) == 1:
    return folded[0]
  values = None if values is None else np.asarray(values)
  if values is not None and len(values) == len(names) and values.dtype.kind in 'iuf':
    try:
      number = float(text)
    except ValueError:
      return None
    same = np.flatnonzero((values.astype(np.float64) == number) |
                          (values == np.asarray(number).astype(values.dtype)
                           if values.dtype.kind == 'f' else False))
    return int(same[0]) if len(same) == 1 else None
  return None


def ids_per_class(source: Source, per_class: int, classes, seed: int) -> list[int]:
  names = list(source.model.class_names)
  if not names:
    raise ConfigError(f'{source.workdir}: the dataset has no class names; give --ids')
  wanted = [str(c) for c in classes] or names
  index = {c: class_index(c, names, source.class_values) for c in wanted}
  bad = [c for c, i in index.items() if i is None]
  if bad:
    shown = names if len(names) <= 20 else names[:20] + [f'... ({len(names)} classes)']
    raise ConfigError(f'class(es) {bad} unknown; this dataset has {shown}')
  labels = np.asarray(source.dataset.train['label'])  # class indices
  ids = np.asarray(source.dataset.train['id'])
  rng = np.random.default_rng(seed)
  out = []
  for c in wanted:
    pos = np.flatnonzero(labels == index[c])
    if len(pos) == 0:
      raise ConfigError(f'class {c!r} has no training images')
    out += [int(i) for i in ids[np.sort(rng.choice(pos, min(per_class, len(pos)),
                                                   replace=False))]]
  return out


def one_run(tool):
  """Run `tool` holding its `out` folder, whose files then replace the previous run's."""
  signature = inspect.signature(tool)

  @functools.wraps(tool)
  def held(*args, **kwargs):
    with signature.bind(*args, **kwargs).arguments['out']:
      return tool(*args, **kwargs)
  return held
