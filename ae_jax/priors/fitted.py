"""Priors fitted in closed form or by EM rather than trained by gradient steps: a
full-covariance Gaussian and a Gaussian mixture over continuous codes (Ghosh et al. 2020's
ex-post densities; priors/density.py holds their math and file format), and a categorical
distribution of the code index at each position, independently (the baseline an
autoregressive prior over discrete codes is graded against).

Each kind: fit(codes, settings, seed) -> params (a dict of NumPy arrays, the format of
density.npz: `np.savez` / `np.load(allow_pickle=False)` round-trip it), sample(params, num,
seed) -> codes (continuous) or indices (discrete), and held_out(params, codes) -> per
example: the negative log-likelihood in nats (continuous, of the flattened code) or in bits
per code position (categorical), the number each prior kind reports on test codes.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.special import logsumexp

from ae_jax.errors import ConfigError
from ae_jax.priors import density


@dataclasses.dataclass(frozen=True)
class GaussianSettings:
  pass


@dataclasses.dataclass(frozen=True)
class GMMSettings:
  components: int = 10        # mixture components (Ghosh et al.: 10)
  covariance: str = 'full'    # full | tied | diag | spherical (scikit-learn's)
  max_iter: int = 100         # EM iterations

  def __post_init__(self):
    if self.components < 1 or self.max_iter < 1:
      raise ConfigError(f'gmm prior: components={self.components}, max_iter={self.max_iter}: '
                        'both must be >= 1')
    if self.covariance not in density.COVARIANCE_TYPES:
      raise ConfigError(f'gmm prior: covariance={self.covariance!r}: expected one of '
                        f'{density.COVARIANCE_TYPES}')


@dataclasses.dataclass(frozen=True)
class CategoricalSettings:
  num_codes: int              # K, the codebook's size (the autoencoder's)
  smoothing: float = 1.0      # added to every count (Laplace)

  def __post_init__(self):
    if self.num_codes < 2 or self.smoothing < 0:
      raise ConfigError(f'categorical prior: num_codes={self.num_codes} (>= 2), '
                        f'smoothing={self.smoothing} (>= 0)')


# ---- continuous: a Gaussian, a mixture -----------------------------------------------------


def fit_gaussian(codes, settings: GaussianSettings, seed: int = 0) -> dict:
  return density.fit(codes, 'gaussian')


def fit_gmm(codes, settings: GMMSettings, seed: int = 0) -> dict:
  return density.fit(codes, 'gmm', num_components=settings.components,
                     covariance_type=settings.covariance, seed=seed,
                     max_iter=settings.max_iter)


def sample_continuous(params: dict, num: int, seed: int = 0, temperature: float = 1.0):
  return density.sample(params, num, seed, temperature)


def log_likelihood(params: dict, codes) -> np.ndarray:
  """log p(code) of each code [N, *latent] under a fitted Gaussian or mixture -> [N] nats."""
  x = np.asarray(codes, np.float64).reshape(len(codes), -1)
  kind = str(params['kind'])
  if kind == 'gaussian':
    mean = np.asarray(params['mean'], np.float64)
    tril = np.asarray(params['scale_tril'], np.float64)
    eps = np.linalg.solve(tril, (x - mean).T).T  # L^-1 (x - mean)
    logdet = np.sum(np.log(np.abs(np.diag(tril))))
    return -0.5 * np.sum(eps ** 2, -1) - logdet - 0.5 * x.shape[1] * math.log(2 * math.pi)
  if kind == 'gmm':
    return density.to_mixture(params).score_samples(x)
  raise ValueError(f'no log-likelihood for a {kind!r} density')


def held_out_continuous(params: dict, codes) -> np.ndarray:
  return -log_likelihood(params, codes)


# ---- discrete: a categorical per position -----------------------------------------------------


def fit_categorical(indices, settings: CategoricalSettings, seed: int = 0) -> dict:
  """Code indices [N, *positions] -> {'kind': 'categorical', 'probs': [*positions, K]}."""
  idx = np.asarray(indices)
  k = settings.num_codes
  flat = idx.reshape(len(idx), -1)
  counts = np.stack([np.bincount(col, minlength=k) for col in flat.T])  # [P, K]
  probs = (counts + settings.smoothing) / (counts.sum(-1, keepdims=True)
                                           + settings.smoothing * k)
  return {'kind': np.asarray('categorical'),
          'probs': probs.reshape(idx.shape[1:] + (k,)).astype(np.float64),
          'latent_shape': np.asarray(idx.shape[1:], np.int64)}


def sample_categorical(params: dict, num: int, seed: int = 0, temperature: float = 1.0):
  """Indices [num, *positions], each position drawn on its own (temperature on the logits;
  0: the most frequent code)."""
  probs = np.asarray(params['probs'], np.float64)
  positions, k = probs.shape[:-1], probs.shape[-1]
  p = probs.reshape(-1, k)
  rng = np.random.default_rng(seed)
  if temperature == 0:
    return np.broadcast_to(p.argmax(-1), (num, p.shape[0])).reshape((num, *positions)).copy()
  logits = np.log(np.maximum(p, 1e-300)) / temperature
  p = np.exp(logits - logsumexp(logits, -1, keepdims=True))
  u = rng.random((num, p.shape[0], 1))
  out = (u > np.cumsum(p, -1)[None]).sum(-1)  # inverse CDF per position
  return np.minimum(out, k - 1).reshape((num, *positions)).astype(np.int32)


def held_out_categorical(params: dict, indices) -> np.ndarray:
  """Bits per code position of each example's indices [N, *positions] -> [N]."""
  probs = np.asarray(params['probs'], np.float64)
  k = probs.shape[-1]
  p = probs.reshape(-1, k)
  idx = np.asarray(indices).reshape(len(indices), -1)
  logp = np.log2(p[np.arange(p.shape[0])[None], idx])  # [N, P]
  return -logp.mean(-1)
