"""dSprites generated from its definition, with the ground-truth factors.

Factors (as in the published dataset): shape in {square, ellipse, heart}, scale 6
values in [0.5, 1], orientation 40 values in [0, 2*pi), position x and y 32 values each
in [0, 1]; 64x64 binary images. The full product is 3*6*40*32*32 = 737,280 images;
`generate` draws any subset by count or by factor ranges, deterministically.
"""
from __future__ import annotations

import numpy as np

SHAPES = ('square', 'ellipse', 'heart')
FACTOR_NAMES = ('shape', 'scale', 'orientation', 'pos_x', 'pos_y')
SIZES = (3, 6, 40, 32, 32)
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40, endpoint=False)
POSITIONS = np.linspace(0.0, 1.0, 32)
SIZE = 64
_EXTENT = 20.0  # a scale-1 square is 20 px wide; positions keep every sprite inside


def render(classes, scale_idx, orient_idx, x_idx, y_idx) -> np.ndarray:
  """Factor indices [N] each -> uint8 images [N, 64, 64] in {0, 1}."""
  classes = np.asarray(classes)
  s = SCALES[scale_idx][:, None, None] * _EXTENT / 2   # half-extent in px
  th = ORIENTATIONS[orient_idx][:, None, None]
  margin = _EXTENT / 2 * np.sqrt(2) + 1
  cx = margin + POSITIONS[x_idx][:, None, None] * (SIZE - 1 - 2 * margin)
  cy = margin + POSITIONS[y_idx][:, None, None] * (SIZE - 1 - 2 * margin)
  yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
  dx, dy = xx[None] - cx, yy[None] - cy
  # Rotate pixel offsets into the sprite's frame, in units of its half-extent.
  u = (np.cos(th) * dx + np.sin(th) * dy) / s
  v = (-np.sin(th) * dx + np.cos(th) * dy) / s
  square = (np.abs(u) <= 1) & (np.abs(v) <= 1)
  ellipse = u**2 + (v / 0.5)**2 <= 1
  hx, hy = u * 1.15, -v * 1.15 + 0.25  # heart curve (x^2 + y^2 - 1)^3 <= x^2 y^3
  heart = (hx**2 + hy**2 - 1)**3 - hx**2 * hy**3 <= 0
  out = np.where(classes[:, None, None] == 0, square,
                 np.where(classes[:, None, None] == 1, ellipse, heart))
  return out.astype(np.uint8)


def generate(num: int = 0, seed: int = 0, ranges: dict | None = None):
  """-> (images uint8 [N, 64, 64], factors int32 [N, 5] as indices).

  `ranges` maps a factor name to (lo, hi) inclusive index bounds; `num` draws that many
  distinct combinations at random (0: all of them, in factor order).
  """
  ranges = ranges or {}
  for name in ranges:
    if name not in FACTOR_NAMES:
      raise ValueError(f'unknown dSprites factor {name!r}; expected one of {FACTOR_NAMES}')
  axes = []
  for name, size in zip(FACTOR_NAMES, SIZES):
    lo, hi = ranges.get(name, (0, size - 1))
    if not 0 <= lo <= hi < size:
      raise ValueError(f'dSprites factor {name} range ({lo}, {hi}) outside 0..{size - 1}')
    axes.append(np.arange(lo, hi + 1))
  total = int(np.prod([len(a) for a in axes]))
  if num and num < total:
    flat = np.sort(np.random.default_rng(seed).choice(total, size=num, replace=False))
  else:
    flat = np.arange(total)
  idx = np.unravel_index(flat, [len(a) for a in axes])
  factors = np.stack([a[i] for a, i in zip(axes, idx)], axis=1).astype(np.int32)
  images = np.concatenate([render(*factors[i:i + 4096].T)
                           for i in range(0, len(factors), 4096)])
  return images, factors
