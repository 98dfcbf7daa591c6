"""The PCA baseline: the best linear autoencoder at a given code size.

Among all encoders z = A (x - m) and decoders x' = B z + m with L-dimensional codes, the
one with the least squared reconstruction error projects onto the top-L principal
components of the training data (Eckart-Young), so a nonlinear model earns its keep only
by beating it. Fitted on the training split, evaluated on the test split; the
reconstruction is clipped to [0, 1] like every model's.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class PCA(NamedTuple):
  mean: np.ndarray        # [P]
  components: np.ndarray  # [L, P], orthonormal rows


def fit(train_images, latent_dim: int, seed: int = 0) -> PCA:
  """Top-`latent_dim` principal components of `train_images` [N, H, W, C].

  Uses the smaller of the data and Gram matrices (exact) up to a few thousand rows or
  columns, and scikit-learn's randomized SVD beyond (big N x P stays memory-bounded).
  """
  x = np.asarray(train_images, np.float32).reshape(len(train_images), -1)  # [N, P]
  n, p = x.shape
  latent_dim = int(min(latent_dim, n, p))
  mean = x.mean(0)
  xc = x - mean
  if min(n, p) <= 4096:
    if n <= p:  # eigenvectors of the N x N Gram matrix give the components
      gram = xc.astype(np.float64) @ xc.T.astype(np.float64)
      vals, vecs = np.linalg.eigh(gram)
      order = np.argsort(vals)[::-1][:latent_dim]
      vals, vecs = np.maximum(vals[order], 1e-12), vecs[:, order]
      comps = (xc.T.astype(np.float64) @ vecs / np.sqrt(vals)).T
    else:
      cov = xc.T.astype(np.float64) @ xc.astype(np.float64)
      vals, vecs = np.linalg.eigh(cov)
      comps = vecs[:, np.argsort(vals)[::-1][:latent_dim]].T
  else:
    from sklearn.utils.extmath import randomized_svd
    _, _, comps = randomized_svd(xc, latent_dim, random_state=seed)
  return PCA(mean, np.asarray(comps, np.float32))


def encode(model: PCA, images) -> np.ndarray:
  x = np.asarray(images, np.float32).reshape(len(images), -1)
  return (x - model.mean) @ model.components.T  # [N, L]


def reconstruct(model: PCA, images) -> np.ndarray:
  """Project onto the components and back, clipped to [0, 1]; same shape as `images`."""
  images = np.asarray(images, np.float32)
  x = encode(model, images) @ model.components + model.mean
  return np.clip(x, 0.0, 1.0).reshape(images.shape)
