"""Sweep tables and figures: what users otherwise assemble by hand.

`write_sweep` writes `sweep.csv` and `sweep.md` (one row per member and evaluated
epoch), `figures/sweep_<axis>.png` (final metrics against each swept axis) and, for a
beta sweep, `figures/rate_distortion.png` (KL against reconstruction loss).
"""
from __future__ import annotations

import csv
import io
import math

from ae_jax import figures, sweep
from ae_jax.metrics import registry

AXIS_ORDER = tuple(sweep.OUTER) + tuple(sweep.AXES)


def columns(rows) -> list[tuple[str, str]]:
  """(key, header) of the table: training loss, then every tabulated metric the eval
  rows hold, in registry order."""
  keys = {k for r in rows if r['split'] == 'eval' for k in r}
  return [('train_loss', 'training loss')] + [
      (m.name, 'eval ' + m.label if m.name == 'recon' else m.label)
      for m in registry.columns(keys)]


def swept_axes(members: list[dict]) -> list[str]:
  """Axes whose value differs between members, in a stable order."""
  return [a for a in AXIS_ORDER
          if len({repr(m.get(a)) for m in members}) > 1 and all(a in m for m in members)]


def table_rows(members: list[dict], rows: list[dict]) -> tuple[list[str], list[dict]]:
  axes = swept_axes(members) or ['member']
  cols = columns(rows)
  train = {(r['member'], r['epoch']): r['loss'] for r in rows if r['split'] == 'train'}
  out = []
  for m in members:
    for r in rows:
      if r['split'] != 'eval' or r['member'] != m['name']:
        continue
      row = {a: (m['name'] if a == 'member' else m[a]) for a in axes}
      row['epoch'] = r['epoch']
      row['train_loss'] = train.get((m['name'], r['epoch']), float('nan'))
      row.update({k: r.get(k, float('nan')) for k, _ in cols if k != 'train_loss'})
      out.append(row)
  return axes, out


def _cell(v) -> str:
  if isinstance(v, float):
    return f'{v:.4g}' if abs(v) < 1e4 else f'{v:.5g}'
  if isinstance(v, (tuple, list)):
    return '(' + ','.join(str(x) for x in v) + ')'
  return str(v)


def _format(key, v) -> str:
  if isinstance(v, float) and math.isnan(v):
    return ''  # not evaluated at this epoch (final-only metrics)
  if isinstance(v, float) and key in registry.REGISTRY:
    return registry.REGISTRY[key].format(v)
  return _cell(v)


def markdown(axes, rows, cols) -> str:
  head = list(axes) + ['epoch'] + [label for _, label in cols]
  keys = list(axes) + ['epoch'] + [k for k, _ in cols]
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for r in rows:
    lines.append('| ' + ' | '.join(_format(k, r[k]) for k in keys) + ' |')
  return '\n'.join(lines) + '\n'


def write_sweep(wd, config, members: list[dict], rows: list[dict], draw: bool = True,
                frozen: dict | None = None) -> str:
  """sweep.csv, sweep.md and the sweep figures in workdir `wd`; returns the Markdown."""
  axes, table = table_rows(members, rows)
  cols = columns(rows)
  keys = list(axes) + ['epoch'] + [k for k, _ in cols]
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator='\n')
  w.writerow(keys)
  for r in table:
    w.writerow([_cell(r[k]) if isinstance(r[k], (tuple, list)) else r[k] for k in keys])
  wd.write_text('sweep.csv', buf.getvalue())
  md = markdown(axes, table, cols)
  if frozen:
    md += ''.join(f'\nmember {name} was frozen at step {why["step"]} (non-finite {why["term"]})'
                  for name, why in frozen.items()) + '\n'
  wd.write_text('sweep.md', md)
  if draw and axes != ['member'] and table:
    final = _final_rows(members, table, axes)
    if registry.panels(final[0].keys()):
      for axis in axes:
        wd.save_figure(axis_figure(final, axes, axis), f'sweep_{axis}.png')
    if 'beta' in axes and {'recon', 'kl'} <= set(final[0]):
      wd.save_figure(rate_distortion(final, axes), 'rate_distortion.png')
  return md


def _final_rows(members, table, axes):
  """Each member's last evaluated row."""
  last = {}
  for r in table:
    key = tuple(repr(r[a]) for a in axes)
    if key not in last or r['epoch'] >= last[key]['epoch']:
      last[key] = r
  return list(last.values())


def _x(values):
  """Numeric positions for axis values (categorical for tuples and names)."""
  if all(isinstance(v, (int, float)) for v in values):
    return [float(v) for v in values], None
  cats = sorted({_cell(v) for v in values})
  return [float(cats.index(_cell(v))) for v in values], cats


def axis_figure(final, axes, axis):
  others = [a for a in axes if a != axis]
  groups = {}
  for r in final:
    groups.setdefault(tuple(_cell(r[a]) for a in others), []).append(r)
  panels = registry.panels(final[0].keys())
  fig, grid = figures.subplots(2, 2, figsize=(8, 6), dpi=100)
  for ax in grid.ravel()[len(panels):]:
    ax.axis('off')
  palette = figures.colors(len(groups))
  for ax, metric in zip(grid.ravel(), panels):
    key, label = metric.name, metric.label
    for color, (gkey, rs) in zip(palette, groups.items()):
      rs = sorted(rs, key=lambda r: (_x([r[axis]])[0][0] if _x([r[axis]])[1] is None
                                     else _cell(r[axis])))
      xs, cats = _x([r[axis] for r in rs])
      name = ', '.join(f'{a}={v}' for a, v in zip(others, gkey)) or None
      ax.plot(xs, [r[key] for r in rs], 'o-', label=name, markersize=4, color=color)
      if cats:
        ax.set_xticks(range(len(cats)), cats, fontsize=7, rotation=20)
    xs_all = [r[axis] for r in final]
    if all(isinstance(v, (int, float)) for v in xs_all) and min(xs_all) >= 0 \
        and max(xs_all) > 50 * max(min(v for v in xs_all if v > 0) if any(xs_all) else 1, 1e-12):
      ax.set_xscale('symlog', linthresh=min(v for v in xs_all if v > 0))
    ax.set_xlabel(axis)
    ax.set_ylabel(label)
    if any(k for k in groups) and ax is grid[0, 0]:
      ax.legend(fontsize=6)
  fig.suptitle(f'final eval metrics against {axis}', fontsize=10)
  fig.tight_layout()
  return fig


def rate_distortion(final, axes):
  """KL (rate) against eval reconstruction loss (distortion), one point per member."""
  fig, ax = figures.subplots(figsize=(6, 4.5), dpi=100)
  xs, ys = [r['recon'] for r in final], [r['kl'] for r in final]
  ax.plot(xs, ys, 'o')
  for r in final:
    ax.annotate(', '.join(f'{a}={_cell(r[a])}' for a in axes), (r['recon'], r['kl']),
                fontsize=9, xytext=(4, 4), textcoords='offset points')
  ax.set_xlabel('distortion: eval reconstruction loss')
  ax.set_ylabel('rate: KL (nats)')
  ax.set_title('rate-distortion across the sweep', fontsize=10)
  if min(ys) > 0 and max(ys) / min(ys) > 100:
    ax.set_yscale('log')
  ax.set_xlabel(ax.get_xlabel(), fontsize=10)
  ax.set_ylabel(ax.get_ylabel(), fontsize=10)
  fig.tight_layout()
  return fig
