"""A convolutional family built for reconstruction (model.arch='resnet').

Pre-activation residual blocks at every resolution, strided 3x3 convs down, nearest-
neighbour upsampling + 3x3 convs up (no checkerboard artefacts), GroupNorm or no norm,
and a flat Dense code (or a spatial 1x1-conv code) at the bottom. `channels` gives the
width per resolution level, from the image's resolution down: (32, 64, 128, 256) maps a
32x32 image to 4x4x256 before the code. Widths grow as the resolution shrinks, so every
level costs about the same.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax

from ae_jax.models.layers import ACTIVATIONS, conv_fn, dense_code, make_norm, split_heads


def Conv(impl: str, *args, **kwargs):  # noqa: N802 (a layer constructor)
  return nn.Conv(*args, conv_general_dilated=conv_fn(impl), **kwargs)


class ResBlock(nn.Module):
  """x + conv(act(norm(conv(act(norm(x)))))): the identity path keeps detail flowing."""
  features: int
  norm: str = 'group'
  groups: int = 32
  activation: str = 'silu'
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x, train: bool = False):
    act = ACTIVATIONS[self.activation]
    h = x
    for i in range(2):
      norm = make_norm(self.norm, train, self.groups, name=f'norm_{i}')
      h = act(norm(h) if norm is not None else h)
      h = Conv(self.conv_impl, self.features, (3, 3), padding=((1, 1), (1, 1)), name=f'conv_{i}',
                  kernel_init=nn.initializers.zeros if i == 1 else
                  nn.initializers.lecun_normal())(h)
    return x + h  # zero-initialised last conv: every block starts as the identity


class ResEncoder(nn.Module):
  channels: Sequence[int]
  latent_dim: int
  kind: str = 'vae'
  blocks: int = 1
  latent: str = 'flat'       # 'flat' (Dense code) | 'spatial' (1x1 conv code)
  norm: str = 'group'
  groups: int = 32
  activation: str = 'silu'
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = Conv(self.conv_impl, self.channels[0], (3, 3), padding=((1, 1), (1, 1)), name='conv_in')(x)
    for level, c in enumerate(self.channels):
      if level:  # halve the resolution, widen
        h = Conv(self.conv_impl, c, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                    name=f'down_{level}_conv')(h)
      for b in range(self.blocks):
        h = ResBlock(c, self.norm, self.groups, self.activation, self.conv_impl, name=f'block_{level}_{b}')(
            h, train)
    norm = make_norm(self.norm, train, self.groups, name='norm_out')
    h = ACTIVATIONS[self.activation](norm(h) if norm is not None else h)  # [B, h, w, C]
    heads = 1 if self.kind == 'ae' else 2
    if self.latent == 'spatial':
      h = Conv(self.conv_impl, self.latent_dim * heads, (1, 1), name='head_conv')(h)
      return h if heads == 1 else split_heads(h, self.latent_dim)
    return dense_code(h, self.latent_dim, self.kind)


def _upsample(x):
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), 'nearest')


class ResDecoder(nn.Module):
  channels: Sequence[int]      # the encoder's, bottom level last
  out_channels: int
  start_shape: tuple[int, int, int]
  blocks: int = 1
  latent: str = 'flat'
  norm: str = 'group'
  groups: int = 32
  activation: str = 'silu'
  refine: int = 0              # extra full-resolution blocks before the output conv
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, z, train: bool = False):
    act: Callable = ACTIVATIONS[self.activation]
    if self.latent == 'flat':
      h = nn.Dense(math.prod(self.start_shape), name='project')(z)
      h = h.reshape(z.shape[0], *self.start_shape)  # [B, h, w, C]
    else:
      h = Conv(self.conv_impl, self.start_shape[-1], (1, 1), name='project_conv')(z)
    levels = list(reversed(self.channels))
    for i, c in enumerate(levels):
      if i:  # double the resolution, narrow
        h = Conv(self.conv_impl, c, (3, 3), padding=((1, 1), (1, 1)), name=f'up_{i}_conv')(_upsample(h))
      for b in range(self.blocks + (self.refine if i == len(levels) - 1 else 0)):
        h = ResBlock(c, self.norm, self.groups, self.activation, self.conv_impl, name=f'block_{i}_{b}')(
            h, train)
    norm = make_norm(self.norm, train, self.groups, name='norm_out')
    h = act(norm(h) if norm is not None else h)
    return Conv(self.conv_impl, self.out_channels, (3, 3), padding=((1, 1), (1, 1)), name='out_conv')(h)
