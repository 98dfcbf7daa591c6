"""Building blocks shared by the MLP and conv models.

`ConvTranspose` reproduces PyTorch's `nn.ConvTranspose2d(k, stride, padding, output_padding)`
exactly, but never convolves a zero-dilated input (the textbook form, which XLA:CPU
differentiates about 20x slower than PyTorch). The default 'phases' form runs one small
stride-1 convolution per output phase with a strided slice of the kernel and interleaves
the results; 'subpixel' runs one convolution with a gathered combined kernel (its
gradient is a scatter, slow for big kernels: 15x slower on the 1024->1024 layer), which
'phases' itself uses for layers with at most SUBPIXEL_MAX_FEATURES output channels (an
image's), where separate 3-channel convolutions were 2.6x slower.
"""
from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ae_jax.models import canonical


def mish(x):
  return x * jnp.tanh(jax.nn.softplus(x))


ACTIVATIONS: dict[str, Callable] = {
    'relu': jax.nn.relu,
    'mish': mish,
    'leaky_relu': functools.partial(jax.nn.leaky_relu, negative_slope=0.01),  # torch default
    'gelu': functools.partial(jax.nn.gelu, approximate=False),  # torch default is exact erf
    'silu': jax.nn.silu,
    'none': lambda x: x,
}

OUTPUT_ACTIVATIONS = ('sigmoid', 'tanh', 'none')
NORMS = ('none', 'batch', 'group', 'layer')


def kaiming_normal(fan_axes: tuple[int, ...]):
  """He-normal with gain 1 (torch `kaiming_normal_(nonlinearity='linear')`), untruncated.

  `fan_axes` are the kernel axes whose product is torch's fan_in. For a transposed conv
  torch stores the weight as [in, out, kh, kw] and takes fan_in from dim 1, i.e. the
  *output* channels; we keep that so imported and native initialisations agree.
  """

  def init(key, shape, dtype=jnp.float32):
    fan_in = int(np.prod([shape[a] for a in fan_axes]))
    return jax.random.normal(key, shape, dtype) / np.sqrt(fan_in)

  return init


def make_norm(kind: str, train: bool, groups: int = 32, name: str | None = None):
  """A normalisation layer by name; BatchNorm uses torch's momentum 0.1 and eps 1e-5."""
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        name=name)
  if kind == 'group':
    return _GroupNorm(groups=groups, name=name)
  if kind == 'layer':
    return nn.LayerNorm(epsilon=1e-5, name=name)
  if kind == 'none':
    return None
  raise ValueError(f'unknown norm {kind!r}; expected one of {NORMS}')


class _GroupNorm(nn.Module):
  """GroupNorm with the largest group count <= `groups` that divides the channels."""
  groups: int = 32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    g = max(d for d in range(1, min(self.groups, c) + 1) if c % d == 0)
    return nn.GroupNorm(num_groups=g, epsilon=1e-5, name='gn')(x)


def split_heads(h, latent_dim: int):
  """A spatial code head's channels [..., 2L] -> [..., L, 2] (mean, log-variance): the
  first L channels are the mean, as torch.chunk(x, 2, dim=channels) splits them."""
  return jnp.stack([h[..., :latent_dim], h[..., latent_dim:]], axis=-1)


def dense_code(h, latent_dim: int, kind: str):
  """A flat code from features [B, ...]: one Dense 'code' (AE) or Dense 'mean' and
  'logvar' heads stacked to [B, L, 2] (VAE). Call inside the encoder's nn.compact."""
  h = h.reshape(h.shape[0], -1)
  if kind == 'ae':
    return nn.Dense(latent_dim, name='code')(h)
  return jnp.stack([nn.Dense(latent_dim, name='mean')(h),
                    nn.Dense(latent_dim, name='logvar')(h)], axis=-1)


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
  return (size + 2 * padding - kernel) // stride + 1


def conv_transpose_out_size(size: int, kernel: int, stride: int, padding: int,
                            output_padding: int) -> int:
  return (size - 1) * stride - 2 * padding + kernel + output_padding


def _phase_taps(kernel: int, stride: int, padding: int):
  """For each output phase r and input offset d, the kernel tap that links them.

  Scatter view of a transposed conv: input i feeds output o = i*stride + t - padding
  through tap t. Writing o = stride*q + r gives i = q + d with
  t = (r + padding) % stride + stride * ((r + padding) // stride - d).
  Returns (taps [stride, D], valid [stride, D], d_min) over offsets d_min..d_min+D-1.
  """
  entries = []
  for r in range(stride):
    base, c = (r + padding) % stride, (r + padding) // stride
    for m in range(-(-(kernel - base) // stride)):
      entries.append((r, c - m, base + stride * m))
  d_min = min(d for _, d, _ in entries)
  d_max = max(d for _, d, _ in entries)
  taps = np.zeros((stride, d_max - d_min + 1), np.int32)
  valid = np.zeros_like(taps, dtype=bool)
  for r, d, t in entries:
    taps[r, d - d_min], valid[r, d - d_min] = t, True
  return taps, valid, d_min


def conv_transpose_subpixel(x, kernel, stride: int, padding: int, output_padding: int,
                            conv=None):
  """torch ConvTranspose2d semantics; x [B,H,W,Cin], kernel [k,k,Cin,Cout] (torch's
  [Cin,Cout,k,k] transposed, not flipped)."""
  k = kernel.shape[0]
  b, h, w, _ = x.shape
  cout = kernel.shape[-1]
  s = stride
  taps, valid, d_min = _phase_taps(k, s, padding)
  d = taps.shape[1]
  # Combined kernel K[dh, dw, cin, rh, rw, cout] = W[taps[rh,dh], taps[rw,dw]] (0 if invalid).
  w_g = kernel[taps[:, :, None, None], taps[None, None, :, :]]  # [s, D, s, D, Cin, Cout]
  mask = (valid[:, :, None, None] & valid[None, None, :, :]).astype(kernel.dtype)
  w_g = w_g * mask[..., None, None]
  w_g = w_g.transpose(1, 3, 4, 0, 2, 5).reshape(d, d, kernel.shape[2], s * s * cout)

  out_h = conv_transpose_out_size(h, k, s, padding, output_padding)
  out_w = conv_transpose_out_size(w, k, s, padding, output_padding)
  qh, qw = -(-out_h // s), -(-out_w // s)
  d_max = d_min + d - 1
  # lax.pad accepts negative widths (crops), which covers d_min > 0.
  pads = [(0, 0, 0), (-d_min, qh - 1 + d_max - (h - 1), 0),
          (-d_min, qw - 1 + d_max - (w - 1), 0), (0, 0, 0)]
  xp = jax.lax.pad(x, jnp.zeros((), x.dtype), pads)
  y = (conv or jax.lax.conv_general_dilated)(xp, w_g, (1, 1), 'VALID',
                                            dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  y = y.reshape(b, qh, qw, s, s, cout).transpose(0, 1, 3, 2, 4, 5)  # [B, qh, s, qw, s, C]
  y = y.reshape(b, qh * s, qw * s, cout)
  return y[:, :out_h, :out_w, :]


def conv_fn(impl: str):
  """The convolution for nn.Conv's `conv_general_dilated` field: None (lax's) for 'xla',
  the canonical-gradient one (models/canonical.py) for 'canonical'."""
  if impl == 'canonical':
    return canonical.conv_general_dilated
  return None


def conv_transpose_phases(x, kernel, stride: int, padding: int, output_padding: int,
                          conv=None):
  """torch ConvTranspose2d semantics as one small stride-1 convolution per output phase.

  Output row o = stride*q + r only sees kernel taps t = (r + padding) % stride + stride*m,
  a strided *slice* of the kernel, reversed; so each phase is a plain convolution with
  that slice, and the phases interleave (depth-to-space). Slicing, unlike a gather,
  has a cheap gradient (a pad), which matters for big kernels such as 1024->1024.
  """
  k, s = kernel.shape[0], stride
  b, h, w, _ = x.shape
  cout = kernel.shape[-1]
  out_h = conv_transpose_out_size(h, k, s, padding, output_padding)
  out_w = conv_transpose_out_size(w, k, s, padding, output_padding)
  qh, qw = -(-out_h // s), -(-out_w // s)

  def phase_taps(r):
    base, c = (r + padding) % s, (r + padding) // s
    m = -(-(k - base) // s)  # taps in this phase
    return base, m, c - (m - 1)  # first tap, count, lowest input offset

  rows = []
  for rh in range(s):
    bh, mh, dh = phase_taps(rh)
    cols = []
    for rw in range(s):
      bw, mw, dw = phase_taps(rw)
      if mh <= 0 or mw <= 0:
        cols.append(jnp.zeros((b, qh, qw, cout), x.dtype))
        continue
      kr = kernel[bh::s, bw::s][:mh, :mw][::-1, ::-1]  # [mh, mw, Cin, Cout]
      pads = [(0, 0, 0), (-dh, qh - 1 + dh + mh - 1 - (h - 1), 0),
              (-dw, qw - 1 + dw + mw - 1 - (w - 1), 0), (0, 0, 0)]
      xp = jax.lax.pad(x, jnp.zeros((), x.dtype), pads)
      cols.append((conv or jax.lax.conv_general_dilated)(
          xp, kr, (1, 1), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
    rows.append(jnp.stack(cols, axis=3))  # [B, qh, qw, s(rw), C]
  y = jnp.stack(rows, axis=2)  # [B, qh, s(rh), qw, s(rw), C]
  y = y.reshape(b, qh * s, qw * s, cout)
  return y[:, :out_h, :out_w, :]


def conv_transpose_dilated(x, kernel, stride: int, padding: int, output_padding: int):
  """The textbook form (convolution over the zero-dilated input); the reference."""
  k = kernel.shape[0]
  lo, hi = k - 1 - padding, k - 1 - padding + output_padding
  return jax.lax.conv_general_dilated(
      x, kernel[::-1, ::-1], (1, 1), [(lo, hi), (lo, hi)], lhs_dilation=(stride, stride),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


# 'phases' with this many output channels or fewer (an image's 1 or 3) runs as the sub-pixel
# form instead: the same per-phase taps as one convolution of s*s*Cout channels. Separate
# convolutions of 3 output channels each leave the vector units idle; measured with
# `python experiments/conv_layers_vs_torch.py`, forward + backward, 2-core CPU.
SUBPIXEL_MAX_FEATURES = 4


def transpose_form(impl: str, features: int, stride: int) -> str:
  """The form ConvTranspose runs for model.conv.upsample=`impl`."""
  if impl == 'phases' and features <= SUBPIXEL_MAX_FEATURES and stride > 1:
    return 'subpixel'
  return impl


class ConvTranspose(nn.Module):
  """torch.nn.ConvTranspose2d with square kernels; kernel param [k, k, Cin, Cout]."""
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  output_padding: int = 0
  impl: str = 'phases'  # 'phases' | 'subpixel' (one conv, gathered kernel) | 'dilated' (reference)
  kernel_init: Callable | None = None
  bias_init: Callable | None = None  # default zeros
  conv_impl: str = 'xla'  # 'xla' | 'canonical' (see models/canonical.py)

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    init = self.kernel_init or nn.initializers.lecun_normal()
    kernel = self.param('kernel', init, (k, k, x.shape[-1], self.features))
    bias = self.param('bias', self.bias_init or nn.initializers.zeros, (self.features,))
    impl = transpose_form(self.impl, self.features, self.stride)
    fn = {'phases': conv_transpose_phases, 'subpixel': conv_transpose_subpixel,
          'dilated': conv_transpose_dilated}[impl]
    if impl != 'dilated':
      fn = functools.partial(fn, conv=conv_fn(self.conv_impl))
    y = fn(x, kernel.astype(x.dtype), self.stride, self.padding, self.output_padding)
    return y + bias.astype(x.dtype)
