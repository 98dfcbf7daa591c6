"""Every measurement we want from an accelerator, in one command of at most 8 minutes.

  python experiments/accelerator_check.py                 # on a GPU/TPU machine
  python experiments/accelerator_check.py --tiny          # the same code on a CPU, in seconds

Writes docs/benchmarks/<date>-<backend>-accelerator_check.json (or --out), the file
docs/performance.md is generated from (python -m ae_jax.docs). Measured, each with
`ae_jax.bench.measure` (synthetic images, the compiled training step, median of timed
steps after warm-up):

1. every preset's training step in float32 and bfloat16: images per second and the
   fraction of the device's measured matmul peak (of that dtype) the step reaches;
2. a 16-member vmapped beta sweep against one member (vae_beta's conv VAE): images per
   second of all members together, and the ratio;
3. the conv AE (conv_ae_bn_mish) at 256x256, batch 64;
4. data-parallel scaling over the devices present (mesh.data = 1, 2, ... devices);
5. the latent-diffusion recipe's step: kl_f8 at 256x256, batch 4, L1 + LPIPS-VGG + the
   PatchGAN discriminator, forward and backward (needs the lpips extra).

--tiny runs the same code at toy sizes in seconds on a CPU (the test suite does): mlp_ae_50
and conv_ae_small at 8 and 10 px, bfloat16 for the first only, batches of 1-4, one timed
step after one warm-up, a 2-member sweep and the conv models at toy widths, kl_f4_small at
24 px for the recipe without its LPIPS term, all compiled with XLA's optimisations off (toy
sizes measure the code paths, not the speed). Its file says so in its title.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time


def _overrides(preset, size, batch, dtype, extra=()):
  from ae_jax.models import PRESETS
  kind = PRESETS[preset][0] if preset else 'vae'
  return [f'--config.model.preset={preset}', f'--config.model.kind={kind}',
          '--config.model.latent_dim=0', f'--config.data.image_size={size}',
          '--config.data.channels=3', f'--config.train.batch_size={batch}',
          f'--config.dtype={dtype}', '--config.figures.enabled=False',
          "--config.eval.metrics=('loss',)", *extra]


# preset -> the image size it is measured at (its reports' size, or the LDM's 256)
PRESET_SIZES = {'mlp_ae_50': 50, 'mlp_ae_50_refine': 50, 'mlp_vae_50': 50, 'fcn_ae_64': 64,
                'conv_ae_small': 26, 'conv_ae_bn_mish': 64, 'conv_vae_bn_mish': 64,
                'kl_f8': 256, 'kl_f4': 256, 'kl_f4_small': 64, 'kl_f8_small': 64}
# --tiny: an MLP and a conv preset at toy sizes, the same code paths (the LDM family runs in
# the recipe, step 5)
TINY_PRESET_SIZES = {'mlp_ae_50': 8, 'conv_ae_small': 10}
# --tiny: the conv sweep and the data-parallel model at toy widths
TINY_CONV = ['--config.model.conv.channels=(4,8)', '--config.data.image_size=10']


def plan(tiny: bool) -> dict:
  """What is measured: the presets and sizes, batches, steps and the sweep's size."""
  if tiny:
    return {'presets': TINY_PRESET_SIZES, 'batch': 2, 'ldm_batch': 2, 'steps': (1, 1),
            'peak_n': 128, 'members': 2, 'conv': TINY_CONV, 'per_device': 2,
            'large': ('conv_ae_small', 10, 2),
            'recipe': ('kl_f4_small', 24, 1)}
  return {'presets': PRESET_SIZES, 'batch': 64, 'ldm_batch': 8, 'steps': (10, 2),
          'peak_n': 8192, 'members': 16, 'conv': [], 'per_device': 64,
          'large': ('conv_ae_bn_mish', 256, 64), 'recipe': ('kl_f8', 256, 4)}


def run(tiny: bool, out: str | None, budget_s: float) -> str:
  import jax
  import jax.numpy as jnp

  from ae_jax import bench, config_lib
  from ae_jax.metrics import registry
  if out:
    bench.check_record_path(out, '--out')  # an earlier benchmark file only, before any work
  start = time.perf_counter()
  if tiny:  # toy sizes measure the code paths, not the speed: compile for that
    jax.config.update('jax_disable_most_optimizations', True)
  p = plan(tiny)
  steps, warmup = p['steps']
  results, skipped = [], []
  peaks = {dt: bench.matmul_peak_gflops(p['peak_n'], getattr(jnp, dt))
           for dt in ('float32', 'bfloat16')}

  def measure(name, spec, overrides, **extra):
    if time.perf_counter() - start > budget_s:
      skipped.append(name)
      return None
    dtype = next((o.split('=')[1] for o in overrides if o.startswith('--config.dtype=')),
                 'float32')
    cfg = config_lib.load(spec, overrides)
    result = bench.measure(cfg, steps, warmup, synthetic=True, peak_gflops=peaks[dtype])
    result.update(name=name, **extra)
    results.append(result)
    print(json.dumps(result), flush=True)
    return result

  # 1. every preset in float32 and bfloat16 (--tiny: bfloat16 for the first only, the same path)
  for i, (preset, size) in enumerate(p['presets'].items()):
    batch = p['ldm_batch'] if preset in ('kl_f8', 'kl_f4') else p['batch']
    for dtype in ('float32', 'bfloat16') if not tiny or i == 0 else ('float32',):
      measure(f'{preset} {dtype}', 'base', _overrides(preset, size, batch, dtype))
  # 2. a 16-member beta sweep against one member
  members = p['members']
  small = ['--config.train.batch_size=4', *p['conv']] if tiny else []
  one = measure('vae_beta, 1 member', 'vae_beta', ['--config.sweep.beta=(1.0,)',
                                                    '--config.figures.enabled=False', *small])
  many = measure(f'vae_beta, {members} members', 'vae_beta',
                 [f'--config.sweep.beta={tuple(float(b) for b in range(members))}',
                  '--config.figures.enabled=False', *small])
  if one and many:
    many['ratio_to'] = one['name']
    many['speedup'] = round(many['images_per_sec'] / one['images_per_sec'], 2)
  # 3. the conv AE at 256x256, batch 64 (--tiny: the same code on the small conv AE)
  preset, size, batch = p['large']
  measure(f'{preset} {size}x{size} batch {batch}', 'base',
          _overrides(preset, size, batch, 'float32'))
  # 4. data-parallel scaling over the devices present
  first = None
  for n in range(1, jax.device_count() + 1):
    if jax.device_count() % n:
      continue
    r = measure(f'data parallel over {n} device(s)', 'vae_conv',
                [f'--config.mesh.data={n}', f'--config.train.batch_size={p["per_device"] * n}',
                 '--config.figures.enabled=False', *p['conv']])
    if r and first is None:
      first = r
    elif r:
      r['ratio_to'], r['speedup'] = first['name'], round(
          r['images_per_sec'] / first['images_per_sec'], 2)
  # 5. the latent-diffusion recipe's step (--tiny: without its LPIPS term, whose VGG alone
  # compiles for half a minute on a CPU; tests/test_lpips_training.py trains through it)
  lpips = not tiny
  if tiny or registry.get('lpips_vgg').available():
    preset, size, batch = p['recipe']
    measure(f'{preset} {size}x{size} batch {batch}: L1 {"+ LPIPS " if lpips else ""}+ PatchGAN',
            'base', _overrides(preset, size, batch, 'float32', (
                '--config.loss.reconstruction=l1', '--config.loss.reduction=mean',
                f'--config.loss.lpips_weight={1.0 if lpips else 0.0}',
                '--config.loss.beta=1e-6', '--config.loss.gan_weight=0.5',
                '--config.loss.gan_start_step=0', '--config.train.num_epochs=100')))
  else:
    skipped.append('the latent-diffusion recipe (pip install ae_jax[lpips])')
  title = 'accelerator check' + (' (--tiny: toy sizes on a CPU, not the real check)'
                                 if tiny else '')
  command = 'python experiments/accelerator_check.py' + (' --tiny' if tiny else '')
  rec = bench.record(results, command, title)
  rec['matmul_peak_gflops'] = {k: round(v, 1) for k, v in peaks.items()}
  rec['seconds'] = round(time.perf_counter() - start, 1)
  if skipped:
    rec['skipped'] = skipped  # past the time budget, or a missing extra
  path = out or os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs', 'benchmarks',
      f'{datetime.date.today().isoformat()}-{jax.default_backend()}-accelerator_check'
      f'{"-tiny" if tiny else ""}.json')
  bench.write_record(rec, path, '--out')
  print(f'wrote {path} ({rec["seconds"]} s)')
  return path


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--tiny', action='store_true', help='small sizes: the same code on a CPU')
  p.add_argument('--out', default=None, help='the benchmark file (default: docs/benchmarks/)')
  p.add_argument('--budget', type=float, default=420.0,
                 help='seconds after which the remaining measurements are skipped (named in '
                      'the file): the check fits 8 minutes')
  args = p.parse_args(argv)
  if args.tiny and 'jax' not in sys.modules:  # compile faster; set before XLA starts
    flags = os.environ.get('XLA_FLAGS', '')
    if '--xla_cpu_use_fusion_emitters' not in flags:
      os.environ['XLA_FLAGS'] = f'{flags} --xla_cpu_use_fusion_emitters=false'.strip()
  from ae_jax import cli
  cli.run(lambda: run(args.tiny, args.out, args.budget))


if __name__ == '__main__':
  sys.exit(main())
