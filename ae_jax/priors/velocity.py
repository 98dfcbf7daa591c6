"""Velocity networks v(x_t, t) for the flow-matching prior (flow.py).

- `VelocityMLP`: for flat codes [B, D] (any code shape works: it flattens). The time enters
  as sinusoidal features of t, either concatenated to the input ('concat') or projected
  and added to every hidden layer's pre-activation ('add').
- `DiT`: for spatial codes [B, H, W, C], a small Diffusion Transformer (Peebles & Xie 2023)
  over p x p patches, conditioned on t by adaLN-zero: each block's LayerNorm (no affine
  parameters) is followed by a shift and scale, and its residual branch by a gate, all
  regressed from the time embedding by a zero-initialised layer, so every block starts as
  the identity and the network's output (also zero-initialised) starts at v = 0.

Both keep the code's shape in their parameters (the MLP's output kernel is
[hidden, *code_shape], the DiT's position embedding [H/p, W/p, width]), so a sampler can
read it back (`code_shape`) from parameters alone.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

MAX_PERIOD = 10000.0


def time_features(t, dim: int, scale: float = 100.0):
  """Sinusoidal features [B, dim] of times t [B] in [0, 1]: the transformer's position
  encoding of scale * t (periods from 2 pi to MAX_PERIOD; cosines then sines).

  DiT embeds integer diffusion steps 0..999 (scale 1000 in these terms); here the fastest
  feature turns `scale` radians per unit of t, and a sampler with h = 1 / steps resolves it
  only while scale * h is small. Measured on a random velocity MLP: at scale 1000 Heun
  with 100 and with 400 steps differed by 0.004-0.008 (the field oscillates with a period
  of 0.006 in t), at 100 by 0.0001-0.0002; at 1 most features would barely move over
  [0, 1]."""
  half = dim // 2
  freqs = jnp.exp(-math.log(MAX_PERIOD) * jnp.arange(half, dtype=jnp.float32) / half)
  args = (scale * t.astype(jnp.float32))[:, None] * freqs[None]  # [B, half]
  emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


class VelocityMLP(nn.Module):
  code_shape: tuple[int, ...]
  hidden: int = 256
  depth: int = 3
  time_dim: int = 64
  time_mode: str = 'concat'  # 'concat' | 'add'
  time_scale: float = 100.0

  @nn.compact
  def __call__(self, x, t):
    emb = time_features(t, self.time_dim, self.time_scale)  # [B, T]
    h = x.reshape(x.shape[0], -1)  # [B, D]
    if self.time_mode == 'concat':
      h = jnp.concatenate([h, emb], axis=-1)  # [B, D + T]
    for i in range(self.depth):
      h = nn.Dense(self.hidden, name=f'dense_{i}')(h)
      if self.time_mode == 'add':
        h = h + nn.Dense(self.hidden, name=f'time_{i}')(emb)
      h = jax.nn.silu(h)
    # features=code_shape: the kernel [hidden, *code_shape] records the code's shape
    return nn.DenseGeneral(self.code_shape, name='out')(h)  # [B, *code_shape]


def _modulate(x, shift, scale):
  return x * (1 + scale[:, None]) + shift[:, None]  # x [B, T, W], shift/scale [B, W]


def _norm():
  return nn.LayerNorm(epsilon=1e-6, use_scale=False, use_bias=False)


class DiTBlock(nn.Module):
  width: int
  heads: int
  mlp_ratio: int = 4

  @nn.compact
  def __call__(self, x, c):
    mod = nn.Dense(6 * self.width, kernel_init=nn.initializers.zeros, name='adaln')(
        jax.nn.silu(c))  # [B, 6W]
    shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(mod, 6, axis=-1)
    h = _modulate(_norm()(x), shift1, scale1)
    h = nn.MultiHeadDotProductAttention(num_heads=self.heads, qkv_features=self.width,
                                        name='attn')(h, h)
    x = x + gate1[:, None] * h
    h = _modulate(_norm()(x), shift2, scale2)
    h = nn.Dense(self.mlp_ratio * self.width, name='mlp_in')(h)
    h = nn.Dense(self.width, name='mlp_out')(jax.nn.gelu(h, approximate=True))
    return x + gate2[:, None] * h


def patchify(x, p: int):
  """[B, H, W, C] -> [B, H/p, W/p, p*p*C], each patch's pixels in row-major order."""
  b, hh, ww, c = x.shape
  x = x.reshape(b, hh // p, p, ww // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, hh // p, ww // p, p * p * c)


def unpatchify(x, p: int):
  """The inverse of `patchify`: [B, h, w, p*p*C] -> [B, h*p, w*p, C]."""
  b, h, w, d = x.shape
  c = d // (p * p)
  x = x.reshape(b, h, w, p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * p, w * p, c)


class DiT(nn.Module):
  width: int = 256
  depth: int = 3
  heads: int = 4
  patch: int = 1
  mlp_ratio: int = 4
  time_dim: int = 64
  time_scale: float = 100.0

  @nn.compact
  def __call__(self, x, t):
    p = self.patch
    tokens = nn.Dense(self.width, name='patch_embed')(patchify(x, p))  # [B, h, w, W]
    pos = self.param('pos_embed', nn.initializers.normal(0.02), tokens.shape[1:])  # [h, w, W]
    b, h, w, _ = tokens.shape
    z = (tokens + pos).reshape(b, h * w, self.width)  # [B, T, W], raster order
    c = nn.Dense(self.width, name='time_in')(time_features(t, self.time_dim, self.time_scale))
    c = nn.Dense(self.width, name='time_out')(jax.nn.silu(c))  # [B, W]
    for i in range(self.depth):
      z = DiTBlock(self.width, self.heads, self.mlp_ratio, name=f'block_{i}')(z, c)
    shift, scale = jnp.split(
        nn.Dense(2 * self.width, kernel_init=nn.initializers.zeros, name='final_adaln')(
            jax.nn.silu(c)), 2, axis=-1)
    z = _modulate(_norm()(z), shift, scale)
    z = nn.Dense(p * p * x.shape[-1], kernel_init=nn.initializers.zeros, name='out')(z)
    return unpatchify(z.reshape(b, h, w, -1), p)  # [B, H, W, C]


def code_shape(params, patch: int) -> tuple[int, ...]:
  """One code's shape, read from a velocity network's parameters (static under jit)."""
  if 'pos_embed' in params:  # a DiT
    h, w, _ = params['pos_embed'].shape[-3:]  # a leading member axis, if any, is skipped
    channels = params['out']['kernel'].shape[-1] // (patch * patch)
    return (h * patch, w * patch, channels)
  kernel = params['out']['kernel']  # [hidden, *code_shape]
  dense_in = params['dense_0']['kernel']
  return tuple(kernel.shape[dense_in.ndim - 1:])
