"""Import PyTorch weights of the preset architectures.

  python -m ae_jax.interop --torch-checkpoint model.pt --config configs/X.py --workdir runs/imported

Layers are matched by order and shape, not by name, so `encoder.0.weight`,
`mean.weight` / `variance.weight`, `conv1.weight` or a bare `nn.Sequential` all work:
the state_dict's modules (in registration order) must line up with this model's
Dense / Conv / ConvTranspose / BatchNorm layers. Conversions: Linear weights are
transposed (and, for the first and last layer of an MLP, their pixel axis reordered
from the flatten order the PyTorch code used, `chw` or `hwc`, to ours, `hwc`); Conv2d
weights go [out,in,kh,kw] -> [kh,kw,in,out]; ConvTranspose2d weights [in,out,kh,kw] ->
[kh,kw,in,out] (our ConvTranspose uses the same, unflipped, convention); BatchNorm
weight/bias become scale/bias and running_mean/var the batch statistics.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import NamedTuple

import jax
import numpy as np

from ae_jax import checkpoint, cli, config_lib, interop_ldm, record as record_lib
from ae_jax.data import shapes
from ae_jax.errors import ConfigError, DataError, WorkdirError
from ae_jax.inference import load
from ae_jax.models import LDM_PRESETS
from ae_jax.record import ModelRecord
from ae_jax.spec import RunSpec
from ae_jax.train import check_owner, claim
from ae_jax.workdir import Workdir


class Layer(NamedTuple):
  path: tuple       # our module path, e.g. ('encoder', 'conv_0')
  kind: str         # dense | conv | tconv | bn
  torch_shape: tuple  # the weight shape a matching torch layer has


def _order(path):
  """Forward order of a module path (pytrees sort dict keys, losing creation order)."""
  part, name = path[0], path[-1]
  stem, _, idx = name.rpartition('_')
  i = int(idx) if idx.isdigit() else 0
  stem = stem if idx.isdigit() else name
  if part == 'encoder':
    rank = {'dense': (0, i, 0), 'conv': (0, i, 0), 'norm': (0, i, 1), 'code': (1, 0, 0),
            'mean': (1, 0, 0), 'head': (1, 0, 0), 'logvar': (1, 1, 0)}[stem]
  else:
    rank = {'project': (0, 0, 0), 'dense': (1, i, 0), 'tconv': (1, i, 0), 'norm': (1, i, 1),
            'out': (2, 0, 0)}[stem]
  return (0 if part == 'encoder' else 1, *rank)


def our_layers(params) -> list[Layer]:
  """This model's parameterised layers in forward order."""
  out = []

  def walk(tree, path):
    if 'kernel' in tree or 'scale' in tree:
      if 'scale' in tree:
        out.append(Layer(path, 'bn', (tree['scale'].shape[0],)))
      elif tree['kernel'].ndim == 2:
        i, o = tree['kernel'].shape
        out.append(Layer(path, 'dense', (o, i)))
      elif path[-1].startswith('tconv'):
        kh, kw, i, o = tree['kernel'].shape
        out.append(Layer(path, 'tconv', (i, o, kh, kw)))
      else:
        kh, kw, i, o = tree['kernel'].shape
        out.append(Layer(path, 'conv', (o, i, kh, kw)))
      return
    for k, v in tree.items():
      walk(v, path + (k,))

  walk(params, ())
  return sorted(out, key=lambda layer: _order(layer.path))


def torch_layers(state_dict) -> list[tuple[str, dict]]:
  """(module prefix, {param: array}) for modules with a weight, in state_dict order."""
  groups: dict[str, dict] = {}
  for key, value in state_dict.items():
    prefix, _, name = key.rpartition('.')
    groups.setdefault(prefix, {})[name] = np.asarray(value.detach().cpu().numpy()
                                                     if hasattr(value, 'detach') else value)
  return [(p, g) for p, g in groups.items() if 'weight' in g]


def _torch_kind(g):
  if 'running_mean' in g:
    return 'bn'
  return {2: 'dense', 4: 'conv/tconv'}.get(g['weight'].ndim, f'{g["weight"].ndim}-d')


def _first_difference(ours, theirs) -> int:
  """The first layer whose kind or shape differs (the arrow of the mismatch table)."""
  for j, (layer, (_, g)) in enumerate(zip(ours, theirs)):
    if (_torch_kind(g) == 'bn') != (layer.kind == 'bn') or \
        tuple(g['weight'].shape) != layer.torch_shape:
      return j
  return min(len(ours), len(theirs))


def _mismatch(ours, theirs, i, why):
  rows = []
  for j in range(max(len(ours), len(theirs))):
    a = f'{"/".join(ours[j].path)} {ours[j].kind} {ours[j].torch_shape}' if j < len(ours) else '-'
    b = (f'{theirs[j][0] or "(root)"} {_torch_kind(theirs[j][1])} '
         f'{tuple(theirs[j][1]["weight"].shape)}') if j < len(theirs) else '-'
    rows.append(f'  {"->" if j == i else "  "} {j:2d}  expected {a:55s} found {b}')
  return ConfigError(f'the PyTorch weights do not fit this model ({why} at layer {i}):\n'
                     + '\n'.join(rows))


def _pixel_perm(image_shape, order: str) -> np.ndarray:
  """perm[k] = index, in the torch flatten order, of our (HWC) pixel k."""
  h, w, c = image_shape
  if order == 'hwc':
    return np.arange(h * w * c)
  return np.arange(h * w * c).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def convert(state_dict, params, batch_stats, image_shape, flatten_order: str = 'chw',
            logvar_scale: float = 1.0):
  """-> (params, batch_stats) with every layer taken from `state_dict`.

  logvar_scale multiplies the log-variance head (2.0 where the PyTorch head is log sigma).
  """
  if flatten_order not in ('chw', 'hwc'):
    raise ConfigError(f'flatten order {flatten_order!r}: expected chw or hwc')
  ours, theirs = our_layers(params), torch_layers(state_dict)
  if len(ours) != len(theirs):
    raise _mismatch(ours, theirs, _first_difference(ours, theirs),
                    f'{len(ours)} layers expected, {len(theirs)} found')
  params = _copy(params)
  batch_stats = _copy(batch_stats)
  perm = _pixel_perm(image_shape, flatten_order)
  n_pixels = int(np.prod(image_shape))
  dense = [i for i, layer in enumerate(ours) if layer.kind == 'dense']
  for i, (layer, (prefix, g)) in enumerate(zip(ours, theirs)):
    w = g['weight']
    kind = _torch_kind(g)
    if (kind == 'bn') != (layer.kind == 'bn') or tuple(w.shape) != layer.torch_shape:
      raise _mismatch(ours, theirs, i, f'{prefix or "(root)"} has {kind} {tuple(w.shape)}')
    node = _at(params, layer.path)
    if layer.kind == 'bn':
      node['scale'], node['bias'] = w, g['bias']
      stats = _at(batch_stats, layer.path)
      stats['mean'], stats['var'] = g['running_mean'], g['running_var']
      continue
    bias = g.get('bias', np.zeros(w.shape[0 if layer.kind != 'tconv' else 1], w.dtype))
    if layer.kind == 'dense':
      kernel = w.T  # [in, out]
      if i == dense[0] and kernel.shape[0] == n_pixels:
        kernel = kernel[perm]  # rows in our HWC pixel order
      if i == dense[-1] and kernel.shape[1] == n_pixels:
        kernel, bias = kernel[:, perm], bias[perm]
      if layer.path[-1] == 'logvar':
        kernel, bias = kernel * logvar_scale, bias * logvar_scale
    elif layer.kind == 'conv':
      kernel = w.transpose(2, 3, 1, 0)
      if layer.path[-1] == 'head' and logvar_scale != 1.0:  # [mean L | logvar L]
        half = kernel.shape[-1] // 2
        kernel = np.concatenate([kernel[..., :half], kernel[..., half:] * logvar_scale], -1)
        bias = np.concatenate([bias[:half], bias[half:] * logvar_scale])
    else:
      kernel = w.transpose(2, 3, 0, 1)
    node['kernel'], node['bias'] = kernel.astype(np.float32), np.asarray(bias, np.float32)
  return params, batch_stats


def _copy(tree):
  return {k: _copy(v) if isinstance(v, dict) else np.asarray(v) for k, v in tree.items()}


def _at(tree, path):
  for p in path:
    tree = tree[p]
  return tree


def _torch():
  try:
    import torch
  except ImportError as e:
    raise ConfigError("importing PyTorch weights needs PyTorch: pip install -e '.[torch]' "
                      '(the CPU wheel torch==2.13.0)') from e
  return torch


def is_ldm(config) -> bool:
  """Whether the config builds a latent-diffusion autoencoder (weights matched by name)."""
  return config.model.arch == 'ldm' or config.model.preset in LDM_PRESETS


def load_state_dict(path: str, config=None):
  """The tensors of a PyTorch weights file. For a latent-diffusion autoencoder: a diffusers
  or CompVis state dict, `.safetensors` read without torch (interop_ldm)."""
  if not os.path.exists(path):
    raise ConfigError(f'--torch-checkpoint {path}: no such file')
  if path.endswith('.safetensors') or (config is not None and is_ldm(config)):
    return interop_ldm.read_state_dict(path)
  torch = _torch()
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # noqa: BLE001 - not a checkpoint, or one holding more than tensors
    raise DataError(f'--torch-checkpoint {path} does not load as PyTorch weights '
                    f'({type(e).__name__}); expected a file written by '
                    'torch.save(model.state_dict(), path) (only tensors are read: '
                    'torch.load(weights_only=True))') from e
  for key in ('state_dict', 'model_state_dict', 'model'):
    if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
      obj = obj[key]
  if not isinstance(obj, dict):
    raise ConfigError(f'{path}: expected a state_dict (a dict of tensors); save one with '
                      'torch.save(model.state_dict(), path)')
  return obj


# What weights cannot show: each preset's activations, printed on import.
ACTIVATIONS = {
    'mlp_ae_50': 'ReLU after every Linear including the 128-unit code; sigmoid output',
    'mlp_ae_50_refine': 'ReLU after every Linear including the code and the two extra '
                        'image-size layers; sigmoid output',
    'mlp_vae_50': 'ReLU after the hidden Linears; none on the mean/log-variance heads; '
                  'sigmoid output',
    'fcn_ae_64': 'ReLU after the hidden Linears; none on the 10-unit code; tanh output',
    'conv_ae_small': 'ReLU after conv 1 and 2; NONE after conv 3 (the code); ReLU after '
                     'transposed conv 1 and 2; sigmoid output',
    'conv_ae_bn_mish': 'BatchNorm + Mish after every conv (the code too) and transposed conv; '
                       'tanh output after the final 3x3 conv',
    'conv_vae_bn_mish': 'BatchNorm + Mish after every conv and transposed conv; none on the '
                        '3x3 latent head; tanh output',
}


def import_to_workdir(state_dict, config, workdir: str, flatten_order: str = 'chw',
                      logvar_scale: float | None = None, fresh: bool = False) -> RunSpec:
  """Write `workdir` with the imported weights as its step-0 checkpoint; -> its run spec.
  No data is read: the image shape comes from the config (data.image_size and
  data.channels, or the named dataset's own shape)."""
  config = config_lib.resolve(config)
  shape = shapes.known_shape(config.data)
  if shape is None:
    raise ConfigError(f'importing weights reads no data, so the images the model takes must '
                      f'be in the config: set data.image_size and data.channels (data.name='
                      f'{config.data.name!r} says neither), e.g. --config.data.image_size=64 '
                      '--config.data.channels=3')
  check_owner(workdir, fresh)  # a study's or a tool's folder: refused before the lock
  wd = Workdir(workdir)
  with wd.running():  # not while a run trains there
    if wd.is_trained() and not fresh:
      raise WorkdirError(f'{workdir} already holds a run; import into another --workdir, or '
                         'pass --fresh to move it aside first')
    claim(wd, config, fresh)
    batch = int(config.train.batch_size)
    spec = RunSpec.build(config, ModelRecord.of_shape(shape, batch, batch, config.data.name))
    if spec.num_members != 1:
      raise ConfigError('import into a config without a sweep (one member)')
    if logvar_scale is None:
      logvar_scale = 2.0 if config.model.preset == 'mlp_vae_50' else 1.0
    state = jax.device_get(spec.initial_state())
    one = lambda t: jax.tree_util.tree_map(lambda x: np.asarray(x[0]), t)
    if is_ldm(config):  # matched by name: diffusers' or CompVis' AutoencoderKL
      params, stats = interop_ldm.convert(state_dict, one(state.params)), {}
    else:
      params, stats = convert(state_dict, one(state.params), one(state.batch_stats),
                              spec.image_shape, flatten_order, logvar_scale)
    stack = lambda t: jax.tree_util.tree_map(lambda x: np.asarray(x)[None], t)
    state = state.replace(params=stack(params), batch_stats=stack(stats))
    record_lib.write_run(wd, spec.config, spec.members, spec.record)
    ckpts = checkpoint.Checkpoints(wd.checkpoints, max_to_keep=config.checkpoint.max_to_keep)
    ckpts.save(0, state, list(spec.members), {'epoch': 0, 'step': 0, 'imported': True})
    ckpts.close()
    return spec


def check_against(target: str, state_dict, workdir: str, flatten_order: str = 'chw',
                  seed: int = 0) -> float:
  """Run the user's PyTorch module (`module:Class`, built with no arguments and given
  the state_dict) and the imported model on the same random input; -> max |difference|
  of the reconstructions (AE) or encoder means (VAE), in [0, 1] image units."""
  torch = _torch()
  module_name, _, cls_name = target.partition(':')
  try:
    cls = getattr(importlib.import_module(module_name), cls_name)
  except (ImportError, AttributeError) as e:
    raise ConfigError(f'--check-against {target}: cannot import it ({e}); give '
                      'module.path:ClassName importable from here') from e
  net = cls()
  net.load_state_dict(state_dict)
  net.eval()
  m = load(workdir)
  h, w, c = m.image_shape
  x = np.random.default_rng(seed).random((4, h, w, c), dtype=np.float32)  # [0, 1] images
  tanh = m.model.output_activation == 'tanh'
  xt = 2 * x - 1 if tanh else x
  nchw = np.ascontiguousarray(xt.transpose(0, 3, 1, 2))
  is_mlp = 'dense' in str(list(m.params['encoder']))
  inp = torch.from_numpy(nchw.reshape(4, -1) if is_mlp and flatten_order == 'chw' else
                         xt.reshape(4, -1) if is_mlp else nchw)
  with torch.no_grad():
    if m.kind == 'vae':
      theirs = net.encode(inp)[0].numpy()
      ours, _ = m.encode(x)
      if ours.ndim == 4:
        ours = ours.transpose(0, 3, 1, 2)
    else:
      theirs = net(inp).numpy().reshape(4, -1) if is_mlp else net(inp).numpy()
      theirs = (theirs + 1) / 2 if tanh else theirs
      ours = m.reconstruct(x)
      ours = (ours.transpose(0, 3, 1, 2) if not is_mlp else
              (ours.transpose(0, 3, 1, 2) if flatten_order == 'chw' else ours)).reshape(
                  theirs.shape)
  return float(np.max(np.abs(np.asarray(ours).reshape(theirs.shape) - theirs)))


def main(argv=None, prog='python -m ae_jax.interop'):
  p = cli.parser(prog, __doc__, f'{prog} --torch-checkpoint weights.pt --config conv_ae_small '
                 '--workdir runs/imported')
  p.add_argument('--torch-checkpoint', required=True)
  p.add_argument('--config', required=True, help='a config file, or a shipped config\'s name')
  p.add_argument('--workdir', required=True)
  p.add_argument('--flatten-order', default='chw', choices=('chw', 'hwc'),
                 help='how the PyTorch code flattened images for its first Linear layer')
  p.add_argument('--logvar-scale', type=float, default=None,
                 help='multiply the log-variance head (2 for a log-sigma head; default: 2 for '
                      'mlp_vae_50, else 1)')
  p.add_argument('--check-against', metavar='MODULE:CLASS', default=None,
                 help='your PyTorch model class (importable, built with no arguments): run it '
                      'and the imported model on random input and report the difference')
  p.add_argument('--fresh', action='store_true', help='move an existing --workdir aside first')
  args, overrides = cli.parse(p, argv)

  def body():
    config = config_lib.load(args.config, overrides)
    state_dict = load_state_dict(args.torch_checkpoint, config)
    spec = import_to_workdir(state_dict, config, args.workdir, args.flatten_order,
                             args.logvar_scale, args.fresh)
    print(f'imported {args.torch_checkpoint} into {args.workdir} (checkpoint at step 0)')
    preset = spec.config.model.preset
    if preset in ACTIVATIONS:
      print(f'activations of {preset} (weights cannot show them; your model must match): '
            f'{ACTIVATIONS[preset]}')
    if args.check_against:
      diff = check_against(args.check_against, state_dict, args.workdir, args.flatten_order)
      verdict = 'match' if diff <= 1e-4 else 'DIFFER: check the activations above'
      print(f'check against {args.check_against}: max |difference| {diff:.3g} on random '
            f'input ({verdict})')
      if diff > 1e-4:
        sys.exit(1)

  cli.run(body, args.workdir)


if __name__ == '__main__':
  main()
