"""pythae's networks as presets: its default MLPs and its MNIST benchmark conv nets.

pythae (the PyTorch VAE library, version 0.1.2) trains every model on one of a few
networks; these presets rebuild them layer for layer, initialisation included, so a model
trained here and one trained there differ only by the library. Read from pythae's
`models/nn/default_architectures.py` (Encoder_AE_MLP, Encoder_VAE_MLP, Decoder_AE_MLP) and
`models/nn/benchmarks/mnist/convnets.py` (Encoder_Conv_AE_MNIST, Encoder_Conv_VAE_MNIST,
Decoder_Conv_AE_MNIST); P = H*W*C pixel values, L = model.latent_dim:

  pythae_mlp   encoder  Linear(P, 512) ReLU -> Linear(512, L) [VAE: and Linear(512, L),
                        the log-variance]
               decoder  Linear(L, 512) ReLU -> Linear(512, P) -> sigmoid
  pythae_conv  encoder  4 x [Conv 4x4 stride 2 padding 1, BatchNorm, ReLU] with 128, 256,
                        512, 1024 channels (28 -> 14 -> 7 -> 3 -> 1) -> Linear(1024, L)
                        [VAE: and Linear(1024, L)]
               decoder  Linear(L, 1024*4*4) (no activation), read as [1024, 4, 4] in
                        torch's channel-first order -> ConvTranspose 3x3 stride 2 padding 1
                        to 512 (4 -> 7), BatchNorm, ReLU -> ConvTranspose 3x3/2/1 output
                        padding 1 to 256 (14), BatchNorm, ReLU -> ConvTranspose 3x3/2/1
                        output padding 1 to C (28) -> sigmoid

The kind comes from model.kind: 'ae' (pythae's AE, RAE_L2, ...: one code head), 'vae'
(VAE, BetaVAE, IWAE: mean and log-variance heads) or 'vqvae'. pythae's VQVAE reshapes a
flat code [B, L] to [B, 1, L, 1] before its quantiser, so its codebook holds 1-D codes and
each of the L units is quantised on its own (512 scalars by default, not 512 vectors of
L): the encoder here returns [B, L, 1] for a VQ-VAE for the same reason, and
`codebook_init` is pythae's uniform(-1/K, 1/K) start (build_model uses it for these
presets).

Initialisation is torch's default, which pythae keeps: weights and biases uniform in
+-1/sqrt(fan_in), fan_in = inputs x kernel area (a ConvTranspose2d's is its *output*
channels x kernel area, torch's convention for its [in, out, k, k] weight); BatchNorm
scale 1 and bias 0.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ae_jax.errors import ConfigError
from ae_jax.models.layers import ConvTranspose, conv_fn, make_norm

# name -> (kind its parameter count below refers to, pythae's benchmark latent size, doc)
PYTHAE_PRESETS = {
    'pythae_mlp': ('vae', 16, "pythae's default MLP: P-512 (ReLU), heads 512->L, decoder "
                   'L-512-P, sigmoid (model.kind ae | vae | vqvae)'),
    'pythae_conv': ('vae', 16, "pythae's MNIST benchmark conv net, 28x28 images: 4x4 s2 convs "
                    '128-256-512-1024 (BN, ReLU), heads 1024->L; Linear L->1024x4x4, 3x3 s2 '
                    'transposed convs 512-256-C, sigmoid (model.kind ae | vae | vqvae)'),
}
KINDS = ('ae', 'vae', 'vqvae')
CONV_SIZE = 28  # pythae's MNIST nets take 28x28 images only (their decoder starts at 4x4)
HIDDEN = 512
CONV_CHANNELS = (128, 256, 512, 1024)
DECONV = ((512, 0), (256, 1))  # (channels, output padding) before the last transposed conv

# Parameters at 28x28x1, latent 16 and pythae's 512 codes, as pythae counts them
# (model.parameters(); a VQ-VAE's include its codebook). tests/test_pythae_presets.py
# checks these against the presets and, where pythae is installed, against pythae.
PARAM_COUNTS = {
    ('pythae_mlp', 'ae'): 821_024,
    ('pythae_mlp', 'vae'): 829_232,
    ('pythae_mlp', 'vqvae'): 821_536,
    ('pythae_conv', 'ae'): 17_215_633,
    ('pythae_conv', 'vae'): 17_232_033,
    ('pythae_conv', 'vqvae'): 17_216_145,
}


def torch_uniform(fan_in: int):
  """torch's default Linear/Conv initialisation for one tensor: uniform in +-1/sqrt(fan_in)
  (kaiming_uniform with a = sqrt(5) for weights; the same bound for biases)."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def codebook_init(num_codes: int):
  """pythae's codebook start, uniform in +-1/K (its Quantizer and QuantizerEMA)."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -1.0 / num_codes, 1.0 / num_codes)

  return init


def _dense(features: int, fan_in: int, name: str):
  return nn.Dense(features, kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in),
                  name=name)


def _heads(h, latent_dim: int, kind: str):
  """The code from features [B, F]: [B, L] (ae), [B, L, 2] mean and log-variance (vae), or
  [B, L, 1] (vqvae: L positions of one-dimensional codes, as pythae quantises)."""
  fan_in = h.shape[-1]
  if kind == 'vae':
    return jnp.stack([_dense(latent_dim, fan_in, 'mean')(h),
                      _dense(latent_dim, fan_in, 'logvar')(h)], axis=-1)
  code = _dense(latent_dim, fan_in, 'code')(h)
  return code[..., None] if kind == 'vqvae' else code


class PythaeMLPEncoder(nn.Module):
  latent_dim: int
  kind: str = 'vae'

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = x.reshape(x.shape[0], -1)  # [B, P]; one channel flattens alike in HWC and CHW order
    h = nn.relu(_dense(HIDDEN, h.shape[-1], 'dense_0')(h))  # [B, 512]
    return _heads(h, self.latent_dim, self.kind)


class PythaeMLPDecoder(nn.Module):
  image_shape: tuple[int, int, int]

  @nn.compact
  def __call__(self, z, train: bool = False):
    z = z.reshape(z.shape[0], -1)  # [B, L] (a VQ-VAE's [B, L, 1] too)
    h = nn.relu(_dense(HIDDEN, z.shape[-1], 'project')(z))  # [B, 512]
    h = _dense(math.prod(self.image_shape), HIDDEN, 'out')(h)
    return h.reshape(z.shape[0], *self.image_shape)  # [B, H, W, C] logits


class PythaeConvEncoder(nn.Module):
  latent_dim: int
  kind: str = 'vae'
  conv_impl: str = 'xla'  # 'xla' | 'canonical' (models/canonical.py)

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = x  # [B, 28, 28, C]
    for i, ch in enumerate(CONV_CHANNELS):
      fan_in = h.shape[-1] * 16
      h = nn.Conv(ch, (4, 4), (2, 2), padding=((1, 1), (1, 1)),
                  kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in),
                  name=f'conv_{i}', conv_general_dilated=conv_fn(self.conv_impl))(h)
      h = nn.relu(make_norm('batch', train, name=f'norm_{i}')(h))
    h = h.reshape(h.shape[0], -1)  # [B, 1024]: 1x1 spatial, the same in any order
    return _heads(h, self.latent_dim, self.kind)


class PythaeConvDecoder(nn.Module):
  out_channels: int
  upsample: str = 'phases'  # ConvTranspose implementation
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, z, train: bool = False):
    z = z.reshape(z.shape[0], -1)  # [B, L]
    c0 = CONV_CHANNELS[-1]
    h = _dense(c0 * 16, z.shape[-1], 'project')(z)  # no activation, as pythae
    # torch reshapes to [B, 1024, 4, 4] (channels first): the same units, then NHWC
    h = h.reshape(z.shape[0], c0, 4, 4).transpose(0, 2, 3, 1)  # [B, 4, 4, 1024]
    specs = [(ch, op, True) for ch, op in DECONV] + [(self.out_channels, 1, False)]
    for i, (ch, op, norm_act) in enumerate(specs):
      fan_in = ch * 9  # torch's fan_in of a ConvTranspose2d: output channels x k x k
      h = ConvTranspose(ch, 3, 2, 1, op, impl=self.upsample, kernel_init=torch_uniform(fan_in),
                        bias_init=torch_uniform(fan_in), name=f'tconv_{i}',
                        conv_impl=self.conv_impl)(h)
      if norm_act:
        h = nn.relu(make_norm('batch', train, name=f'norm_{i}')(h))
    return h  # [B, 28, 28, C] logits (4 -> 7 -> 14 -> 28)


def build(name: str, cfg, image_shape, latent_dim: int):
  """(encoder, decoder) of preset `name` for config.model `cfg` and images (H, W, C)."""
  h, w, c = image_shape
  if cfg.kind not in KINDS:
    raise ConfigError(f'model.kind={cfg.kind!r}: preset {name!r} builds one of {KINDS}')
  if name == 'pythae_mlp':
    return PythaeMLPEncoder(latent_dim, cfg.kind), PythaeMLPDecoder((h, w, c))
  if (h, w) != (CONV_SIZE, CONV_SIZE):
    raise ConfigError(f'preset {name!r} is pythae\'s MNIST network, which takes '
                      f'{CONV_SIZE}x{CONV_SIZE} images, but the data is {h}x{w}; set '
                      f'data.image_size={CONV_SIZE}')
  return (PythaeConvEncoder(latent_dim, cfg.kind),
          PythaeConvDecoder(c, upsample=cfg.conv.upsample))
