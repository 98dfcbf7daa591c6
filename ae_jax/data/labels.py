"""Labels: the user's label values of any kind as class indices, class names and values,
and back; what model.json keeps of them."""
from __future__ import annotations

import numpy as np

from ae_jax.data.preprocess import first_bad
from ae_jax.data.records import Raw
from ae_jax.errors import DataError


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
    raise DataError(f'{where}: labels contain NaN or inf{first_bad(~np.isfinite(labels), ids)}'
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



def classes(raw: Raw, ids):
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

