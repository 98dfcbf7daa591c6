"""Headless matplotlib figures. Each function returns a Figure; the caller saves it through
its Workdir (`wd.save_figure(fig, name)`), or `save(fig, path)` outside a workdir."""
from __future__ import annotations

import math

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
import numpy as np

from ae_jax.metrics.spectrum import HF_CUTOFF
from ae_jax.workdir import save_figure

SMALL_MULTIPLES_ABOVE = 6  # members: more than this get one panel each



def subplots(nrows: int = 1, ncols: int = 1, **kwargs):
  """(figure, axes) as pyplot.subplots makes them, without pyplot: a Figure of its own
  (the Agg canvas draws it), so drawing leaves a caller's pyplot state and backend alone."""
  figure_kw = {k: kwargs.pop(k) for k in ('figsize', 'dpi') if k in kwargs}
  fig = Figure(**figure_kw)
  FigureCanvasAgg(fig)  # a renderer to measure text with (the layout code asks for one)
  return fig, fig.subplots(nrows, ncols, **kwargs)

def save(fig, path: str) -> str:
  """Write `fig` to `path` (through the one writer: atomically) and close it."""
  return save_figure(fig, path)


def colors(n: int):
  """n distinct colours: tab10 up to 10, then evenly spaced on a perceptual colormap."""
  if n <= 10:
    return [matplotlib.colormaps['tab10'](i) for i in range(n)]
  return [matplotlib.colormaps['viridis'](i / max(1, n - 1)) for i in range(n)]


def _show(ax, img):
  img = np.clip(img, 0.0, 1.0)
  gray = img.shape[-1] == 1
  ax.imshow(img[..., 0] if gray else img, cmap='gray' if gray else None, vmin=0.0, vmax=1.0,
            interpolation='nearest')
  ax.set_xticks([])
  ax.set_yticks([])


def _members(records):
  return sorted({r['member'] for r in records}, key=[r['member'] for r in records].index)


def _curves(ax, records, member, metric, color, label_prefix=''):
  for split, style in (('train', '-'), ('eval', 'o--')):
    rows = [r for r in records if r['member'] == member and r['split'] == split
            and isinstance(r.get(metric), (int, float))]
    if rows:
      ax.plot([r['epoch'] for r in rows], [r[metric] for r in rows], style, color=color,
              markersize=3, label=f'{label_prefix}{split}')


def loss_curves(records: list[dict], metric: str = 'loss', log_scale: bool = True,
                title: str | None = None):
  """Train (solid, per epoch) and eval (dashed, markers) curves of `metric` per member:
  one axes with a legend outside for a few members, small multiples for many."""
  members = _members(records)
  values = [r[metric] for r in records if isinstance(r.get(metric), (int, float))]
  log = log_scale and values and all(v > 0 for v in values)
  if len(members) <= SMALL_MULTIPLES_ABOVE:
    fig, ax = subplots(figsize=(7.5 if len(members) > 1 else 6, 4), dpi=100)
    for member, color in zip(members, colors(len(members))):
      _curves(ax, records, member, metric, color,
              '' if len(members) == 1 else f'{member}: ')
    if log:
      ax.set_yscale('log')
    ax.set_xlabel('epoch')
    ax.set_ylabel(metric)
    ax.set_title(title or metric, fontsize=10)
    if len(members) > 1:
      ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
      ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
  cols = math.ceil(math.sqrt(len(members)))
  rows = math.ceil(len(members) / cols)
  fig, axes = subplots(rows, cols, figsize=(2.6 * cols, 2.1 * rows + 0.5), dpi=100,
                           sharex=True, sharey=True, squeeze=False)
  for ax, member in zip(axes.ravel(), members):
    _curves(ax, records, member, metric, 'C0')
    ax.set_title(member, fontsize=8)
    ax.tick_params(labelsize=7)
    if log:
      ax.set_yscale('log')
  for ax in axes.ravel()[len(members):]:
    ax.axis('off')
  axes[0, 0].legend(fontsize=7)
  fig.suptitle(f'{title or metric} (solid: train epoch mean; dashed: eval)', fontsize=10)
  fig.supxlabel('epoch', fontsize=9)
  fig.tight_layout()
  return fig


def image_rows(rows: list[np.ndarray], labels: list[str], title: str = '',
               color_key=(), col_titles=None, scale: float = 1.2):
  """One row of images per entry of `rows` ([N, H, W, C] each), labelled on the left;
  `color_key` ((colour, meaning), ...) adds a legend for categorical channels."""
  n = max(r.shape[0] for r in rows)
  # The title and the legend get bands of their own, in inches: a share of the height
  # (what tight_layout's rect takes) would crowd a short figure and gape on a tall one, and
  # tight_layout leaves the suptitle out, so column titles ran into it.
  top = (0.2 * (title.count('\n') + 1) + 0.1) if title else 0.0
  bottom = 0.35 if color_key else 0.0
  height = scale * len(rows) + 0.6 + top + bottom
  fig, axes = subplots(len(rows), n, figsize=(scale * n + 1.2, height), dpi=100,
                           squeeze=False)
  for i, (row, label) in enumerate(zip(rows, labels)):
    for j in range(n):
      ax = axes[i, j]
      if j < row.shape[0]:
        _show(ax, row[j])
      else:
        ax.axis('off')
    axes[i, 0].set_ylabel(label, rotation=0, ha='right', va='center', fontsize=8)
  for j, t in enumerate(col_titles or ()):
    if j < n:
      axes[0, j].set_title(t, fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9, y=1.0 - 0.05 / height, va='top')
  if color_key:
    handles = [Patch(facecolor=c, edgecolor='0.5', label=m) for c, m in color_key]
    fig.legend(handles=handles, loc='lower center', ncol=len(handles), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, 0.02 / height))
  fig.tight_layout(rect=(0, bottom / height, 1, 1 - top / height))
  return fig


def recon_grid(parts: list[dict]):
  """Originals above reconstructions, for one or several programs' members (a program
  whose images differ in shape from the previous one starts with its own originals)."""
  rows, labels, ids = [], [], []
  shape = None
  for part in parts:
    if part['originals'].shape != shape:
      rows.append(part['originals'])
      labels.append('original')
      shape = part['originals'].shape
      ids += part['ids']
    rows += list(part['recon'])
    labels += part['labels']
  id_text = ', '.join(str(i) for i in dict.fromkeys(ids))
  return image_rows(rows, labels, f'test images (ids {id_text}) and their reconstructions',
                    color_key=parts[0].get('color_key', ()))


def kl_per_dim(eval_rows: list[dict]):
  """Posterior health: each latent unit's KL, sorted, one line per member."""
  fig, ax = subplots(figsize=(6, 3.5), dpi=100)
  rows = [r for r in eval_rows if isinstance(r.get('kl_per_dim'), list)]
  for r, color in zip(rows, colors(len(rows))):
    kl = np.sort(np.asarray(r['kl_per_dim']))[::-1]
    ax.plot(np.arange(1, len(kl) + 1), kl, '.-', color=color, markersize=3,
            label=r['member'] if len(rows) > 1 else None)
  ax.axhline(0.01, color='0.6', lw=0.8, ls=':')
  ax.set_yscale('symlog', linthresh=1e-2)
  ax.set_xlabel('latent unit (sorted by KL)')
  ax.set_ylabel('KL (nats)')
  ax.set_title(f'KL per latent unit at epoch {rows[0]["epoch"] if rows else "?"} '
               '(units near 0 carry no information)', fontsize=9)
  if len(rows) > 1:
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))
  fig.tight_layout()
  return fig


def error_spectrum(freqs, original, curves: dict):
  """Radially averaged power of each model's residual (`curves`: label -> power [bins])
  against spatial frequency, with the originals' own spectrum in black; log power. The
  dotted line is hf_retained's cutoff."""
  fig, ax = subplots(figsize=(7.5, 4.2), dpi=100)
  ax.semilogy(freqs, original, color='black', linewidth=2, label='originals')
  for (label, power), color in zip(curves.items(), colors(len(curves))):
    ax.semilogy(freqs, power, color=color, label=label)
  ax.axvline(HF_CUTOFF, color='0.6', linestyle=':', linewidth=1)
  ax.set_xlabel('spatial frequency (cycles / pixel)')
  ax.set_ylabel('power (residual x\' - x)')
  ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5), frameon=False)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  return fig


def crops(rows: list[tuple[str, np.ndarray]], ids, size: int = 16):
  """The centre `size` x `size` pixels of the same images, one row per (label, [N,H,W,C])."""
  def centre(x):
    h, w = x.shape[1:3]
    s = min(size, h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return x[:, y0:y0 + s, x0:x0 + s]
  return image_rows([centre(r) for _, r in rows], [label for label, _ in rows],
                    col_titles=[f'id {i}' for i in ids], scale=1.3)
