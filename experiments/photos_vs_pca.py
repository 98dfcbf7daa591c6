"""Trained models on photographs against PCA: train and test PSNR, the margin over the best
linear autoencoder, and test PSNR against wall-clock seconds.

  # train first, e.g. (about 14 minutes each on a 2-core CPU):
  python -m ae_jax.main --config configs/ae_photos.py --workdir runs/ae_photos32
  python -m ae_jax.main --config configs/vae_photos.py --workdir runs/vae_photos32
  python experiments/photos_vs_pca.py runs/ae_photos32 runs/vae_photos32 \\
      --figure docs/photos_psnr_time.png

Prints a Markdown table (one row per workdir) and draws every run's test PSNR at each
evaluation against the seconds since its run started (metrics.jsonl's wall_s), with each
run's PCA baseline as a dotted line. Train PSNR is measured on up to 2,000 training images.

Three views of the test error, model against PCA, because they disagree:
- mean PSNR: the mean over images of each image's PSNR (ae_jax's `psnr` metric, dm-pix's
  definition). A few near-black patches reconstructed (after clipping to [0, 1]) to an MSE
  of 1e-11 count 110 dB each, so this mean can be carried by a handful of images;
- 8-bit floor: the same mean with each image's MSE floored at the quantisation noise of
  8-bit images, (1/255)^2 / 12 (58.9 dB): no credit for precision the data does not have;
- pooled: the PSNR of the MSE over all test pixels, the criterion PCA is optimal for among
  linear maps;
and the median over test images of the per-image gain in dB.
"""
import argparse
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


QUANTISATION_MSE = (1 / 255) ** 2 / 12  # uniform rounding noise of 8-bit pixel values


def per_image_mse(a, b):
  return np.mean((np.clip(a, 0, 1) - b) ** 2, axis=(1, 2, 3))


def psnr(mse, floor: float = 1e-30):
  """Mean over images of 10 log10(1 / max(mse, floor))."""
  return float(np.mean(10 * np.log10(1.0 / np.maximum(mse, floor))))


def pooled_psnr(mse):
  """PSNR of the MSE over every pixel of the split (what PCA minimises), not per image."""
  return float(10 * np.log10(1.0 / np.mean(mse)))


def measure(workdir: str) -> dict:
  from ae_jax.latent.tools import Source
  from ae_jax.inference import load
  from ae_jax.workdir import Workdir
  src = Source(load(workdir), workdir)
  from ae_jax.metrics import pca
  train, _, _ = src.split('train', limit=10000)
  test, _, _ = src.split('test')
  fit = pca.fit(train, src.model.latent_dim)
  pca_mse = per_image_mse(pca.reconstruct(fit, test), test)
  mse = per_image_mse(src.model.reconstruct(test), test)
  train = train[:2000]
  summary = Workdir(workdir).read_json('summary.json')['members'][0]
  rows = Workdir(workdir).read_metrics()
  cfg = src.model.config
  evals = [r for r in rows if r['split'] == 'eval' and 'psnr' in r]
  views = {'mean': lambda e: psnr(e), 'floor': lambda e: psnr(e, QUANTISATION_MSE),
           'pooled': pooled_psnr}
  return {
      'workdir': workdir, 'kind': cfg.model.kind.upper(), 'size': cfg.data.image_size,
      'latent': src.model.latent_dim, 'epochs': src.model.epoch,
      # to the end of the last training epoch (not the end-of-run LPIPS/PCA pass)
      'minutes': max(r.get('wall_s', 0.0) for r in rows if r['split'] == 'train') / 60,
      'train_psnr': psnr(per_image_mse(src.model.reconstruct(train), train)),
      **{k: (f(mse), f(pca_mse)) for k, f in views.items()},
      'median_gain': float(np.median(10 * np.log10(pca_mse / np.maximum(mse, 1e-30)))),
      'ssim': (summary['eval'].get('ssim', np.nan), summary['eval'].get('pca_ssim', np.nan)),
      'pca_psnr': psnr(pca_mse),
      'curve': [(r.get('wall_s', np.nan), r['psnr']) for r in evals],
  }


def table(results) -> str:
  lines = ['| data | model | latents | epochs | minutes | train PSNR | test PSNR: mean (PCA) '
           '| 8-bit floor (PCA) | pooled (PCA) | median per-image gain | SSIM (PCA) |',
           '|---|---|---|---|---|---|---|---|---|---|---|']
  cell = lambda v: f'{v[0]:.2f} ({v[1]:.2f}) **{v[0] - v[1]:+.2f}**'
  for r in results:
    lines.append(
        f'| photos {r["size"]}×{r["size"]} | {os.path.basename(r["workdir"])} ({r["kind"]}) '
        f'| {r["latent"]} | {r["epochs"]} | {r["minutes"]:.1f} | {r["train_psnr"]:.2f} '
        f'| {cell(r["mean"])} | {cell(r["floor"])} | {cell(r["pooled"])} '
        f'| {r["median_gain"]:+.2f} dB | {r["ssim"][0]:.3f} ({r["ssim"][1]:.3f}) |')
  return '\n'.join(lines)


def figure(results, path: str):
  from ae_jax import figures
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=100)
  for r, color in zip(results, figures.colors(len(results))):
    t, p = zip(*r['curve'])
    label = f'{os.path.basename(r["workdir"])} ({r["size"]}×{r["size"]})'
    ax.plot(t, p, 'o-', color=color, markersize=3, label=label)
    ax.axhline(r['pca_psnr'], color=color, linestyle=':', linewidth=1)
  ax.set_xlabel('wall-clock seconds since the run started (2-core CPU)')
  ax.set_ylabel('test PSNR (dB)')
  ax.set_title('Test PSNR against time; dotted: PCA at the same latent size', fontsize=9)
  ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5), frameon=False)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  figures.save(fig, path)
  print(f'wrote {path}')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='+')
  parser.add_argument('--figure', default='')
  args = parser.parse_args()
  results = [measure(w) for w in args.workdirs]
  print(table(results))
  if args.figure:
    figure(results, args.figure)


if __name__ == '__main__':
  main()
