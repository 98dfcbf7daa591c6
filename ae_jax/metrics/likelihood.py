"""Likelihood of test images under a VAE: the importance-weighted bound (IWAE).

  L_K(x) = log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)

is a lower bound on log p(x) that rises with K (Burda et al. 2016); K = 1 is the ELBO.
The decoder's p(x|z) is the likelihood the reconstruction loss implies
(`core.log_px_given_z`). Discretisation convention: a continuous density on [0, 1]^P,
reported in nats per image and in bits per dimension (nats / (P ln 2)); for the usual
8-bit convention (uniform dequantisation of values / 256) add 8 bits per dimension
(`bits_per_dim_8bit`). The K samples are drawn in chunks with a running logsumexp, so
memory is O(batch x chunk), whatever K is.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from ae_jax.metrics.core import log_px_given_z  # noqa: F401 - the decoder likelihoods


def log_normal(z, mean, logvar):
  """log N(z; mean, diag(exp(logvar))) summed over all but the first axis -> [B]."""
  per = -0.5 * (math.log(2 * math.pi) + logvar + jnp.square(z - mean) / jnp.exp(logvar))
  return per.reshape(per.shape[0], -1).sum(-1)


def iwae(key, x, encode_fn: Callable, log_px_given_z_fn: Callable, num_samples: int,
         chunk: int = 100):
  """The IWAE bound L_K per image [B] (nats). encode_fn(x) -> (mean, logvar);
  log_px_given_z_fn(x, z) -> [B]. Sample k uses fold_in(key, k), so any chunk size gives
  the same estimate."""
  mean, logvar = encode_fn(x)
  chunk = max(1, min(chunk, num_samples))
  n_chunks = -(-num_samples // chunk)

  def log_weight(k):
    eps = jax.random.normal(jax.random.fold_in(key, k), mean.shape, mean.dtype)
    z = mean + jnp.exp(0.5 * logvar) * eps
    prior = log_normal(z, jnp.zeros_like(z), jnp.zeros_like(z))
    return log_px_given_z_fn(x, z) + prior - log_normal(z, mean, logvar)  # [B]

  def body(carry, c):
    running_max, running_sum = carry
    ks = c * chunk + jnp.arange(chunk)
    w = jax.vmap(log_weight)(ks)  # [chunk, B]
    w = jnp.where((ks < num_samples)[:, None], w, -jnp.inf)
    new_max = jnp.maximum(running_max, w.max(0))
    running_sum = running_sum * jnp.exp(running_max - new_max) + jnp.exp(
        w - new_max[None]).sum(0)
    return (new_max, running_sum), None

  b = x.shape[0]
  init = (jnp.full((b,), -jnp.inf), jnp.zeros((b,)))
  (m, s), _ = jax.lax.scan(body, init, jnp.arange(n_chunks))
  return m + jnp.log(s) - math.log(num_samples)


def bits_per_dim(nats, num_dims: int):
  """Negative log-likelihood in nats per image -> bits per dimension (continuous [0, 1])."""
  return nats / (num_dims * math.log(2.0))


def bits_per_dim_8bit(nats, num_dims: int):
  """The 8-bit convention: data x in {0..255}/256 dequantised uniformly, so a density on
  [0, 1] is 256^P times one on [0, 256]: + 8 bits per dimension."""
  return bits_per_dim(nats, num_dims) + 8.0
