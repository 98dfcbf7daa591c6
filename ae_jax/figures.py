"""Headless matplotlib figures: loss curves and image grids."""
from __future__ import annotations

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _show(ax, img):
  img = np.clip(img, 0.0, 1.0)
  ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap='gray' if img.shape[-1] == 1 else None,
            vmin=0.0, vmax=1.0, interpolation='nearest')
  ax.set_xticks([])
  ax.set_yticks([])


def loss_curves(records: list[dict], path: str, metric: str = 'loss', log_scale: bool = True,
                title: str | None = None):
  """Train (per epoch) and eval curves of `metric` for every member."""
  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  members = sorted({r['member'] for r in records}, key=[r['member'] for r in records].index)
  for i, member in enumerate(members):
    color = f'C{i % 10}'
    label = '' if len(members) == 1 else f' {member}'
    for split, style in (('train', '-'), ('eval', 'o--')):
      rows = [r for r in records if r['member'] == member and r['split'] == split and metric in r]
      if rows:
        ax.plot([r['epoch'] for r in rows], [r[metric] for r in rows], style, color=color,
                label=f'{split}{label}', markersize=3)
  if log_scale and all(r.get(metric, 1) > 0 for r in records):
    ax.set_yscale('log')
  ax.set_xlabel('epoch')
  ax.set_ylabel(metric)
  ax.set_title(title or metric)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def image_rows(rows: list[np.ndarray], labels: list[str], path: str, title: str = ''):
  """One row of images per entry of `rows` ([N, H, W, C] each), labelled on the left."""
  n = max(r.shape[0] for r in rows)
  fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n + 1.0, 1.2 * len(rows) + 0.4),
                           dpi=100, squeeze=False)
  for i, (row, label) in enumerate(zip(rows, labels)):
    for j in range(n):
      ax = axes[i, j]
      if j < row.shape[0]:
        _show(ax, row[j])
      else:
        ax.axis('off')
    axes[i, 0].set_ylabel(label, rotation=0, ha='right', va='center', fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
