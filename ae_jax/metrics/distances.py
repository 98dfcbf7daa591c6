"""Distances between two sets of features: the Frechet distance (FID's formula) and
precision/recall of manifolds (Kynkaenniemi et al. 2019). Pure NumPy on [N, D]."""
from __future__ import annotations

import numpy as np

from ae_jax.errors import ConfigError


def _features_2d(feats, what):
  f = np.asarray(feats, np.float64)
  if f.ndim != 2 or len(f) < 2:
    raise ConfigError(f'{what}: expected features [N >= 2, D], got shape {f.shape}')
  return f


def _psd_sqrt(s):
  """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues
  below zero by round-off taken as zero)."""
  w, v = np.linalg.eigh(s)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2): the FID formula. tr (S1 S2)^1/2 is
  computed as the sum of the singular values of S1^1/2 S2^1/2 (the same number: S1 S2 and
  S1^1/2 S2 S1^1/2 share their eigenvalues) from two symmetric eigendecompositions:
  pytorch-fid's scipy sqrtm of S1 S2 gives the same value to round-off (1e-7 relative on
  1,472 LPIPS features from 40 samples; tests/test_metric_sample_quality.py), more slowly,
  and can fail on the singular covariances of fewer samples than features (it needed an eps
  on the diagonals there; this does not)."""
  mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  diff = mu1 - mu2
  # tr (S1^1/2 S2 S1^1/2)^1/2 = tr |S2^1/2 S1^1/2|: the sum of the singular values of the
  # product of the two roots (exact to round-off even where S1 = S2: no root of a square)
  roots = _psd_sqrt((sigma1 + sigma1.T) / 2) @ _psd_sqrt((sigma2 + sigma2.T) / 2)
  trace_covmean = np.linalg.svd(roots, compute_uv=False).sum()
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean)


def frechet_distance(feats_a, feats_b) -> float:
  """Fréchet distance between Gaussians fitted (mean, unbiased covariance) to two feature
  sets [N, D] and [M, D] (any feature space)."""
  a, b = _features_2d(feats_a, 'feats_a'), _features_2d(feats_b, 'feats_b')
  if a.shape[1] != b.shape[1]:
    raise ConfigError(f'feature sets of width {a.shape[1]} and {b.shape[1]} cannot be compared')
  return frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False),
                                     b.mean(0), np.cov(b, rowvar=False))


def _sq_dists(a, b):
  """[N, D], [M, D] -> squared euclidean distances [N, M] (float64, clipped at 0)."""
  d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
  return np.maximum(d, 0.0)


def _knn_radii(feats, k, chunk):
  """Squared distance of each point to its k-th nearest other point."""
  out = np.empty(len(feats))
  for i in range(0, len(feats), chunk):
    d = _sq_dists(feats[i:i + chunk], feats)
    out[i:i + chunk] = np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself
  return out


def _coverage(manifold, radii, queries, chunk):
  """Share of queries within the k-NN ball of at least one manifold point."""
  inside = np.zeros(len(queries), bool)
  for i in range(0, len(queries), chunk):
    inside[i:i + chunk] = (_sq_dists(queries[i:i + chunk], manifold) <= radii[None]).any(1)
  return float(inside.mean())


PR_NEIGHBOURS = 3  # precision and recall's k (Kynkäänniemi et al. 2019)


def precision_recall(real_feats, fake_feats, k: int = PR_NEIGHBOURS, chunk: int = 1024):
  """Improved precision and recall (Kynkäänniemi et al. 2019) -> (precision, recall).

  Precision: the share of fake features inside the real manifold, the union of balls
  around each real feature reaching its k-th nearest real neighbour; recall: the share
  of real features inside the fake manifold."""
  real = _features_2d(real_feats, 'real features')
  fake = _features_2d(fake_feats, 'fake features')
  if min(len(real), len(fake)) <= k:
    raise ConfigError(f'precision/recall with k={k} needs more than {k} real and fake '
                      f'samples, got {len(real)} and {len(fake)}')
  precision = _coverage(real, _knn_radii(real, k, chunk), fake, chunk)
  recall = _coverage(fake, _knn_radii(fake, k, chunk), real, chunk)
  return precision, recall
