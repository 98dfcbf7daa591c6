"""Each convolution of conv_ae_small alone, forward + backward, in ae_jax and in PyTorch.

  python experiments/conv_layers_vs_torch.py [--batch 64] [--steps 30]

Where a preset's step is slower than PyTorch's, this says which layer costs it: every
convolution of `conv_ae_small` at its 26x26 wafer-map shapes (the transposed ones as
ae_jax runs them: one stride-1 convolution per output phase), gradient of sum(y^2) with
respect to input and kernel, median of --steps timed calls, in one run. ae_jax runs each
layer with XLA's convolution and with the canonical one (models/canonical.py); the
ratio uses the faster. Needs torch==2.13.0.
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# name, input size, in, out, kernel, stride, padding, output padding (None: not transposed)
LAYERS = [('enc 3->16 3x3 s2', 26, 3, 16, 3, 2, 1, None),
          ('enc 16->32 3x3 s2', 13, 16, 32, 3, 2, 1, None),
          ('enc 32->64 5x5 s1', 7, 32, 64, 5, 1, 2, None),
          ('dec T 64->32 5x5 s1', 7, 64, 32, 5, 1, 2, 0),
          ('dec T 32->16 3x3 s2', 7, 32, 16, 3, 2, 1, 1),
          ('dec T 16->3 3x3 s2', 14, 16, 3, 3, 2, 2, 1)]


def median_ms(fn, steps):
  fn()
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return 1e3 * float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--steps', type=int, default=30)
  args = parser.parse_args()
  import jax
  import jax.numpy as jnp
  import torch
  from ae_jax.models import canonical, layers
  torch.set_num_threads(os.cpu_count())
  print('| layer | ae_jax XLA ms | ae_jax canonical ms | PyTorch ms | ae_jax / PyTorch time |')
  print('|---|---|---|---|---|')
  for name, size, cin, cout, k, s, p, op in LAYERS:
    x = jax.random.normal(jax.random.PRNGKey(0), (args.batch, size, size, cin))
    w = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (k, k, cin, cout))
    ms = {}
    for impl, conv in (('xla', None), ('canonical', canonical.conv_general_dilated)):
      if op is None:
        f = (lambda x, w, conv=conv: (conv or jax.lax.conv_general_dilated)(
            x, w, (s, s), ((p, p), (p, p)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
      else:
        f = lambda x, w, conv=conv: layers.conv_transpose_phases(x, w, s, p, op, conv=conv)
      grad = jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(f(x, w) ** 2), (0, 1)))
      ms[impl] = median_ms(lambda: jax.block_until_ready(grad(x, w)), args.steps)
    xt = torch.randn(args.batch, cin, size, size, requires_grad=True)
    m = (torch.nn.Conv2d(cin, cout, k, s, p) if op is None else
         torch.nn.ConvTranspose2d(cin, cout, k, s, p, op))

    def torch_step():
      xt.grad = None
      m.zero_grad()
      (m(xt) ** 2).sum().backward()
    ms['torch'] = median_ms(torch_step, args.steps)
    print(f'| {name} | {ms["xla"]:.2f} | {ms["canonical"]:.2f} | {ms["torch"]:.2f} '
          f'| {min(ms["xla"], ms["canonical"]) / ms["torch"]:.2f}× |')


if __name__ == '__main__':
  main()
