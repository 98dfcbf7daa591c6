"""Each convolution of conv_ae_small alone, forward + backward, in ae_jax and in PyTorch.

  python experiments/conv_layers_vs_torch.py [--size 26] [--batch 64] [--steps 30]

Where a preset's step is slower than PyTorch's, this says which layer costs it: every
convolution of `conv_ae_small` at the shapes of --size (26: the wafer maps; 66: the size
experiments/compare_torch.py uses), gradient of sum(y^2) with respect to input and
kernel, median of --steps timed calls, in one run. ae_jax runs each layer with XLA's
convolution and with the canonical one (models/canonical.py); a transposed layer both as
one stride-1 convolution per output phase and as the sub-pixel form (one convolution of
s*s*Cout channels, what `ConvTranspose` runs for <= 4 output channels), compiled as the
training step of `conv_ae_small` is (`model.conv.ynnpack='auto'`: no YNNPACK fusions on
CPU for a model this narrow). The ratio is that of the form the preset runs (canonical;
sub-pixel for its last layer). Needs torch==2.13.0.
"""
import argparse
import os
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



def conv_ae_small_layers(size):
  """(name, input size, in, out, kernel, stride, padding, output padding or None)."""
  a = (size - 1) // 2 + 1  # 3x3 stride 2 padding 1
  b = (a - 1) // 2 + 1
  return [('enc 3->16 3x3 s2', size, 3, 16, 3, 2, 1, None),
          ('enc 16->32 3x3 s2', a, 16, 32, 3, 2, 1, None),
          ('enc 32->64 5x5 s1', b, 32, 64, 5, 1, 2, None),
          ('dec T 64->32 5x5 s1', b, 64, 32, 5, 1, 2, 0),
          ('dec T 32->16 3x3 s2', b, 32, 16, 3, 2, 1, 1),
          ('dec T 16->3 3x3 s2', 2 * b, 16, 3, 3, 2, 2, 1)]


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
  parser.add_argument('--size', type=int, default=26)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--steps', type=int, default=30)
  args = parser.parse_args()
  import jax
  import jax.numpy as jnp
  import torch
  from ae_jax import cpu_policy
  from ae_jax.models import canonical, layers
  options = cpu_policy.compiler_options(cpu_policy.choose_ynnpack(
      'auto', jax.default_backend() == 'cpu', widest=64))
  torch.set_num_threads(os.cpu_count())
  print('| layer | ae_jax XLA ms | ae_jax canonical ms | ae_jax canonical sub-pixel ms '
        '| PyTorch ms | ae_jax (as run) / PyTorch time |')
  print('|---|---|---|---|---|---|')
  for name, size, cin, cout, k, s, p, op in conv_ae_small_layers(args.size):
    x = jax.random.normal(jax.random.PRNGKey(0), (args.batch, size, size, cin))
    w = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (k, k, cin, cout))
    ms = {}
    forms = [('xla', None, layers.conv_transpose_phases),
             ('canonical', canonical.conv_general_dilated, layers.conv_transpose_phases)]
    if op is not None and s > 1:
      forms.append(('subpixel', canonical.conv_general_dilated, layers.conv_transpose_subpixel))
    for impl, conv, form in forms:
      if op is None:
        f = (lambda x, w, conv=conv: (conv or jax.lax.conv_general_dilated)(
            x, w, (s, s), ((p, p), (p, p)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
      else:
        f = lambda x, w, conv=conv, form=form: form(x, w, s, p, op, conv=conv)
      grad = jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(f(x, w) ** 2), (0, 1)),
                     compiler_options=options)
      ms[impl] = median_ms(lambda: jax.block_until_ready(grad(x, w)), args.steps)
    xt = torch.randn(args.batch, cin, size, size, requires_grad=True)
    m = (torch.nn.Conv2d(cin, cout, k, s, p) if op is None else
         torch.nn.ConvTranspose2d(cin, cout, k, s, p, op))

    def torch_step():
      xt.grad = None
      m.zero_grad()
      (m(xt) ** 2).sum().backward()
    ms['torch'] = median_ms(torch_step, args.steps)
    sub = f'{ms["subpixel"]:.2f}' if 'subpixel' in ms else '–'
    # the form conv_ae_small runs (model.conv.impl='auto' on CPU, upsample='phases')
    shipped = ms['subpixel'] if (op is not None and layers.transpose_form(
        'phases', cout, s) == 'subpixel') else ms['canonical']
    print(f'| {name} | {ms["xla"]:.2f} | {ms["canonical"]:.2f} | {sub} | {ms["torch"]:.2f} '
          f'| {shipped / ms["torch"]:.2f}× |')


if __name__ == '__main__':
  main()
