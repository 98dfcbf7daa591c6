"""Training with the LPIPS loss term, and what an unexpected error inside training keeps.

No test trained with loss.lpips_weight > 0 before: the loss tests called the LPIPS term
outside any trace, and the high_frequency study's --quick budget leaves its LPIPS remedy
out. The weights were first read inside the traced training scan and cached there as a
tracer, which the evaluation then reused (UnexpectedTracerError at the first evaluation).
"""
import json
import os

import jax
import numpy as np
import pytest

from ae_jax import checkpoint, evaluate, losses
from ae_jax.errors import ConfigError, TrainingFailed
from ae_jax.metrics import lpips
from ae_jax.train import train_and_evaluate


@pytest.fixture
def lpips_config(tiny):
  """lpips_config(**overrides): an 8-unit MLP AE on 30 photo patches of 16x16 (LPIPS-VGG's
  smallest size) with the LPIPS term: VGG16's gradient is most of each step's cost, so the
  set is small."""
  settings = dict(data__name='photos', data__num_examples=30, data__image_size=16,
                  model__kind='ae', model__latent_dim=8, train__batch_size=8,
                  loss__reconstruction='l1', loss__reduction='mean', loss__lpips_weight=1.0,
                  eval__metrics=('loss', 'recon', 'psnr'))
  return lambda **overrides: tiny(**{**settings, **overrides})


def _rows(workdir):
  return [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]


@pytest.mark.slow
def test_lpips_weights_read_inside_a_trace_are_cached_as_numpy():
  lpips.load.cache_clear()
  jax.eval_shape(lambda x: lpips.distance(lpips.load('vgg'), x, x), jax.numpy.zeros((1, 16, 16, 3)))
  cached = lpips.load('vgg')  # filled inside the trace above
  leaves = jax.tree_util.tree_leaves(cached)
  assert leaves and all(type(w) is np.ndarray for w in leaves)
  x = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
  assert float(lpips.distance(cached, x, x * 0.5).mean()) > 0  # usable after the trace


def test_the_lpips_term_needs_its_weights_passed_in(tiny, lpips_config):
  cfg = losses.LossSpec.from_config(lpips_config().loss)
  x = np.zeros((1, 16, 16, 3), np.float32)
  with pytest.raises(ValueError, match='needs the LPIPS weights'):
    losses.extra_terms(x, x, cfg)
  assert set(losses.pretrained_networks(cfg)) == {'lpips_vgg'}
  assert losses.pretrained_networks(losses.LossSpec.from_config(tiny().loss)) == {}


@pytest.mark.slow
def test_training_with_lpips_evaluates_checkpoints_and_resumes(tmp_path, lpips_config,
                                                             optimized_xla):
  """The whole-epoch scan (the default loop) for two epochs, each evaluated and saved, then
  a resume that trains a third on the Python loop (train.loop is free on resume)."""
  workdir = str(tmp_path / 'run')
  # the AlexNet trunk at 32 px: the weights' caching is the same for both trunks, and VGG16's
  # gradient cost this test 147 s of a loaded 2-core machine
  alex = dict(data__image_size=32, loss__lpips_net='alex')
  summary = train_and_evaluate(lpips_config(**alex), workdir)
  spe = summary['steps_per_epoch']
  evals = [r for r in _rows(workdir) if r['split'] == 'eval']
  assert [r['epoch'] for r in evals] == [1, 2]
  assert checkpoint.saved_steps(os.path.join(workdir, 'checkpoints')) == [spe, 2 * spe]
  # the loss is the L1 term plus the (positive) LPIPS term, on every evaluation
  assert all(np.isfinite(r['loss']) and r['loss'] > r['recon'] + 1e-4 for r in evals)
  assert summary['members'][0]['eval']['loss'] == evals[-1]['loss']
  # a rerun with a longer budget resumes from the last checkpoint and trains on
  train_and_evaluate(lpips_config(train__loop='python', train__num_epochs=3, **alex), workdir)
  assert checkpoint.saved_steps(os.path.join(workdir, 'checkpoints'))[-1] == 3 * spe
  rows = _rows(workdir)
  assert [r['epoch'] for r in rows if r['split'] == 'train'] == [1, 2, 3]
  last = [r for r in rows if r['split'] == 'eval'][-1]
  assert last['epoch'] == 3 and last['loss'] > last['recon'] + 1e-4


@pytest.mark.slow
def test_a_two_member_sweep_trains_with_lpips(tmp_path, lpips_config, optimized_xla):
  workdir = str(tmp_path / 'sweep')
  # the AlexNet trunk at 32 px, as above
  summary = train_and_evaluate(lpips_config(sweep__learning_rate=(1e-3, 3e-3),
                                            train__num_epochs=1, data__image_size=32,
                                            loss__lpips_net='alex'), workdir)
  members = summary['members']
  assert [m['name'] for m in members] == ['learning_rate=0.001', 'learning_rate=0.003']
  assert all(np.isfinite(m['eval']['loss']) and m['eval']['loss'] > m['eval']['recon']
             for m in members)
  assert members[0]['eval']['loss'] != members[1]['eval']['loss']


@pytest.mark.slow
def test_an_unexpected_error_in_training_saves_the_last_good_state(tmp_path, monkeypatch, tiny):
  workdir = str(tmp_path / 'crash')
  real = evaluate.Evaluator.__call__

  def fail(self, state, epoch, final=False):
    raise RuntimeError('the evaluation broke\nsecond line of detail')

  monkeypatch.setattr(evaluate.Evaluator, '__call__', fail)
  config = tiny(data__image_size=8, train__num_epochs=2, checkpoint__every_epochs=2)
  spe = 1437 // 32
  with pytest.raises(TrainingFailed) as info:
    train_and_evaluate(config, workdir)
  message = str(info.value)
  assert '\n' not in message
  assert message.startswith('training stopped at epoch 1 (step %d) by RuntimeError: the '
                            'evaluation broke;' % spe)
  assert f'the state at step {spe} is saved in' in message and 'crash.log' in message
  log = open(os.path.join(workdir, 'crash.log')).read()
  assert 'Traceback' in log and 'second line of detail' in log
  assert checkpoint.saved_steps(os.path.join(workdir, 'checkpoints')) == [spe]
  assert [r['epoch'] for r in _rows(workdir) if r['split'] == 'train'] == [1]

  monkeypatch.setattr(evaluate.Evaluator, '__call__', real)
  train_and_evaluate(config, workdir)  # resumes from the rescued state
  assert [r['epoch'] for r in _rows(workdir) if r['split'] == 'train'] == [1, 2]
  assert checkpoint.saved_steps(os.path.join(workdir, 'checkpoints')) == [spe, 2 * spe]


@pytest.mark.slow
def test_a_user_error_after_training_started_keeps_its_kind_and_the_state(tmp_path,
                                                                           monkeypatch, tiny):
  def fail(self, state, epoch, final=False):
    raise ConfigError('a metric cannot run here')

  monkeypatch.setattr(evaluate.Evaluator, '__call__', fail)
  workdir = str(tmp_path / 'user')
  with pytest.raises(ConfigError, match=r'by ConfigError: a metric cannot run here; the state '
                                        r'at step \d+ is saved'):
    train_and_evaluate(tiny(data__image_size=8, train__num_epochs=1), workdir)
  assert checkpoint.saved_steps(os.path.join(workdir, 'checkpoints'))
