"""A convolutional family built for reconstruction (model.arch='resnet').

Pre-activation residual blocks at every resolution, strided 3x3 convs down, nearest-
neighbour upsampling + 3x3 convs up (no checkerboard artefacts), GroupNorm or no norm,
and a flat Dense code (or a spatial 1x1-conv code) at the bottom.

With `linear=True` (model.resnet.linear='pca') a linear encoder and decoder run beside the
convolutional ones: code = linear(x) + conv code, image = linear(code) + conv output. The
conv code head and output conv start at zero and the linear pair starts as the training
split's whitened PCA (train.Setup.init_state, init_linear_from_pca below), so the model
starts as the best linear autoencoder and training only has to add what is nonlinear.

With `patch=p` (model.resnet.patch) the conv path works on p x p pixel blocks (space to
depth on the way in, depth to space on the way out): a 64x64 image costs what a 32x32 one
does at p=2, while the linear path still sees every pixel.

`channels` gives the width per resolution level, from the image's resolution down: (32,
64, 128, 256) maps a 32x32 image to 4x4x256 before the code. Widths grow as the
resolution shrinks, so every level costs about the same.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ae_jax.metrics import pca as pca_lib
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
  linear: bool = False       # a linear path beside the conv one (flat latent only)
  patch: int = 1             # the conv path starts on patch x patch pixel blocks

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = space_to_depth(x, self.patch)
    h = Conv(self.conv_impl, self.channels[0], (3, 3), padding=((1, 1), (1, 1)), name='conv_in')(h)
    for level, c in enumerate(self.channels):
      if level:  # halve the resolution, widen
        h = Conv(self.conv_impl, c, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                    name=f'down_{level}_conv')(h)
      for b in range(self.blocks):
        h = ResBlock(c, self.norm, self.groups, self.activation, self.conv_impl,
                     name=f'block_{level}_{b}')(
            h, train)
    norm = make_norm(self.norm, train, self.groups, name='norm_out')
    h = ACTIVATIONS[self.activation](norm(h) if norm is not None else h)  # [B, h, w, C]
    heads = 1 if self.kind == 'ae' else 2
    if self.latent == 'spatial':
      h = Conv(self.conv_impl, self.latent_dim * heads, (1, 1), name='head_conv')(h)
      return h if heads == 1 else split_heads(h, self.latent_dim)
    if not self.linear:
      return dense_code(h, self.latent_dim, self.kind)
    h = h.reshape(h.shape[0], -1)
    lin = nn.Dense(self.latent_dim, name='linear')(x.reshape(x.shape[0], -1))
    mean = lin + nn.Dense(self.latent_dim, kernel_init=nn.initializers.zeros, name='code')(h)
    if self.kind == 'ae':
      return mean
    # a narrow posterior to start (sd ~ 0.1 of the whitened code's unit spread)
    logvar = nn.Dense(self.latent_dim, kernel_init=nn.initializers.zeros,
                      bias_init=nn.initializers.constant(-4.0), name='logvar')(h)
    return jnp.stack([mean, logvar], axis=-1)


def space_to_depth(x, p: int):
  """[B, H, W, C] -> [B, H/p, W/p, p*p*C]: each p x p block of pixels becomes one position."""
  if p == 1:
    return x
  b, h, w, c = x.shape
  x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // p, w // p, p * p * c)


def depth_to_space(x, p: int):
  """The inverse of space_to_depth."""
  if p == 1:
    return x
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, p, p, c // (p * p)).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * p, w * p, c // (p * p))


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
  linear: bool = False         # add a linear decoder of the code to the output
  patch: int = 1               # the conv path ends on patch x patch pixel blocks

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
        h = Conv(self.conv_impl, c, (3, 3), padding=((1, 1), (1, 1)),
                 name=f'up_{i}_conv')(_upsample(h))
      for b in range(self.blocks + (self.refine if i == len(levels) - 1 else 0)):
        h = ResBlock(c, self.norm, self.groups, self.activation, self.conv_impl,
                     name=f'block_{i}_{b}')(
            h, train)
    norm = make_norm(self.norm, train, self.groups, name='norm_out')
    h = act(norm(h) if norm is not None else h)
    out = Conv(self.conv_impl, self.out_channels * self.patch ** 2, (3, 3),
               padding=((1, 1), (1, 1)), kernel_init=nn.initializers.zeros if self.linear
               else nn.initializers.lecun_normal(), name='out_conv')(h)
    out = depth_to_space(out, self.patch)
    if not self.linear:
      return out
    lin = nn.Dense(math.prod(out.shape[1:]), name='linear')(z.reshape(z.shape[0], -1))
    return out + lin.reshape(out.shape)


def init_linear_from_pca(params, train_images, latent_dim: int):
  """`params` (one member's, or [K, ...] stacked) with the linear pair set to the whitened
  PCA of `train_images` [N, H, W, C]: encoder z = (x - m) U / s, decoder x = z (U s)^T + m,
  s the codes' standard deviations (so codes start near N(0, I), the VAE prior)."""
  import numpy as np
  fit = pca_lib.fit(train_images, latent_dim)
  u = fit.components.T.astype(np.float64)  # [P, L]
  n = u.shape[1]
  if n < latent_dim:  # fewer images or pixels than latent units: the rest start at 0
    u = np.pad(u, ((0, 0), (0, latent_dim - n)))
  codes = (np.asarray(train_images, np.float64).reshape(len(train_images), -1) - fit.mean) @ u
  sd = np.maximum(codes.std(0), 1e-6)
  values = {('encoder', 'linear', 'kernel'): u / sd,
            ('encoder', 'linear', 'bias'): -(fit.mean @ u) / sd,
            ('decoder', 'linear', 'kernel'): (u * sd).T,
            ('decoder', 'linear', 'bias'): fit.mean}

  def put(path, leaf):
    key = tuple(getattr(k, 'key', None) for k in path)
    if key not in values:
      return leaf
    v = np.asarray(values[key], np.float32)
    v = np.broadcast_to(v, leaf.shape)  # a stacked [K, ...] leaf: every member alike
    return jax.make_array_from_callback(leaf.shape, leaf.sharding, lambda idx: v[idx])
  return jax.tree_util.tree_map_with_path(put, params)
