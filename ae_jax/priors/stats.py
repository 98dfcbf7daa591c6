"""Latent statistics: the per-channel shift and scale a continuous prior's codes are
normalized by, as latent diffusion scales its autoencoder's codes (Rombach et al. 2022:
Stable Diffusion's 0.18215 is 1/std of its VAE's latents; SD3 and FLUX.1 add a shift).

The last axis is the channel: a spatial code [N, H, W, C] has statistics over N, H and W per
channel C; a flat code [N, D] per unit. With `per_channel=False` one mean and one std cover
every element (the scalar scaling factor of Stable Diffusion, which also shifts here).

A channel whose std is below `min_std` (a dead unit, or the masked units of a latent-size
sweep member, constant at 0) is divided by `min_std` instead: its normalized codes stay near
0 and unnormalize maps a prior's N(0, 1) draws there back to within min_std of the constant.

`unnormalize(normalize(x))` equals x to float32 rounding, not bit for bit: (x - m) / s * s + m
rounds twice in each of the four operations; the error is within a few ulps of |x| + |m|.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LatentStats(NamedTuple):
  mean: jax.Array  # [C] (per channel) or [] (one for all)
  std: jax.Array   # same shape, every entry >= min_std


def fit(codes, per_channel: bool = True, min_std: float = 1e-6) -> LatentStats:
  """The codes' [N, ..., C] mean and std (population std, ddof 0) per channel, or overall."""
  codes = jnp.asarray(codes, jnp.float32)
  axes = tuple(range(codes.ndim - 1)) if per_channel else None
  mean = jnp.mean(codes, axis=axes)
  # two passes (the mean first) rather than E[x^2] - E[x]^2, which cancels for a code with
  # a large offset and a small spread
  std = jnp.sqrt(jnp.mean(jnp.square(codes - mean), axis=axes))
  return LatentStats(mean=mean, std=jnp.maximum(std, min_std))


def normalize(codes, stats: LatentStats):
  """(codes - mean) / std, broadcast over the last axis: the codes a prior trains on."""
  return (codes - stats.mean) / stats.std


def unnormalize(codes, stats: LatentStats):
  """The inverse of `normalize`: a prior's samples back to the autoencoder's code scale."""
  return codes * stats.std + stats.mean
