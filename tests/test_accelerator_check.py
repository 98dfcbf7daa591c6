"""experiments/accelerator_check.py --tiny runs on a CPU in seconds and writes a benchmark file
that docs/performance.md is generated from; the generator reads every file of
docs/benchmarks/ and names a malformed one."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from ae_jax import docs

RECORD_KEYS = ('title', 'date', 'machine', 'commit', 'command', 'jax', 'results',
               'matmul_peak_gflops', 'seconds')


@pytest.fixture(scope='module')
def tiny_record(tmp_path_factory, root, hang_s, checkout_env):
  out = tmp_path_factory.mktemp('accelerator_check') / 'check.json'
  r = subprocess.run([sys.executable, os.path.join('experiments', 'accelerator_check.py'),
                      '--tiny', '--out', str(out)], cwd=root, env=checkout_env(),
                     capture_output=True, text=True, timeout=hang_s)
  assert r.returncode == 0, r.stderr[-3000:]
  return str(out), json.load(open(out))


@pytest.mark.slow
def test_tiny_measures_toy_sizes_and_writes_a_record(tiny_record):
  path, rec = tiny_record
  assert all(k in rec for k in RECORD_KEYS), sorted(rec)
  assert 'tiny' in rec['title'] and rec['command'].endswith('--tiny')
  assert rec['seconds'] > 0
  # what makes --tiny quick: every program at a toy size (images at most 24x24, batches of
  # at most 4, 2 per device for the data-parallel ones)
  for r in rec['results']:
    devices = r['name'].split('data parallel over ')[-1].split(' ')[0]
    per_device = r['name'].startswith('data parallel over ')
    assert max(r['image_shape'][:2]) <= 24, r
    assert r['batch_size'] == 2 * int(devices) if per_device else r['batch_size'] <= 4, r
  assert all(v > 0 for v in rec['matmul_peak_gflops'].values())
  assert not rec.get('skipped')
  names = [r['name'] for r in rec['results']]
  assert names[:2] == ['mlp_ae_50 float32', 'mlp_ae_50 bfloat16']
  assert any('members' in n for n in names) and any('PatchGAN' in n for n in names)
  for r in rec['results']:
    assert r['images_per_sec'] > 0 and r['step_ms'] > 0 and r['compile_s'] >= 0, r
    assert r['peak_fraction'] > 0 and r['batch_size'] > 0, r
  sweep = next(r for r in rec['results'] if r['name'] == 'vae_beta, 2 members')
  assert sweep['members'] == 2 and sweep['speedup'] > 0


@pytest.mark.slow
def test_the_performance_page_is_generated_from_the_record(tiny_record, tmp_path, root):
  path, rec = tiny_record
  (tmp_path / 'benchmarks').mkdir()
  shutil.copy(path, tmp_path / 'benchmarks' / 'check.json')
  for name in os.listdir(os.path.join(root, 'docs', 'benchmarks')):  # beside the committed
    shutil.copy(os.path.join(root, 'docs', 'benchmarks', name), tmp_path / 'benchmarks')
  page = docs.fill_blocks('# P\n<!-- generated:benchmarks -->\n<!-- /generated:benchmarks -->\n',
                          str(tmp_path))
  assert f'### {rec["title"]}' in page and '(benchmarks/check.json)' in page
  for r in rec['results']:
    assert f'| {r["name"]} |' in page
  assert page.index(rec['title']) < page.index('Transcribed')  # newest first
  assert '| measurement | image | batch | members | dtype | images/s |' in page


@pytest.mark.slow
def test_a_malformed_benchmark_file_is_named(tmp_path, root, hang_s, checkout_env):
  (tmp_path / 'benchmarks').mkdir()
  bad = tmp_path / 'benchmarks' / 'bad.json'
  bad.write_text(json.dumps({'title': 't', 'results': []}))
  with pytest.raises(docs.BenchmarkFileError, match=r'bad\.json: missing \[.date'):
    docs.read_benchmarks(str(tmp_path))
  bad.write_text('{')
  with pytest.raises(docs.BenchmarkFileError, match='not a readable JSON file'):
    docs.read_benchmarks(str(tmp_path))
  page = tmp_path / 'performance.md'
  page.write_text('<!-- generated:benchmarks -->\n<!-- /generated:benchmarks -->\n')
  r = subprocess.run([sys.executable, '-m', 'ae_jax.docs', '--out', str(tmp_path)], cwd=root,
                     env=checkout_env(), capture_output=True, text=True, timeout=hang_s)
  assert r.returncode == 2 and r.stderr.startswith('error: ') and 'bad.json' in r.stderr


def test_every_committed_benchmark_file_reads(root):
  recs = docs.read_benchmarks(os.path.join(root, 'docs'))
  assert len(recs) >= 14
  for name, rec in recs:
    assert rec['results'], name
    if rec.get('transcribed'):  # the README's earlier record, with what reproduces it
      assert rec['command'] and 'README' in rec['transcribed'], name
