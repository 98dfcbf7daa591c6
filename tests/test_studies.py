"""Every study end to end at its --smoke budget (the suite's tiny stand-in, which says at the
top of its report that it is not the report's experiment): the report, its tables,
results.json and the arrays the study promises, and a rerun that resumes instead of
retraining. That --quick is each report's experiment, smaller, is checked on the configs
without training (docs/studies/ gives each study's measured full-budget time)."""
import importlib
import json
import os
import re

import numpy as np
import pytest

from ae_jax import config_lib
from ae_jax.metrics import registry
from ae_jax.studies import (BUDGET_KEYS, NATIVE, STUDIES, Experiment, Model, Study, budget_doc,
                            build, effective)
from ae_jax.studies.__main__ import main as study_main


def _results(workdir) -> dict:
  return json.load(open(os.path.join(workdir, 'results.json')))


@pytest.mark.slow
def test_latent_noise_generation(tmp_path, capsys, smoke_study):
  md = smoke_study('latent_noise_generation', tmp_path)
  out = tmp_path / 'latent' / 'generate'
  data, labels = np.load(out / 'gen_data.npy'), np.load(out / 'gen_label.npy')
  ids = np.load(out / 'gen_ids.npy')
  assert data.dtype == np.uint8 and data.shape[1:] == (26, 26) and len(labels) == len(data)
  assert len(data) == 5 * len(set(ids.tolist())) == 100  # 20 ids, 5 samples each
  per_class = np.load(tmp_path / 'latent' / 'generate_per_class' / 'gen_label.npy')
  assert np.bincount(per_class).tolist().count(25) == 3  # Center, Edge-Loc, none: 5 x 5 each
  assert '## 5 maps per class, 5 samples each' in md
  # the smoke set (300 maps) lacks report 000's ids: said on the console and in the report
  said = ("This dataset has 300 maps, too few for report 000's ids 1-5,226-230,841-845,"
          '1471-1475: these are ids 0-19 instead.')
  assert f'note: {said}' in capsys.readouterr().out and said in md


@pytest.mark.slow
def test_ae_vs_vae_noise_and_rerun_resumes(tmp_path, capsys, smoke_study, report_table):
  md = smoke_study('ae_vs_vae_noise', tmp_path)
  rows = report_table(md, 'How far decoded noise falls from the data')
  assert [r[0] for r in rows] == ['AE', 'VAE']
  assert all(float(r[1]) > 0 and np.isfinite(float(r[4])) for r in rows)
  results = _results(tmp_path)
  assert [m['key'] for m in results['models']] == ['ae', 'vae']
  assert results['models'][0]['extra']['ratio'] == pytest.approx(float(rows[0][4]), rel=1e-3)
  z = np.load(tmp_path / 'latent' / 'same_noise' / 'same_noise.npz')
  assert z['noise'].shape[:2] == (2, 8)
  np.testing.assert_array_equal(z['decoded_0'].shape, z['decoded_1'].shape)
  capsys.readouterr()
  smoke_study('ae_vs_vae_noise', tmp_path)  # resumes both models, trains nothing, redraws
  assert 'resumed' in capsys.readouterr().out
  with pytest.raises(SystemExit) as e:
    study_main(['latent_edits', '--workdir', str(tmp_path), '--smoke'])
  assert e.value.code == 2
  assert "holds the study 'ae_vs_vae_noise'" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:  # another budget's models would not be these
    study_main(['ae_vs_vae_noise', '--workdir', str(tmp_path), '--quick'])
  assert e.value.code == 2
  assert 'holds the ae_vs_vae_noise study at the smoke budget, not quick' in (
      capsys.readouterr().err)


@pytest.mark.slow
def test_kl_weight_study(tmp_path, smoke_study, report_table):
  md = smoke_study('kl_weight_study', tmp_path)
  rows = report_table(md, 'Final test metrics per KL weight')
  assert [r[1] for r in rows] == ['×0', '×1', '×100']
  assert md.count('## Reconstructions at epochs 1, 2') == 3
  # its captions say what it ran, not the full budget's three epochs
  assert md.count("The same 8 test images at epochs 1, 2 of this member's 2-epoch run.") == 3
  assert 'three' not in md
  assert md.count('## Prior samples') == 3 and md.count('## Interpolation') == 3
  r = np.load(tmp_path / 'latent' / 'reconstruct_1' / 'reconstruct.npz')
  assert list(r['models']) == ['member beta=1, epoch 1', 'member beta=1, epoch 2']
  results = _results(tmp_path)
  assert [(m['key'], m['sweep']) for m in results['models']] == [
      ('vae/beta=0', {'beta': 0.0}), ('vae/beta=1', {'beta': 1.0}),
      ('vae/beta=100', {'beta': 100.0})]
  psnr = [registry.get('psnr').format(m['metrics']['psnr']) for m in results['models']]
  head = md.split('## Final test metrics per KL weight\n', 1)[1].splitlines()[1]
  col = head.strip('|').split('|').index(' PSNR (↑) ')
  assert psnr == [r[col] for r in rows]  # the table and results.json: the same rows


@pytest.mark.slow
def test_latent_edits(tmp_path, smoke_study):
  md = smoke_study('latent_edits', tmp_path)
  e = np.load(tmp_path / 'latent' / 'edit' / 'edit.npz')
  assert set(e.files) >= {'original', 'reconstruction', 'dim0_scale2_shift0', 'dim2_scale1_shift5'}
  t = np.load(tmp_path / 'latent' / 'traverse' / 'traverse.npz')
  assert t['grid'].shape[:2] == (4, 7)  # every dimension of the smoke 4-dim code
  assert '## Architecture' in md and 'parameters' in md
  assert '## Edits: dim 0 ×2, dim 2 +5' in md


@pytest.mark.slow
def test_reconstruction_quality(tmp_path, smoke_study, report_table):
  md = smoke_study('reconstruction_quality', tmp_path)
  rows = report_table(md, 'Test metrics')
  assert [r[0] for r in rows] == ['mlp_ae', 'mlp_vae', 'conv_ae', 'conv_vae']
  head = md.split('## Test metrics\n', 1)[1].splitlines()[1]
  assert 'PSNR' in head and 'PCA PSNR' in head
  psnr = head.strip('|').split('|').index(' PSNR (↑) ')
  assert all(5 < float(r[psnr]) < 60 for r in rows)
  # the models table names what ran (smoke: custom models), not a preset it did not build
  assert [r[1] for r in report_table(md, 'Models')] == ['mlp', 'mlp', 'conv', 'conv']
  r = np.load(tmp_path / 'latent' / 'reconstruct' / 'reconstruct.npz')
  assert r['originals'].shape[0] == 10 and len(r['models']) == 4
  assert [m['description'].split(',')[0] for m in _results(tmp_path)['models']] == [
      'mlp_ae_50', 'mlp_vae_50', 'conv_ae_bn_mish', 'conv_vae_bn_mish']


@pytest.mark.slow
def test_hyperparameter_tables(tmp_path, smoke_study, report_table):
  md = smoke_study('hyperparameter_tables', tmp_path)
  for kind in ('AE', 'VAE'):
    assert len(report_table(md, f'{kind}: batch')) == 3
    assert len(report_table(md, f'{kind}: learning rate')) == 4
    assert len(report_table(md, f'{kind}: latent size')) == 4
  rows = {m['key']: m for m in _results(tmp_path)['models']}
  assert rows['vae_lr/learning_rate=0.1']['table'] == 'VAE: learning rate'
  assert rows['ae_epochs/epoch=2']['extra']['training loss'] > 0


@pytest.mark.slow
def test_beta_disentanglement(tmp_path, smoke_study, report_table):
  md = smoke_study('beta_disentanglement', tmp_path)
  rows = report_table(md, 'MIG and reconstruction per β')
  assert len(rows) == 3
  head = md.split('## MIG and reconstruction per β\n', 1)[1].splitlines()[1]
  mig = head.strip('|').split('|').index(' MIG (↑) ')
  assert all(0.0 <= float(r[mig]) <= 1.0 for r in rows)
  study = json.load(open(tmp_path / 'study.json'))
  assert study['study'] == 'beta_disentanglement' and study['budget'] == 'smoke'


# ---- the budgets, on configs (no training) --------------------------------------------


def _modules():
  return [importlib.import_module(f'ae_jax.studies.{name}') for name in STUDIES]


@pytest.mark.slow  # builds full-size models or draws figures: seconds
def test_quick_is_the_full_experiment_smaller():
  """For every model of every study, --quick trains the data kind, image size, channels,
  model family and latent size of the full budget (its declared Experiment), with no
  more examples or epochs."""
  for module in _modules():
    assert module.MODELS, module.NAME
    for model in module.MODELS:
      full, quick = (config_lib.resolve(build(model, b)[0]) for b in ('full', 'quick'))
      assert effective(quick) == effective(full) == model.experiment, (module.NAME, model.key)
      assert quick.train.num_epochs <= full.train.num_epochs
      assert quick.data.num_examples <= full.data.num_examples
      assert (quick.train.num_epochs, quick.data.num_examples) != (
          full.train.num_epochs, full.data.num_examples), (module.NAME, model.key)
  # a quick budget that would change the model is refused where it is declared
  e = Experiment('digits', 8, 1, 'mlp', 'ae', 4)
  with pytest.raises(ValueError, match="'model.latent_dim'.* would change the experiment"):
    Model('m', 'a model', e, {'full': {}, 'quick': {'model.latent_dim': 2}, 'smoke': {}})
  assert 'data.num_examples' in BUDGET_KEYS and 'model.hidden' not in BUDGET_KEYS


def test_native_sizes_are_the_datasets_own(tiny):
  """effective() reads data.image_size/channels 0 as the dataset's own: NATIVE is right."""
  from ae_jax import data
  for name, (size, channels) in NATIVE.items():
    cfg = tiny(data__name=name, data__num_examples=20, data__image_size=0)
    assert data.load(cfg.data).info.image_shape == (size, size, channels), name


def test_a_quick_report_says_so_at_the_top_and_prints_resolved_sizes(tmp_path):
  """Without training: the quick banner names the experiment and what the budget changed;
  settings show a preset's resolved latent size (latent_edits printed model.latent_dim 0
  for its 10-dim code)."""
  from ae_jax.studies import latent_edits
  from ae_jax.studies.report import Report
  study = Study('latent_edits', str(tmp_path), budget='quick')
  cfg = study.config(latent_edits.MODELS[0])
  rep = Report('Latent edits')
  rep.settings(cfg, ('model.preset', 'model.arch', 'model.latent_dim', 'train.num_epochs'))
  md_path, _ = rep.write(study.wd, study)
  md = open(md_path).read()
  budgets = latent_edits.MODELS[0].budgets
  quick, full = budgets['quick'], budgets['full']
  assert md.split('\n')[2] == (
      "> **Quick budget (`--quick`)**: the full report's experiment (faces 64x64x3, fcn_ae_64 "
      f"AE, 10 latents) with less data and training: train.eval_every {quick['train.eval_every']}"
      f" (full: {full['train.eval_every']}); train.num_epochs {quick['train.num_epochs']} "
      f"(full: {full['train.num_epochs']}). Its numbers are not the full budget's.")
  assert '| model.latent_dim | 10 |' in md
  assert "| model.arch | the preset's (fcn_ae_64) |" in md  # not the unused default
  results = _results(tmp_path)
  assert results['budget'] == 'quick' and results['settings']['Settings'] == {
      'model.preset': 'fcn_ae_64', 'model.arch': "the preset's (fcn_ae_64)",
      'model.latent_dim': 10, 'train.num_epochs': quick['train.num_epochs']}
  assert results['experiments']['fcn_ae'] == {'data': 'faces', 'image_size': 64,
                                              'channels': 3, 'family': 'fcn_ae_64',
                                              'kind': 'ae', 'latent': 10}


def test_docstrings_state_budgets_from_the_code():
  """No hand-written times or epoch counts: the budgets paragraph is generated from
  MODELS, and the text above it states neither."""
  for module in _modules():
    doc = module.__doc__
    assert doc.endswith(budget_doc(module.MODELS)), module.NAME
    prose = doc[:-len(budget_doc(module.MODELS))]
    found = re.findall(r'\d+\s*(?:min|minutes|s on|epochs?\b)|about \d+', prose)
    assert not found, (module.NAME, found)


def test_a_study_applies_the_preset_rule_to_its_own_latent_size(tmp_path, capsys):
  from ae_jax.studies import kl_weight_study
  study = Study('kl_weight_study', str(tmp_path), ['--config.model.preset=conv_vae_bn_mish'])
  config = study.config(kl_weight_study.MODELS[0])  # the study's 32-unit conv VAE
  assert config_lib.resolve(config).model.latent_dim == 1024
  assert ('note: model.preset=conv_vae_bn_mish from the command line builds its published '
          '1024-unit code, not the model.latent_dim=32 that the study sets'
          in capsys.readouterr().out)


@pytest.mark.slow
def test_every_study_builds_its_full_budget_models(tmp_path):
  """--smoke swaps the models for tiny ones and --quick keeps the full ones (above); this
  checks the full ones are valid configs that build, without training them: each program's
  model maps a batch of the study's images to reconstructions of their shape through a code
  of its latent size (the last axis: a vector, or a spatial code's channels), with a
  log-variance exactly for a VAE."""
  import jax
  import jax.numpy as jnp
  from ae_jax import sweep
  from ae_jax.models import abstract_variables, build_model, resolve_latent_dim
  for module in _modules():
    for model in module.MODELS:
      cfg = config_lib.resolve(build(model, 'full')[0])
      e = effective(cfg)
      for prog in sweep.programs(cfg):
        shape = (e.image_size, e.image_size, e.channels)
        net = build_model(prog.config.model, shape)
        images = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
        out = jax.eval_shape(lambda v, x, m=net: m.apply(v, x, sample=False),
                             abstract_variables(net, shape), images)
        where = (module.NAME, model.key)
        assert out.recon.shape == (2, *shape), where
        assert out.mean.shape[0] == 2, where
        assert out.mean.shape[-1] == resolve_latent_dim(prog.config.model), where
        vae = prog.config.model.kind == 'vae'
        assert (out.logvar.shape == out.mean.shape) if vae else out.logvar is None, where
