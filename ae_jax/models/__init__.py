"""Model registry: the report presets and custom MLP/conv models, built from a config.

`build_model(model_cfg, image_shape)` is the one entry point; the data decides the
image shape, so any H x W works where the architecture allows it, and a size the conv
stack cannot handle is a `ConfigError` naming both numbers.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ae_jax.errors import ConfigError
from ae_jax.models import kinds, ldm, pythae_nets
from ae_jax.models.base import AutoEncoder, ModelOutput
from ae_jax.models.canonical import use_canonical
from ae_jax.models.conv import ConvDecoder, ConvEncoder, ConvSpec
from ae_jax.models.layers import conv_out_size, conv_transpose_out_size
from ae_jax.models.ldm import LDMPreset, LDM_PRESETS
from ae_jax.models.mlp import MLPDecoder, MLPEncoder
from ae_jax.models.resnet import ResDecoder, ResEncoder

__all__ = ['AutoEncoder', 'ModelOutput', 'PRESETS', 'abstract_variables', 'build_model',
           'init_variables', 'latent_shape']

# name -> (kind, published latent size, one-line description). Architectures are in
# `_preset`. The AE conv presets have no latent head: their code is the last conv layer's
# output, whose channels are the "latent size" (model.latent_dim cannot change it).
PRESETS = {
    'mlp_ae_50': ('ae', 128, 'MLP AE 7500-256-128 (ReLU code), decoder 128-256-7500, sigmoid'),
    'mlp_ae_50_refine': ('ae', 128, 'mlp_ae_50 with two more image-size ReLU layers after the '
                         'decoder (7500-7500 twice at 50x50x3), report 000\'s sharpness fix'),
    'mlp_vae_50': ('vae', 256, 'MLP VAE 7500-4096-1024-512, heads 512->256, mirrored decoder, '
                   'sigmoid'),
    'fcn_ae_64': ('ae', 10, 'MLP AE 12288-1024-256-64-10, mirrored decoder, tanh'),
    'conv_ae_small': ('ae', 64, 'conv AE 3->16->32->64 (3x3 s2, 3x3 s2, 5x5 s1), transposed back, '
                      'sigmoid'),
    'conv_ae_bn_mish': ('ae', 1024, 'conv AE 3->64->...->1024 (4x4 s2, BN, Mish), mirrored, 3x3 '
                        'conv, tanh'),
    'conv_vae_bn_mish': ('vae', 1024, 'conv VAE as conv_ae_bn_mish with a 3x3 conv to 2*latent '
                         'channels'),
    # the latent-diffusion KL autoencoders (models/ldm.py; weights from diffusers/CompVis)
    **{name: ('vae', p.z_channels, p.description) for name, p in LDM_PRESETS.items()},
    # pythae's default MLP and MNIST conv net (models/pythae_nets.py); any model.kind
    **pythae_nets.PYTHAE_PRESETS,
}
FIXED_CODE = ('conv_ae_small', 'conv_ae_bn_mish')  # latent size fixed by the architecture
DEFAULT_LATENT_DIM = 16  # custom models with model.latent_dim=0


def resolve_latent_dim(model_cfg) -> int:
  """model.latent_dim, where 0 means the preset's published size (16 for custom models), or
  the size the kind fixes (FSQ: one channel per level count)."""
  preset, value = model_cfg.preset, int(model_cfg.latent_dim)
  kind = kinds.get(model_cfg.kind)
  if kind.code_width is not None:
    width = kind.code_width(model_cfg)
    if value not in (0, width):
      raise ConfigError(f'model.latent_dim={value}: model.kind={kind.name!r} fixes the code '
                        f'width at {width} (model.fsq.levels={kinds.fsq_levels(model_cfg)}); '
                        f'leave model.latent_dim=0 or set it to {width}')
    return width
  if preset in PRESETS:
    published = PRESETS[preset][1]
    if preset in FIXED_CODE and value not in (0, published):
      raise ConfigError(f'model.latent_dim={value}: preset {preset!r} has no latent head (its '
                        f'code is its last conv layer, {published} channels); leave '
                        'model.latent_dim=0')
    return value or published
  return value or DEFAULT_LATENT_DIM


def _encoder_sizes(size: int, layers, what: str) -> list[int]:
  sizes = [size]
  for spec in layers:
    nxt = conv_out_size(sizes[-1], spec.kernel, spec.stride, spec.padding)
    if nxt < 1:
      raise ConfigError(
          f'{what}: image size {size} is too small for {len(layers)} conv layers '
          f'(layer {len(sizes)} would get size {nxt}); use a larger data.image_size or '
          'fewer model.conv.channels')
    sizes.append(nxt)
  return sizes


def _mirror_decoder(enc_sizes, enc_layers, out_channels_seq, what: str):
  """Transposed convs that undo `enc_layers`, with output_padding chosen per layer."""
  specs = []
  for j, spec in enumerate(reversed(enc_layers)):
    src, dst = enc_sizes[-1 - j], enc_sizes[-2 - j]
    op = dst - conv_transpose_out_size(src, spec.kernel, spec.stride, spec.padding, 0)
    if not 0 <= op < max(spec.stride, 1):
      raise ConfigError(
          f'{what}: the conv stack cannot invert size {dst} (kernel {spec.kernel}, stride '
          f'{spec.stride}, padding {spec.padding} maps it to {src}); choose an image size '
          'or padding the stack divides')
    specs.append(ConvSpec(out_channels_seq[j], spec.kernel, spec.stride, spec.padding, op))
  return specs


def _check_decoder(image_shape, start_hw, layers, what):
  h, w = start_hw
  for spec in layers:
    h = conv_transpose_out_size(h, spec.kernel, spec.stride, spec.padding, spec.output_padding)
    w = conv_transpose_out_size(w, spec.kernel, spec.stride, spec.padding, spec.output_padding)
  if (h, w) != tuple(image_shape[:2]):
    raise ConfigError(
        f'{what}: its decoder produces {h}x{w} images but the data is '
        f'{image_shape[0]}x{image_shape[1]}; this architecture needs sizes it divides '
        f'exactly (docs/models.md), or set data.image_size')


def _preset(name, cfg, image_shape):
  h, w, c = image_shape
  latent = resolve_latent_dim(cfg)
  if name == 'mlp_ae_50_refine':  # decoder 128-256-P, then P-P twice (ReLU), sigmoid
    p = h * w * c
    enc = MLPEncoder((256,), latent, 'ae', 'relu', 'relu')
    return enc, MLPDecoder((256, p, p), image_shape, 'relu'), 'ae', 'sigmoid'
  if name in ('mlp_ae_50', 'mlp_vae_50', 'fcn_ae_64'):
    hidden, lat_act, out_act = {
        'mlp_ae_50': ((256,), 'relu', 'sigmoid'),
        'mlp_vae_50': ((4096, 1024, 512), 'none', 'sigmoid'),
        'fcn_ae_64': ((1024, 256, 64), 'none', 'tanh'),
    }[name]
    kind = PRESETS[name][0]
    enc = MLPEncoder(hidden, latent, kind, 'relu', lat_act)
    return enc, MLPDecoder(tuple(reversed(hidden)), image_shape, 'relu'), kind, out_act
  if name == 'conv_ae_small':
    enc_layers = [ConvSpec(16, 3, 2, 1), ConvSpec(32, 3, 2, 1),
                  ConvSpec(64, 5, 1, 2, norm_act=False)]
    dec_layers = [ConvSpec(32, 5, 1, 2, 0), ConvSpec(16, 3, 2, 1, 1),
                  ConvSpec(c, 3, 2, 2, 1, norm_act=False)]
    hs = _encoder_sizes(h, enc_layers, f'preset {name}')
    ws = _encoder_sizes(w, enc_layers, f'preset {name}')
    _check_decoder(image_shape, (hs[-1], ws[-1]), dec_layers, f'preset {name}')
    enc = ConvEncoder(tuple(enc_layers), latent, 'ae', latent='none', activation='relu')
    dec = ConvDecoder(tuple(dec_layers), c, (hs[-1], ws[-1], 64), latent='none', final_conv=False,
                      activation='relu', upsample=cfg.conv.upsample)
    return enc, dec, 'ae', 'sigmoid'
  if name in ('conv_ae_bn_mish', 'conv_vae_bn_mish'):
    kind = PRESETS[name][0]
    chans = (64, 128, 256, 512, 1024)
    enc_layers = [ConvSpec(ch, 4, 2, 1) for ch in chans]
    dec_layers = [ConvSpec(ch, 4, 2, 1, 0) for ch in (1024, 512, 256, 128, 64)]
    if h % 32 or w % 32:
      raise ConfigError(
          f'preset {name}: image size {h}x{w} is not divisible by 32 (5 stride-2 layers); '
          'use a multiple of 32 such as 64 or 256 (data.image_size)')
    hs, ws = h // 32, w // 32
    enc = ConvEncoder(tuple(enc_layers), latent, kind,
                      latent='spatial' if kind == 'vae' else 'none',
                      norm='batch', activation='mish', init='kaiming_normal')
    dec = ConvDecoder(tuple(dec_layers), c, (hs, ws, latent if kind == 'vae' else 1024),
                      latent='spatial', norm='batch', activation='mish',
                      init='kaiming_normal', upsample=cfg.conv.upsample)
    return enc, dec, kind, 'tanh'
  raise ConfigError(f'model.preset={name!r} is unknown; expected one of {sorted(PRESETS)} '
                    "or '' for a custom model")


def _resnet(cfg, image_shape, latent):
  h, w, c = image_shape
  r = cfg.resnet
  chans = tuple(int(x) for x in r.channels)
  patch = int(r.patch)
  factor = 2 ** (len(chans) - 1) * patch
  if h % factor or w % factor:
    raise ConfigError(f'model.resnet.channels={chans} with model.resnet.patch={patch}: '
                      f'{len(chans) - 1} halvings of {patch}x{patch} blocks need an image size '
                      f'divisible by {factor}, but the data is {h}x{w}; set data.image_size or '
                      'use fewer levels or a smaller patch')
  linear = r.linear == 'pca'
  if linear and cfg.output_activation != 'none':
    raise ConfigError("model.resnet.linear='pca' needs model.output_activation='none' (PCA "
                      f'reconstructs pixels, not logits), not {cfg.output_activation!r}')
  if linear and r.latent != 'flat':
    raise ConfigError("model.resnet.linear='pca' needs model.resnet.latent='flat' (the linear "
                      f'path maps the image to a flat code), not {r.latent!r}')
  common = dict(norm=cfg.norm, groups=cfg.conv.groups, activation=cfg.activation, linear=linear,
                patch=patch)
  kind = kinds.get(cfg.kind).encoder  # a quantised kind's encoder makes a plain code
  enc = ResEncoder(chans, latent, kind, r.blocks, r.latent, **common)
  start = (h // factor, w // factor, chans[-1])
  dec = ResDecoder(chans, c, start, r.blocks, r.latent, refine=r.refine, **common)
  return enc, dec


def _ldm(cfg, image_shape, preset=None):
  """The latent-diffusion encoder/decoder: a shipped preset, or model.ldm's settings with
  model.latent_dim latent channels."""
  if preset is None:
    c = cfg.ldm
    preset = LDMPreset('custom', int(c.ch), tuple(int(m) for m in c.ch_mult), int(c.blocks),
                       resolve_latent_dim(cfg), tuple(int(a) for a in c.attn_levels),
                       bool(c.mid_attention), int(c.groups))
  elif resolve_latent_dim(cfg) != preset.z_channels:
    preset = preset._replace(z_channels=resolve_latent_dim(cfg))
  return ldm.build(preset, image_shape, kinds.get(cfg.kind).encoder)


def _custom(cfg, image_shape):
  h, w, c = image_shape
  kind = kinds.get(cfg.kind).encoder  # a quantised kind's encoder makes a plain code
  latent = resolve_latent_dim(cfg)
  if cfg.arch == 'ldm':
    return _ldm(cfg, image_shape)
  if cfg.arch == 'resnet':
    return _resnet(cfg, image_shape, latent)
  if cfg.arch == 'mlp':
    enc = MLPEncoder(tuple(cfg.hidden), latent, kind, cfg.activation,
                     cfg.latent_activation)
    dec = MLPDecoder(tuple(reversed(tuple(cfg.hidden))), image_shape, cfg.activation)
    return enc, dec
  conv = cfg.conv
  enc_layers = [ConvSpec(ch, conv.kernel, conv.stride, conv.padding) for ch in conv.channels]
  what = f'model.conv (channels={tuple(conv.channels)}, kernel={conv.kernel}, stride={conv.stride})'
  hs = _encoder_sizes(h, enc_layers, what)
  ws = _encoder_sizes(w, enc_layers, what)
  outs = tuple(reversed(tuple(conv.channels)))
  dec_h = _mirror_decoder(hs, enc_layers, outs, what)
  dec_w = _mirror_decoder(ws, enc_layers, outs, what)
  if [s.output_padding for s in dec_h] != [s.output_padding for s in dec_w]:
    raise ConfigError(f'{what}: image {h}x{w} needs different output padding per axis; '
                      'use a square image (data.image_size)')
  common = dict(norm=cfg.norm, groups=conv.groups, activation=cfg.activation, init=cfg.init)
  enc = ConvEncoder(tuple(enc_layers), latent, kind, latent=conv.latent, **common)
  start_c = conv.channels[-1] if conv.latent == 'flat' else latent
  dec = ConvDecoder(tuple(dec_h), c, (hs[-1], ws[-1], start_c), latent=conv.latent,
                    upsample=conv.upsample, **common)
  return enc, dec


def _with_conv_impl(module, cfg):
  """The module with model.conv.impl applied (conv modules have a `conv_impl` field)."""
  if not hasattr(module, 'conv_impl'):
    return module
  return module.clone(conv_impl='canonical' if use_canonical(cfg.conv.impl) else 'xla')


def build_model(cfg, image_shape) -> AutoEncoder:
  """cfg: the `config.model` ConfigDict; image_shape: (H, W, C) from the data."""
  model = _build_model(cfg, image_shape)
  model = model.clone(encoder=_with_conv_impl(model.encoder, cfg),
                      decoder=_with_conv_impl(model.decoder, cfg),
                      learned_logvar=bool(cfg.learned_logvar))
  kind = kinds.get(cfg.kind)
  if kind.quantizer is not None:
    quantizer = kind.quantizer(cfg)
    if kind.learned_codebook and cfg.preset in pythae_nets.PYTHAE_PRESETS:
      # pythae's codebook start, too
      quantizer = quantizer.clone(codebook_init=pythae_nets.codebook_init(int(cfg.vq.codes)))
    model = model.clone(quantizer=quantizer)
  return model


def _build_model(cfg, image_shape) -> AutoEncoder:
  image_shape = tuple(int(s) for s in image_shape)
  if cfg.preset:
    if cfg.preset not in PRESETS:
      raise ConfigError(f'model.preset={cfg.preset!r} is unknown; expected one of '
                        f"{sorted(PRESETS)} or '' for a custom model")
    kind = PRESETS[cfg.preset][0]
    if cfg.preset in pythae_nets.PYTHAE_PRESETS:
      enc, dec = pythae_nets.build(cfg.preset, cfg, image_shape, resolve_latent_dim(cfg))
      return AutoEncoder(enc, dec, kind=cfg.kind, output_activation='sigmoid')
    if cfg.preset in LDM_PRESETS:
      kinds.get(cfg.kind)  # any kind: one ConfigError line for another name
      enc, dec = _ldm(cfg, image_shape, LDM_PRESETS[cfg.preset])
      return AutoEncoder(enc, dec, kind=cfg.kind, output_activation='none', model_range='pm1')
    enc, dec, kind, out_act = _preset(cfg.preset, cfg, image_shape)
    if kind != cfg.kind:
      raise ConfigError(f"model.preset={cfg.preset!r} is an {kind.upper()} but "
                        f"model.kind={cfg.kind!r}; set model.kind={kind!r}")
    return AutoEncoder(enc, dec, kind=kind, output_activation=out_act)
  enc, dec = _custom(cfg, image_shape)
  if cfg.arch == 'ldm':
    return AutoEncoder(enc, dec, kind=cfg.kind, output_activation='none', model_range='pm1')
  return AutoEncoder(enc, dec, kind=cfg.kind, output_activation=cfg.output_activation)


def init_variables(model: AutoEncoder, image_shape, key) -> dict:
  """The model's initial variables (every collection) from one PRNG key."""
  x = jnp.zeros((1, *image_shape), jnp.float32)
  return model.init({'params': key, 'reparam': key}, x, train=False)


def abstract_variables(model: AutoEncoder, image_shape) -> dict:
  """The model's variables as shapes and dtypes (jax.eval_shape: nothing is computed or
  compiled): what a checkpoint restores into, and what parameter counts are read from."""
  return _copy(_shapes(_abstract_variables, model, image_shape))


def latent_shape(model: AutoEncoder, image_shape) -> tuple[int, ...]:
  """Shape of one example's latent code, e.g. (16,) or (8, 8, 128)."""
  return _shapes(_latent_shape, model, image_shape)


# Tracing a model for its shapes costs as much as tracing it for a step (0.5 s for
# kl_f4_small at 32x32), and a run asks for them from several places (its spec, the
# optimizer's state, the critic, the memory estimate, a checkpoint's template). Models are
# frozen dataclasses, equal when built from equal settings: the shapes are kept per
# (model, image shape), and only shapes are kept, never arrays.
@functools.lru_cache(maxsize=64)
def _abstract_variables(model: AutoEncoder, image_shape: tuple) -> dict:
  return jax.eval_shape(lambda: init_variables(model, image_shape, jax.random.PRNGKey(0)))


@functools.lru_cache(maxsize=64)
def _latent_shape(model: AutoEncoder, image_shape: tuple) -> tuple[int, ...]:
  x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
  variables = _abstract_variables(model, image_shape)
  mean, _ = jax.eval_shape(lambda v, x: model.apply(v, x, method=model.encode), variables, x)
  return tuple(mean.shape[1:])


def _shapes(cached, model: AutoEncoder, image_shape):
  """cached(model, image_shape), or its uncached function for a model that cannot be a
  key (a setting held as a list or an array: traced every time)."""
  image_shape = tuple(image_shape)
  try:
    hash(model)
  except TypeError:
    return cached.__wrapped__(model, image_shape)
  return cached(model, image_shape)


def _copy(tree):
  """A fresh container tree over the same (immutable) shape structs: a caller may edit it."""
  return jax.tree_util.tree_map(lambda s: s, tree)


def _latent_params(model: AutoEncoder, tree):
  """[(module path, param name, axis, heads)] of the entries indexed by latent units.

  heads=2 where the axis holds [mean units | logvar units] side by side (conv heads).
  """
  enc, dec = tree['encoder'], tree['decoder']
  heads = 2 if kinds.get(model.kind).posterior else 1
  out = []
  for name in ('code', 'mean', 'logvar'):
    if name in enc:
      out += [(('encoder', name), 'kernel', -1, 1), (('encoder', name), 'bias', -1, 1)]
  for name in ('head', 'head_conv'):
    if name in enc:
      out += [(('encoder', name), 'kernel', -1, heads), (('encoder', name), 'bias', -1, heads)]
  if isinstance(model.decoder, MLPDecoder):
    out.append((('decoder', 'dense_0' if 'dense_0' in dec else 'out'), 'kernel', 0, 1))
  elif 'project' in dec:
    out.append((('decoder', 'project'), 'kernel', 0, 1))
  elif 'project_conv' in dec:
    out.append((('decoder', 'project_conv'), 'kernel', 2, 1))
  else:
    out.append((('decoder', 'tconv_0'), 'kernel', 2, 1))
  return out


def _map_latent(model, tree, fn):
  """Copy of `tree` with fn(array, axis, heads) applied to its latent-indexed entries."""
  tree = {k: dict(v) for k, v in tree.items()}
  for (part, module), name, axis, heads in _latent_params(model, tree):
    tree[part][module] = {**tree[part][module],
                          name: fn(tree[part][module][name], axis, heads)}
  return tree


def mask_latent_updates(model: AutoEncoder, tree, unit_mask):
  """Zero the entries of a params-shaped `tree` that belong to masked latent units.

  `unit_mask` is a member's latent mask ([..., L]). Masked units already get zero
  gradient (the model multiplies them out); masking the *update* as well keeps weight
  decay from moving them, so a masked member's unused weights never change.
  """
  import jax.numpy as jnp
  m = jnp.reshape(unit_mask, (-1,))

  def apply(x, axis, heads):
    mh = jnp.tile(m, heads)
    shape = [1] * x.ndim
    shape[axis] = mh.shape[0]
    return x * mh.reshape(shape)

  return _map_latent(model, tree, apply)


def slice_latent(model: AutoEncoder, tree, latent_dim: int):
  """Keep the first `latent_dim` latent units of a params-shaped `tree`: the parameters
  of the same model built with that latent size."""
  import numpy as np

  def take(x, axis, heads):
    size = x.shape[axis] // heads
    idx = np.concatenate([np.arange(h * size, h * size + latent_dim) for h in range(heads)])
    return np.take(np.asarray(x), idx, axis=axis)

  return _map_latent(model, tree, take)


def layers_in_order(model: AutoEncoder, image_shape) -> list[tuple[str, str, list, int]]:
  """(module path, layer type, parameter shapes, parameter count) of every layer with
  parameters, in the order a forward pass calls them (for architecture summaries)."""
  seen, out = set(), []

  def record(next_fun, args, kwargs, context):
    module = context.module
    result = next_fun(*args, **kwargs)
    if context.method_name == '__call__' and module.path not in seen:
      params = module.variables.get('params', {}) if module.scope else {}
      leaves = [x for x in jax.tree_util.tree_leaves(params)]
      direct = {k: v for k, v in params.items() if not isinstance(v, dict)}
      if direct:
        seen.add(module.path)
        out.append(('/'.join(module.path), type(module).__name__,
                    [tuple(v.shape) for v in direct.values()],
                    int(sum(np.prod(x.shape) for x in leaves))))
    return result

  x = jnp.zeros((1, *image_shape))
  variables = model.init({'params': jax.random.PRNGKey(0), 'reparam': jax.random.PRNGKey(0)}, x)
  with nn.intercept_methods(record):
    model.apply(variables, x, rngs={'reparam': jax.random.PRNGKey(0)})
  return out
