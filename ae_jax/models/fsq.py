"""Finite scalar quantization (Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made
Simple", ICLR 2024): a codebook-free quantiser of the last axis.

Channel d of a code z [..., D] (D = len(levels)) takes one of L = levels[d] values. It is
bounded and rounded,

  half_l  = (L - 1)(1 + eps) / 2,   offset = 0.5 if L is even else 0,
  shift   = atanh(offset / half_l),
  bounded = tanh(z + shift) * half_l - offset          in (-half_l - offset, half_l - offset)
  code    = round_ste(bounded) / (L // 2)              in [-1, 1]

round_ste(x) = x + sg(round(x) - x) (sg: stop_gradient) has the value of round(x) and the
gradient of x (straight through). The shift makes z = 0 land on 0 for every L.

The grids. An odd L gives the integers -(L-1)/2 .. (L-1)/2, over L // 2: L points spaced
2/(L-1), symmetric about 0, from -1 to 1 (L = 5: -1, -.5, 0, .5, 1). An even L gives
-L/2 .. L/2 - 1 over L/2: L points spaced 2/L from -1 to 1 - 2/L (L = 4: -1, -.5, 0, .5),
a symmetric grid shifted down by half a step so that 0 is on it. eps keeps
offset / half_l below 1 for L = 2 (atanh(1) is infinite) and lets tanh's open interval
still reach both end bins. The price of an even L is an off-centre decision boundary: for
L = 4 the bins change at z = -1.15, -0.35, 0.46, and for L = 2 at z = -atanh(1 / (1 + eps))
= -3.8 (z = 0 sits at the top of the range), so two levels hardly quantise at all.

The paper's reference code writes (1 - eps) and tan(offset / half_l); tan only
approximates atanh (it maps z = 0 near 0, not onto it, and moves L = 2's boundary to
z = -1.56). The codebook and the indices are the same; on normal z of std 2.5, 0.5-1.1%
of code vectors of the recommended levels differ (those near a rounding boundary).

The implicit codebook is the product of the grids: prod(levels) codes, no parameters.
A code's index is mixed radix with channel 0 the least significant digit,
index = sum_d digit_d * prod(levels[:d]), digit_d = code_d * (L_d // 2) + L_d // 2 in
0 .. L_d - 1 (the basis of the paper's reference code, so indices agree with it).

`FiniteScalarQuantizer` returns the fields of quantizer.VQOutput, so it can sit where the
VQ codebook sits: FSQ has no codebook or commitment loss (both terms are zeros [B]) and
`counts` is the histogram over the implicit codebook. Levels the paper recommends for a
codebook of about 2^8 .. 2^16 codes are in RECOMMENDED_LEVELS.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ae_jax.errors import ConfigError
from ae_jax.models import quantizer

EPS = 1e-3  # the reference code's eps
# the paper's recommended levels per target codebook size (products 240, 1000, 4375, 15360, 64000)
RECOMMENDED_LEVELS: dict[str, tuple[int, ...]] = {
    '2^8': (8, 6, 5),
    '2^10': (8, 5, 5, 5),
    '2^12': (7, 5, 5, 5, 5),
    '2^14': (8, 8, 8, 6, 5),
    '2^16': (8, 8, 8, 5, 5, 5),
}
_MAX_CODES = 2 ** 31 - 1  # indices are int32


class FSQOutput(NamedTuple):
  """quantizer.VQOutput's fields, in its order."""
  quantized: jax.Array   # [B, ..., D] codes in [-1, 1], straight-through
  indices: jax.Array     # [B, ...] int32 index into the implicit codebook
  commitment: jax.Array  # [B] zeros: FSQ has no commitment term
  codebook: jax.Array    # [B] zeros: nor a codebook to learn
  counts: jax.Array      # [K] float32, codes of this batch per implicit-codebook entry


def resolve_levels(levels: str | Sequence[int]) -> tuple[int, ...]:
  """A RECOMMENDED_LEVELS name ('2^10') or a sequence of ints >= 2 -> the levels tuple."""
  if isinstance(levels, str):
    if levels not in RECOMMENDED_LEVELS:
      raise ConfigError(f'FSQ levels {levels!r}: expected one of {sorted(RECOMMENDED_LEVELS)} '
                        'or a tuple of level counts such as (8, 5, 5, 5)')
    return RECOMMENDED_LEVELS[levels]
  out = tuple(levels)
  if not out or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 2
                        for n in out):
    raise ConfigError(f'FSQ levels {out!r}: expected a non-empty tuple of integers >= 2 '
                      '(values per channel), e.g. (8, 5, 5, 5)')
  if math.prod(out) > _MAX_CODES:
    raise ConfigError(f'FSQ levels {out!r}: {math.prod(out)} codes do not fit int32 indices')
  return tuple(int(n) for n in out)


def codebook_size(levels) -> int:
  """K = prod(levels), the number of codes of the implicit codebook."""
  return math.prod(resolve_levels(levels))


def bits_per_code(levels) -> float:
  """log2 K: the bits one code position carries."""
  return math.log2(codebook_size(levels))


def _constants(levels, eps: float):
  """(half_l, offset, shift, half_width) as float64 numpy arrays [D]."""
  lv = np.asarray(resolve_levels(levels), np.float64)
  half_l = (lv - 1.0) * (1.0 + eps) / 2.0
  offset = np.where(lv % 2 == 0, 0.5, 0.0)
  shift = np.arctanh(offset / half_l)
  return half_l, offset, shift, np.floor(lv / 2.0)


# Each public function resolves its levels and calls a jitted body with them static: one
# compile per shape instead of one per operation when called eagerly.

def bound(z, levels, eps: float = EPS):
  """tanh(z + shift) * half_l - offset per channel: z [..., D] -> the same shape."""
  return _bound(z, resolve_levels(levels), float(eps))


def round_ste(x):
  """round(x) forward, identity backward."""
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


def quantize(z, levels, eps: float = EPS):
  """The straight-through code in [-1, 1] of z [..., D]."""
  return _quantize(z, resolve_levels(levels), float(eps))


def codes_to_indices(codes, levels):
  """Codes [..., D] on the grids -> int32 indices [...] (mixed radix, channel 0 lowest)."""
  return _codes_to_indices(codes, resolve_levels(levels))


def indices_to_codes(indices, levels):
  """int indices [...] -> float32 codes [..., D], the inverse of codes_to_indices."""
  return _indices_to_codes(jnp.asarray(indices, jnp.int32), resolve_levels(levels))


def preimage(codes, levels, eps: float = EPS):
  """A z [..., D] that quantizes to `codes` [..., D] (on the grids): the z whose bounded
  value is the code's integer exactly. Quantizing is not idempotent (quantize(code) moves
  an end code of an even L inward), so a code from the implicit codebook that must pass
  through quantize again, as a decoder that quantizes its input does, goes in as this."""
  return _preimage(jnp.asarray(codes, jnp.float32), resolve_levels(levels), float(eps))


def implicit_codebook(levels):
  """Every code, in index order: [K, D] float32."""
  return indices_to_codes(jnp.arange(codebook_size(levels)), levels)


def index_counts(indices, levels):
  """Histogram of indices [...] over the implicit codebook: [K] float32 (a scatter-add, no
  [P, K] one-hot: K reaches 64,000 for the 2^16 levels)."""
  return _counts(indices, codebook_size(levels))


def usage(indices, levels):
  """Share of the implicit codebook's K codes that occur among `indices`."""
  return _usage(indices, codebook_size(levels))


def perplexity(indices, levels):
  """exp(entropy) of the index histogram, in [1, K]."""
  return _perplexity(indices, codebook_size(levels))


@functools.partial(jax.jit, static_argnames=('levels', 'eps'))
def _bound(z, levels, eps):
  half_l, offset, shift, _ = _constants(levels, eps)
  dt = z.dtype
  return jnp.tanh(z + shift.astype(dt)) * half_l.astype(dt) - offset.astype(dt)


@functools.partial(jax.jit, static_argnames=('levels', 'eps'))
def _quantize(z, levels, eps):
  half_width = _constants(levels, eps)[3].astype(z.dtype)
  return round_ste(_bound(z, levels, eps)) / half_width


@functools.partial(jax.jit, static_argnames=('levels', 'eps'))
def _preimage(codes, levels, eps):
  half_l, offset, shift, half_width = (c.astype(np.float32) for c in _constants(levels, eps))
  # integer + offset lies within +-(L - 1) / 2, inside +-half_l: atanh stays finite
  return jnp.arctanh((codes * half_width + offset) / half_l) - shift


@functools.partial(jax.jit, static_argnames='levels')
def _codes_to_indices(codes, levels):
  half_width = jnp.asarray([n // 2 for n in levels], jnp.float32)
  # round before the cast: code * half_width is an integer only up to float error
  digits = jnp.round(codes.astype(jnp.float32) * half_width + half_width).astype(jnp.int32)
  return jnp.sum(digits * _basis(levels), axis=-1)


@functools.partial(jax.jit, static_argnames='levels')
def _indices_to_codes(indices, levels):
  digits = (indices[..., None] // _basis(levels)) % jnp.asarray(levels)
  half_width = jnp.asarray([n // 2 for n in levels], jnp.float32)
  return (digits.astype(jnp.float32) - half_width) / half_width


def _basis(levels) -> jax.Array:
  """prod(levels[:d]) per channel d: [D] int32."""
  return jnp.asarray(np.concatenate([[1], np.cumprod(levels[:-1])]), jnp.int32)


@functools.partial(jax.jit, static_argnames='k')
def _counts(indices, k):
  return jnp.zeros((k,), jnp.float32).at[jnp.ravel(indices)].add(1.0)


@functools.partial(jax.jit, static_argnames='k')
def _usage(indices, k):
  return quantizer.usage(_counts(indices, k))


@functools.partial(jax.jit, static_argnames='k')
def _perplexity(indices, k):
  return quantizer.perplexity(_counts(indices, k))


class FiniteScalarQuantizer(nn.Module):
  """FSQ of the last axis; call `(z_e [B, ..., D], train) -> FSQOutput` with D = len(levels).
  No parameters and no state: `train` changes nothing."""
  levels: tuple[int, ...] = RECOMMENDED_LEVELS['2^10']
  epsilon: float = EPS

  @nn.compact
  def __call__(self, z_e, train: bool = False) -> FSQOutput:
    del train
    levels = resolve_levels(self.levels)
    if z_e.shape[-1] != len(levels):
      raise ConfigError(f'FSQ levels {levels} quantize {len(levels)} channels, but the code has '
                        f'{z_e.shape[-1]}; make the latent size {len(levels)}')
    codes = quantize(z_e, levels, self.epsilon)  # [B, ..., D]
    idx = codes_to_indices(jax.lax.stop_gradient(codes), levels)  # [B, ...]
    zeros = jnp.zeros((z_e.shape[0],), jnp.float32)
    return FSQOutput(quantized=codes, indices=idx, commitment=zeros, codebook=zeros,
                     counts=index_counts(idx, levels))
