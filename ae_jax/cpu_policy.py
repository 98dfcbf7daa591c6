"""How a program runs on the backend it finds: the training loop (a compiled lax.scan per
chunk, or one compiled step at a time), how members share a program (vmapped or unrolled)
and XLA:CPU's YNNPACK fusions. Each choice is a measured answer to a CPU-specific cost
(docs/performance.md); on GPU/TPU 'auto' is XLA's default everywhere."""
from __future__ import annotations

from typing import NamedTuple

import jax

from ae_jax.models import AutoEncoder, abstract_variables


class Policy(NamedTuple):
  loop: str       # 'scan' (chunks of many steps) or 'python' (one step per chunk)
  vectorize: str  # how members share the program: 'vmap' or 'unroll'
  ynnpack: str    # XLA:CPU's YNNPACK fusions in the training chunks: 'on' or 'off'

  def compiler_options(self) -> dict | None:
    """jax.jit compiler options for a training chunk (None: XLA's defaults)."""
    return compiler_options(self.ynnpack) if jax.default_backend() == 'cpu' else None


def widest_conv(model: AutoEncoder, image_shape) -> int:
  """The most output channels of any convolution kernel in `model` (0: no convolution)."""
  paths = jax.tree_util.tree_flatten_with_path(abstract_variables(model, image_shape))[0]
  return max((leaf.shape[-1] for path, leaf in paths
              if 'conv' in jax.tree_util.keystr(path) and leaf.ndim == 4), default=0)


YNNPACK_OFF_MAX_CHANNELS = 128  # 'auto': no YNNPACK fusions for conv models up to this width


def choose_ynnpack(setting: str, on_cpu: bool, widest: int, num_members: int = 1) -> str:
  """model.conv.ynnpack: 'auto' -> 'off' on CPU for a single conv model whose widest
  convolution has <= 128 channels, else 'on' (XLA's default). Measured with `python -m
  ae_jax.bench` (docs/performance.md): without YNNPACK fusions the training step of
  conv_ae_small ran 1.32-1.51x faster, ae_photos 1.21-1.55x, vae_conv 1.07-1.35x; but
  conv_vae_bn_mish (1024 channels) 0.61-0.69x, and vae_beta (vae_conv's layers, 4 members
  unrolled in one program) 0.89-0.93x."""
  if setting != 'auto':
    return setting
  small = 0 < widest <= YNNPACK_OFF_MAX_CHANNELS
  return 'off' if on_cpu and small and num_members == 1 else 'on'


def compiler_options(ynnpack: str) -> dict | None:
  """jax.jit compiler options for a training chunk on CPU (None: XLA's defaults)."""
  return {'xla_cpu_experimental_ynn_fusion_type': ''} if ynnpack == 'off' else None


def choose_vectorize(strategy: str, conv_on_cpu: bool) -> str:
  """'auto' -> 'unroll' for conv models on CPU, else 'vmap'."""
  if strategy != 'auto':
    return strategy
  return 'unroll' if conv_on_cpu else 'vmap'


def choose_loop(loop: str, slow_conv_in_scan: bool) -> str:
  """'auto' -> 'scan' unless XLA's own convolutions would run inside a loop body on CPU.

  XLA:CPU keeps its fast convolution path inside while-loop bodies only for canonical
  (NHWC/HWIO) convolutions; XLA's own gradients there are not canonical (a conv VAE step:
  2230 ms inside lax.scan against 142 ms alone). The canonical convolutions of
  models/canonical.py (model.conv.impl='auto' on CPU) fix that, so the scan is used; with
  model.conv.impl='xla' on CPU a per-step loop of one compiled step is faster.
  """
  if loop != 'auto':
    return loop
  return 'python' if slow_conv_in_scan else 'scan'


def choose(model: AutoEncoder, image_shape, num_members: int, loop: str = 'auto',
           vectorize: str = 'auto', ynnpack: str = 'auto') -> Policy:
  """The policy for `model` on this backend, from the settings train.loop,
  sweep.vectorize and model.conv.ynnpack ('auto' or a choice)."""
  on_cpu = jax.default_backend() == 'cpu'
  widest = widest_conv(model, image_shape)
  conv_on_cpu = on_cpu and widest > 0
  canonical = getattr(model.encoder, 'conv_impl', 'xla') == 'canonical'
  return Policy(loop=choose_loop(loop, conv_on_cpu and not canonical),
                vectorize=choose_vectorize(vectorize, conv_on_cpu),
                ynnpack=choose_ynnpack(ynnpack, on_cpu, widest, num_members))
