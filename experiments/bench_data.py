"""Benchmark: training throughput with streamed data as a ratio to device-resident data.

  python experiments/bench_data.py [--epochs 12]

For each workload, trains the same config twice in one process, once with
data.tier='device' (the whole training split on the device) and once with
data.tier='stream' (batches read from a memory-mapped .npy file by a prefetch
thread), and compares steady-state images/s (epochs after the first). The .npy file
is written to a temporary folder from the embedded dataset, so the streamed run reads
from disk as a user's file would be read.
"""
import argparse
import json
import os
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKLOADS = {
    # name: (config module, data overrides). Epochs long enough (~0.1 s or more) that
    # the ratio is not lost in the noise of two shared CPU cores.
    'mlp_vae_photos32': ('vae_mlp', {'name': 'photos', 'image_size': 32, 'num_examples': 4000}),
    'conv_vae_wafer26': ('vae_conv', {}),
}


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--epochs', type=int, default=12)
  args = p.parse_args()
  import importlib
  import jax
  import numpy as np
  from ae_jax import data
  from ae_jax.train import train_and_evaluate
  for name, (module, overrides) in WORKLOADS.items():
    base = importlib.import_module(f'configs.{module}').get_config()
    for k, v in overrides.items():
      base.data[k] = v
    ds = data.load(base.data)
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'images.npy')
      images = np.concatenate([ds.train['image'], ds.test['image']])
      np.save(path, (images * 255).round().astype(np.uint8))  # as users store images
      result = {'workload': name, 'device': str(jax.devices()[0])}
      for tier in ('device', 'stream'):
        cfg = importlib.import_module(f'configs.{module}').get_config()
        cfg.data.name, cfg.data.path, cfg.data.tier = 'npy', path, tier
        cfg.data.image_size, cfg.data.channels = 0, 0
        cfg.train.num_epochs = args.epochs
        cfg.train.eval_every = args.epochs
        cfg.checkpoint.every_epochs = args.epochs
        cfg.figures.enabled, cfg.progress = False, False
        s = train_and_evaluate(cfg, os.path.join(tmp, tier))
        result[f'{tier}_images_per_sec'] = round(s['images_per_sec'], 1)
      result['stream_over_device'] = round(result['stream_images_per_sec']
                                           / result['device_images_per_sec'], 3)
      print(json.dumps(result), flush=True)


if __name__ == '__main__':
  main()
