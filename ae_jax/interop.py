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

import os
import sys
from typing import NamedTuple

import numpy as np

from ae_jax.errors import ConfigError


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
    raise _mismatch(ours, theirs, min(len(ours), len(theirs)),
                    f'{len(ours)} layers expected, {len(theirs)} found')
  params = _copy(params)
  batch_stats = _copy(batch_stats)
  perm = _pixel_perm(image_shape, flatten_order)
  n_pixels = int(np.prod(image_shape))
  dense = [i for i, l in enumerate(ours) if l.kind == 'dense']
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


def load_state_dict(path: str):
  import torch
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: no such file')
  obj = torch.load(path, map_location='cpu', weights_only=True)
  for key in ('state_dict', 'model_state_dict', 'model'):
    if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
      obj = obj[key]
  if not isinstance(obj, dict):
    raise ConfigError(f'{path}: expected a state_dict (a dict of tensors); save one with '
                      'torch.save(model.state_dict(), path)')
  return obj


def import_to_workdir(state_dict, config, workdir: str, flatten_order: str = 'chw',
                      logvar_scale: float | None = None) -> str:
  """Write `workdir` with the imported weights as its epoch-0 checkpoint."""
  import jax
  from ae_jax import checkpoint, workdir as wd
  from ae_jax.train import Setup
  setup = Setup(config)
  if len(setup.members) != 1:
    raise ConfigError('import into a config without a sweep (one member)')
  if logvar_scale is None:
    logvar_scale = 2.0 if config.model.preset == 'mlp_vae_50' else 1.0
  state = jax.device_get(setup.fns.stack(setup.init_state()))
  one = lambda t: jax.tree_util.tree_map(lambda x: np.asarray(x[0]), t)
  params, stats = convert(state_dict, one(state.params), one(state.batch_stats),
                          setup.image_shape, flatten_order, logvar_scale)
  stack = lambda t: jax.tree_util.tree_map(lambda x: np.asarray(x)[None], t)
  state = state.replace(params=stack(params), batch_stats=stack(stats))
  os.makedirs(os.path.join(workdir, 'figures'), exist_ok=True)
  wd.write_json(os.path.join(workdir, 'config.json'), wd.config_to_dict(config))
  wd.write_json(os.path.join(workdir, 'members.json'), setup.members)
  ckpts = checkpoint.Checkpoints(workdir, config.checkpoint.max_to_keep)
  ckpts.save(0, state, setup.members)
  ckpts.close()
  return workdir


def main(argv=None):
  import argparse
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--torch-checkpoint', required=True)
  p.add_argument('--config', required=True)
  p.add_argument('--workdir', required=True)
  p.add_argument('--flatten-order', default='chw', choices=('chw', 'hwc'),
                 help='how the PyTorch code flattened images for its first Linear layer')
  p.add_argument('--logvar-scale', type=float, default=None,
                 help='multiply the log-variance head (2 for a log-sigma head; default: 2 for '
                      'mlp_vae_50, else 1)')
  args, overrides = p.parse_known_args(argv)
  from ae_jax.main import load_config_with_overrides
  try:
    config = load_config_with_overrides(args.config, overrides)
    out = import_to_workdir(load_state_dict(args.torch_checkpoint), config, args.workdir,
                            args.flatten_order, args.logvar_scale)
  except (ConfigError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(f'imported {args.torch_checkpoint} into {out} (checkpoint at epoch 0)')


if __name__ == '__main__':
  main()
