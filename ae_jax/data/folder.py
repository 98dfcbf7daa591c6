"""Image folders: one class per first-level subfolder (or none), every PIL mode at its bit
depth, EXIF-upright, alpha composited, center-cropped and resized on load."""
from __future__ import annotations

import dataclasses
import logging
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from ae_jax.data.files import require
from ae_jax.data.pixels import composite, parse_background
from ae_jax.errors import ConfigError, DataError

log = logging.getLogger('ae_jax')

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp')

# macOS, Jupyter and editors leave these beside the data; they are never images of it
HIDDEN_NAMES = ('__MACOSX',)


def _hidden(name: str) -> bool:
  """'.ipynb_checkpoints', '.DS_Store', AppleDouble '._x.png', '__MACOSX'."""
  return name.startswith('.') or name in HIDDEN_NAMES


def _is_image(path: str) -> bool:
  return path.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(path)


@dataclasses.dataclass
class Folder:
  images: np.ndarray  # uint8, or float32 in [0, 1] when a source has more than 8 bits
  labels: np.ndarray  # class indices, -1 without class subfolders
  class_names: tuple[str, ...]
  files: list[str]
  notes: tuple[str, ...]  # what loading did, for the data line


def _scan(root: str):
  """-> (files, labels, class names, notes): the images directly in `root`, or one class
  per first-level subfolder holding images; hidden entries are never data."""
  entries = sorted(os.listdir(root))
  hidden = [e + ('/' if os.path.isdir(os.path.join(root, e)) else '') for e in entries
            if _hidden(e) and (os.path.isdir(os.path.join(root, e)) or
                               e.lower().endswith(IMAGE_EXTENSIONS))]
  top = [e for e in entries if not _hidden(e) and _is_image(os.path.join(root, e))]
  subdirs = [e for e in entries if not _hidden(e) and os.path.isdir(os.path.join(root, e))]
  per_class, deeper = {}, []
  for d in subdirs:
    inside = sorted(os.listdir(os.path.join(root, d)))
    per_class[d] = [f for f in inside if not _hidden(f) and _is_image(os.path.join(root, d, f))]
    hidden += [f'{d}/{f}' for f in inside if _hidden(f) and f.lower().endswith(IMAGE_EXTENSIONS)]
    for sub in inside:
      if not _hidden(sub) and os.path.isdir(os.path.join(root, d, sub)):
        deeper += _images_below(os.path.join(root, d, sub), f'{d}/{sub}')
  classes = [d for d in subdirs if per_class[d]]
  empty = [d + '/' for d in subdirs if not per_class[d]]
  if top and classes:
    raise DataError(f'{root}: images both at the top level ({top[0]}) and in class subfolders '
                    f'({classes[0]}/{per_class[classes[0]][0]}); put every image in a class '
                    'subfolder, or all at the top level (unlabelled)')
  if not top and not classes:
    where = (f'; the images are deeper (e.g. {deeper[0]}): set data.path to the folder whose '
             'subfolders are the classes') if deeper else ''
    raise DataError(f'{root}: no images ({", ".join(IMAGE_EXTENSIONS)}) at the top level or in '
                    f'its first-level subfolders{where}')
  notes = []
  if hidden:
    notes.append(f'hidden files and folders ignored: {_some(hidden)}')
  if empty and classes:
    notes.append(f'folders without images are not classes: {_some(empty)}')
  if deeper:
    notes.append(f'{len(deeper)} image(s) in deeper subfolders not used (e.g. {deeper[0]}); '
                 'the classes are the first-level subfolders')
  if classes:
    files = [os.path.join(root, c, f) for c in classes for f in per_class[c]]
    labels = [k for k, c in enumerate(classes) for _ in per_class[c]]
    return files, labels, tuple(classes), notes
  return [os.path.join(root, f) for f in top], [-1] * len(top), (), notes


def _images_below(folder: str, rel: str) -> list[str]:
  found = []
  for d, dirs, names in os.walk(folder):
    dirs[:] = sorted(x for x in dirs if not _hidden(x))
    sub = os.path.relpath(d, folder)
    found += [os.path.normpath(os.path.join(rel, sub, f)) for f in sorted(names)
              if not _hidden(f) and f.lower().endswith(IMAGE_EXTENSIONS)]
  return found


def _some(names, k: int = 3) -> str:
  return ', '.join(names[:k]) + (f' and {len(names) - k} more' if len(names) > k else '')


ORIENTATION = 0x0112  # the EXIF tag of how the camera was held
DEEP_INT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


def _open(path: str):
  """The image at `path`, decoded and turned upright by its EXIF orientation. -> (PIL image,
  EXIF-rotated?, frames); PIL's own warnings come back as ae_jax log lines."""
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    with Image.open(path) as im:
      im.load()
      frames = getattr(im, 'n_frames', 1)
      rotated = im.getexif().get(ORIENTATION, 1) not in (1, None)
      upright = ImageOps.exif_transpose(im)  # a new image: valid after the file closes
  for w in caught:
    if issubclass(w.category, (UserWarning, RuntimeWarning)):  # about this file's contents
      log.warning('%s: %s', path, ' '.join(str(w.message).split()))
    else:  # deprecations and the like are not about the data: leave them to Python
      warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
  return upright, rotated, frames


def _pixels(im, path: str, int_max: int, background) -> tuple[np.ndarray, dict]:
  """A PIL image at its own bit depth -> (float32 [H, W, 1 or 3] in [0, 1], facts), facts
  naming what was done: {'deep': mode, 'palette', 'alpha', 'converted': mode, 'gray'}."""
  mode, facts = im.mode, {}
  if mode in DEEP_INT_MODES:
    a = np.asarray(im)
    top = int_max or 65535  # 16-bit PNG/TIFF; data.int_max for e.g. 12-bit data
    if a.size and (a.min() < 0 or a.max() > top):
      raise DataError(f'{path}: {mode} pixels range over [{a.min()}, {a.max()}]; expected '
                      f'0..{top} (set data.int_max to the images\' full scale)')
    facts.update(deep=mode, gray=True, scale=top, bits=16 if mode.startswith('I;16') else 32)
    return (a.astype(np.float32) / top)[..., None], facts
  if mode == 'F':
    a = np.asarray(im, np.float32)
    if a.size and not np.isfinite(a).all():
      raise DataError(f'{path}: float (F) pixels contain NaN or inf')
    if a.size and (a.min() < 0 or a.max() > 1):
      raise DataError(f'{path}: float (F) pixels range over [{a.min():.4g}, {a.max():.4g}]; '
                      'expected [0, 1]')
    facts.update(deep=mode, gray=True)
    return a[..., None], facts
  if mode in ('1', 'L'):
    facts['gray'] = True
    return (np.asarray(im.convert('L'), np.float32) / 255)[..., None], facts
  if mode == 'P':
    facts['palette'] = True
    im = im.convert('RGBA' if 'transparency' in im.info else 'RGB')
  elif mode == 'PA':
    facts['palette'] = True
    im = im.convert('RGBA')
  elif mode in ('LA', 'La'):
    im = im.convert('LA')
  elif mode == 'RGBa':
    im = im.convert('RGBA')
  elif mode not in ('RGB', 'RGBA'):
    facts['converted'] = mode  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    im = im.convert('RGB')
  a = np.asarray(im, np.float32) / 255
  if im.mode in ('LA', 'RGBA'):
    color, alpha = a[..., :-1], a[..., -1:]
    if alpha.min() < 1:
      facts['alpha'] = True
    a = composite(color, alpha, background)
    facts['gray'] = a.shape[-1] == 1
  return a, facts


def _square(x: np.ndarray, size: int) -> np.ndarray:
  """Center-crop float [H, W, C] to a square, resize to size x size (bilinear, per channel
  in float so 16-bit sources keep their precision)."""
  h, w = x.shape[:2]
  side = min(h, w)
  y0, x0 = (h - side) // 2, (w - side) // 2
  x = x[y0:y0 + side, x0:x0 + side]
  if side == size:
    return x
  planes = [np.asarray(Image.fromarray(np.ascontiguousarray(x[..., c]), 'F')
                       .resize((size, size), Image.BILINEAR)) for c in range(x.shape[-1])]
  return np.clip(np.stack(planes, -1), 0.0, 1.0)


def load_folder(cfg, size: int) -> Folder:
  """Images under data.path (class = first-level subfolder, if any), upright by EXIF,
  alpha composited onto data.background, center-cropped to a square and resized to `size`
  on load. Images are uint8 [N, size, size, C], or float32 in [0, 1] when any source has more
  than 8 bits per channel; C is 1 when every image is gray, else 3."""
  root = cfg.path
  require(root, 'data.name=folder')
  if not os.path.isdir(root):
    raise DataError(f'{root}: data.name=folder needs a folder of images')
  if size <= 0:
    raise ConfigError('data.name=folder needs data.image_size > 0 (images are resized on load)')
  bg_name = cfg.background
  background = parse_background(bg_name)
  files, labels, names, notes = _scan(root)
  images, keep, seen = [], [], []
  skipped = 0
  for i, f in enumerate(files):
    try:
      im, rotated, frames = _open(f)
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds for a broken file
      if isinstance(e, Image.DecompressionBombError):
        why = f'refused as a possible decompression bomb ({" ".join(str(e).split())})'
      else:
        why = f'cannot read this image ({type(e).__name__}: {" ".join(str(e).split())})'
      if not cfg.skip_corrupt:
        raise DataError(f'{f}: {why}; remove it or set data.skip_corrupt=True to skip '
                        'unreadable files') from e
      log.warning('skipping %s: %s', f, why)
      skipped += 1
      continue
    x, facts = _pixels(im, f, int(cfg.int_max), background)
    facts.update(rotated=rotated, frames=frames)
    images.append(_square(x, size))
    keep.append(i)
    seen.append(facts)
  if not images:
    raise DataError(f'{root}: none of the {len(files)} images could be read')
  n = len(images)
  count = lambda key: sum(1 for s in seen if s.get(key))
  if skipped:
    notes.append(f'{skipped} unreadable image(s) skipped (data.skip_corrupt)')
  if count('rotated'):
    notes.append(f'{count("rotated")} of {n} images rotated upright by their EXIF orientation')
  if any(s['frames'] > 1 for s in seen):
    notes.append(f'{sum(s["frames"] > 1 for s in seen)} image(s) have several frames; the '
                 'first was used')
  converted = sorted({s['converted'] for s in seen if s.get('converted')})
  if converted:
    notes.append(f'{count("converted")} of {n} images converted from {"/".join(converted)} '
                 'to RGB')
  if count('alpha'):
    notes.append(f'{count("alpha")} of {n} images had transparency, composited onto '
                 f'{bg_name} (data.background)')
  deep = sorted({s['deep'] for s in seen if s.get('scale')})
  if deep:
    bits = '/'.join(f'{b}-bit' for b in sorted({s['bits'] for s in seen if s.get('scale')}))
    by = f'{int(cfg.int_max)} (data.int_max)' if cfg.int_max else '65535'
    notes.append(f'{count("scale")} of {n} images have {bits} pixels ({"/".join(deep)}): '
                 f'divided by {by} and kept as float32, not rounded to 8 bits')
  if any(s.get('deep') == 'F' for s in seen):
    notes.append(f'{sum(s.get("deep") == "F" for s in seen)} of {n} images are 32-bit float '
                 '(F), kept as float32')
  gray = [s.get('gray', False) for s in seen]
  if not all(gray):
    to_rgb = sum(gray) + count('palette')
    if to_rgb:
      what = '/'.join(w for w, c in (('gray', sum(gray)), ('paletted', count('palette'))) if c)
      notes.append(f'{to_rgb} of {n} images were {what} and were converted to RGB')
    images = [np.repeat(x, 3, -1) if g else x for x, g in zip(images, gray)]
  notes.append(f'each image center-cropped to a square and resized to {size}x{size} on load '
               '(data.image_size)')
  stacked = np.stack(images)  # [N, size, size, C]
  if not any(s.get('deep') for s in seen):
    stacked = np.rint(stacked * 255).astype(np.uint8)  # 8-bit sources: nothing is lost
  return Folder(stacked, np.asarray(labels, np.int32)[keep], names, [files[i] for i in keep],
                tuple(notes))

