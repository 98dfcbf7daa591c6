"""A study's report: report.md, a self-contained report.html and results.json, built from
declared sections.

  rep = Report('KL weight study', 'What the KL weight does to a VAE ...')
  rep.settings(config, keys=('model.latent_dim', 'train.num_epochs', ...))
  rep.architecture(loaded_model)
  rep.metrics(study.members('vae'), 'Final test metrics')  # columns from the registry
  rep.figure(path, f'Reconstructions at epochs {shown}', 'One sentence on what it shows.')
  rep.write(workdir, study)

A new section type is one method here; a new metric appears in every metrics table by
being declared in the registry. Figures are embedded in the HTML (base64), so the file
stands alone; the Markdown links them relative to the study's workdir.

results.json, beside report.md, holds what a script needs without parsing Markdown: the
study, its budget (full, quick or smoke) and what that budget changed, the settings tables,
and one entry per row of every `metrics` table: {key, description, table, metrics (the
registry's names), extra (the table's other columns), sweep (a member's swept values)}.
A study declares its rows once, in `metrics`; the table and the JSON are both built from
them.
"""
from __future__ import annotations

import base64
import html
import math
import os
import re

import jax
import numpy as np

from ae_jax import config_lib
from ae_jax.interop import our_layers
from ae_jax.metrics import registry


def _cell(v) -> str:
  if isinstance(v, float):
    if not math.isfinite(v):
      return str(v)
    return f'{v:.4g}' if abs(v) < 1e5 else f'{v:.5g}'
  if isinstance(v, (list, tuple)):
    return '(' + ', '.join(_cell(x) for x in v) + ')'
  return str(v)


class Report:

  def __init__(self, title: str, intro: str = ''):
    self.title, self.intro = title, intro
    self.banner = ''  # what the budget changed, above everything (`write` sets it)
    self.sections: list[tuple] = []
    self.settings_values: dict[str, dict] = {}  # heading -> {key: value}, for results.json
    self.rows: list[dict] = []  # every metrics table's rows, for results.json

  # ---- declarations ---------------------------------------------------------------------

  def text(self, heading: str, body: str):
    self.sections.append(('text', heading, body))

  def table(self, heading: str, columns: list[str], rows: list[list], note: str = ''):
    self.sections.append(('table', heading, columns, [[_cell(c) for c in r] for r in rows],
                          note))

  def settings(self, config, keys, heading: str = 'Settings'):
    """A table of config values as the run used them (resolved: model.latent_dim 0 shows as
    the preset's or the default size; model.arch, which a preset overrides, as the
    preset's)."""
    config = config_lib.resolve(config)
    values = {k: config_lib.get(config, k) for k in keys}
    if 'model.arch' in values and config.model.preset:  # the preset decides the network
      values['model.arch'] = f'the preset\'s ({config.model.preset})'
    self.settings_values[heading] = {k: _plain(v) for k, v in values.items()}
    self.table(heading, ['key', 'value'], [[k, _cell(v)] for k, v in values.items()])

  def architecture(self, model, heading: str = 'Architecture'):
    """Layers and parameter counts of a loaded model (inference.Trained)."""
    rows, total = layer_table(model.params)
    self.table(f'{heading}: {model.config.model.preset or model.config.model.arch} '
               f'{model.kind.upper()}, {total:,} parameters', ['layer', 'kind', 'shape',
                                                              'parameters'], rows)

  def metrics(self, members: list[dict], heading: str, label: str = 'model',
              extra: dict | None = None, note: str = '', columns=None):
    """A row per model: {'name': ..., 'eval': {metric: value}} (summary.json's form; with
    `key`, `description` and `sweep` as `Study.members` adds them); the columns are the
    registry's tabulated metrics present (or those named in `columns`), in registry
    order, after any `extra` columns ({header: [value per member]}). The same rows go to
    results.json."""
    present = {k for m in members for k in m['eval']}
    cols = registry.columns(present & set(columns) if columns else present)
    extra = extra or {}
    arrow = {'higher': ' (↑)', 'lower': ' (↓)'}
    head = [label, *extra] + [c.label + arrow.get(c.better, '') for c in cols]
    rows = [[m['name'], *[v[i] for v in extra.values()]]
            + [c.format(m['eval'][c.name]) if c.name in m['eval'] else '' for c in cols]
            for i, m in enumerate(members)]
    self.table(heading, head, rows, note)
    for i, m in enumerate(members):
      self.rows.append({
          'key': m.get('key', m['name']), 'description': m.get('description', ''),
          'table': heading,
          'metrics': {k: _plain(v) for k, v in m['eval'].items() if k in registry.REGISTRY},
          'extra': {h: _plain(v[i]) for h, v in extra.items()},
          'sweep': {k: _plain(v) for k, v in m.get('sweep', {}).items()}})

  def figure(self, path: str, heading: str, caption: str):
    self.sections.append(('figure', heading, path, caption))

  # ---- output ---------------------------------------------------------------------------

  def markdown(self, root: str) -> str:
    out = [f'# {self.title}', '']
    if self.banner:
      out += [f'> {self.banner}', '']
    if self.intro:
      out += [self.intro, '']
    for s in self.sections:
      kind, heading = s[0], s[1]
      out += [f'## {heading}', '']
      if kind == 'text':
        out += [s[2], '']
      elif kind == 'table':
        cols, rows, note = s[2], s[3], s[4]
        out.append('| ' + ' | '.join(cols) + ' |')
        out.append('|' + '---|' * len(cols))
        out += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
        out += ([''] + [note] if note else []) + ['']
      else:
        rel = os.path.relpath(s[2], root)
        out += [f'![{heading}]({rel})', '', s[3], '']
    return '\n'.join(out)

  def html(self) -> str:
    out = ['<!doctype html><html><head><meta charset="utf-8">',
           f'<title>{html.escape(self.title)}</title>',
           '<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}'
           'table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;'
           'padding:.2em .6em;text-align:right}th{background:#f3f3f3}'
           'td:first-child{text-align:left}img{max-width:100%}'
           '.cap{color:#444;font-size:.95em}'
           '.banner{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em .8em}'
           '</style></head><body>',
           f'<h1>{html.escape(self.title)}</h1>']
    if self.banner:  # the Markdown's **bold** as <b>
      out.append('<p class="banner">' + re.sub(r'\*\*(.+?)\*\*', r'<b>\1</b>',
                                                html.escape(self.banner)) + '</p>')
    if self.intro:
      out.append(f'<p>{html.escape(self.intro)}</p>')
    for s in self.sections:
      kind, heading = s[0], s[1]
      out.append(f'<h2>{html.escape(heading)}</h2>')
      if kind == 'text':
        out += [f'<p>{html.escape(p)}</p>' for p in s[2].split('\n\n')]
      elif kind == 'table':
        out.append('<table><tr>' + ''.join(f'<th>{html.escape(str(c))}</th>' for c in s[2])
                   + '</tr>')
        out += ['<tr>' + ''.join(f'<td>{html.escape(str(c))}</td>' for c in r) + '</tr>'
                for r in s[3]]
        out.append('</table>')
        if s[4]:
          out.append(f'<p class="cap">{html.escape(s[4])}</p>')
      else:
        data = base64.b64encode(open(s[2], 'rb').read()).decode()
        out.append(f'<img alt="{html.escape(heading)}" src="data:image/png;base64,{data}">')
        out.append(f'<p class="cap">{html.escape(s[3])}</p>')
    out.append('</body></html>')
    return '\n'.join(out)

  def results(self, study=None) -> dict:
    """results.json: the study and its budget (from `study`), settings and rows."""
    meta = study.meta() if study is not None else {}
    tables = [{'heading': t[1], 'columns': list(t[2]), 'rows': t[3], 'note': t[4]}
              for t in self.sections if t[0] == 'table']
    return {**meta, 'title': self.title, 'banner': self.banner,
            'settings': self.settings_values, 'models': self.rows, 'tables': tables}

  def write(self, wd, study=None) -> tuple[str, str]:
    """report.md, report.html and results.json in Workdir `wd`; `study` (a Study) puts
    its budget at the top of the report and in results.json."""
    if study is not None:
      self.banner = study.banner()
    wd.write_text('report.md', self.markdown(wd.path))
    wd.write_text('report.html', self.html())
    wd.write_json('results.json', self.results(study))
    return wd.file('report.md'), wd.file('report.html')


def _plain(v):
  """A value as results.json holds it: NumPy scalars as Python numbers, tuples as lists,
  non-finite floats as None (strict JSON has no NaN)."""
  if isinstance(v, (list, tuple)):
    return [_plain(x) for x in v]
  if isinstance(v, np.generic):
    v = v.item()
  if isinstance(v, float) and not math.isfinite(v):
    return None
  return v


def layer_table(params) -> tuple[list[list], int]:
  """[[layer, kind, shape, parameters]] in forward order, and the total."""
  rows, total = [], 0
  for layer in our_layers(jax.device_get(params)):
    node = params
    for p in layer.path:
      node = node[p]
    n = int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(node)))
    total += n
    rows.append(['/'.join(layer.path), layer.kind, 'x'.join(str(d) for d in layer.torch_shape),
                 f'{n:,}'])
  return rows, total
