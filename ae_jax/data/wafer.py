"""Procedural wafer maps in the nine WM-811K failure classes.

Values follow WM-811K: 0 off-wafer, 1 good die, 2 failing die, on a circular die grid.
Each class is drawn from its visual definition (a blob at the centre, a ring, a cluster
on the rim, a thin scratch, ...) with random position, size and background noise, so
the dataset is deterministic given a seed and needs no download.
"""
from __future__ import annotations

import numpy as np

CLASS_NAMES = ('Center', 'Donut', 'Edge-Loc', 'Edge-Ring', 'Loc', 'Near-full', 'Random',
               'Scratch', 'none')
# Labelled WM-811K counts, for balance='wm811k'.
WM811K_COUNTS = (4294, 555, 5189, 9680, 3593, 149, 866, 1193, 147431)


def _grid(size: int):
  c = (size - 1) / 2.0
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  dy, dx = (yy - c) / (size / 2.0), (xx - c) / (size / 2.0)  # unit radius at the rim
  return np.sqrt(dx**2 + dy**2), np.arctan2(dy, dx), dx, dy


def _draw(cls: str, size: int, rng: np.random.Generator) -> np.ndarray:
  r, theta, dx, dy = _grid(size)
  on = r <= 1.0
  noise = rng.uniform(0.0, 0.04)
  fail = rng.random((size, size)) < noise
  p = rng.uniform(0.75, 0.95)  # density inside a defect region
  if cls == 'Center':
    fail |= (r < rng.uniform(0.25, 0.45)) & (rng.random(r.shape) < p)
  elif cls == 'Donut':
    r0 = rng.uniform(0.3, 0.45)
    fail |= (r > r0) & (r < r0 + rng.uniform(0.2, 0.3)) & (rng.random(r.shape) < p)
  elif cls == 'Edge-Loc':
    a = rng.uniform(-np.pi, np.pi)
    d = np.sqrt((dx - 0.9 * np.cos(a))**2 + (dy - 0.9 * np.sin(a))**2)
    fail |= (d < rng.uniform(0.2, 0.35)) & (r > 0.65) & (rng.random(r.shape) < p)
  elif cls == 'Edge-Ring':
    span = rng.uniform(1.5 * np.pi, 2 * np.pi)
    a0 = rng.uniform(-np.pi, np.pi)
    arc = np.mod(theta - a0, 2 * np.pi) < span
    fail |= (r > rng.uniform(0.8, 0.88)) & arc & (rng.random(r.shape) < p)
  elif cls == 'Loc':
    rad, a = rng.uniform(0.2, 0.55), rng.uniform(-np.pi, np.pi)
    d = np.sqrt((dx - rad * np.cos(a))**2 + (dy - rad * np.sin(a))**2)
    fail |= (d < rng.uniform(0.12, 0.22)) & (rng.random(r.shape) < p)
  elif cls == 'Near-full':
    fail |= rng.random(r.shape) < rng.uniform(0.8, 0.97)
  elif cls == 'Random':
    fail |= rng.random(r.shape) < rng.uniform(0.2, 0.45)
  elif cls == 'Scratch':
    a = rng.uniform(0, np.pi)
    off = rng.uniform(-0.5, 0.5)
    along = dx * np.cos(a) + dy * np.sin(a)
    across = -dx * np.sin(a) + dy * np.cos(a) - off
    bend = rng.uniform(-0.3, 0.3) * along**2  # scratches are often slightly curved
    start = rng.uniform(-0.8, 0.0)
    length = rng.uniform(0.6, 1.4)
    fail |= (np.abs(across - bend) < 1.2 / size) & (along > start) & (along < start + length)
  elif cls != 'none':
    raise ValueError(cls)
  return np.where(on, np.where(fail, 2, 1), 0).astype(np.uint8)


def generate(num: int, size: int = 26, balance: str = 'uniform', seed: int = 0):
  """-> (maps uint8 [N, size, size] in {0,1,2}, labels int32 [N])."""
  rng = np.random.default_rng(seed)
  if balance == 'uniform':
    labels = np.arange(num) % len(CLASS_NAMES)
  else:
    w = np.asarray(WM811K_COUNTS, np.float64)
    labels = rng.choice(len(CLASS_NAMES), size=num, p=w / w.sum())
  labels = rng.permutation(labels).astype(np.int32)
  maps = np.stack([_draw(CLASS_NAMES[label], size, rng) for label in labels])
  return maps, labels


def color_key(mode: str) -> tuple:
  """What the colours of a rendered map mean (figures draw it as a legend)."""
  if mode == 'onehot':
    return (('red', 'off-wafer'), ('green', 'good die'), ('blue', 'failing die'))
  return (('black', 'off-wafer'), ('gray', 'good die'), ('white', 'failing die'))


def render(maps: np.ndarray, mode: str) -> np.ndarray:
  """uint8 maps [N,H,W] -> float32 NHWC in [0,1]: one-hot (off, good, fail) or gray v/2."""
  if mode == 'onehot':
    return np.eye(3, dtype=np.float32)[maps]  # [N, H, W, 3]
  return (maps.astype(np.float32) / 2.0)[..., None]  # [N, H, W, 1]
