"""Convolutional encoders and decoders built from per-layer specs.

Padding follows torch's Conv2d/ConvTranspose2d conventions, so the report
architectures are reproduced layer for layer (and their weights can be imported).
"""
from __future__ import annotations

import math

from typing import NamedTuple, Sequence

import flax.linen as nn

from ae_jax.models.layers import (ACTIVATIONS, ConvTranspose, conv_fn, dense_code,
                                  kaiming_normal, make_norm, split_heads)


class ConvSpec(NamedTuple):
  features: int
  kernel: int
  stride: int
  padding: int
  output_padding: int = 0  # transposed convs only
  norm_act: bool = True    # follow with normalisation and activation


def _conv_init(init: str):
  return kaiming_normal((0, 1, 2)) if init == 'kaiming_normal' else nn.initializers.lecun_normal()


def _tconv_init(init: str):
  # torch's fan_in for a ConvTranspose2d weight [in, out, k, k] is out*k*k.
  return kaiming_normal((0, 1, 3)) if init == 'kaiming_normal' else nn.initializers.lecun_normal()


class ConvEncoder(nn.Module):
  layers: Sequence[ConvSpec]
  latent_dim: int
  kind: str = 'vae'
  # 'flat' (Dense head) | 'spatial' (3x3 conv head) | 'none' (AE: the last layer is the code)
  latent: str = 'flat'
  norm: str = 'none'
  groups: int = 32
  activation: str = 'relu'
  init: str = 'default'
  conv_impl: str = 'xla'  # 'xla' | 'canonical' (models/canonical.py)

  @nn.compact
  def __call__(self, x, train: bool = False):
    act = ACTIVATIONS[self.activation]
    h = x  # [B, H, W, C]
    for i, spec in enumerate(self.layers):
      p = spec.padding
      h = nn.Conv(spec.features, (spec.kernel, spec.kernel), (spec.stride, spec.stride),
                  padding=((p, p), (p, p)), kernel_init=_conv_init(self.init),
                  name=f'conv_{i}', conv_general_dilated=conv_fn(self.conv_impl))(h)
      if spec.norm_act:
        norm = make_norm(self.norm, train, self.groups, name=f'norm_{i}')
        h = act(norm(h) if norm is not None else h)
    heads = 1 if self.kind == 'ae' else 2
    if self.latent == 'none':
      return h  # [B, h, w, C_last]
    if self.latent == 'spatial':
      h = nn.Conv(self.latent_dim * heads, (3, 3), padding=((1, 1), (1, 1)),
                  kernel_init=_conv_init(self.init), name='head',
                  conv_general_dilated=conv_fn(self.conv_impl))(h)  # [B, h, w, L*heads]
      return h if heads == 1 else split_heads(h, self.latent_dim)
    return dense_code(h, self.latent_dim, self.kind)  # [B, L] or [B, L, 2]


class ConvDecoder(nn.Module):
  layers: Sequence[ConvSpec]           # transposed convs
  out_channels: int
  start_shape: tuple[int, int, int]    # [h, w, c] the first transposed conv sees
  latent: str = 'flat'
  final_conv: bool = True              # a 3x3 conv to out_channels after the transposed convs
  norm: str = 'none'
  groups: int = 32
  activation: str = 'relu'
  init: str = 'default'
  upsample: str = 'phases'             # ConvTranspose implementation
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, z, train: bool = False):
    act = ACTIVATIONS[self.activation]
    if self.latent == 'flat':
      h = nn.Dense(math.prod(self.start_shape), name='project')(z)
      h = act(h).reshape(z.shape[0], *self.start_shape)  # [B, h, w, c]
    else:
      h = z  # [B, h, w, L]
    for i, spec in enumerate(self.layers):
      h = ConvTranspose(spec.features, spec.kernel, spec.stride, spec.padding,
                        spec.output_padding, impl=self.upsample,
                        kernel_init=_tconv_init(self.init), name=f'tconv_{i}',
                        conv_impl=self.conv_impl)(h)
      if spec.norm_act:
        norm = make_norm(self.norm, train, self.groups, name=f'norm_{i}')
        h = act(norm(h) if norm is not None else h)
    if self.final_conv:
      h = nn.Conv(self.out_channels, (3, 3), padding=((1, 1), (1, 1)),
                  kernel_init=_conv_init(self.init), name='out',
                  conv_general_dilated=conv_fn(self.conv_impl))(h)
    return h  # [B, H, W, C]
