"""Side by side: each preset's training step in ae_jax and in PyTorch, timed in one run.

  python experiments/compare_torch.py [--steps 10] [--presets mlp_ae_50,conv_ae_bn_mish]

Same architecture, batch, optimizer (Adam) and loss (MSE, plus the KL for VAEs),
float32 on this machine's CPU threads. PyTorch: model.train(), zero_grad/backward/step,
median of --steps steps after 2 warm-up steps. ae_jax: `ae_jax.bench.measure` on
synthetic data of the same shape. Prints one JSON line per preset and a Markdown
table with the ratio ae_jax / PyTorch images per second. Needs torch==2.13.0.
"""
import argparse
import json
import os
import statistics
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# preset -> (image size, batch, latent): the comparison settings
SETTINGS = {
    'mlp_ae_50': (50, 20, 128),
    'mlp_vae_50': (50, 20, 256),
    'fcn_ae_64': (64, 20, 10),
    'conv_ae_small': (66, 16, 64),  # needs size = 2 mod 4: 66 is the nearest to 64
    'conv_ae_bn_mish': (64, 16, 1024),
    'conv_vae_bn_mish': (64, 16, 128),
}


def torch_step_time(preset, size, batch, latent, steps):
  import torch
  from ae_jax import torch_models
  torch.manual_seed(0)
  model = torch_models.build(preset, (size, size, 3), latent)
  model.train()
  opt = torch.optim.Adam(model.parameters(), lr=1e-4)
  x = torch.rand(batch, 3, size, size)
  if torch_models.uses_tanh(preset):
    x = x * 2 - 1
  times = []
  for i in range(2 + steps):
    t0 = time.perf_counter()
    out = model(x)
    if isinstance(out, tuple):
      recon, mu, v = out
      logvar = 2 * v if preset == 'mlp_vae_50' else v
      loss = torch.nn.functional.mse_loss(recon, x) + 1e-3 * torch.mean(
          -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()))
    else:
      loss = torch.nn.functional.mse_loss(out, x)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if i >= 2:
      times.append(time.perf_counter() - t0)
  return statistics.median(times)


def jax_result(preset, size, batch, latent, steps, peak=None):
  from ae_jax.configs import base
  from ae_jax.bench import measure
  from ae_jax.models import PRESETS
  cfg = base.get_config()
  cfg.model.preset, cfg.model.kind, cfg.model.latent_dim = preset, PRESETS[preset][0], latent
  cfg.data.image_size, cfg.data.channels = size, 3
  cfg.train.batch_size, cfg.train.learning_rate = batch, 1e-4
  cfg.loss.reduction, cfg.loss.beta = 'mean', 1e-3 / latent
  return measure(cfg, steps, 2, synthetic=True, peak_gflops=peak)


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--presets', default=','.join(SETTINGS))
  args = p.parse_args()
  import torch
  from ae_jax.bench import matmul_peak_gflops
  peak = matmul_peak_gflops()
  print(json.dumps({'matmul_peak_gflops': round(peak, 1)}), flush=True)
  rows = []
  for preset in args.presets.split(','):
    size, batch, latent = SETTINGS[preset]
    t = torch_step_time(preset, size, batch, latent, args.steps)
    j = jax_result(preset, size, batch, latent, args.steps, peak)
    flop = j.get('gflop_per_step', 0.0)
    row = {'preset': preset, 'image': f'{size}x{size}x3', 'batch': batch,
           'torch_images_per_sec': round(batch / t, 1),
           'jax_images_per_sec': j['images_per_sec'], 'jax_compile_s': j['compile_s'],
           'ratio': round(j['images_per_sec'] * t / batch, 2),
           'jax_peak_fraction': j.get('peak_fraction'),
           'torch_peak_fraction': round(flop / t / peak, 3) if flop else None,
           'jax_loop': j['loop'], 'torch_threads': torch.get_num_threads(),
           'device': j['device']}
    rows.append(row)
    print(json.dumps(row), flush=True)
  print(f'\nfloat32 matmul peak: {peak:.0f} GFLOP/s (2048^3, best of 5)')
  print('| preset | image | batch | PyTorch 2.13 img/s | ae_jax img/s | ratio | PyTorch % of peak '
        '| ae_jax % of peak | ae_jax compile s |')
  print('|---|---|---|---|---|---|---|---|---|')
  pct = lambda f: f'{100 * f:.0f}%' if f is not None else '-'
  for r in rows:
    print(f"| {r['preset']} | {r['image']} | {r['batch']} | {r['torch_images_per_sec']} | "
          f"{r['jax_images_per_sec']} | {r['ratio']}x | {pct(r['torch_peak_fraction'])} | "
          f"{pct(r['jax_peak_fraction'])} | {r['jax_compile_s']} |")


if __name__ == '__main__':
  main()
