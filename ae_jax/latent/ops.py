"""Latent-space operations: arrays in, arrays out, pure and jit-able.

Codes are [N, *latent] (a flat code [N, D] or a spatial one [N, h, w, C]); a "dimension"
is a unit of a flat code or a channel of a spatial one.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax.priors.density import fit_gaussian  # noqa: F401 - a latent op too


def lerp(z0, z1, t):
  """Linear interpolation; t: [T] in [0, 1] -> [T, *z0.shape]."""
  t = jnp.reshape(jnp.asarray(t, jnp.float32), (-1,) + (1,) * jnp.ndim(z0))
  return (1.0 - t) * z0[None] + t * z1[None]


def slerp(z0, z1, t, eps: float = 1e-7):
  """Spherical interpolation (along the great circle, radius interpolated linearly);
  falls back to lerp where the two codes are (anti)parallel."""
  t = jnp.reshape(jnp.asarray(t, jnp.float32), (-1,) + (1,) * jnp.ndim(z0))
  a, b = jnp.ravel(z0), jnp.ravel(z1)
  na, nb = jnp.linalg.norm(a), jnp.linalg.norm(b)
  cos = jnp.clip(jnp.dot(a, b) / jnp.maximum(na * nb, eps), -1.0, 1.0)
  omega = jnp.arccos(cos)
  so = jnp.sin(omega)
  safe = so > 1e-4
  w0 = jnp.where(safe, jnp.sin((1.0 - t) * omega) / jnp.where(safe, so, 1.0), 1.0 - t)
  w1 = jnp.where(safe, jnp.sin(t * omega) / jnp.where(safe, so, 1.0), t)
  return w0 * z0[None] + w1 * z1[None]


def interpolate(z0, z1, steps: int, mode: str = 'linear'):
  """`steps` codes from z0 to z1 inclusive (mode 'linear' or 'spherical')."""
  if mode not in ('linear', 'spherical'):
    raise ValueError(f'interpolation mode {mode!r}: expected linear or spherical')
  t = jnp.linspace(0.0, 1.0, steps)
  return lerp(z0, z1, t) if mode == 'linear' else slerp(z0, z1, t)


def _dim_mask(z, dim: int):
  """1 at dimension `dim` (a unit of a flat code, a channel of a spatial one)."""
  return jax.nn.one_hot(dim, z.shape[-1], dtype=z.dtype)


def edit(z, dim: int, scale=1.0, shift=0.0):
  """Dimension `dim` of codes z [N, *latent] multiplied by `scale`, then `shift` added."""
  m = _dim_mask(z, dim)
  return z * (1.0 + m * (scale - 1.0)) + m * shift


def traverse(z, dim: int, values):
  """Code z [*latent] with dimension `dim` set to each of `values` -> [V, *latent]."""
  values = jnp.asarray(values, z.dtype)
  m = _dim_mask(z, dim)
  return z[None] * (1.0 - m) + values.reshape((-1,) + (1,) * z.ndim) * m


def sigma_schedule(k: int, step: float = 0.1):
  """Report 002's schedule: the i-th of k samples (i = 1..k) gets noise of scale i * step."""
  return step * jnp.arange(1, k + 1, dtype=jnp.float32)


def add_noise(key, codes, k: int, sigma):
  """k noisy copies of each code: codes [N, *latent] -> [N * k, *latent], copies of code n
  at rows n*k .. n*k+k-1. `sigma`: a scalar or [k] (one scale per copy)."""
  sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), (k,))
  noise = jax.random.normal(key, (codes.shape[0], k, *codes.shape[1:]), codes.dtype)
  out = codes[:, None] + noise * sigma.reshape((1, k) + (1,) * (codes.ndim - 1))
  return out.reshape((-1, *codes.shape[1:]))


def sample_gaussian(key, mean, scale_tril, num: int, latent_shape, temperature=1.0):
  eps = jax.random.normal(key, (num, mean.shape[0]))
  z = mean + temperature * eps @ scale_tril.T
  return z.reshape((num, *latent_shape))


def order_dims(mean, logvar=None):
  """Dimensions ordered most informative first: by mean KL(q(z|x) || N(0, I)) for a VAE,
  by the variance of the codes across images for an AE. -> (order [D], score [D])."""
  m = jnp.reshape(mean, (-1, mean.shape[-1])).astype(jnp.float32)
  if logvar is None:
    score = m.var(0)
  else:
    lv = jnp.reshape(logvar, (-1, mean.shape[-1])).astype(jnp.float32)
    score = (0.5 * (jnp.exp(lv) + m * m - 1.0 - lv)).mean(0)
  return jnp.argsort(-score), score


def nearest_distance(samples, data, chunk: int = 512):
  """Per sample, the root-mean-square pixel distance to its nearest image in `data` (how
  far generated images fall from the data); NumPy, chunked over `data`."""
  s = np.reshape(np.asarray(samples, np.float32), (len(samples), -1))
  best = np.full(len(s), np.inf, np.float32)
  s2 = (s * s).sum(1)
  for i in range(0, len(data), chunk):
    d = np.reshape(np.asarray(data[i:i + chunk], np.float32), (-1, s.shape[1]))
    dist = s2[:, None] - 2.0 * s @ d.T + (d * d).sum(1)[None]
    best = np.minimum(best, dist.min(1))
  return np.sqrt(np.maximum(best, 0.0) / s.shape[1])
