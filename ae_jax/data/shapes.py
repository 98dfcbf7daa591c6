"""The image shape a data config gives, where it is known without reading the data: the
embedded and tfds datasets have fixed native shapes; files (npy, folder, wm811k, idx) are
known only when `data.image_size` and `data.channels` say it. Weight import uses this,
so it never reads a dataset."""
from __future__ import annotations

# name -> native (H, W, C) as loading produces it before data.crop / image_size / channels
NATIVE = {
    'digits': (8, 8, 1), 'dsprites': (64, 64, 1), 'faces': (25, 25, 1),
    'mnist': (28, 28, 1), 'fashion_mnist': (28, 28, 1), 'cifar10': (32, 32, 3),
    'celeb_a': (218, 178, 3),
}


def _native(cfg) -> tuple[int, int, int] | None:
  if cfg.name == 'wafer':  # generated at data.image_size (26 by default), 3 or 1 channels
    size = cfg.image_size or 26
    return (size, size, 3 if cfg.wafer.render == 'onehot' else 1)
  if cfg.name == 'photos':  # patches cut at data.image_size (50 by default)
    size = cfg.image_size or 50
    return (size, size, 3)
  return NATIVE.get(cfg.name)


def known_shape(cfg) -> tuple[int, int, int] | None:
  """The (H, W, C) `config.data` gives, or None where only reading the data would tell."""
  native = _native(cfg)
  if native is None:
    if cfg.image_size and cfg.channels:
      return (int(cfg.image_size), int(cfg.image_size), int(cfg.channels))
    return None
  h, w, c = native
  if cfg.crop:
    h = w = int(cfg.crop)
  if cfg.image_size:
    h = w = int(cfg.image_size)
  return (h, w, int(cfg.channels) or c)


# Whether a dataset's images are photographs: the perceptual metrics (LPIPS) are calibrated
# on photographs, and computing them on binary sprites, digits or one-hot wafer maps costs
# minutes for a number that means little (metrics/registry.py's 'default' leaves them out).
PHOTOGRAPHS = ('photos', 'faces', 'cifar10', 'celeb_a')
NOT_PHOTOGRAPHS = ('digits', 'dsprites', 'wafer', 'wm811k', 'mnist', 'fashion_mnist', 'idx')


def photographic(cfg, image_shape=None) -> bool:
  """Whether `config.data`'s images are photographs: by dataset for the named ones; a user's
  files (npy, folder) are taken for photographs when they are RGB (3 channels; True while
  the channels are unknown)."""
  if cfg.name in PHOTOGRAPHS:
    return True
  if cfg.name in NOT_PHOTOGRAPHS:
    return False
  shape = image_shape if image_shape is not None else known_shape(cfg)
  return shape is None or shape[-1] == 3
