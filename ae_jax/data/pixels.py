"""Pixel values shared by the loaders: the background transparent pixels are composited
onto (data.background), and the compositing itself."""
from __future__ import annotations

import re

import numpy as np

from ae_jax.errors import ConfigError

BACKGROUNDS = {'white': (1.0, 1.0, 1.0), 'black': (0.0, 0.0, 0.0)}


def parse_background(value) -> tuple[float, float, float]:
  """data.background: 'white', 'black' or a hex colour '#rrggbb' / '#rgb' -> RGB in [0, 1]."""
  text = str(value).strip().lower()
  if text in BACKGROUNDS:
    return BACKGROUNDS[text]
  if not re.fullmatch(r'#([0-9a-f]{3}|[0-9a-f]{6})', text):
    raise ConfigError(f'data.background={value!r} is not a colour; expected \'white\', '
                      '\'black\' or a hex colour such as \'#808080\'')
  digits = text[1:] if len(text) == 7 else ''.join(d * 2 for d in text[1:])
  return tuple(int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))


def composite(color: np.ndarray, alpha: np.ndarray, background) -> np.ndarray:
  """Straight (not premultiplied) colour [..., 1 or 3] over an RGB background by alpha
  [..., 1], all in [0, 1]. Gray stays gray on a gray background, else becomes RGB."""
  bg = np.asarray(background, np.float32)
  if color.shape[-1] == 1 and np.all(bg == bg[0]):
    bg = bg[:1]
  elif color.shape[-1] == 1:
    color = np.repeat(color, 3, -1)
  return (color * alpha + bg * (1.0 - alpha)).astype(np.float32)
