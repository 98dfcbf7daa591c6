"""A trained model's codes of a dataset split, for what is fitted or trained on them (a
latent prior, the latent statistics): the posterior means, or one fixed draw of q(z|x) per
image, for every member of a workdir; for a quantized model also the code indices.

Codes are [K, N, *latent] float32 (K members); indices [K, N, *positions] int32.
"""
from __future__ import annotations

import jax
import numpy as np

from ae_jax import data
from ae_jax.inference import Loaded, Trained
from ae_jax.priors import stats

MODES = ('mean', 'sample')


def split_images(dataset: data.Dataset, split: str) -> np.ndarray:
  """A split's images, read whole (streamed sources included)."""
  x = getattr(dataset, split)['image']
  return x.read(np.arange(len(x))) if isinstance(x, data.StreamSource) else np.asarray(x)


def member_codes(member: Trained, images, mode: str = 'mean', seed: int = 0) -> np.ndarray:
  """One member's codes of `images` [N, H, W, C] -> [N, *latent]: the posterior means, or
  (mode 'sample', a VAE) mean + exp(logvar / 2) * eps with eps fixed by `seed`."""
  mean, logvar = member.encode(images)
  if mode == 'sample' and logvar is not None:
    eps = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), mean.shape), np.float32)
    mean = mean + np.exp(0.5 * logvar) * eps
    if member.latent_mask is not None:
      mean = mean * np.asarray(member.latent_mask)
  return np.asarray(mean, np.float32)


def codes(loaded: Loaded, images, mode: str = 'mean', seed: int = 0) -> np.ndarray:
  """Every member's codes of `images` -> [K, N, *latent]."""
  return np.stack([member_codes(loaded.member(k), images, mode, seed + k)
                   for k in range(len(loaded.members))])


def indices(loaded: Loaded, codes_k) -> np.ndarray:
  """A quantized model's code indices of codes [K, N, *latent] -> [K, N, *positions]."""
  return np.stack([np.asarray(loaded.member(k).code_indices(c), np.int32)
                   for k, c in enumerate(codes_k)])


def statistics(codes_k) -> list[stats.LatentStats]:
  """Each member's per-channel mean and std of its codes [K, N, *latent] over the examples
  (and positions of a spatial code; the last axis is the channel, a flat code's channels
  are its units): latent diffusion's scaling statistics (priors/stats.py)."""
  return [stats.fit(c) for c in codes_k]
