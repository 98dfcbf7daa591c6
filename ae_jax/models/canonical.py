"""Convolutions whose forward pass and both gradients are NHWC/HWIO convolutions.

XLA:CPU runs a convolution fast only in its canonical form (`b01f_01io->b01f`: NHWC input,
HWIO kernel), which it hands to its fast path. In a standalone gradient step XLA rewrites
every convolution into that form itself, but inside a `lax.scan` body (the whole-epoch
training loop) the gradients stay in other layouts (`b01f_01oi->b01f` for the input
gradient, `f01b_i01o->01bf` for the kernel gradient) and take a slow generic path: a conv
VAE step measured 15x slower inside the scan than alone.

`conv` below has a custom VJP that builds both gradients as canonical convolutions:
  input gradient  = conv(g dilated by the stride, the kernel flipped with in/out swapped)
  kernel gradient = conv(x with batch and channels swapped, g as a kernel dilated by the
                    stride), transposed back to HWIO
so the forward pass, the backward pass and the scan body hold only canonical convolutions.
Values and gradients equal `lax.conv_general_dilated`'s to float32 rounding
(tests/test_canonical_conv.py). `conv_general_dilated` is a drop-in for flax's `nn.Conv`
(its `conv_general_dilated` field) that uses it where it applies.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

DN = ('NHWC', 'HWIO', 'NHWC')


def _out_size(size, k, s, lo, hi):
  return (size + lo + hi - k) // s + 1


def _conv(x, w, strides, padding):
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=DN)


SMALL_OUTPUT = 16  # output pixels (4x4) at or below which a conv is patches + one matmul


def conv(x, w, strides: tuple[int, int], padding: tuple[tuple[int, int], tuple[int, int]]):
  """x [N, H, W, Cin], w [kh, kw, Cin, Cout], explicit padding ((lo, hi), (lo, hi)).

  Small outputs (the bottom of an encoder, the first upsamplings) are explicit patches and
  one matmul: there the kernel covers most of the input and XLA would swap the
  convolution's operands into a slow non-canonical form; matmuls and slices differentiate
  into matmuls and pads. Everything else is the canonical custom-VJP convolution."""
  outs = [_out_size(n, k, s, lo, hi) for n, k, s, (lo, hi)
          in zip(x.shape[1:3], w.shape[:2], strides, padding)]
  if outs[0] * outs[1] <= SMALL_OUTPUT:
    return _patches_conv(x, w, strides, padding, outs)
  return _canonical_conv(x, w, strides, padding)


def _patches_conv(x, w, strides, padding, outs):
  kh, kw, cin, cout = w.shape
  xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (*padding[0], 0), (*padding[1], 0),
                                          (0, 0, 0)])
  (sh, sw), (oh, ow) = strides, outs
  cols = [lax.slice(xp, (0, i, j, 0), (xp.shape[0], i + (oh - 1) * sh + 1,
                                       j + (ow - 1) * sw + 1, cin), (1, sh, sw, 1))
          for i in range(kh) for j in range(kw)]
  patches = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]  # (i, j, cin) order
  return jnp.dot(patches, w.reshape(kh * kw * cin, cout))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _canonical_conv(x, w, strides, padding):
  return _conv(x, w, strides, padding)


def _fwd(x, w, strides, padding):
  return _conv(x, w, strides, padding), (x, w)


def _bwd(strides, padding, res, g):
  x, w = res
  (kh, kw), (h, wd) = w.shape[:2], x.shape[1:3]
  sizes, ks = (h, wd), (kh, kw)
  outs = [_out_size(n, k, s, lo, hi) for n, k, s, (lo, hi) in zip(sizes, ks, strides, padding)]
  # input gradient: g zero-dilated by the stride, convolved with the flipped, in/out-swapped
  # kernel; the paddings give back exactly the input's size (negative ones crop)
  pads_x = [(k - 1 - lo, n - 1 + lo - (o - 1) * s)
            for n, k, s, (lo, _), o in zip(sizes, ks, strides, padding, outs)]
  w_t = jnp.swapaxes(w[::-1, ::-1], 2, 3)  # [kh, kw, Cout, Cin]
  dx = lax.conv_general_dilated(g, w_t, (1, 1), pads_x, lhs_dilation=strides,
                                dimension_numbers=DN)
  # kernel gradient: channels as the batch, the batch as features; g is the kernel,
  # dilated by the stride; the result [Cin, kh, kw, Cout] is the HWIO kernel transposed
  pads_w = [(lo, k + (o - 1) * s - n - lo)
            for n, k, s, (lo, _), o in zip(sizes, ks, strides, padding, outs)]
  dw = lax.conv_general_dilated(jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3)),
                                (1, 1), pads_w, rhs_dilation=strides, dimension_numbers=DN)
  return dx.astype(x.dtype), jnp.transpose(dw, (1, 2, 0, 3)).astype(w.dtype)


_canonical_conv.defvjp(_fwd, _bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated`'s signature; the canonical `conv` for plain 2-D NHWC/HWIO
  convolutions (flax nn.Conv's form), lax's own for anything else."""
  plain = (lhs.ndim == 4 and feature_group_count == 1 and batch_group_count == 1
           and all(d == 1 for d in (lhs_dilation or (1, 1)))
           and all(d == 1 for d in (rhs_dilation or (1, 1)))
           and precision is None and preferred_element_type is None)
  if plain and dimension_numbers is not None:
    want = lax.conv_dimension_numbers(lhs.shape, rhs.shape, DN)
    got = (dimension_numbers if isinstance(dimension_numbers, lax.ConvDimensionNumbers) else
           lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers))
    plain = got == want
  if not plain:
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    batch_group_count, precision, preferred_element_type)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  return conv(lhs, rhs, tuple(int(s) for s in window_strides), padding)


def use_canonical(impl: str) -> bool:
  """model.conv.impl: 'canonical', 'xla', or 'auto' (canonical on CPU, where it pays)."""
  if impl == 'auto':
    return jax.default_backend() == 'cpu'
  return impl == 'canonical'
