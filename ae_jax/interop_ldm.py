"""Stable Diffusion / latent-diffusion VAE weights from PyTorch into ae_jax's LDM models.

  state_dict = interop_ldm.read_state_dict('diffusion_pytorch_model.safetensors')
  params = interop_ldm.convert(state_dict, params_like)  # {'encoder': ..., 'decoder': ...}

`params_like` is the params tree of an `AutoEncoder` around models/ldm.py's LDMEncoder and
LDMDecoder (arrays or `jax.eval_shape` structs: only its shapes are read).

Two namings are read, told apart by their keys:
- diffusers `AutoencoderKL`: encoder.down_blocks.{i}.resnets.{j}.norm1.weight,
  ...downsamplers.0.conv, *.mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0}
  (files from before diffusers 0.14 say query/key/value/proj_attn), decoder.up_blocks.{i},
  conv_shortcut, conv_norm_out, quant_conv, post_quant_conv.
- CompVis/latent-diffusion (and Stable Diffusion's original .ckpt): encoder.down.{i}.block.{j},
  .downsample.conv, *.mid.{block_1,attn_1,block_2} with q/k/v/proj_out as 1x1 convs,
  nin_shortcut, norm_out, decoder.up.{l}, where level l runs in the opposite order to
  diffusers' up_blocks: up.{l} is up_blocks.{n-1-l}.
A whole Stable Diffusion checkpoint keeps its VAE under `first_stage_model.` (some files
under `vae.`): only those tensors are read. A CompVis training checkpoint's `loss.*`
tensors (LPIPSWithDiscriminator's discriminator, LPIPS network and learned log-variance)
are training-only and ignored.

Conversions: Conv2d weights OIHW -> HWIO; Linear [out, in] -> Dense [in, out], also from
CompVis' 1x1 convs [out, in, 1, 1] and old diffusers' [out, in, 1] proj_attn; GroupNorm
weight -> scale. Everything becomes float32 (fp16 and bf16 files too).

Every parameter is filled exactly once or `convert` raises a one-line ConfigError: the
first tensor no parameter takes (a state dict of another model), the first parameter no
tensor fills, two tensors for one parameter, or a shape mismatch, naming the tensor, its
shape and the one expected (a kl_f4 checkpoint read into kl_f8). A model without quant
convs (SD3's and FLUX.1's layout: diffusers' use_quant_conv=False) has no parameter for a
quant_conv tensor, so a file that has them names it as taken by nothing, and the reverse.

Parameters outside the encoder and decoder: a learned output log-variance
(`model.learned_logvar`, AutoEncoder's `output_logvar`) has no AutoencoderKL counterpart
and keeps its value in `params_like` (its initial value, 0). Any other (a VQ codebook) is a
one-line ConfigError: an AutoencoderKL file cannot fill it.
"""
from __future__ import annotations

import os
import re

import numpy as np
from flax import traverse_util

from ae_jax.errors import ConfigError, DataError

VAE_PREFIXES = ('first_stage_model.', 'vae.')
IGNORED_PREFIXES = ('loss.',)
PARTS = ('encoder', 'decoder')  # the subtrees filled from the state dict
# ours -> why it is not read from the file (it keeps its value in params_like)
KEPT = {('output_logvar',): 'a learned output log-variance has no AutoencoderKL counterpart'}
NORMS = ('norm1', 'norm2', 'group_norm', 'norm_out')

# Attention layers: ours -> (diffusers names, newest first; CompVis name).
_ATTN = {'group_norm': (('group_norm',), 'norm'), 'to_q': (('to_q', 'query'), 'q'),
         'to_k': (('to_k', 'key'), 'k'), 'to_v': (('to_v', 'value'), 'v'),
         'to_out': (('to_out.0', 'proj_attn'), 'proj_out')}


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Tensors of a .safetensors (read without torch), .bin, .pt or .ckpt file by name."""
  if not os.path.exists(path):
    raise ConfigError(f'{path}: no such file')
  ext = os.path.splitext(path)[1].lower()
  if ext == '.safetensors':
    return _read_safetensors(path)
  if ext not in ('.bin', '.pt', '.pth', '.ckpt'):
    raise ConfigError(f'{path}: expected a .safetensors, .bin, .pt or .ckpt file')
  try:
    import torch
  except ImportError as e:
    raise ConfigError(f'{path}: reading PyTorch pickles needs PyTorch (pip install torch), '
                      'or convert the file to .safetensors') from e
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # noqa: BLE001 - not a pickle, or one that holds code
    # Lightning checkpoints may pickle callback objects; unpickling those can run code
    raise DataError(f'{path} does not load as tensors with torch.load(weights_only=True) '
                    f'({type(e).__name__}); if you trust the file, save '
                    "torch.load(path, weights_only=False)['state_dict'] with "
                    'safetensors.torch.save_file and read that') from e
  if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
    obj = obj['state_dict']  # a CompVis / PyTorch Lightning checkpoint
  if not isinstance(obj, dict):
    raise DataError(f'{path}: expected a dict of tensors, found {type(obj).__name__}')
  out = {}
  for key, value in obj.items():
    if isinstance(value, torch.Tensor):
      value = value.detach().cpu()
      # numpy has no bfloat16; float32 holds every bf16 and fp16 value exactly
      out[key] = (value.float() if value.dtype == torch.bfloat16 else value).numpy()
  return out


def _read_safetensors(path):
  from safetensors import SafetensorError
  from safetensors import numpy as st_numpy
  try:
    return st_numpy.load_file(path)
  except TypeError:  # bfloat16, which numpy lacks: read through jax (ml_dtypes) instead
    from safetensors import flax as st_flax
    return {k: np.asarray(v, np.float32) for k, v in st_flax.load_file(path).items()}
  except (SafetensorError, OSError) as e:
    raise DataError(f'{path} does not read as safetensors ({e})') from e


def naming(state_dict) -> str:
  """'compvis' or 'diffusers' (also what a state dict of neither is read as)."""
  compvis = re.compile(r'(encoder|decoder)\.(down|up|mid|norm_out)\.')
  return 'compvis' if any(compvis.match(k) for k in state_dict) else 'diffusers'


def vae_tensors(state_dict) -> dict:
  """The VAE's tensors: without a whole checkpoint's prefix and the training-only loss.*."""
  for prefix in VAE_PREFIXES:
    if any(k.startswith(prefix) for k in state_dict) and \
        not any(k.startswith(('encoder.', 'decoder.')) for k in state_dict):
      state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
      break
  return {k: v for k, v in state_dict.items() if not k.startswith(IGNORED_PREFIXES)}


def _module_names(part: str, module: str, n_up: int) -> tuple[str, str]:
  """The (diffusers, CompVis) names of one of our modules; n_up: the decoder's levels."""
  if module in ('quant_conv', 'post_quant_conv'):
    return module, module
  if module == 'norm_out':
    return f'{part}.conv_norm_out', f'{part}.norm_out'
  if module in ('conv_in', 'conv_out'):
    return f'{part}.{module}', f'{part}.{module}'
  if module == 'mid_attn':
    return f'{part}.mid_block.attentions.0', f'{part}.mid.attn_1'
  m = re.fullmatch(r'mid_res_(\d)', module)
  if m:
    j = int(m[1])
    return f'{part}.mid_block.resnets.{j}', f'{part}.mid.block_{j + 1}'
  m = re.fullmatch(r'(down|up)_(\d+)_(res|attn|downsample|upsample)(?:_(\d+))?', module)
  if not m:
    raise ValueError(f'not an LDM module: {part}/{module}')
  side, i, what, j = m[1], int(m[2]), m[3], m[4]
  level = i if side == 'down' else n_up - 1 - i
  ours = f'{part}.{side}_blocks.{i}'
  theirs = f'{part}.{side}.{level}'
  if what in ('downsample', 'upsample'):
    return f'{ours}.{what}rs.0.conv', f'{theirs}.{what}.conv'
  if what == 'res':
    return f'{ours}.resnets.{j}', f'{theirs}.block.{j}'
  return f'{ours}.attentions.{j}', f'{theirs}.attn.{j}'


def torch_names(path: tuple[str, ...], n_up: int) -> dict[str, list[str]]:
  """{'diffusers': [key, older alias...], 'compvis': [key]} of one of our parameters."""
  part, module, *layer, leaf = path
  diffusers, compvis = _module_names(part, module, n_up)
  tail = 'bias' if leaf == 'bias' else 'weight'
  if not layer:
    return {'diffusers': [f'{diffusers}.{tail}'], 'compvis': [f'{compvis}.{tail}']}
  (layer,) = layer
  if 'attn' in module:
    names, old = _ATTN[layer]
  else:  # a ResBlock layer
    names, old = (layer,), 'nin_shortcut' if layer == 'conv_shortcut' else layer
  return {'diffusers': [f'{diffusers}.{n}.{tail}' for n in names],
          'compvis': [f'{compvis}.{old}.{tail}']}


def _torch_shape(leaf: str, shape) -> tuple[int, ...]:
  if leaf == 'kernel' and len(shape) == 4:  # HWIO -> OIHW
    return (shape[3], shape[2], shape[0], shape[1])
  if leaf == 'kernel':  # Dense [in, out] -> Linear [out, in]
    return (shape[1], shape[0])
  return tuple(shape)


def _to_flax(value, leaf: str, shape, key: str, path) -> np.ndarray:
  value = np.asarray(value, np.float32)
  want = _torch_shape(leaf, shape)
  got = tuple(value.shape)
  if leaf == 'kernel' and len(shape) == 2 and got[:2] == want and \
      all(d == 1 for d in got[2:]):
    got = want  # a 1x1 conv (CompVis) or conv1d (old diffusers) used as a Linear
    value = value.reshape(want)
  if got != want:
    raise ConfigError(f'{key} has shape {tuple(value.shape)}, but this model expects {want} '
                      f'there ({"/".join(path)}): a checkpoint of another configuration?')
  if leaf == 'kernel' and value.ndim == 4:
    return np.ascontiguousarray(value.transpose(2, 3, 1, 0))
  if leaf == 'kernel':
    return np.ascontiguousarray(value.T)
  return value


def _n_up(paths) -> int:
  ups = {int(m[1]) for p in paths if p[0] == 'decoder'
         for m in [re.fullmatch(r'up_(\d+)_res_\d+', p[1])] if m}
  return len(ups)


def convert(state_dict, params_like) -> dict:
  """Our params (nested dicts of float32 numpy arrays, shaped as `params_like`) from a
  diffusers- or CompVis-named AutoencoderKL state dict. See the module docstring."""
  wrapped = 'params' in params_like
  flat = traverse_util.flatten_dict(params_like['params'] if wrapped else params_like)
  kept = {}
  for path, value in flat.items():
    if path[0] in PARTS:
      continue
    if path not in KEPT:
      raise ConfigError(f'{"/".join(path)}: an AutoencoderKL state dict has nothing for this '
                        "parameter; import into a VAE (model.kind='vae')")
    # an abstract struct (jax.eval_shape) has no value: AutoEncoder initialises it to 0
    kept[path] = np.asarray(value, np.float32) if hasattr(value, '__array__') else \
        np.zeros(value.shape, np.float32)
  shapes = {p: tuple(v.shape) for p, v in flat.items() if p[0] in PARTS}
  tensors = vae_tensors(state_dict)
  style = naming(tensors)
  n_up = _n_up(shapes)
  owner = {}  # torch key -> our path
  for path in shapes:
    for key in torch_names(path, n_up)[style]:
      owner[key] = path
  filled: dict[tuple, str] = {}
  out = {}
  for key, value in tensors.items():
    path = owner.get(key)
    if path is None:
      raise ConfigError(f'{key}: no parameter of this model takes it (expected a {style}-'
                        'named AutoencoderKL state dict with the preset\'s layout)')
    if path in filled:
      raise ConfigError(f'{key} and {filled[path]} both fill {"/".join(path)}')
    filled[path] = key
    out[path] = _to_flax(value, path[-1], shapes[path], key, path)
  for path in shapes:
    if path not in filled:
      raise ConfigError(f'nothing in the state dict fills {"/".join(path)} (the {style} '
                        f'tensor {torch_names(path, n_up)[style][0]})')
  params = traverse_util.unflatten_dict({**out, **kept})
  return {'params': params} if wrapped else params
