"""Multi-scale SSIM (Wang, Simoncelli & Bovik 2003), as tf.image.ssim_multiscale computes it.

Five scales with the standard weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); at each
scale an 11-px Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, valid filtering; the
contrast-structure term at scales 1-4, the full SSIM (luminance too) at the coarsest, each
clipped at 0; 2x2 average pooling between scales; the product of the weighted powers,
averaged over channels.

Size: the standard needs 11 px at the coarsest scale, i.e. images of at least 176 px.
Smaller images (down to MIN_SIZE = 32 px, each scale >= 2 px) use a window shrunk to the
largest odd size <= the scale's side, as ae_jax's SSIM does under 11 px; they are exact
MS-SSIM from 176 px up. Below 32 px: a ConfigError.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax.errors import ConfigError

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MIN_SIZE = 32
STANDARD_SIZE = 176


def _gaussian(size: int, sigma: float = 1.5):
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-0.5 * (x / sigma) ** 2)
  return jnp.asarray(g / g.sum(), jnp.float32)


def _filter(x, g):
  """Separable valid Gaussian filtering of [B, H, W, C] per channel."""
  c = x.shape[-1]
  k = g.shape[0]
  dn = ('NHWC', 'HWIO', 'NHWC')
  kh = jnp.tile(g.reshape(k, 1, 1, 1), (1, 1, 1, c))
  kw = jnp.tile(g.reshape(1, k, 1, 1), (1, 1, 1, c))
  x = jax.lax.conv_general_dilated(x, kh, (1, 1), 'VALID', dimension_numbers=dn,
                                   feature_group_count=c)
  return jax.lax.conv_general_dilated(x, kw, (1, 1), 'VALID', dimension_numbers=dn,
                                      feature_group_count=c)


def _ssim_cs(a, b, size: int, max_val: float):
  """Per-channel (SSIM, contrast-structure) means over the valid map -> [B, C] each."""
  g = _gaussian(size)
  c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
  mu_a, mu_b = _filter(a, g), _filter(b, g)
  s_aa = _filter(a * a, g) - mu_a**2
  s_bb = _filter(b * b, g) - mu_b**2
  s_ab = _filter(a * b, g) - mu_a * mu_b
  cs = (2 * s_ab + c2) / (s_aa + s_bb + c2)
  lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
  return (lum * cs).mean((1, 2)), cs.mean((1, 2))


def window(side: int) -> int:
  """The window at a scale of `side` px: 11, or the largest odd size that fits."""
  size = min(11, side)
  return size if size % 2 else size - 1


def _pool(x):
  b, h, w, c = x.shape
  x = x[:, :h - h % 2, :w - w % 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean((2, 4))


def ms_ssim(a, b, max_val: float = 1.0, floor: float = 0.0):
  """MS-SSIM per image [B] of [B, H, W, C] images (in [0, max_val]). Each scale's term is
  clipped below at `floor`: 0 is the standard; a loss uses a small positive floor, where
  the fractional powers keep finite gradients."""
  h, w = a.shape[1:3]
  if min(h, w) < MIN_SIZE:
    raise ConfigError(f'ms_ssim needs images of at least {MIN_SIZE}x{MIN_SIZE} (5 scales); '
                      f'these are {h}x{w} (use ssim, or a larger data.image_size)')
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  weights = jnp.asarray(WEIGHTS)
  values = []
  for i in range(len(WEIGHTS)):
    ssim, cs = _ssim_cs(a, b, window(min(a.shape[1], a.shape[2])), max_val)
    values.append(jnp.maximum(ssim if i == len(WEIGHTS) - 1 else cs, floor))  # [B, C]
    if i < len(WEIGHTS) - 1:
      a, b = _pool(a), _pool(b)
  stacked = jnp.stack(values, axis=-1)  # [B, C, scales]
  return jnp.prod(stacked ** weights, axis=-1).mean(-1)


def batch_metric(ctx) -> dict:
  """The registry's per-example form (deterministic reconstruction vs test image)."""
  return {'ms_ssim': ms_ssim(jnp.clip(ctx.det.recon, 0.0, 1.0), ctx.x)}
