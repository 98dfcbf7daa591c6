"""Every study end to end at its --quick budget: the report, its tables and the arrays the
study promises, and a rerun that resumes instead of retraining."""
import json
import os
import re

import numpy as np
import pytest

from ae_jax.studies.__main__ import main as study_main


def _run(name, workdir, *extra):
  study_main([name, '--workdir', str(workdir), '--quick', *extra])
  md = open(os.path.join(workdir, 'report.md')).read()
  html = open(os.path.join(workdir, 'report.html')).read()
  # every figure the Markdown links exists and is embedded in the HTML
  links = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', md)
  for rel in links:
    assert os.path.getsize(os.path.join(workdir, rel)) > 1000, rel
  assert html.count('data:image/png;base64,') == len(links)
  return md


def _table(md: str, heading: str) -> list[list[str]]:
  part = md.split(f'## {heading}\n', 1)[1].split('\n## ', 1)[0]
  rows = [line for line in part.splitlines() if line.startswith('|')]
  return [[c.strip() for c in r.strip('|').split('|')] for r in rows[2:]]


def test_latent_noise_generation(tmp_path):
  md = _run('latent_noise_generation', tmp_path)
  out = tmp_path / 'latent' / 'generate'
  data, labels = np.load(out / 'gen_data.npy'), np.load(out / 'gen_label.npy')
  ids = np.load(out / 'gen_ids.npy')
  assert data.dtype == np.uint8 and data.shape[1:] == (26, 26) and len(labels) == len(data)
  assert len(data) == 5 * len(set(ids.tolist())) == 100  # report 000's 20 ids, 5 samples each
  per_class = np.load(tmp_path / 'latent' / 'generate_per_class' / 'gen_label.npy')
  assert np.bincount(per_class).tolist().count(25) == 3  # Center, Edge-Loc, none: 5 x 5 each
  assert '## Five samples per class' in md


def test_ae_vs_vae_noise_and_rerun_resumes(tmp_path, capsys):
  md = _run('ae_vs_vae_noise', tmp_path)
  rows = _table(md, 'How far decoded noise falls from the data')
  assert [r[0] for r in rows] == ['AE', 'VAE']
  assert all(float(r[1]) > 0 and np.isfinite(float(r[4])) for r in rows)
  z = np.load(tmp_path / 'latent' / 'same_noise' / 'same_noise.npz')
  assert z['noise'].shape[:2] == (2, 8)
  np.testing.assert_array_equal(z['decoded_0'].shape, z['decoded_1'].shape)
  capsys.readouterr()
  _run('ae_vs_vae_noise', tmp_path)  # resumes both models, trains nothing, redraws
  assert 'resumed' in capsys.readouterr().out
  with pytest.raises(SystemExit) as e:
    study_main(['latent_edits', '--workdir', str(tmp_path), '--quick'])
  assert e.value.code == 2
  assert "holds the study 'ae_vs_vae_noise'" in capsys.readouterr().err


def test_kl_weight_study(tmp_path):
  md = _run('kl_weight_study', tmp_path)
  rows = _table(md, 'Final test metrics per KL weight')
  assert [r[1] for r in rows] == ['×0', '×1', '×100']
  assert md.count('## Reconstructions at epochs 1, 2') == 3
  assert md.count('## Prior samples') == 3 and md.count('## Interpolation') == 3
  r = np.load(tmp_path / 'latent' / 'reconstruct_1' / 'reconstruct.npz')
  assert list(r['models']) == ['member beta=1, epoch 1', 'member beta=1, epoch 2']


def test_latent_edits(tmp_path):
  md = _run('latent_edits', tmp_path)
  e = np.load(tmp_path / 'latent' / 'edit' / 'edit.npz')
  assert set(e.files) >= {'original', 'reconstruction', 'dim0_scale2_shift0', 'dim2_scale1_shift5'}
  t = np.load(tmp_path / 'latent' / 'traverse' / 'traverse.npz')
  assert t['grid'].shape[:2] == (4, 7)  # every dimension of the quick 4-dim code
  assert '## Architecture' in md and 'parameters' in md


def test_reconstruction_quality(tmp_path):
  md = _run('reconstruction_quality', tmp_path)
  rows = _table(md, 'Test metrics')
  assert [r[0] for r in rows] == ['mlp_ae', 'mlp_vae', 'conv_ae', 'conv_vae']
  head = md.split('## Test metrics\n', 1)[1].splitlines()[1]
  assert 'PSNR' in head and 'PCA PSNR' in head
  psnr = head.strip('|').split('|').index(' PSNR (↑) ')
  assert all(5 < float(r[psnr]) < 60 for r in rows)
  r = np.load(tmp_path / 'latent' / 'reconstruct' / 'reconstruct.npz')
  assert r['originals'].shape[0] == 10 and len(r['models']) == 4


def test_hyperparameter_tables(tmp_path):
  md = _run('hyperparameter_tables', tmp_path)
  for kind in ('AE', 'VAE'):
    assert len(_table(md, f'{kind}: batch')) == 3
    assert len(_table(md, f'{kind}: learning rate')) == 4
    assert len(_table(md, f'{kind}: latent size')) == 4


def test_beta_disentanglement(tmp_path):
  md = _run('beta_disentanglement', tmp_path)
  rows = _table(md, 'MIG and reconstruction per β')
  assert len(rows) == 3
  head = md.split('## MIG and reconstruction per β\n', 1)[1].splitlines()[1]
  mig = head.strip('|').split('|').index(' MIG (↑) ')
  assert all(0.0 <= float(r[mig]) <= 1.0 for r in rows)
  study = json.load(open(tmp_path / 'study.json'))
  assert study['study'] == 'beta_disentanglement' and study['quick']


def _full_budget_configs(tmp_path):
  """Every config each study trains at its default (not --quick) budget."""
  from ae_jax.studies import Study
  from ae_jax.studies import (ae_vs_vae_noise, beta_disentanglement, hyperparameter_tables,
                              kl_weight_study, latent_edits, latent_noise_generation,
                              reconstruction_quality)
  study = lambda name: Study(name, str(tmp_path / name))
  rq = study('reconstruction_quality')
  yield from (reconstruction_quality._config(rq, *m[1:]) for m in reconstruction_quality.MODELS)
  yield latent_noise_generation._config(study('latent_noise_generation'))
  ht = study('hyperparameter_tables')
  yield from (hyperparameter_tables._config(ht, k) for k in ('ae', 'vae'))
  av = study('ae_vs_vae_noise')
  yield from (ae_vs_vae_noise._config(av, n) for n in ('ae_conv', 'vae_conv'))
  yield kl_weight_study._config(study('kl_weight_study'))
  yield latent_edits._config(study('latent_edits'))
  yield beta_disentanglement._config(study('beta_disentanglement'))
  from ae_jax.studies import high_frequency
  hf = study('high_frequency')
  yield from (high_frequency._conv_config(hf, o) for _, _, o in high_frequency.REMEDIES)
  yield from (high_frequency._mlp_config(hf, p) for p, _ in high_frequency.MLP_PAIR)


def test_every_study_builds_its_full_budget_models(tmp_path):
  """--quick swaps the models for tiny ones; this checks the real ones are valid configs
  that build, without training them."""
  import jax
  import jax.numpy as jnp
  from ae_jax import config_lib, sweep
  from ae_jax.models import build_model
  channels = {'wafer': 3, 'dsprites': 1}
  for cfg in _full_budget_configs(tmp_path):
    cfg = config_lib.resolve(cfg)
    for prog in sweep.programs(cfg):
      size = prog.config.data.image_size or 64
      shape = (size, size, prog.config.data.channels or channels.get(cfg.data.name, 3))
      model = build_model(prog.config.model, shape)
      jax.eval_shape(lambda m=model, s=shape: m.init(jax.random.PRNGKey(0), jnp.zeros((1, *s))))

