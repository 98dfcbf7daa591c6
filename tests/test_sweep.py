import csv
import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import config_lib, inference, losses, steps, sweep, workdir as wd
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.export import export_member
from ae_jax.models import slice_latent
from ae_jax.train import train_and_evaluate
from ae_jax.compile import Compiler
from ae_jax.training import Training, prepare


def test_members_are_a_named_product_or_zip(tiny):
  names = [m['name'] for m in sweep.expand(tiny(sweep__beta=(0.0, 4.0),
                                                sweep__seed=(1, 2)))]
  assert names == ['beta=0,seed=1', 'beta=0,seed=2', 'beta=4,seed=1', 'beta=4,seed=2']
  zipped = sweep.expand(tiny(sweep__beta=(0.0, 4.0), sweep__learning_rate=(1e-3, 1e-2),
                             sweep__mode='zip'))
  assert [(m['beta'], m['learning_rate']) for m in zipped] == [(0.0, 1e-3), (4.0, 1e-2)]
  assert [m['name'] for m in sweep.expand(tiny())] == ['run']
  # `--config.sweep.beta=None` arrives as (None,): unset, not a value.
  assert [m['name'] for m in sweep.expand(tiny(sweep__beta=(None,)))] == ['run']


@pytest.mark.parametrize('overrides,message', [
    (dict(sweep__beta=()), 'config.sweep.beta=() is empty'),
    (dict(sweep__beta=(1.0, 'a')), "'a' is not a float"),
    (dict(sweep__seed=(1.5,)), '1.5 is not an int'),
    (dict(sweep__beta=(-1.0,)), 'config.sweep.beta=(-1.0,): member beta=-1: '
                                'config.loss.beta=-1.0 must be >= 0'),
    (dict(sweep__learning_rate=(0.1, -0.1)), 'learning_rate=-0.1'),
    (dict(sweep__latent_dim=(0, 4)), 'latent_dim=0'),
    (dict(sweep__beta=(1.0, 2.0), sweep__seed=(1,), sweep__mode='zip'), 'equal length'),
    (dict(sweep__batch_size=(16, -2)), 'config.sweep.batch_size=(16, -2): value -2: '
                                       'config.train.batch_size=-2 must be > 0'),
    (dict(sweep__eval_epochs=(1, 9)), 'eval_epochs=(1, 9): 9 is not an epoch in 1..'),
])
def test_bad_sweeps_fail_before_compiling(overrides, message, tiny):
  with pytest.raises(ConfigError) as e:
    for p in sweep.programs(tiny(**overrides)):
      prepare(p.config, p.members)
  assert message in str(e.value)


# ---- a swept value passes its key's own check ---------------------------------------------

_BAD = {'positive': 0, 'non_negative': -1, 'at_least_1': 0, 'unit': 1.0, 'open_unit': 0.0}


def _owner_flags(key) -> list[str]:
  """Overrides under which `key` is read (its objective, its model kind)."""
  from ae_jax import objectives
  for o in objectives.OBJECTIVES:
    if key in o.keys:
      return [f'--config.loss.objective={o.name}', f'--config.model.kind={o.kinds[0]}']
  return ['--config.model.kind=vqvae'] if key.name == 'loss.commitment' else []


def _bad_value(key):
  if key.allowed():
    return "'nope'"
  bad = _BAD[key.check]
  return f'({bad},)' if key.kind in ('ints', 'floats') else repr(bad)


SWEPT = {axis: key for axis, key in sweep.DECLARED.items() if key.check or key.allowed()}


@pytest.mark.parametrize('axis', sorted(SWEPT))
def test_a_sweep_value_is_checked_as_its_key(axis, tmp_path, capsys, tree_digest):
  """Every declared axis (the objectives' weights included): a value its key refuses is
  refused as a sweep value too, by the key's own check, naming the member; one line, exit
  code 2, the workdir as it was."""
  from ae_jax.main import main as ae_main
  key = SWEPT[axis]
  bad = _bad_value(key)
  flags = ['--config', 'vae_mlp', '--workdir', str(tmp_path / 'w'), *_owner_flags(key)]
  (tmp_path / 'w').mkdir()
  (tmp_path / 'w' / 'keep.txt').write_text('x')
  before = tree_digest(tmp_path)
  with pytest.raises(SystemExit) as e:
    ae_main(flags + [f'--config.{key.name}={bad}'])
  single = capsys.readouterr().err.strip()
  assert e.value.code == 2 and single.startswith(f'error: config.{key.name}=')
  values = f'({bad}, {key.default!r})'  # the bad value beside the key's default
  with pytest.raises(SystemExit) as e:
    ae_main(flags + [f'--config.sweep.{axis}={values}'])
  swept = capsys.readouterr().err.strip()
  assert e.value.code == 2 and len(swept.splitlines()) == 1
  assert swept.startswith(f'error: config.sweep.{axis}=')
  assert swept.endswith(single[len('error: '):])  # the key's own line, word for word
  assert ('member ' if key.sweep == 'vmap' else 'value ') in swept
  assert tree_digest(tmp_path) == before


def test_unknown_axis_is_named(tiny):
  cfg = tiny()
  with cfg.unlocked():
    cfg.sweep.dropout = (0.1,)
  with pytest.raises(ConfigError, match='config.sweep.dropout is not a sweep axis'):
    sweep.programs(cfg)


def test_latent_sweep_on_a_preset_without_latent_head_is_an_error(tiny):
  cfg = tiny(model__preset='conv_ae_small', model__kind='ae', data__name='wafer',
             data__num_examples=40, model__latent_dim=0, sweep__latent_dim=(8, 16))
  with pytest.raises(ConfigError, match='cannot be swept'):
    prepare(cfg)


def _epochs(setup, state, n):
  images = jnp.asarray(setup.dataset.train['image'])
  for e in range(n):
    state, _ = setup.functions.epoch(state, images, setup.inputs, e)
  return state


def _member(tree, i):
  return jax.tree_util.tree_map(lambda x: np.asarray(x[i]), tree)


@pytest.mark.slow
@pytest.mark.parametrize('overrides', [
    dict(),
    dict(model__arch='conv', model__conv__channels=(4,), model__conv__latent='spatial'),
], ids=['mlp', 'conv_spatial'])
def test_masked_weights_never_change_even_with_weight_decay(overrides, tiny):
  setup = prepare(tiny(sweep__latent_dim=(2, 6), optim__name='adamw',
                     optim__weight_decay=0.1, **overrides))
  init = setup.init_state()
  final = _epochs(setup, jax.tree_util.tree_map(jnp.array, init), 2)
  a, b = _member(init.params, 0), _member(final.params, 0)
  full = lambda t: slice_latent(setup.model, t, 6)
  small = lambda t: slice_latent(setup.model, t, 2)
  # member 0 sliced to its 2 units is, shape for shape, the standalone 2-unit model
  alone = prepare(tiny(model__latent_dim=2, optim__name='adamw', **overrides))
  chex.assert_trees_all_equal_shapes(small(a),
                                     _member(alone.functions.stack(alone.init_state()).params, 0))
  # Entries of the latent-indexed parameters beyond unit 2 are untouched for member 0 ...
  mask = jax.tree_util.tree_map(lambda p: np.ones_like(p), a)
  mask = steps.mask_latent_updates(setup.model, mask, jnp.array([1., 1., 0., 0., 0., 0.]))
  chex.assert_trees_all_equal(jax.tree_util.tree_map(lambda x, m: np.where(m == 0, x, 0), a, mask),
                              jax.tree_util.tree_map(lambda y, m: np.where(m == 0, y, 0), b, mask))
  # ... while its active units and the unmasked member's did train.
  moved = lambda p, q: jax.tree_util.tree_leaves(
      jax.tree_util.tree_map(lambda x, y: not np.allclose(x, y), p, q))
  assert any(moved(small(a), small(b)))
  c, d = _member(init.params, 1), _member(final.params, 1)
  assert all(moved(full(c), full(d)))


@pytest.mark.slow
def test_masked_member_loss_equals_standalone_smaller_model(tiny):
  setup = prepare(tiny(sweep__latent_dim=(3, 8)))
  state = setup.init_state()
  x = jnp.asarray(setup.dataset.test['image'][:16])
  p8 = _member(state.params, 0)
  mask = setup.spec.hparams['latent_mask'][0]
  big = setup.model.apply({'params': p8}, x, sample=False, latent_mask=mask)
  small_setup = prepare(tiny(model__latent_dim=3))
  small = small_setup.model.apply({'params': slice_latent(setup.model, p8, 3)}, x, sample=False)
  np.testing.assert_allclose(big.recon, small.recon, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses.kl_divergence(big.mean, big.logvar),
                             losses.kl_divergence(small.mean, small.logvar), rtol=1e-5)
  assert big.mean.shape == (16, 8) and float(jnp.abs(big.mean[:, 3:]).max()) == 0.0


@pytest.mark.slow
def test_latent_member_trains_like_a_standalone_model_from_the_same_start(tiny):
  # An AE (no sampling noise) so both runs see identical randomness.
  cfg = dict(model__kind='ae', sweep__latent_dim=(2, 6))
  setup = prepare(tiny(**cfg))
  init = setup.init_state()
  small = prepare(tiny(model__kind='ae', model__latent_dim=2))
  start = small.init_state()
  cut = lambda t: slice_latent(setup.model, t, 2)
  m0 = _member(init, 0)
  start = start.replace(params=jax.tree_util.tree_map(jnp.asarray, cut(m0.params)))
  trained_member = _member(_epochs(setup, init, 2).params, 0)
  trained_small = _member(small.functions.stack(_epochs(small, start, 2)).params, 0)
  chex.assert_trees_all_close(cut(trained_member), trained_small, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_outer_axes_and_chunks_share_compilations_and_match_one_program(tmp_path, tiny):
  progs = sweep.programs(tiny(sweep__beta=(0.0, 1.0, 4.0, 8.0), sweep__batch_size=(16, 32),
                              sweep__max_members_per_program=2))
  assert [p.name for p in progs] == ['batch_size=16,part=1', 'batch_size=16,part=2',
                                     'batch_size=32,part=1', 'batch_size=32,part=2']
  assert progs[0].members[0]['name'] == 'batch_size=16,beta=0'
  compiler = Compiler()  # a run's compilations (train_and_evaluate makes one per run)
  setups = [Training.create(p.config, p.members, compiler=compiler) for p in progs]
  assert setups[0].functions is setups[1].functions  # equal chunks: one compilation
  assert setups[0].functions is not setups[2].functions  # another batch size: another program

  chunked = str(tmp_path / 'chunked')
  whole = str(tmp_path / 'whole')
  train_and_evaluate(tiny(sweep__beta=(0.0, 1.0, 4.0), sweep__max_members_per_program=2,
                          figures__enabled=True), chunked)
  # the top level of a multi-program sweep draws every program's members in one recon.png
  assert os.path.getsize(os.path.join(chunked, 'figures', 'recon.png')) > 1000
  train_and_evaluate(tiny(sweep__beta=(0.0, 1.0, 4.0)), whole)
  assert sorted(os.listdir(os.path.join(chunked, 'programs'))) == ['part=1', 'part=2']
  for name in ('beta=0', 'beta=4'):
    part = 'part=1' if name == 'beta=0' else 'part=2'
    a = inference.load(os.path.join(chunked, 'programs', part),
                       member=name)
    b = inference.load(whole, member=name)
    chex.assert_trees_all_close(a.params, b.params, rtol=2e-4, atol=2e-5)
  top = json.load(open(os.path.join(chunked, 'summary.json')))
  assert [m['name'] for m in top['members']] == ['beta=0', 'beta=1', 'beta=4']


@pytest.mark.slow
def test_unrolled_members_match_vmapped_members(tiny):
  a = prepare(tiny(sweep__beta=(0.0, 4.0), sweep__vectorize='vmap'))
  b = prepare(tiny(sweep__beta=(0.0, 4.0), sweep__vectorize='unroll'))
  assert (a.functions.policy.vectorize, b.functions.policy.vectorize) == ('vmap', 'unroll')
  pa, pb = (_epochs(s, s.init_state(), 1).params for s in (a, b))
  chex.assert_trees_all_close(pa, pb, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_sweep_tables_figures_and_eval_epochs(tmp_path, tiny):
  workdir = str(tmp_path / 'w')
  cfg = tiny(train__num_epochs=3, train__eval_every=3, sweep__beta=(0.0, 4.0),
             sweep__latent_dim=(2, 8), sweep__eval_epochs=(1,), figures__enabled=True)
  summary = train_and_evaluate(cfg, workdir)
  rows = list(csv.DictReader(open(os.path.join(workdir, 'sweep.csv'))))
  assert len(rows) == 4 * 2  # members x evaluated epochs (1 and 3)
  assert {r['epoch'] for r in rows} == {'1', '3'}
  assert list(rows[0])[:3] == ['beta', 'latent_dim', 'epoch']
  metrics = wd.Workdir(workdir).read_metrics()
  ev = next(r for r in metrics if r['split'] == 'eval' and r['member'] == 'beta=4,latent_dim=2'
            and r['epoch'] == 3)
  row = next(r for r in rows if r['beta'] == '4.0' and r['latent_dim'] == '2' and r['epoch'] == '3')
  assert float(row['psnr']) == pytest.approx(ev['psnr'])
  assert float(row['active_units']) <= 2  # a 2-unit member never has more
  md = open(os.path.join(workdir, 'sweep.md')).read()
  assert md == summary['table'] and md.startswith('| beta | latent_dim | epoch | training loss |')
  for name in ('sweep_beta.png', 'sweep_latent_dim.png', 'rate_distortion.png', 'recon.png'):
    assert os.path.getsize(os.path.join(workdir, 'figures', name)) > 1000
  # Each evaluation epoch also has a checkpoint (kept beyond max_to_keep), so a table
  # row can be reloaded.
  assert inference.load(workdir, member='beta=4,latent_dim=2', epoch=1).epoch == 1


@pytest.mark.slow
def test_export_member_makes_a_standalone_workdir(tmp_path, tiny):
  workdir, out = str(tmp_path / 'w'), str(tmp_path / 'member')
  train_and_evaluate(tiny(sweep__beta=(0.0, 4.0), sweep__latent_dim=(2, 8)), workdir)
  export_member(workdir, 'beta=4,latent_dim=2', out)
  config = config_lib.read_config(wd.Workdir(out))
  assert config.model.latent_dim == 2 and config.loss.beta == 4.0
  assert config.sweep.beta is None and config.sweep.latent_dim is None
  m = inference.load(out)
  assert m.params['decoder']['dense_0']['kernel'].shape[0] == 2  # sliced to its own size
  src = inference.load(workdir, member='beta=4,latent_dim=2')
  x = prepare(tiny()).dataset.test['image'][:8]
  np.testing.assert_allclose(m.reconstruct(x), src.reconstruct(x), rtol=1e-5, atol=1e-6)
  # It is an ordinary workdir: training resumes there.
  config.train.num_epochs = 3
  summary = train_and_evaluate(config, out)
  assert summary['members'][0]['name'] == 'run'
  rows = wd.Workdir(out).read_metrics()
  assert [r['epoch'] for r in rows if r['split'] == 'train'] == [1, 2, 3]
  # A second export onto the now-trained folder is refused, unless --replace moves it aside.
  with pytest.raises(WorkdirError, match='holds an exported workdir; choose another folder, or '
                     'pass --replace'):
    export_member(workdir, 'beta=4,latent_dim=2', out)
  export_member(workdir, 'beta=4,latent_dim=2', out, replace=True)
  assert inference.load(out).epoch == 2
  assert any(n.startswith('member.old-') for n in os.listdir(tmp_path))
  (tmp_path / 'a_file').write_text('x')  # an --out that is a file: one line, not a traceback
  with pytest.raises(WorkdirError, match='is a file, not a folder; choose another --out'):
    export_member(workdir, 'beta=4,latent_dim=2', str(tmp_path / 'a_file'), replace=True)
  assert (tmp_path / 'a_file').read_text() == 'x'


@pytest.mark.slow
def test_latent_sweep_cli_prints_the_table(tmp_path, root, hang_s, checkout_env):
  r = subprocess.run(
      [sys.executable, '-m', 'ae_jax.main', '--config', 'configs/sweep_latent.py',
       '--workdir', str(tmp_path / 'lat'), "--config.sweep.latent_dim=(2,16)",
       '--config.data.image_size=8', '--config.train.num_epochs=2',
       "--config.sweep.eval_epochs=(1,)", "--config.model.hidden=(32,)",
       "--config.eval.metrics=('loss','recon','kl','neg_elbo','psnr','ssim','active_units')"],
      cwd=root, env=checkout_env(), capture_output=True, text=True, timeout=hang_s)
  assert r.returncode == 0, r.stderr[-2000:]
  assert ('| latent_dim | epoch | training loss | loss | eval recon | KL | -ELBO | PSNR | SSIM | '
          'active units |') in r.stdout
  assert r.stdout.count('\n| 16 |') == 2 and r.stdout.count('\n| 2 |') == 2


@pytest.mark.slow
def test_a_latent_size_sweep_resumes_on_a_rerun(tmp_path, tiny):
  """Its workdir records the program's config (built at the largest size): a rerun with
  more epochs must resume, not be refused as another experiment."""
  workdir = str(tmp_path / 'w')
  train_and_evaluate(tiny(sweep__latent_dim=(2, 8), train__num_epochs=1), workdir)
  summary = train_and_evaluate(tiny(sweep__latent_dim=(2, 8), train__num_epochs=2),
                               workdir)
  assert [m['name'] for m in summary['members']] == ['latent_dim=2', 'latent_dim=8']
  assert inference.load(workdir, member='latent_dim=8').epoch == 2
