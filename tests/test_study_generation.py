"""The generation study at --smoke on the digits (Fashion-MNIST's table is left out: its
files are not where the study looks): every smoke family sampled every way that applies, each
row graded in the digits classifier's space, each trained prior's held-out number and time."""
import importlib.util
import json
import math
import os

import pytest

pytestmark = pytest.mark.slow


def test_generation(tmp_path, smoke_study, report_table, monkeypatch, root):
  from ae_jax.studies import generation as gen
  monkeypatch.setattr(gen, 'FASHION', str(tmp_path / 'no_fashion_here'))
  md = smoke_study('generation', tmp_path / 'study')
  rows = report_table(md, 'Digits (8x8): samples of each family and sampler')
  labels = {k: label for k, label, _, _ in gen.FAMILIES}
  expected = [f'{labels[k]} · {gen.SAMPLER_LABELS[s]}' for k in gen.SMOKE_FAMILIES
              for s in gen.SAMPLERS[k]]
  assert [r[0] for r in rows] == expected
  assert 'Fashion-MNIST' not in md
  results = json.load(open(tmp_path / 'study' / 'results.json'))
  by_key = {m['key']: m for m in results['models']}
  for k in gen.SMOKE_FAMILIES:
    for s in gen.SAMPLERS[k]:
      m = by_key[f'digits/{k}/{s}']
      fd = m['metrics']['fd_classifier']
      assert fd is not None and math.isfinite(fd) and fd > 0
      assert 0.0 <= m['metrics']['precision'] <= 1.0
      trained = s in ('two_stage', 'flow', 'autoregressive', 'gmm', 'categorical')
      # a prior's own held-out number and its training time; N(0, I) has neither
      assert bool(m['extra']['prior held-out']) == trained
      assert (m['extra']['prior s'] != '') == trained
      assert m['extra']['AE s'] >= 0  # 0 at --smoke: its one epoch holds the compile
  assert 'bits' in by_key['digits/vqvae/autoregressive']['extra']['prior held-out']
  # the tables are in results.json as the report shows them (the docs page renders them)
  assert any(t['heading'].startswith('Digits') for t in results['tables'])

  # experiments/prior_draws.py grades the same priors over several sample draws: its first
  # draw is the table's (seed 0), the others differ, and the ceiling is scored beside them
  spec = importlib.util.spec_from_file_location(
      'prior_draws', os.path.join(root, 'experiments', 'prior_draws.py'))
  draws = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(draws)
  out = tmp_path / 'draws.json'
  for _ in range(2):  # a second run appends its rows
    draws.main(['--workdir', str(tmp_path / 'study'), '--model', 'digits/vae', '--priors',
                'gmm', 'flow', '--draws', '2', '--out', str(out)])
  kept = json.load(open(out))
  assert len(kept) == 2 and kept[0]['command'].startswith('python experiments/prior_draws.py')
  rows = {r['sampler']: r for r in kept[0]['rows']}
  assert set(rows) == {'ceiling (reconstructed training images)', 'gmm', 'flow'}
  for name in ('gmm', 'flow'):
    table_fd = by_key[f'digits/vae/{name}']['metrics']['fd_classifier']
    assert math.isclose(rows[name]['fd_per_draw'][0], table_fd, rel_tol=1e-3), (name, table_fd)
    assert rows[name]['fd_per_draw'][0] != rows[name]['fd_per_draw'][1]
    assert rows[name]['kind'] == name
  assert all(math.isfinite(v) and v > 0
             for v in rows['ceiling (reconstructed training images)']['fd_per_draw'])
  # mistakes are one line naming what is there
  with pytest.raises(SystemExit, match='no study.json there'):
    draws.main(['--workdir', str(tmp_path / 'nowhere'), '--model', 'digits/vae'])
  with pytest.raises(SystemExit, match=r'--priors flwo: not trained for digits/vae; its priors: '
                                       r'.*flow'):
    draws.main(['--workdir', str(tmp_path / 'study'), '--model', 'digits/vae', '--priors',
                'flwo'])
