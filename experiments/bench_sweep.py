"""Benchmark: a K-member beta sweep as one program vs K separate runs.

  python experiments/bench_sweep.py [--members 8] [--epochs 30] [--config configs/vae_mlp.py]

Times, in one process on one machine: (a) the sweep as one vmapped program, (b) K
sequential in-process runs (train_and_evaluate, one beta each), (c) K separate CLI runs
(`python -m ae_jax.main`, what a user would otherwise script). Each includes start-up,
compilation, training, evaluation and checkpoints; figures are off everywhere. Prints
one JSON line with the wall times and the ratios b/a and c/a.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(path):
  spec = importlib.util.spec_from_file_location('bench_cfg', os.path.join(ROOT, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--config', default='configs/vae_mlp.py')
  p.add_argument('--members', type=int, default=8)
  p.add_argument('--epochs', type=int, default=30)
  args = p.parse_args()
  import jax
  from ae_jax import config_lib
  from ae_jax.train import train_and_evaluate

  betas = tuple(float(b) for b in [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 100.0, 16.0, 32.0,
                                   64.0, 0.1, 0.2, 3.0, 6.0, 12.0][:args.members])
  common = {'train.num_epochs': args.epochs, 'train.eval_every': args.epochs,
            'checkpoint.every_epochs': args.epochs, 'figures.enabled': False,
            'progress': False}

  def config(**extra):
    cfg = load_config(args.config)
    for k, v in {**common, **extra}.items():
      config_lib.set_value(cfg, k, v)
    return cfg

  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    train_and_evaluate(config(**{'sweep.beta': betas}), os.path.join(tmp, 'sweep'))
    sweep_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i, b in enumerate(betas):
      train_and_evaluate(config(**{'loss.beta': b}), os.path.join(tmp, f'seq{i}'))
    sequential_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i, b in enumerate(betas):
      cmd = [sys.executable, '-m', 'ae_jax.main', '--config', args.config,
             '--workdir', os.path.join(tmp, f'cli{i}'), f'--config.loss.beta={b}']
      cmd += [f'--config.{k}={v}' for k, v in common.items()]
      subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    cli_s = time.perf_counter() - t0

  print(json.dumps({
      'config': args.config, 'members': len(betas), 'epochs': args.epochs,
      'device': str(jax.devices()[0]), 'sweep_s': round(sweep_s, 2),
      'sequential_in_process_s': round(sequential_s, 2), 'separate_cli_runs_s': round(cli_s, 2),
      'speedup_vs_sequential': round(sequential_s / sweep_s, 2),
      'speedup_vs_cli_runs': round(cli_s / sweep_s, 2)}))


if __name__ == '__main__':
  main()
