"""Latent diffusion's KL autoencoder (Stable Diffusion's VAE) in Flax.

Layer for layer the `Encoder`/`Decoder` of CompVis/latent-diffusion
(ldm/modules/diffusionmodules/model.py, ldm/models/autoencoder.py) and diffusers'
`AutoencoderKL`, so their weights load (ae_jax/interop_ldm.py) and give the same numbers:

  encoder: conv_in 3x3 -> for each level i: num_res_blocks ResBlocks (each followed by
           attention if i is in attn_levels), then a stride-2 conv except at the last level
           -> middle (ResBlock, attention, ResBlock) -> GroupNorm, SiLU, conv_out 3x3
           -> quant_conv 1x1 (if the preset has it)
  decoder: post_quant_conv 1x1 (if the preset has it) -> conv_in 3x3 -> middle -> for each
           level from the bottom up: num_res_blocks + 1 ResBlocks (+ attention), then
           nearest x2 and a 3x3 conv except at the top -> GroupNorm, SiLU, conv_out 3x3

Levels. Level i is `ch * ch_mult[i]` channels wide and runs at 1/2**i of the image's size,
so the downsampling factor is 2**(len(ch_mult) - 1). `attn_levels` lists the levels with
attention. CompVis names them by feature-map size at its training `resolution` instead:
`attn_resolutions: [16, 8]` at resolution 256 is attn_levels (4, 5). A level does not
change with the image size; a resolution would.

Module names are diffusers' with the dots turned into underscores, so the diffusers name of
a parameter follows by a short rule (interop_ldm.py holds it):
  encoder.down_blocks.{i}.resnets.{j}          encoder/down_{i}_res_{j}
  encoder.down_blocks.{i}.attentions.{j}       encoder/down_{i}_attn_{j}
  encoder.down_blocks.{i}.downsamplers.0.conv  encoder/down_{i}_downsample
  *.mid_block.resnets.{j}, .attentions.0       */mid_res_{j}, */mid_attn
  decoder.up_blocks.{i}.<as above>             decoder/up_{i}_...  (run order, as in
                                               diffusers: up_0 is the bottom level, and
                                               CompVis' decoder.up.{l} is up_{n-1-l})
  *.conv_norm_out                              */norm_out
  quant_conv, post_quant_conv                  encoder/quant_conv, decoder/post_quant_conv
Inside a ResBlock: norm1, conv1, norm2, conv2, conv_shortcut; inside attention:
group_norm, to_q, to_k, to_v, to_out.

What decides parity with PyTorch:
- GroupNorm eps 1e-6 (torch's default is 1e-5), variance computed in two passes
  (E[x^2] - E[x]^2 loses digits when activations are large, as a trained VAE's are).
- Downsampling pads 0 before and 1 after in H and W: torch's Conv2d pads symmetrically,
  so CompVis pads by hand and diffusers copies it. An odd size would lose its last row,
  hence `build` wants H and W divisible by the factor.
- Attention is one head over the h*w positions, scores scaled by C**-0.5, softmax in
  float32 (diffusers' upcast_softmax), with a residual. q/k/v/out are Dense layers
  (diffusers' Linear; CompVis' 1x1 convs, the same maths).
- The log-variance is clamped to [-30, 20] as diffusers' and CompVis'
  DiagonalGaussianDistribution do, before anything uses it.

Conventions: the encoder takes images already in [-1, 1] (NHWC float32) and returns
[B, h, w, z, 2] (mean, log-variance) for a VAE (`double_z`) or the code [B, h, w, z] for an
AE; the decoder returns [B, H, W, C] in the same [-1, 1] space with no output activation
(Stable Diffusion clamps it to [-1, 1] only when it writes images).

Latent normalization. A diffusion model trained on a published autoencoder's latents sees
(z - shift_factor) * scaling_factor and decodes z = latent / scaling_factor + shift_factor
(diffusers' `AutoencoderKL.config.scaling_factor` / `shift_factor`, its SD3 and FLUX
pipelines). A preset carries its published factors (None where none was published, or
where one layout serves several: kl_f8 is SD 1.x/2.x's VAE, 0.18215, and SDXL's, 0.13025); the
autoencoder itself never applies them, and the weight import records them beside the
model (interop.py). 16-channel autoencoders (SD3, FLUX.1) also drop the 1x1 quant_conv and
post_quant_conv (diffusers' use_quant_conv / use_post_quant_conv). No dropout: every published
config trains with dropout 0.0; `train` is accepted for the AutoEncoder interface and
changes nothing. CompVis' `embed_dim` (quant_conv's width) equals `z_channels` in every
published config and diffusers has only `latent_channels`, so one `z_channels` is both.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ae_jax.errors import ConfigError
from ae_jax.models.layers import conv_fn, split_heads

LOGVAR_RANGE = (-30.0, 20.0)  # DiagonalGaussianDistribution's clamp
NORM_EPS = 1e-6


def _conv(impl: str, features: int, kernel: int, name: str, strides: int = 1,
          padding=None):
  p = kernel // 2
  return nn.Conv(features, (kernel, kernel), (strides, strides),
                 padding=padding or ((p, p), (p, p)), name=name,
                 conv_general_dilated=conv_fn(impl))


def _norm(groups: int, name: str):
  return nn.GroupNorm(num_groups=groups, epsilon=NORM_EPS, use_fast_variance=False, name=name)


def _upsample(x):
  """Nearest-neighbour x2: every pixel becomes a 2 x 2 block."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return x.reshape(b, 2 * h, 2 * w, c)  # [B, 2H, 2W, C]


class ResBlock(nn.Module):
  """x + conv2(silu(norm2(conv1(silu(norm1(x)))))), with a 1x1 conv on x when the width
  changes (diffusers' conv_shortcut, CompVis' nin_shortcut)."""
  features: int
  groups: int = 32
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x):
    h = nn.silu(_norm(self.groups, 'norm1')(x))
    h = _conv(self.conv_impl, self.features, 3, 'conv1')(h)
    h = nn.silu(_norm(self.groups, 'norm2')(h))
    h = _conv(self.conv_impl, self.features, 3, 'conv2')(h)
    if x.shape[-1] != self.features:
      x = _conv(self.conv_impl, self.features, 1, 'conv_shortcut')(x)
    return x + h


class Attention(nn.Module):
  """Single-head self-attention over all positions of a feature map, plus the input."""
  groups: int = 32

  @nn.compact
  def __call__(self, x):
    b, hh, ww, c = x.shape
    h = _norm(self.groups, 'group_norm')(x).reshape(b, hh * ww, c)  # [B, N, C]
    q, k, v = (nn.Dense(c, name=name)(h) for name in ('to_q', 'to_k', 'to_v'))
    scores = jnp.einsum('bic,bjc->bij', q, k) * c ** -0.5  # [B, N, N]
    weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)
    h = jnp.einsum('bij,bjc->bic', weights, v)  # [B, N, C]
    h = nn.Dense(c, name='to_out')(h).reshape(b, hh, ww, c)  # [B, h, w, C]
    return x + h


def _middle(h, groups: int, attention: bool, conv_impl: str):
  """The middle block; call inside an nn.compact method (its modules join the caller)."""
  c = h.shape[-1]
  h = ResBlock(c, groups, conv_impl, name='mid_res_0')(h)
  if attention:
    h = Attention(groups, name='mid_attn')(h)
  return ResBlock(c, groups, conv_impl, name='mid_res_1')(h)


class LDMEncoder(nn.Module):
  """[B, H, W, C] in [-1, 1] -> [B, H/f, W/f, z, 2] (double_z) or [B, H/f, W/f, z]."""
  ch: int = 128
  ch_mult: Sequence[int] = (1, 2, 4, 4)
  num_res_blocks: int = 2
  attn_levels: Sequence[int] = ()
  z_channels: int = 4
  double_z: bool = True
  norm_groups: int = 32
  mid_attention: bool = True
  use_quant_conv: bool = True  # the 1x1 conv after conv_out (SD3 and FLUX.1 have none)
  conv_impl: str = 'xla'  # 'xla' | 'canonical' (models/canonical.py: fast CPU gradients)

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no dropout, no batch statistics
    impl, groups = self.conv_impl, self.norm_groups
    h = _conv(impl, self.ch, 3, 'conv_in')(x)  # [B, H, W, ch]
    for i, mult in enumerate(self.ch_mult):
      for j in range(self.num_res_blocks):
        h = ResBlock(self.ch * mult, groups, impl, name=f'down_{i}_res_{j}')(h)
        if i in self.attn_levels:
          h = Attention(groups, name=f'down_{i}_attn_{j}')(h)
      if i != len(self.ch_mult) - 1:
        h = _conv(impl, h.shape[-1], 3, f'down_{i}_downsample', strides=2,
                  padding=((0, 1), (0, 1)))(h)
    h = _middle(h, groups, self.mid_attention, impl)
    h = nn.silu(_norm(groups, 'norm_out')(h))
    width = 2 * self.z_channels if self.double_z else self.z_channels
    h = _conv(impl, width, 3, 'conv_out')(h)
    if self.use_quant_conv:
      h = _conv(impl, width, 1, 'quant_conv')(h)  # [B, h, w, 2z] or [B, h, w, z]
    if not self.double_z:
      return h
    moments = split_heads(h, self.z_channels)  # [B, h, w, z, 2]
    logvar = jnp.clip(moments[..., 1], *LOGVAR_RANGE)
    return jnp.stack([moments[..., 0], logvar], axis=-1)


class LDMDecoder(nn.Module):
  """[B, h, w, z] -> [B, h*f, w*f, out_channels], unbounded, in the [-1, 1] image space."""
  out_channels: int = 3
  ch: int = 128
  ch_mult: Sequence[int] = (1, 2, 4, 4)
  num_res_blocks: int = 2
  attn_levels: Sequence[int] = ()
  z_channels: int = 4
  norm_groups: int = 32
  mid_attention: bool = True
  use_post_quant_conv: bool = True  # the 1x1 conv before conv_in (SD3 and FLUX.1 have none)
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, z, train: bool = False):
    del train
    impl, groups = self.conv_impl, self.norm_groups
    h = z  # [B, h, w, z]
    if self.use_post_quant_conv:
      h = _conv(impl, self.z_channels, 1, 'post_quant_conv')(h)
    h = _conv(impl, self.ch * self.ch_mult[-1], 3, 'conv_in')(h)  # [B, h, w, C_bottom]
    h = _middle(h, groups, self.mid_attention, impl)
    n = len(self.ch_mult)
    for i in range(n):  # diffusers' up_blocks order: from the bottom level up
      level = n - 1 - i
      for j in range(self.num_res_blocks + 1):
        h = ResBlock(self.ch * self.ch_mult[level], groups, impl, name=f'up_{i}_res_{j}')(h)
        if level in self.attn_levels:
          h = Attention(groups, name=f'up_{i}_attn_{j}')(h)
      if level != 0:
        h = _conv(impl, h.shape[-1], 3, f'up_{i}_upsample')(_upsample(h))
    h = nn.silu(_norm(groups, 'norm_out')(h))
    return _conv(impl, self.out_channels, 3, 'conv_out')(h)  # [B, H, W, C]


class LDMPreset(NamedTuple):
  description: str
  ch: int
  ch_mult: tuple[int, ...]
  num_res_blocks: int
  z_channels: int
  attn_levels: tuple[int, ...] = ()
  mid_attention: bool = True
  norm_groups: int = 32
  quant_conv: bool = True        # diffusers' use_quant_conv
  post_quant_conv: bool = True   # diffusers' use_post_quant_conv
  # the published latent normalization, (z - shift_factor) * scaling_factor; None: none
  scaling_factor: float | None = None
  shift_factor: float | None = None

  @property
  def factor(self) -> int:
    """How much the encoder shrinks H and W."""
    return 2 ** (len(self.ch_mult) - 1)

  @property
  def widths(self) -> tuple[int, ...]:
    return tuple(self.ch * m for m in self.ch_mult)


LDM_PRESETS: dict[str, LDMPreset] = {
    'kl_f8': LDMPreset(
        'Stable Diffusion 1.x/2.x VAE (CompVis kl-f8): widths 128-256-512-512, 2 blocks, '
        '4 latent channels, f=8', 128, (1, 2, 4, 4), 2, 4),
    'kl_f4': LDMPreset(
        'CompVis kl-f4 (configs/autoencoder/autoencoder_kl_64x64x3.yaml): widths '
        '128-256-512, 2 blocks, 3 latent channels, no level attention, f=4',
        128, (1, 2, 4), 2, 3),
    'kl_f4_small': LDMPreset(
        'kl_f4 at 1/8 the width for CPU training: widths 16-32-64, 1 block, 3 latent '
        'channels, f=4', 16, (1, 2, 4), 1, 3, norm_groups=8),
    'kl_f8_small': LDMPreset(
        'kl_f8 at 1/8 the width for CPU training: widths 16-32-64-64, 1 block, 4 latent '
        'channels, f=8', 16, (1, 2, 4, 4), 1, 4, norm_groups=8),
    # stabilityai/stable-diffusion-3-medium-diffusers and black-forest-labs/FLUX.1-dev
    # vae/config.json: the same AutoencoderKL layout, factors of their own
    'sd3_vae': LDMPreset(
        'Stable Diffusion 3 VAE: kl_f8\'s widths 128-256-512-512, 2 blocks, 16 latent '
        'channels, no quant convs, f=8; latents (z - 0.0609) * 1.5305',
        128, (1, 2, 4, 4), 2, 16, quant_conv=False, post_quant_conv=False,
        scaling_factor=1.5305, shift_factor=0.0609),
    'flux1_vae': LDMPreset(
        'FLUX.1 VAE: the layout of sd3_vae (identical), f=8; latents (z - 0.1159) * 0.3611',
        128, (1, 2, 4, 4), 2, 16, quant_conv=False, post_quant_conv=False,
        scaling_factor=0.3611, shift_factor=0.1159),
}


def get_preset(preset: str | LDMPreset) -> LDMPreset:
  if isinstance(preset, LDMPreset):
    return preset
  if preset not in LDM_PRESETS:
    raise ConfigError(f'unknown LDM preset {preset!r}; expected one of {sorted(LDM_PRESETS)}')
  return LDM_PRESETS[preset]


def latent_shape(preset: str | LDMPreset, image_shape) -> tuple[int, int, int]:
  """The code's shape [h, w, z] for images [H, W, C] (without the mean/log-variance axis)."""
  p = get_preset(preset)
  h, w = image_shape[0], image_shape[1]
  return h // p.factor, w // p.factor, p.z_channels


def build(preset: str | LDMPreset, image_shape, kind: str = 'vae',
          conv_impl: str = 'xla') -> tuple[LDMEncoder, LDMDecoder]:
  """(encoder, decoder) of a preset for images [H, W, C]; kind 'vae' (double_z) or 'ae'."""
  name = preset if isinstance(preset, str) else 'custom'
  p = get_preset(preset)
  h, w, c = image_shape
  if h % p.factor or w % p.factor:
    raise ConfigError(f'LDM preset {name!r} downsamples by {p.factor}: image size {h}x{w} is '
                      f'not divisible by {p.factor}; use a multiple of {p.factor}')
  if any(width % p.norm_groups for width in p.widths):
    raise ConfigError(f'LDM preset {name!r}: norm_groups {p.norm_groups} does not divide '
                      f'every width {p.widths}')
  if kind not in ('ae', 'vae'):
    raise ConfigError(f'model kind {kind!r}: expected ae or vae')
  shared = dict(ch=p.ch, ch_mult=tuple(p.ch_mult), num_res_blocks=p.num_res_blocks,
                attn_levels=tuple(p.attn_levels), z_channels=p.z_channels,
                norm_groups=p.norm_groups, mid_attention=p.mid_attention, conv_impl=conv_impl)
  return (LDMEncoder(double_z=kind == 'vae', use_quant_conv=p.quant_conv, **shared),
          LDMDecoder(out_channels=c, use_post_quant_conv=p.post_quant_conv, **shared))


def latent_normalization(preset: str | LDMPreset) -> dict | None:
  """{'scaling_factor', 'shift_factor'} a preset's latents are normalized by,
  (z - shift_factor) * scaling_factor; None for a preset with no published factors."""
  p = get_preset(preset)
  if p.scaling_factor is None:
    return None
  return {'scaling_factor': float(p.scaling_factor), 'shift_factor': float(p.shift_factor or 0.0)}
