import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import checkpoint, compile as compile_lib, inference
from ae_jax.errors import ConfigError, NonFiniteLossError, WorkdirError
from ae_jax.main import main as ae_main
from ae_jax.train import train_and_evaluate
from ae_jax.training import prepare

TINY_FLAGS = ['--config.data.image_size=8', "--config.model.hidden=(32,)",
              '--config.model.latent_dim=4', '--config.train.num_epochs=2',
              '--config.train.eval_every=1', '--config.checkpoint.every_epochs=1',
              '--config.figures.num_images=4',
              "--config.eval.metrics=('loss','recon','kl','neg_elbo','psnr','ssim')"]


@pytest.fixture
def run_cli(root, hang_s, checkout_env):
  """run_cli(*args) -> `python -m ae_jax.main *args`, finished, in the checkout."""
  def run(*args):
    return subprocess.run([sys.executable, '-m', 'ae_jax.main', *args], cwd=root,
                          env=checkout_env(JAX_PLATFORMS='cpu'), capture_output=True,
                          text=True, timeout=hang_s)
  return run


@pytest.mark.slow
def test_cli_end_to_end_writes_the_workdir_contract(tmp_path, run_cli):
  workdir = str(tmp_path / 'run')
  r = run_cli('--config', 'configs/vae_mlp.py', '--workdir', workdir, *TINY_FLAGS)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'epoch 2/2 eval:' in r.stdout and 'psnr' in r.stdout
  assert 'step/s' not in r.stderr and '%|' not in r.stderr  # no progress bar off a terminal
  for name in ('config.json', 'members.json', 'metrics.jsonl', 'summary.json',
               'figures/loss.png', 'figures/neg_elbo.png', 'figures/recon.png'):
    path = os.path.join(workdir, name)
    assert os.path.getsize(path) > 0, name
  with open(os.path.join(workdir, 'figures/recon.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  cfg = json.load(open(os.path.join(workdir, 'config.json')))
  assert cfg['data']['image_size'] == 8 and cfg['model']['hidden'] == [32]
  rows = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  train = [r for r in rows if r['split'] == 'train']
  evals = [r for r in rows if r['split'] == 'eval']
  assert [r['epoch'] for r in train] == [1, 2] and [r['epoch'] for r in evals] == [1, 2]
  assert train[1]['step'] == 2 * (1438 // 64)
  for key in ('loss', 'recon', 'kl', 'neg_elbo', 'psnr', 'ssim'):
    assert key in evals[-1] and np.isfinite(evals[-1][key])
  summary = json.load(open(os.path.join(workdir, 'summary.json')))
  assert summary['members'][0]['eval']['psnr'] == evals[-1]['psnr']
  assert evals[-1]['loss'] < evals[0]['loss'] * 1.05
  spe = 1438 // 64  # checkpoints are numbered by optimizer step
  saved = sorted(os.listdir(os.path.join(workdir, 'checkpoints')), key=int)
  assert saved == [str(spe), str(2 * spe)]

  # --mode=evaluate needs no --config: it reads the workdir's own, reproduces the final
  # eval metrics, says which epoch it evaluated and writes eval.json.
  r = run_cli('--workdir', workdir, '--mode=evaluate', '--metrics=psnr,ssim')
  assert r.returncode == 0, r.stderr[-2000:]
  assert f'evaluated {workdir} at epoch 2 (step {2 * spe}) on 359 test images' in r.stdout
  out = json.load(open(os.path.join(workdir, 'eval.json')))
  np.testing.assert_allclose(out['members'][0]['eval']['psnr'], evals[-1]['psnr'], rtol=1e-5)
  assert '| PSNR |' in r.stdout
  # A --config for another model is refused, not silently ignored.
  r = run_cli('--config', 'configs/ae_conv.py', '--workdir', workdir, '--mode=evaluate')
  assert r.returncode == 2 and 'holds a model trained with another config' in r.stderr
  assert 'Leave out --config to evaluate it with its own' in r.stderr  # not --fresh: no training
  assert '--fresh' not in r.stderr
  r = run_cli('--workdir', str(tmp_path / 'none'), '--mode=evaluate')
  assert r.returncode == 2 and 'is not a trained workdir' in r.stderr
  assert 'Traceback' not in r.stderr


@pytest.mark.parametrize('flag,message', [
    ('--config.train.nope=1', 'config.train.nope is not a config key; train has: batch_size, '
                              'chunk_steps, eval_batch_size'),
    ('--config.train.learnig_rate=1', 'config.train.learnig_rate is not a config key (did you '
                                      'mean train.learning_rate?)'),
    ('--config.train.batch_size=abc', '--config.train.batch_size=abc: expected an int'),
    ('--config.model.kind=gan',
     "config.model.kind='gan' is not valid; expected one of ['ae', 'vae', 'vqvae', 'fsq']"),
])
def test_cli_bad_config_is_a_clear_error(tmp_path, flag, message, capsys, monkeypatch, root):
  # in-process: the entry point's error path is main()'s (test_cli_end_to_end_... runs the
  # real process); a bad setting stops before anything is built or written
  monkeypatch.chdir(root)
  with pytest.raises(SystemExit) as e:
    ae_main(['--config', 'configs/vae_mlp.py', '--workdir', str(tmp_path / 'x'), flag])
  err = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 2 and len(err) == 1 and message in err[0], err
  assert not (tmp_path / 'x').exists()


@pytest.mark.parametrize('overrides,message', [
    (dict(train__learning_rate=-1.0), 'config.train.learning_rate=-1.0 must be > 0'),
    (dict(loss__reduction='avg'), "config.loss.reduction='avg'"),
    (dict(train__batch_size=5000), 'batch_size=5000 is larger than the 1438 training examples'),
    (dict(model__preset='resnet'),
     "config.model.preset='resnet' is not valid; expected one of ['', 'mlp_ae_50'"),
    (dict(loss__reconstruction='bce', model__output_activation='tanh'), 'bce'),
    (dict(sweep__beta=(1.0, -2.0)), 'beta=-2.0'),
    (dict(data__test_fraction=1.0), 'test_fraction'),
])
def test_bad_config_values_are_named(overrides, message, tiny):
  with pytest.raises(ConfigError) as e:
    prepare(tiny(**overrides))
  assert message in str(e.value)


def _params(tiny, workdir):
  setup = prepare(tiny())
  state, _ = checkpoint.restore_state(os.path.join(workdir, 'checkpoints'),
                                      setup.functions.stack(setup.init_state()))
  return state


@pytest.mark.slow
@pytest.mark.parametrize('overrides', [
    dict(),  # MLP VAE, scan epochs
    dict(model__arch='conv', model__conv__channels=(4, 8), model__norm='batch',
         optim__plateau_factor=0.5, optim__plateau_patience=0),  # BN stats, plateau state
], ids=['mlp_scan', 'conv_bn_python_loop'])
def test_resumed_run_matches_uninterrupted_bit_for_bit(tmp_path, overrides, tiny):
  full, part = str(tmp_path / 'full'), str(tmp_path / 'part')
  train_and_evaluate(tiny(train__num_epochs=3, **overrides), full)
  train_and_evaluate(tiny(train__num_epochs=1, **overrides), part)
  train_and_evaluate(tiny(train__num_epochs=3, **overrides), part)  # resumes at 1
  setup = prepare(tiny(**overrides))
  template = setup.functions.stack(setup.init_state())
  a, _ = checkpoint.restore_state(os.path.join(full, 'checkpoints'), template)
  b, _ = checkpoint.restore_state(os.path.join(part, 'checkpoints'), template)
  chex.assert_trees_all_equal(a, b)
  rows = lambda d: [{k: v for k, v in json.loads(line).items() if k != 'wall_s'}  # timing differs
                    for line in open(os.path.join(d, 'metrics.jsonl'))]
  assert rows(full) == rows(part)


# a tiny resnet AE whose linear pair starts as the training split's PCA
PCA_RESNET = dict(data__name='photos', data__image_size=8, data__num_examples=160,
                  model__kind='ae', model__arch='resnet', model__resnet__channels=(4, 8),
                  model__resnet__linear='pca', model__output_activation='none',
                  eval__metrics=('loss', 'psnr'))


@pytest.mark.slow
def test_resume_restores_the_pca_linear_path_instead_of_refitting_it(tmp_path, monkeypatch,
                                                                    capsys, tiny):
  """model.resnet.linear='pca': the PCA is computed once, on the fresh start; a resumed run
  takes the linear path from its checkpoint and ends where an uninterrupted one does. The
  resume names the settings it changed, and not the keys a newer version added."""
  from ae_jax.models import resnet
  fits, fit = [], resnet.init_linear_from_pca
  monkeypatch.setattr(resnet, 'init_linear_from_pca', lambda *a: fits.append(1) or fit(*a))
  over = PCA_RESNET
  full, part = str(tmp_path / 'full'), str(tmp_path / 'part')
  train_and_evaluate(tiny(**over), full)
  train_and_evaluate(tiny(train__num_epochs=1, **over), part)
  assert len(fits) == 2
  saved = json.load(open(os.path.join(part, 'config.json')))
  del saved['model']['resnet']['patch']  # as an older version wrote it
  json.dump(saved, open(os.path.join(part, 'config.json'), 'w'))
  capsys.readouterr()
  train_and_evaluate(tiny(**over), part)  # resumes at epoch 1
  assert len(fits) == 2, 'the resume fitted the PCA again'
  out = capsys.readouterr().out
  assert 'with changed settings: train.num_epochs: 1 -> 2\n' in out, out
  setup = prepare(tiny(**over))
  template = setup.functions.stack(setup.init_state(from_data=False))
  a, _ = checkpoint.restore_state(os.path.join(full, 'checkpoints'), template)
  b, _ = checkpoint.restore_state(os.path.join(part, 'checkpoints'), template)
  chex.assert_trees_all_equal(a, b)


@pytest.mark.slow
def test_frozen_parameters_keep_their_start_and_the_rest_trains(tmp_path, tiny):
  """optim.freeze=('linear',): the PCA-started linear pair ends bit-identical to its start,
  through weight decay and clipping, in every member of a vmapped learning-rate sweep,
  while every other parameter moves; a path that names nothing is one error."""
  over = dict(PCA_RESNET, train__num_epochs=1, optim__weight_decay=0.1,
              optim__grad_clip_norm=1.0, sweep__learning_rate=(1e-3, 3e-3),
              optim__freeze=('linear',))
  workdir = str(tmp_path / 'w')
  train_and_evaluate(tiny(**over), workdir)
  setup = prepare(tiny(**over))
  start = setup.functions.stack(setup.init_state()).params
  end, _ = checkpoint.restore_state(os.path.join(workdir, 'checkpoints'),
                                    setup.functions.stack(setup.init_state(from_data=False)))
  flat = lambda t: {jax.tree_util.keystr(k): np.asarray(v)
                    for k, v in jax.tree_util.tree_flatten_with_path(t)[0]}
  a, b = flat(start), flat(end.params)
  frozen = [k for k in a if "'linear'" in k]
  assert len(frozen) == 4  # encoder and decoder kernel + bias
  for k in a:
    if k in frozen:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    else:  # each member's slice moved
      assert all(not np.array_equal(a[k][m], b[k][m]) for m in range(2)), k
  with pytest.raises(ConfigError, match="optim.freeze: 'lienar' names no parameter"):
    train_and_evaluate(tiny(**{**over, 'optim__freeze': ('lienar',)}),
                       str(tmp_path / 'bad'))


@pytest.mark.slow
def test_non_finite_loss_stops_with_step_and_term_and_keeps_last_checkpoint(tmp_path,
                                                                           monkeypatch, tiny):
  from ae_jax import losses
  workdir = str(tmp_path / 'w')
  train_and_evaluate(tiny(train__num_epochs=1), workdir)
  good = _params(tiny, workdir)
  # The same config resumed, with a reconstruction term that turns NaN from here on.
  reconstruction = losses.reconstruction
  monkeypatch.setattr(losses, 'reconstruction', lambda *a: reconstruction(*a) * jnp.nan)
  with pytest.raises(NonFiniteLossError) as e, compile_lib.shared():  # traced anew
    train_and_evaluate(tiny(train__num_epochs=3), workdir)
  msg = str(e.value)
  spe = 1438 // 32
  assert f'non-finite training loss at step {spe + 1} (epoch 2' in msg, msg
  assert "term 'recon'" in msg and 'the last good checkpoint is kept' in msg
  assert checkpoint.saved_steps(os.path.join(workdir, 'checkpoints')) == [spe]
  kept = _params(tiny, workdir)
  chex.assert_trees_all_equal(good, kept)
  rows = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert {r['epoch'] for r in rows} == {1}


@pytest.mark.slow
def test_inference_api_round_trip(tmp_path, tiny):
  workdir = str(tmp_path / 'w')
  train_and_evaluate(tiny(), workdir)
  m = inference.load(workdir)
  x = prepare(tiny()).dataset.test['image'][:5]
  mean, logvar = m.encode(x)
  assert mean.shape == (5, 4) and logvar.shape == (5, 4)
  recon = m.reconstruct(x)
  np.testing.assert_allclose(recon, m.decode(mean), atol=1e-6)
  assert recon.shape == x.shape
  # Same numbers as the trainer's own deterministic reconstruction of the final state.
  setup = prepare(tiny())
  state, _ = checkpoint.restore_state(os.path.join(workdir, 'checkpoints'),
                                      setup.functions.stack(setup.init_state()))
  np.testing.assert_allclose(recon, setup.functions.reconstruct(
      setup.functions.unstack(state), x, setup.inputs.hp)[0], atol=1e-6)
  assert m.sample_prior(3).shape == (3, 8, 8, 1)
  assert inference.load(workdir, member='run').epoch == 2
  with pytest.raises(ValueError, match=r'takes \(8, 8, 1\)'):
    m.encode(np.zeros((1, 9, 9, 1)))
  with pytest.raises(WorkdirError, match='not a trained workdir'):
    inference.load(str(tmp_path / 'nothing'))


@pytest.mark.slow
def test_single_member_equals_member_of_vmapped_sweep(tmp_path, tiny):
  one = str(tmp_path / 'one')
  many = str(tmp_path / 'many')
  train_and_evaluate(tiny(loss__beta=4.0), one)
  train_and_evaluate(tiny(sweep__beta=(1.0, 4.0, 0.0)), many)
  a = inference.load(one)
  b = inference.load(many, member='beta=4')
  assert b.member['beta'] == 4.0
  chex.assert_trees_all_close(a.params, b.params, rtol=2e-4, atol=2e-5)
  summary = json.load(open(os.path.join(many, 'summary.json')))
  assert [m['name'] for m in summary['members']] == ['beta=1', 'beta=4', 'beta=0']


@pytest.mark.slow
@pytest.mark.parametrize('overrides', [
    dict(),  # MLP: streamed chunks scanned on the device
    dict(model__arch='conv', model__conv__channels=(4,)),  # CPU conv: one step at a time
], ids=['mlp_chunks', 'conv_steps'])
def test_streamed_training_matches_device_resident_training(tmp_path, overrides, tiny):
  dev, stream = str(tmp_path / 'dev'), str(tmp_path / 'stream')
  train_and_evaluate(tiny(data__tier='device', **overrides), dev)
  train_and_evaluate(tiny(data__tier='stream', data__stream_chunk_steps=5, **overrides),
                     stream)
  a, b = inference.load(dev), inference.load(stream)
  chex.assert_trees_all_close(a.params, b.params, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_streamed_run_resumes_bit_for_bit(tmp_path, tiny):
  full, part = str(tmp_path / 'full'), str(tmp_path / 'part')
  cfg = lambda n: tiny(train__num_epochs=n, data__tier='stream', data__stream_chunk_steps=7)
  train_and_evaluate(cfg(3), full)
  train_and_evaluate(cfg(1), part)
  train_and_evaluate(cfg(3), part)
  a, b = inference.load(full), inference.load(part)
  chex.assert_trees_all_equal(a.params, b.params)


@pytest.mark.slow
@pytest.mark.parametrize('name,overrides', [
    ('wafer', dict(data__num_examples=90)),
    ('dsprites', dict(data__num_examples=120, data__image_size=32)),
    ('photos', dict(data__num_examples=80, data__image_size=16)),
    ('faces', dict()),
    ('digits', dict(data__image_size=16, data__channels=3)),
])
def test_every_embedded_dataset_trains(tmp_path, name, overrides, tiny):
  summary = train_and_evaluate(tiny(data__name=name, train__num_epochs=1,
                                    train__batch_size=16, **overrides),
                               str(tmp_path / name))
  ev = summary['members'][0]['eval']
  assert np.isfinite(ev['loss']) and ev['psnr'] > 0


@pytest.mark.slow
@pytest.mark.parametrize('chunk_steps', [0, 16, 5])
def test_the_progress_bar_counts_every_step_of_a_chunked_epoch(chunk_steps, tmp_path,
                                                               monkeypatch, tiny):
  """train.chunk_steps splits an epoch into chunks: the bar counts all of the epoch's steps
  (not its last chunk's: 16 + 16 + 12 once counted 12), and ends on total/total."""
  import io
  from ae_jax import progress, train as train_lib
  bars = []

  def bar(config, total, initial):
    bars.append(progress.Progress(total, 'training', unit='steps', initial=initial,
                                  stream=io.StringIO(), first_s=0.0, every_s=0.0))
    return bars[-1]
  monkeypatch.setattr(train_lib, '_progress_bar', bar)
  spe = 1438 // 32
  summary = train_and_evaluate(tiny(train__chunk_steps=chunk_steps, train__num_epochs=2),
                               str(tmp_path / 'w'))
  lines = bars[0]._stream.getvalue().splitlines()
  counts = [int(line.split(': ')[1].split('/')[0]) for line in lines]
  assert counts == [spe, 2 * spe, 2 * spe], lines  # each epoch's end, then the close
  assert lines[-1].startswith(f'training: {2 * spe}/{2 * spe} steps after ')
  assert summary['epoch_s'] > 0  # timed over epoch 2's steps (the first wait compiles)


@pytest.mark.slow
def test_a_run_says_where_its_time_went_and_ends_its_bar_before_the_passes(
    tmp_path, tiny, capsys, monkeypatch):
  from ae_jax import evaluate, progress
  events = []
  close, passes = progress.Progress.close, evaluate.Evaluator.pass_metrics

  def closing(self):
    if self.desc == 'training' and (self._bar is not None or self._lines):
      events.append('training bar closed')
    return close(self)

  def passing(self, *a, **k):
    events.append('passes')
    return passes(self, *a, **k)

  monkeypatch.setattr(progress.Progress, 'close', closing)
  monkeypatch.setattr(evaluate.Evaluator, 'pass_metrics', passing)
  summary = train_and_evaluate(tiny(progress=True, eval__metrics=('loss', 'psnr', 'pca_psnr')),
                               str(tmp_path / 'w'))
  # the training bar ends (with the training's own time) before the end-of-run passes
  assert events.index('training bar closed') < len(events) - 1 - events[::-1].index('passes')
  out = capsys.readouterr().out.splitlines()
  # a line per pass with its time, then where the whole run's time went
  [line] = [x for x in out if x.startswith('final evaluation: ')]
  assert line.startswith('final evaluation: PCA PSNR took ') and line.endswith(
      ' (359 test images, 1 model)')
  [time_line] = [x for x in out if x.startswith('time: ')]
  seconds = summary['members'] and json.load(open(tmp_path / 'w' / 'summary.json'))['seconds']
  assert set(seconds) == {'training', 'evaluation', 'checkpoints', 'figures', 'passes'}
  assert list(seconds['passes']) == ['PCA PSNR'] and seconds['training'] > 0
  # each phase of half a second or more is named, and no other (a compilation an earlier
  # test made can leave training itself under half a second)
  phases = [('training', seconds['training']), ('evaluation', seconds['evaluation']),
            ('checkpoints', seconds['checkpoints']), ('PCA PSNR', seconds['passes']['PCA PSNR']),
            ('figures', seconds['figures'])]
  named = [n for n, _ in phases if f' {n} ' in time_line]
  assert named == [n for n, s in phases if s >= 0.5], time_line
  assert all(v >= 0 for k, v in seconds.items() if k != 'passes')
