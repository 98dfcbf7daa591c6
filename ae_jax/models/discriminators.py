"""Discriminators for adversarial training: taming's PatchGAN and FactorVAE's code critic.

`PatchDiscriminator` is taming-transformers' `NLayerDiscriminator` (the pix2pix PatchGAN
that the latent-diffusion autoencoders train against), layer for layer:

  conv 4x4 s2 (bias) -> LeakyReLU 0.2
  n_layers - 1 times: conv 4x4 s2 -> norm -> LeakyReLU 0.2   (width base * min(2^n, 8))
  conv 4x4 s1 -> norm -> LeakyReLU 0.2                       (width base * min(2^L, 8))
  conv 4x4 s1 (bias) -> 1 channel                            (one logit per patch)

every conv with padding 1. The inner convs have a bias only when the norm is not BatchNorm
(taming's `use_bias = norm_layer != nn.BatchNorm2d`; its affine shift makes one redundant).
Weights start as taming's `weights_init`: conv kernels N(0, 0.02), BatchNorm scale
N(1, 0.02) and shift 0. That function leaves conv biases alone, so they keep torch's
default U(-1/sqrt(fan_in), 1/sqrt(fan_in)); we draw them the same way.

Input: images [B, H, W, C] in [-1, 1], as taming feeds it (its autoencoders work in
[-1, 1]). ae_jax images are in [0, 1]: map them with `to_disc_input` (2x - 1) first, for
the real images and the reconstructions alike. Output: patch logits [B, h, w, 1], each
seeing a `receptive_field(n_layers)`-pixel square of the input (70 for n_layers 3).

Norms. 'batch' is torch's BatchNorm2d (momentum 0.1, eps 1e-5); in train mode it
normalises by the batch's own statistics, so calling the discriminator on real and fake
images separately (as taming does) or on their concatenation gives different functions.
Flax updates the running variance with the biased batch variance where torch uses the
unbiased one (a factor n/(n-1) in eval-mode statistics only). 'actnorm' is taming's
ActNorm: a per-channel affine map y = scale * (x + loc), both trainable, initialised from
the data so that the first batch comes out with zero mean and unit (unbiased) standard
deviation per channel. Taming does that inside the first training-mode forward pass; in
Flax the same happens in `init`: the parameters' initialisers read the activations that
reach the layer, and because `init` runs the layers in order, each ActNorm sees its
predecessors already normalised, exactly as taming's first pass does. So `init` must be
given a real batch (taming's first one is a batch of reconstructions); a batch of zeros
makes every channel constant and its scale 1/(0 + 1e-6) = 1e6. 'none' drops the norm and
keeps the biases (pix2pix's Identity norm).

`TCDiscriminator` is FactorVAE's (Kim & Mnih 2018; 1Konny/FactorVAE `Discriminator`): an
MLP on flat codes, five hidden layers of 1000 units with LeakyReLU 0.2 and a 2-logit
output, six linear layers in all, initialised N(0, 0.02) with zero biases. Logit 0 means
"drawn from q(z)", logit 1 "drawn from the product of its marginals" (a permuted batch);
see `ae_jax.adversarial` for the losses and the total-correlation estimate.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ae_jax.errors import ConfigError
from ae_jax.models.layers import conv_fn

PATCH_NORMS = ('batch', 'actnorm', 'none')
KERNEL, PADDING = 4, 1       # every PatchDiscriminator conv
NEGATIVE_SLOPE = 0.2         # LeakyReLU, both discriminators
INIT_STD = 0.02              # taming's weights_init and FactorVAE's normal_init


def to_disc_input(images):
  """Images in [0, 1] (the package's range) -> [-1, 1] (what the discriminators see)."""
  return 2.0 * images - 1.0


# ---- geometry -------------------------------------------------------------------------


def patch_layers(n_layers: int) -> list[tuple[int, int]]:
  """(kernel, stride) of each conv of a PatchDiscriminator, input to output."""
  return [(KERNEL, 2)] * n_layers + [(KERNEL, 1)] * 2


def receptive_field(n_layers: int) -> int:
  """The side of the input square one patch logit sees: 9 * 2^L - 2 (70 for L = 3).

  Walking back from one output pixel, a conv of kernel k and stride s turns a window of
  r pixels into (r - 1) * s + k; the two stride-1 convs give 7, each stride-2 one 2r + 2.
  """
  r = 1
  for k, s in reversed(patch_layers(n_layers)):
    r = (r - 1) * s + k
  return r


def patch_grid(size: int, n_layers: int) -> int:
  """Patch logits along an input side of `size` pixels (<= 0: none)."""
  for k, s in patch_layers(n_layers):
    size = (size + 2 * PADDING - k) // s + 1
  return size


def min_image_size(n_layers: int) -> int:
  """The smallest input side with at least one patch logit: 3 * 2^L (24 for L = 3).

  A 4x4 stride-2 conv with padding 1 maps n to floor(n / 2), each stride-1 one n to n - 1,
  so a side of n leaves floor(n / 2^L) - 2 patches, which is >= 1 from n = 3 * 2^L on.
  """
  return 3 * 2**n_layers


def check_image_size(height: int, width: int, n_layers: int, key: str = 'n_layers'):
  """Raise ConfigError when an H x W input leaves a PatchDiscriminator no patch logit."""
  need = min_image_size(n_layers)
  if min(height, width) < need:
    raise ConfigError(
        f'discriminator input {height}x{width} is smaller than {need}x{need}, the least a '
        f'PatchDiscriminator with {key}={n_layers} (receptive field '
        f'{receptive_field(n_layers)} px) accepts; use fewer layers or larger images')


# ---- initialisers ----------------------------------------------------------------------


def _normal(mean: float, std: float):
  def init(key, shape, dtype=jnp.float32):
    return mean + std * jax.random.normal(key, shape, dtype)
  return init


def _torch_bias(fan_in: int):
  """torch's default conv/linear bias, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


# ---- modules ---------------------------------------------------------------------------


class ActNorm(nn.Module):
  """taming's ActNorm: y = scale * (x + loc) per channel, with data-dependent init.

  `init` sets loc = -mean and scale = 1 / (std + 1e-6) of the input it is called on, over
  batch and space, with torch's unbiased std; afterwards both are ordinary parameters.
  """
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x):  # [B, H, W, C]
    # initialisers run only when the parameter does not exist yet, i.e. inside `init`;
    # no gradient through them, as taming's torch.no_grad()
    x0 = jax.lax.stop_gradient(x)
    axes = tuple(range(x.ndim - 1))
    loc = self.param('loc', lambda _: -jnp.mean(x0, axis=axes))  # [C]
    scale = self.param('scale', lambda _: 1.0 / (jnp.std(x0, axis=axes, ddof=1) + self.eps))
    return scale * (x + loc)


class PatchDiscriminator(nn.Module):
  """taming's NLayerDiscriminator: [B, H, W, C] in [-1, 1] -> patch logits [B, h, w, 1]."""
  base: int = 64           # taming's ndf
  n_layers: int = 3        # stride-2 convs; receptive field 9 * 2^L - 2
  norm: str = 'batch'      # 'batch' | 'actnorm' | 'none'
  conv_impl: str = 'xla'   # 'xla' | 'canonical' (see models/canonical.py)

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.norm not in PATCH_NORMS:
      raise ConfigError(f'unknown discriminator norm {self.norm!r}; expected one of '
                        f'{PATCH_NORMS}')
    check_image_size(x.shape[1], x.shape[2], self.n_layers)
    act = functools.partial(jax.nn.leaky_relu, negative_slope=NEGATIVE_SLOPE)

    def conv(h, features, stride, bias, name):
      fan_in = h.shape[-1] * KERNEL * KERNEL
      return nn.Conv(features, (KERNEL, KERNEL), strides=(stride, stride),
                     padding=((PADDING, PADDING), (PADDING, PADDING)), use_bias=bias,
                     kernel_init=_normal(0.0, INIT_STD), bias_init=_torch_bias(fan_in),
                     conv_general_dilated=conv_fn(self.conv_impl), name=name)(h)

    inner_bias = self.norm != 'batch'  # BatchNorm's shift makes a conv bias redundant
    h = act(conv(x, self.base, 2, True, 'conv_0'))  # [B, H/2, W/2, base]
    for n in range(1, self.n_layers + 1):
      stride = 2 if n < self.n_layers else 1  # the last inner conv keeps the resolution
      h = conv(h, self.base * min(2**n, 8), stride, inner_bias, f'conv_{n}')
      if self.norm == 'batch':
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         scale_init=_normal(1.0, INIT_STD), name=f'norm_{n}')(h)
      elif self.norm == 'actnorm':
        h = ActNorm(name=f'norm_{n}')(h)
      h = act(h)
    return conv(h, 1, 1, True, 'conv_out')  # [B, H/2^L - 2, W/2^L - 2, 1]


class TCDiscriminator(nn.Module):
  """FactorVAE's discriminator: codes [B, L] (or [B, ...], flattened) -> logits [B, 2].

  Logit 0: "from q(z)" (the encoder's codes); logit 1: "from prod_j q(z_j)" (codes with
  each dimension permuted across the batch, `adversarial.permute_dims`).
  """
  hidden: Sequence[int] = (1000,) * 5
  negative_slope: float = NEGATIVE_SLOPE

  @nn.compact
  def __call__(self, z):
    h = z.reshape(z.shape[0], -1)  # [B, L]
    dense = functools.partial(nn.Dense, kernel_init=_normal(0.0, INIT_STD),
                              bias_init=nn.initializers.zeros)
    for i, width in enumerate(self.hidden):
      h = jax.nn.leaky_relu(dense(width, name=f'dense_{i}')(h), self.negative_slope)
    return dense(2, name='logits')(h)  # [B, 2]
