"""Benchmark files (docs/benchmarks/*.json: one measurement each, written by `bench --record`,
experiments/*.py or transcribed from an earlier written record), read and checked, and
rendered as docs/performance.md's tables (docs.py's `benchmarks` block)."""
from __future__ import annotations

import json
import os


def _cell(text) -> str:
  return str(text).replace('|', '&#124;').replace('\n', ' ')


BENCHMARKS = 'benchmarks'  # under docs/: one JSON file per measurement (bench --record,
# experiments/accelerator_check.py, or transcribed from an earlier written record)
RECORD_KEYS = ('title', 'date', 'machine', 'commit', 'command', 'results')
# (result key, column header), in table order; a table shows those any of its results has
COLUMNS = (('name', 'measurement'), ('variant', 'variant'), ('model', 'model'),
           ('image_shape', 'image'),
           ('batch_size', 'batch'), ('members', 'members'), ('dtype', 'dtype'),
           ('images_per_sec', 'images/s'), ('step_ms', 'step ms'),
           ('epoch_scan_ms', 'epoch as scan, ms'), ('epoch_python_ms', 'epoch as Python loop, ms'),
           ('scan_speedup_over_python_loop', 'scan / loop speed'), ('gflops', 'GFLOP/s'),
           ('peak_fraction', 'of matmul peak'), ('compile_s', 'compile s'),
           ('peak_rss_mb', 'peak RSS MB'), ('device_peak_mb', 'device peak MB'),
           ('speedup', 'speed-up'), ('ratio_to', 'against'),
           ('ratio_to_reference', 'step time / first row'), ('epoch_s', 'epoch s'),
           ('gen_fd_s', 'gen_fd pass s'), ('ratio_to_epoch', 'pass / epoch'))


class BenchmarkFileError(ValueError):
  """A file under docs/benchmarks/ that the performance page cannot be made from."""


def read_benchmark(path: str) -> dict:
  """One benchmark file, checked: the keys every record has, results a list of objects."""
  try:
    with open(path) as f:
      rec = json.load(f)
  except (OSError, ValueError) as e:
    raise BenchmarkFileError(f'{path}: not a readable JSON file ({e})') from None
  if not isinstance(rec, dict):
    raise BenchmarkFileError(f'{path}: expected a JSON object, found {type(rec).__name__}')
  missing = [k for k in RECORD_KEYS if k not in rec]
  if missing:
    raise BenchmarkFileError(f'{path}: missing {missing}; a benchmark file has {RECORD_KEYS} '
                             '(python -m ae_jax.bench --record writes one)')
  results = rec['results']
  if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
    raise BenchmarkFileError(f'{path}: "results" must be a list of objects, one per '
                             'measurement')
  return rec


def read_benchmarks(folder: str) -> list[tuple[str, dict]]:
  """[(file name, record)] of docs/benchmarks/ under `folder`, newest first."""
  bench = os.path.join(folder, BENCHMARKS)
  names = sorted(f for f in os.listdir(bench) if f.endswith('.json')) if os.path.isdir(
      bench) else []
  recs = [(name, read_benchmark(os.path.join(bench, name))) for name in names]
  return sorted(recs, key=lambda nr: (str(nr[1]['date']), nr[0]), reverse=True)


def _value(key, v) -> str:
  if v is None:
    return '–'
  if key == 'image_shape' and isinstance(v, list):
    return 'x'.join(str(x) for x in v)
  if key == 'peak_fraction' and isinstance(v, (int, float)):
    return f'{100 * v:.0f}%'
  if key in ('speedup', 'scan_speedup_over_python_loop', 'ratio',
             'ratio_to_reference') and isinstance(
      v, (int, float)):
    return f'{v:g}×'
  if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
    return f'{v[0]:g}–{v[1]:g}'  # a range over runs
  return _cell(v)


def benchmark_table(rec: dict) -> str:
  """A record's results as a Markdown table: its own `columns` ([[key, header], ...]) or
  those of COLUMNS its results have ('model' only where a result has no 'name')."""
  results = rec['results']
  if not results:
    return '(no results)'
  if rec.get('columns'):
    cols = [tuple(c) for c in rec['columns']]
  else:
    named = all('name' in r for r in results)
    cols = [(k, h) for k, h in COLUMNS if any(k in r for r in results)
            and not (k == 'model' and named)]
  lines = ['| ' + ' | '.join(h for _, h in cols) + ' |', '|' + '---|' * len(cols)]
  for r in results:
    lines.append('| ' + ' | '.join(_value(k, r.get(k)) for k, _ in cols) + ' |')
  return '\n'.join(lines)


def benchmarks_block(folder: str, arg: str = '') -> str:
  """The docs generator's `benchmarks` block: every benchmark file, newest first."""
  recs = read_benchmarks(folder)
  if not recs:
    return '(no benchmark files yet)'
  out = [f'{len(recs)} files, newest first.']
  for name, rec in recs:
    commands = rec['command'] if isinstance(rec['command'], list) else [rec['command']]
    where = f'{rec["date"]}, {rec["machine"]}, commit `{rec["commit"]}`'
    if rec.get('jax'):
      where += f', jax {rec["jax"]}'
    out += ['', f'### {_cell(rec["title"])}', '',
            f'[`{BENCHMARKS}/{name}`]({BENCHMARKS}/{name}): {where}.']
    if rec.get('transcribed'):
      out.append(f'Transcribed, not re-measured: {_cell(rec["transcribed"])}')
    out += ['', 'Command: ' + '; '.join(f'`{c}`' for c in commands), '',
            benchmark_table(rec)]
    extra = [f'matmul peak {v} GFLOP/s ({k})' for k, v in
             (rec.get('matmul_peak_gflops') or {}).items()] if isinstance(
                 rec.get('matmul_peak_gflops'), dict) else []
    if isinstance(rec.get('matmul_peak_gflops'), (int, float)):
      extra.append(f'matmul peak {rec["matmul_peak_gflops"]} GFLOP/s')
    if rec.get('seconds') is not None:
      extra.append(f'{rec["seconds"]} s in all')
    if rec.get('skipped'):
      extra.append('skipped: ' + ', '.join(map(str, rec['skipped'])))
    if extra:
      out += ['', '; '.join(_cell(e) for e in extra) + '.']
    if rec.get('note'):
      out += ['', _cell(rec['note'])]
  return '\n'.join(out)
