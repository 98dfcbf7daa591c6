"""Ex-post density estimation: a density fitted to the training codes of a trained model,
to draw new codes from and decode (Ghosh et al. 2020's sampler for RAEs, also the usual
way to sample a plain AE or a VAE whose aggregate posterior misses N(0, I)).

Codes are [N, *latent], flattened to [N, D]; samples come back as [num, *latent]. Two
kinds, both a plain dict of NumPy arrays (`np.savez(f, **params)` and
`dict(np.load(f, allow_pickle=False))` round-trip it; no pickle, no sklearn object):

- 'gaussian': one full-covariance Gaussian, `mean` [D] and its Cholesky factor
  `scale_tril` [D, D], from `fit_gaussian` (the sample covariance with a small ridge).
- 'gmm': scikit-learn's GaussianMixture (EM from a k-means start) with `num_components`
  components, `covariance_type` ('full', 'tied', 'diag', 'spherical') and `seed` as its
  random_state. Ghosh et al. use 10 full-covariance components, the defaults here. The
  dict holds the estimator's settings and every fitted attribute (weights_, means_,
  covariances_, precisions_cholesky_, ...) under their sklearn names, so `to_mixture`
  rebuilds the same estimator exactly (same score_samples, predict).

Sampling draws a component by its weight, then mean_k + temperature * L_k eps with L_k
the component's covariance factor and eps ~ N(0, I) (NumPy's default_rng(seed), so a seed
fixes the samples). temperature 1 samples the fitted density; below 1 the samples
gather nearer the component means (the weights are not tempered), as the latent tool's
Gaussian sampler does.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

def fit_gaussian(codes):
  """A full-covariance Gaussian fitted to codes [N, *latent]: (mean [D], scale_tril [D, D])
  over the flattened code (a small ridge keeps the Cholesky factor defined)."""
  x = jnp.reshape(codes, (codes.shape[0], -1)).astype(jnp.float32)
  mean = x.mean(0)
  centred = x - mean
  cov = centred.T @ centred / max(x.shape[0] - 1, 1)
  ridge = 1e-5 * (jnp.trace(cov) / cov.shape[0] + 1e-8)
  return mean, jnp.linalg.cholesky(cov + ridge * jnp.eye(cov.shape[0]))


KINDS = ('gaussian', 'gmm')
COVARIANCE_TYPES = ('full', 'tied', 'diag', 'spherical')
# GaussianMixture's constructor settings kept in the dict (the rest stay at their defaults)
_GMM_SETTINGS = ('n_components', 'covariance_type', 'tol', 'reg_covar', 'max_iter',
                 'n_init', 'init_params', 'random_state')
_GMM_FITTED = ('weights_', 'means_', 'covariances_', 'precisions_cholesky_', 'precisions_',
               'converged_', 'n_iter_', 'lower_bound_', 'lower_bounds_', 'n_features_in_')


def _flat(codes):
  codes = np.asarray(codes)
  return codes.reshape(codes.shape[0], -1).astype(np.float64)  # [N, D]


def fit(codes, kind: str = 'gmm', num_components: int = 10, covariance_type: str = 'full',
        seed: int = 0, max_iter: int = 100, n_init: int = 1, reg_covar: float = 1e-6) -> dict:
  """A density fitted to codes [N, *latent] -> params dict (see the module docstring)."""
  codes = np.asarray(codes)
  latent_shape = codes.shape[1:]
  if kind == 'gaussian':
    mean, scale_tril = fit_gaussian(codes)
    return {'kind': np.asarray('gaussian'), 'latent_shape': np.asarray(latent_shape, np.int64),
            'mean': np.asarray(mean), 'scale_tril': np.asarray(scale_tril)}
  if kind == 'gmm':
    if covariance_type not in COVARIANCE_TYPES:
      raise ValueError(f'covariance_type {covariance_type!r}: expected one of '
                       f'{COVARIANCE_TYPES}')
    from sklearn.mixture import GaussianMixture
    gmm = GaussianMixture(num_components, covariance_type=covariance_type, random_state=seed,
                          max_iter=max_iter, n_init=n_init, reg_covar=reg_covar)
    return from_mixture(gmm.fit(_flat(codes)), latent_shape)
  raise ValueError(f'density kind {kind!r}: expected one of {KINDS}')


def from_mixture(gmm, latent_shape) -> dict:
  """A fitted sklearn GaussianMixture -> params dict of arrays (its settings and every
  fitted attribute). random_state must be an int or None (stored as -1)."""
  params = {'kind': np.asarray('gmm'), 'latent_shape': np.asarray(latent_shape, np.int64)}
  for name in _GMM_SETTINGS:
    value = getattr(gmm, name)
    if name == 'random_state':
      if value is not None and not isinstance(value, (int, np.integer)):
        raise ValueError('only an int (or None) random_state can be stored as an array')
      value = -1 if value is None else value
    params[name] = np.asarray(value)
  for name in _GMM_FITTED:
    params[name] = np.asarray(getattr(gmm, name))
  return params


def to_mixture(params: dict):
  """The params dict of a 'gmm' -> the sklearn GaussianMixture it was made from."""
  from sklearn.mixture import GaussianMixture
  _check_kind(params, 'gmm')
  settings = {name: params[name].item() for name in _GMM_SETTINGS}
  if settings['random_state'] == -1:
    settings['random_state'] = None
  gmm = GaussianMixture(**settings)
  for name in ('weights_', 'means_', 'covariances_', 'precisions_cholesky_', 'precisions_'):
    setattr(gmm, name, np.array(params[name]))
  gmm.converged_ = bool(params['converged_'])
  gmm.n_iter_ = int(params['n_iter_'])
  gmm.lower_bound_ = np.float64(params['lower_bound_'])
  gmm.lower_bounds_ = [np.float64(v) for v in params['lower_bounds_']]
  gmm.n_features_in_ = int(params['n_features_in_'])
  return gmm


def _check_kind(params, kind):
  if str(params['kind']) != kind:
    raise ValueError(f'density params of kind {str(params["kind"])!r}, expected {kind!r}')


def _component_factors(params) -> np.ndarray:
  """Per-component covariance factors L_k [K, D, D] (L_k L_k^T = covariance k)."""
  cov = np.asarray(params['covariances_'], np.float64)
  k, d = params['means_'].shape
  kind = str(params['covariance_type'])
  if kind == 'full':
    return np.linalg.cholesky(cov)
  if kind == 'tied':
    return np.broadcast_to(np.linalg.cholesky(cov), (k, d, d))
  if kind == 'diag':
    return np.sqrt(cov)[:, :, None] * np.eye(d)[None]
  return np.sqrt(cov)[:, None, None] * np.eye(d)[None]  # spherical: one variance each


def sample(params: dict, num: int, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
  """`num` codes [num, *latent] (float32) from a fitted density, reproducible by seed."""
  rng = np.random.default_rng(seed)
  latent_shape = tuple(int(s) for s in params['latent_shape'])
  kind = str(params['kind'])
  if kind == 'gaussian':
    mean = np.asarray(params['mean'], np.float64)
    eps = rng.standard_normal((num, mean.shape[0]))
    z = mean + temperature * eps @ np.asarray(params['scale_tril'], np.float64).T
  elif kind == 'gmm':
    weights = np.asarray(params['weights_'], np.float64)
    comp = rng.choice(len(weights), size=num, p=weights / weights.sum())  # [num]
    means = np.asarray(params['means_'], np.float64)  # [K, D]
    eps = rng.standard_normal((num, means.shape[1]))
    z = means[comp] + temperature * np.einsum('nij,nj->ni', _component_factors(params)[comp],
                                              eps)
  else:
    raise ValueError(f'density kind {kind!r}: expected one of {KINDS}')
  return z.astype(np.float32).reshape((num,) + latent_shape)
