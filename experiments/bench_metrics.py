"""What the expensive metrics cost: LPIPS-VGG images per second at 64x64 and 256x256, and
the IWAE likelihood estimate with K samples on a trained workdir's test split.

  python experiments/bench_metrics.py [--workdir runs/vae_beta] [--iwae-samples 1000]

Prints one JSON line per measurement with its peak resident memory (the process's
maximum so far). The workdir is the default run (python -m ae_jax.main --config
configs/vae_beta.py --workdir runs/vae_beta); skip the IWAE part with --iwae-samples 0.
"""
import argparse
import json
import os
import resource
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_mb() -> float:
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def lpips_rate(size: int, num: int, batch: int = 16) -> dict:
  from ae_jax.metrics import lpips
  ev = lpips.Evaluator('vgg', batch_size=batch)
  rng = np.random.default_rng(0)
  a = rng.random((num, size, size, 3), dtype=np.float32)
  b = rng.random((num, size, size, 3), dtype=np.float32)
  ev(a[:batch], b[:batch])  # compile
  t0 = time.perf_counter()
  ev(a, b)
  s = time.perf_counter() - t0
  return {'metric': 'lpips_vgg', 'image': f'{size}x{size}x3', 'pairs': num,
          'pairs_per_sec': round(num / s, 1), 'peak_rss_mb': peak_mb()}


def iwae_cost(workdir: str, samples: int) -> dict:
  from ae_jax import config_lib
  from ae_jax.evaluate import evaluate_workdir
  from ae_jax.workdir import Workdir
  config = Workdir(workdir).read_config()
  config_lib.set_value(config, 'eval.iwae_samples', samples)
  t0 = time.perf_counter()
  result = evaluate_workdir(workdir, ['nll_iwae', 'bits_per_dim_iwae', 'neg_elbo'], config)
  s = time.perf_counter() - t0
  return {'metric': 'nll_iwae', 'workdir': workdir, 'samples': samples, 'seconds': round(s, 1),
          'peak_rss_mb': peak_mb(), 'result': result.get('members', result)}


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--workdir', default='runs/vae_beta')
  p.add_argument('--iwae-samples', type=int, default=1000)
  args = p.parse_args()
  print(json.dumps(lpips_rate(64, 128)), flush=True)
  print(json.dumps(lpips_rate(256, 32)), flush=True)
  if args.iwae_samples:
    print(json.dumps(iwae_cost(args.workdir, args.iwae_samples), default=str), flush=True)


if __name__ == '__main__':
  main()
