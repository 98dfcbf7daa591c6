"""Real images bundled with scikit-image: photo patches and the LFW face subset."""
from __future__ import annotations

import logging

import numpy as np
import skimage.data

# RGB photographs that scikit-image ships (no download needed).
PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'hubble_deep_field',
          'immunohistochemistry', 'retina')


def load_photos():
  out = {}
  for name in PHOTOS:
    try:
      img = getattr(skimage.data, name)()
    except Exception as e:  # noqa: BLE001 - some builds lack a file; use the rest
      logging.getLogger('ae_jax').warning('photos: skipping %r: %s', name, e)
      continue
    out[name] = np.asarray(img)[..., :3]
  if not out:
    raise RuntimeError('photos: none of the scikit-image photographs could be loaded')
  return out


def photo_patches(patch: int, count: int, test_fraction: float, seed: int):
  """Random patches; each photo's right-hand `test_fraction` of columns (minus a one-patch
  gap) is reserved for test patches, so no test patch overlaps a training patch.

  -> (images uint8 [N, patch, patch, 3], labels [N] photo index, is_test [N] bool,
      class names, boxes [N, 2] as (y0, x0)).
  """
  rng = np.random.default_rng(seed)
  photos = load_photos()
  names = tuple(photos)
  fits = [k for k, n in enumerate(names) if _fits(photos[n].shape, patch, test_fraction)]
  if not fits:
    largest = max(p for p in range(1, patch) if any(
        _fits(photos[n].shape, p, test_fraction) for n in names))
    raise ValueError(f'photos: data.image_size={patch} is too large for patches of both the '
                     f'training and the test region of any photograph at data.test_fraction='
                     f'{test_fraction}; the largest that fits is {largest}')
  n_test = max(1, int(round(count * test_fraction)))
  images, labels, is_test, boxes = [], [], [], []
  for split, n in (('train', count - n_test), ('test', n_test)):
    for _ in range(n):
      k = fits[int(rng.integers(len(fits)))]
      img = photos[names[k]]
      h, w, _ = img.shape
      cut = int(w * (1 - test_fraction))
      if split == 'train':
        x0 = int(rng.integers(0, max(1, cut - patch - patch // 2)))
      else:
        x0 = int(rng.integers(min(cut + patch // 2, w - patch), w - patch + 1))
      y0 = int(rng.integers(0, h - patch + 1))
      images.append(img[y0:y0 + patch, x0:x0 + patch])
      labels.append(k)
      is_test.append(split == 'test')
      boxes.append((y0, x0))
  return (np.stack(images), np.array(labels, np.int32), np.array(is_test), names,
          np.array(boxes, np.int32))


def _fits(shape, patch: int, test_fraction: float) -> bool:
  """Whether a photo holds a patch on each side of its train/test column split, with half
  a patch of gap on each side (photos too small for the patch size are not used)."""
  h, w = shape[:2]
  cut = int(w * (1 - test_fraction))
  return h >= patch and w - patch >= cut + patch // 2 and cut - patch - patch // 2 >= 1


def lfw_faces():
  """scikit-image's LFW subset: 100 faces then 100 non-faces, 25x25 gray in [0, 1]."""
  x = np.asarray(skimage.data.lfw_subset(), np.float32)  # [200, 25, 25]
  labels = np.repeat(np.array([1, 0], np.int32), 100)
  return x[..., None], labels, ('non-face', 'face')
