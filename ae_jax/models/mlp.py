"""Fully connected encoders and decoders (images are flattened in NHWC order)."""
from __future__ import annotations

import math

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from ae_jax.models.layers import ACTIVATIONS


class MLPEncoder(nn.Module):
  hidden: Sequence[int]
  latent_dim: int
  kind: str = 'vae'
  activation: str = 'relu'
  latent_activation: str = 'none'  # applied to an AE's code (the 50x50 MLP AE uses relu)

  @nn.compact
  def __call__(self, x, train: bool = False):
    act = ACTIVATIONS[self.activation]
    h = x.reshape(x.shape[0], -1)  # [B, H*W*C]
    for i, width in enumerate(self.hidden):
      h = act(nn.Dense(width, name=f'dense_{i}')(h))
    if self.kind == 'ae':
      return ACTIVATIONS[self.latent_activation](nn.Dense(self.latent_dim, name='code')(h))
    mean = nn.Dense(self.latent_dim, name='mean')(h)
    logvar = nn.Dense(self.latent_dim, name='logvar')(h)
    return jnp.stack([mean, logvar], axis=-1)  # [B, L, 2]


class MLPDecoder(nn.Module):
  hidden: Sequence[int]
  image_shape: tuple[int, int, int]
  activation: str = 'relu'

  @nn.compact
  def __call__(self, z, train: bool = False):
    act = ACTIVATIONS[self.activation]
    h = z
    for i, width in enumerate(self.hidden):
      h = act(nn.Dense(width, name=f'dense_{i}')(h))
    h = nn.Dense(math.prod(self.image_shape), name='out')(h)
    return h.reshape(z.shape[0], *self.image_shape)  # [B, H, W, C]
