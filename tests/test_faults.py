"""Fault tolerance: signals, kills at any moment (mid-save too), damaged checkpoints and
files, a full disk, non-finite members. Nothing already saved may be lost."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from ae_jax import checkpoint, config_lib, inference
from ae_jax.errors import CheckpointError, WorkdirError
from ae_jax.train import train_and_evaluate

# A run long enough to be interrupted (tens of ms per epoch), in chunks of 5 steps so a
# signal lands mid-epoch; the same config in-process and on the command line.
EPOCHS = 40
FLAGS = ['--config.data.image_size=12', '--config.model.hidden=(256,128)',
         '--config.model.latent_dim=8', '--config.train.chunk_steps=5',
         '--config.train.eval_every=20', '--config.checkpoint.every_epochs=1',
         '--config.checkpoint.max_to_keep=2', "--config.eval.metrics=('loss','psnr')",
         '--config.figures.enabled=False', '--config.progress=False']


def config(epochs=EPOCHS):
  return config_lib.load('configs/vae_mlp.py', FLAGS + [f'--config.train.num_epochs={epochs}'])


@pytest.fixture
def start(root, checkout_env):
  """start(workdir, epochs=EPOCHS) -> the training command's process, on config()."""
  def popen(workdir, epochs=EPOCHS):
    # the session's XLA level (conftest's environment): the same numerics as `reference`
    env = checkout_env(JAX_PLATFORMS='cpu')
    return subprocess.Popen(
        [sys.executable, '-m', 'ae_jax.main', '--config', 'configs/vae_mlp.py', '--workdir',
         workdir, *FLAGS, f'--config.train.num_epochs={epochs}'],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  return popen


@pytest.fixture
def wait_for(hang_s):
  """wait_for(pred, proc): polls pred() every 2 ms while the process runs; only a hang
  (hang_s) times out."""
  def wait(pred, proc):
    t0 = time.monotonic()
    while not pred():
      if proc.poll() is not None:
        raise AssertionError(f'run ended early: {proc.stderr.read()[-2000:]}')
      if time.monotonic() - t0 > hang_s:
        raise AssertionError(f'no progress in {hang_s} s: the run hangs')
      time.sleep(0.002)
  return wait


def saved_steps(workdir):
  """The steps of the workdir's complete checkpoints."""
  return checkpoint.saved_steps(os.path.join(workdir, 'checkpoints'))


def train_epochs(workdir):
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return 0
  return sum(1 for line in open(path) if '"train"' in line)


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """The uninterrupted run's final parameters and metrics (in-process, same numerics).
  It saves only at the end (saving never changes the arithmetic; 40 saves were most of
  this fixture's time)."""
  workdir = str(tmp_path_factory.mktemp('ref') / 'w')
  cfg = config()
  with cfg.unlocked():
    cfg.checkpoint.every_epochs = EPOCHS
  train_and_evaluate(cfg, workdir)
  m = inference.load(workdir)
  rows = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  return m.params, rows


def assert_same_as_reference(workdir, reference):
  params, rows = reference
  m = inference.load(workdir)
  assert m.epoch == EPOCHS
  chex.assert_trees_all_equal(m.params, params)
  got = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert untimed(got) == untimed(rows)
  # wall-clock seconds carry over the resume: they never go back
  train = [r['wall_s'] for r in got if r['split'] == 'train']
  assert train == sorted(train) and train[0] > 0


def untimed(rows):
  return [{k: v for k, v in r.items() if k != 'wall_s'} for r in rows]


@pytest.mark.slow
def test_sigterm_saves_mid_epoch_and_the_rerun_ends_bit_identical(tmp_path, reference, start,
                                                                  wait_for, hang_s):
  workdir = str(tmp_path / 'w')
  proc = start(workdir)
  wait_for(lambda: train_epochs(workdir) >= 2, proc)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=hang_s)
  assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
  assert 'Traceback' not in err
  line = [line for line in err.splitlines() if line.startswith('stopped by SIGTERM')]
  assert line and 'with a checkpoint saved in' in line[0]
  assert 'run the same command again to resume' in line[0]
  step = int(line[0].split('(step ')[1].split(')')[0])
  assert step in saved_steps(workdir)
  # The rerun says it resumed, from that step, and ends as if never stopped.
  proc = start(workdir)
  out, err = proc.communicate(timeout=hang_s)
  assert proc.returncode == 0, err[-2000:]
  assert f'(step {step})' in out and 'resumed' in out
  assert_same_as_reference(workdir, reference)


@pytest.mark.slow
def test_a_signal_during_the_final_evaluation_stops_after_saving(tmp_path, monkeypatch):
  # The final evaluation (pass metrics over the test split) can take minutes; a SIGTERM
  # or Ctrl-C arriving then used to be ignored: the run went on and exited 0.
  from ae_jax import evaluate
  from ae_jax.errors import Preempted
  workdir = str(tmp_path / 'w')
  real = evaluate.Evaluator.__call__

  def signalled(self, state, epoch, final=False):
    out = real(self, state, epoch, final)
    if final:
      os.kill(os.getpid(), signal.SIGTERM)
    return out

  monkeypatch.setattr(evaluate.Evaluator, '__call__', signalled)
  with pytest.raises(Preempted, match=r'stopped by SIGTERM at epoch 2 \(step \d+\) with a '
                     r'checkpoint saved in') as e:
    train_and_evaluate(config(epochs=2), workdir)
  assert e.value.signum == signal.SIGTERM
  assert not os.path.exists(os.path.join(workdir, 'summary.json'))
  assert inference.load(workdir).epoch == 2  # training is done and saved
  monkeypatch.undo()
  stopped = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  summary = train_and_evaluate(config(epochs=2), workdir)  # evaluates, trains nothing
  final = [r for r in stopped if r['split'] == 'eval' and r['epoch'] == 2]
  assert summary['members'][0]['eval']['loss'] == pytest.approx(final[0]['loss'], rel=1e-6)
  assert os.path.exists(os.path.join(workdir, 'summary.json'))


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_without_a_traceback(tmp_path, start, wait_for, hang_s):
  workdir = str(tmp_path / 'w')
  proc = start(workdir, epochs=2000)
  wait_for(lambda: saved_steps(workdir), proc)
  # Two signals sent back to back can merge into one, or the second can cut the first's
  # handler short: send the second once the first has been announced (the run is then
  # finishing its chunk and writing a checkpoint, which takes far longer than this).
  proc.send_signal(signal.SIGINT)
  first = []
  while not first or 'SIGINT received' not in first[-1]:
    first.append(proc.stderr.readline())
    assert first[-1], 'the run ended without announcing the first SIGINT'
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=hang_s)
  err = ''.join(first) + err
  assert proc.returncode in (130, 128 + signal.SIGINT), err[-2000:]
  assert 'Traceback' not in err and 'KeyboardInterrupt' not in err
  assert 'interrupted: stopped at once; every complete checkpoint in' in err, err[-2000:]
  # The checkpoint that was complete before the signals restores.
  assert inference.load(workdir).epoch >= 1


# What a second Ctrl-C interrupts can be any line of a library's: inside a `with lock:` of
# TensorBoard's or Orbax's writers, a KeyboardInterrupt unwinding from there can leave the
# lock held, and the cleanup on the way out (closing the writers) then waits for it forever
# (a CI run once hung so for 30 minutes). The body below stands for that cleanup.
_BLOCKED_CLEANUP = """
import os, signal, sys, threading, time
from ae_jax import cli, preempt

def body():
  with preempt.Watcher() as watcher:
    try:
      os.kill(os.getpid(), signal.SIGINT)
      while watcher.signum is None:  # two signals sent at once can merge into one
        time.sleep(0.001)
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(60)
    finally:
      threading.Event().wait()  # cleanup that never ends

cli.run(body, sys.argv[1])
"""


@pytest.mark.slow
def test_a_second_ctrl_c_ends_the_command_even_where_cleanup_would_wait_forever(
    tmp_path, checkout_env, hang_s):
  saved = tmp_path / 'w' / 'checkpoints' / '10'
  saved.mkdir(parents=True)
  proc = subprocess.run([sys.executable, '-c', _BLOCKED_CLEANUP, str(tmp_path / 'w')],
                        env=checkout_env(JAX_PLATFORMS='cpu'), capture_output=True, text=True,
                        timeout=hang_s)
  assert proc.returncode == 130, proc.stderr[-2000:]
  assert proc.stderr.splitlines()[-1] == (
      f'interrupted: stopped at once; every complete checkpoint in {tmp_path / "w"} is kept; '
      'run the same command again to resume')
  assert 'Traceback' not in proc.stderr


def test_a_second_signal_in_a_library_call_raises_keyboard_interrupt():
  from ae_jax import preempt
  with preempt.Watcher() as watcher:
    os.kill(os.getpid(), signal.SIGINT)
    while watcher.signum is None:
      time.sleep(0.001)
    assert watcher.should_stop(0) and watcher.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(5)  # the handler raises on the next line run
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_library_reporting_the_second_ctrl_c_as_its_failure_is_kept_quiet(caplog):
  # Orbax waits for a checkpoint write in a `try ... except BaseException:
  # logging.exception('... failed.'); raise`: a second Ctrl-C landing there printed its
  # traceback before main's one line (a race the test above hits now and then).
  from absl import logging as absl_logging
  from ae_jax.cli import quiet_logs
  quiet_logs()
  for exc in (KeyboardInterrupt(), OSError('No space left on device')):
    try:
      raise exc
    except BaseException:
      absl_logging.exception('[wait_until_finished] Save Finalize thread failed.')
  failures = [r for r in caplog.records if 'Save Finalize' in r.getMessage()]
  assert [r.exc_info[0] for r in failures] == [OSError]  # a real failure is still reported


@pytest.mark.parametrize('stop', ['SIGTERM', 'second Ctrl-C', 'second Ctrl-C before a save'])
def test_a_stopped_study_says_how_to_resume_in_one_line(tmp_path, monkeypatch, capsys, stop):
  from ae_jax import cli
  from ae_jax.errors import Preempted
  from ae_jax.studies import latent_edits
  from ae_jax.studies.__main__ import main as study_main
  saved = str(tmp_path / 'models' / 'fcn_ae' / 'checkpoints')

  def stopped(study):  # where a study's model is when the signal comes: in training
    if stop == 'SIGTERM':
      raise Preempted(f'stopped by SIGTERM at epoch 3 (step 30) with a checkpoint saved in '
                      f'{saved}; run the same command again to resume', signal.SIGTERM)
    raise KeyboardInterrupt

  def exit_now(code):  # os._exit would end the test process
    raise SystemExit(code)

  monkeypatch.setattr(latent_edits, 'run', stopped)
  monkeypatch.setattr(cli, 'exit_now', exit_now)
  if stop != 'second Ctrl-C before a save':  # the model had saved a checkpoint (step 30)
    os.makedirs(os.path.join(saved, '30'))
  os.makedirs(os.path.join(saved, '40.orbax-checkpoint-tmp'))  # a save cut short is none
  with open(tmp_path / 'study.json', 'w') as f:  # what the study wrote when it started
    json.dump({'study': 'latent_edits', 'budget': 'quick', 'quick': True, 'overrides': []}, f)
  with pytest.raises(SystemExit) as e:
    study_main(['latent_edits', '--workdir', str(tmp_path), '--quick'])
  err = capsys.readouterr().err
  assert e.value.code == (128 + signal.SIGTERM if stop == 'SIGTERM' else 130)
  assert 'Traceback' not in err and len(err.strip().splitlines()) == 1
  assert (saved if stop == 'SIGTERM' else str(tmp_path)) in err
  if stop == 'second Ctrl-C before a save':  # no promise of a checkpoint that is not there
    assert err == (f'interrupted: stopped at once; nothing was saved in {tmp_path} yet: the '
                   'same command starts from the beginning\n')
  else:
    assert 'run the same command again to resume' in err


@pytest.mark.slow
def test_a_second_run_in_a_live_workdir_is_refused_and_the_lock_dies_with_the_first(
    tmp_path, monkeypatch, start, wait_for):
  from ae_jax import data
  from ae_jax.workdir import Workdir
  workdir = str(tmp_path / 'w')
  proc = start(workdir, epochs=2000)
  try:
    wait_for(lambda: saved_steps(workdir), proc)
    loaded = []
    monkeypatch.setattr(data, 'load', lambda cfg: loaded.append(1))
    for fresh in (False, True):  # --fresh must not move a live run's folder aside either
      with pytest.raises(WorkdirError, match=rf'workdir {workdir} is in use by another run '
                         rf'\(process {proc.pid} on '):
        train_and_evaluate(config(), workdir, fresh=fresh)
    assert not loaded and proc.poll() is None
    assert not [n for n in os.listdir(tmp_path) if n.startswith('w.old-')]
  finally:
    proc.kill()
    proc.wait()
  # The kill released the lock: the next run may take the folder, and it names itself.
  wd = Workdir(workdir)
  with wd.running():
    assert open(os.path.join(workdir, '.lock')).read().startswith(f'process {os.getpid()} ')
  assert inference.load(workdir).epoch >= 1  # the refused runs took nothing away


def test_a_study_holds_its_folder_and_fresh_moves_only_what_holds_a_run(tmp_path, capsys):
  from ae_jax.studies import Study
  from ae_jax.studies.__main__ import main as study_main
  from ae_jax.train import claim
  from ae_jax.workdir import Workdir
  live = tmp_path / 'study'
  Study('latent_edits', str(live), quick=True)  # a study's folder, as its first lines make it
  with Workdir(str(live)).running():  # ... while that study runs
    for fresh in ([], ['--fresh']):  # a second study there, or --fresh, is refused at once
      with pytest.raises(SystemExit) as e:
        study_main(['latent_edits', '--workdir', str(live), '--quick', *fresh])
      assert e.value.code == 2
      err = capsys.readouterr().err
      assert f'workdir {live} is in use by another run (process {os.getpid()} ' in err
    assert sorted(os.listdir(tmp_path)) == ['study']  # nothing moved aside
  # --fresh on a folder that holds nothing of a run (new, or only made ready) moves nothing
  for name in ('new_run', 'new_study'):
    wd = Workdir(str(tmp_path / name))
    with wd.running():
      assert wd.is_empty()
      if name == 'new_run':
        claim(wd, config(), fresh=True)
      else:
        Study('latent_edits', wd, quick=True, fresh=True)
    assert 'moved' not in capsys.readouterr().out
  assert sorted(os.listdir(tmp_path)) == ['new_run', 'new_study', 'study']
  open(Workdir(str(tmp_path / 'new_run')).figure('loss.png'), 'w').close()
  assert not Workdir(str(tmp_path / 'new_run')).is_empty()  # a figure is something


@pytest.mark.slow
def test_sigkill_at_any_moment_even_mid_save_loses_nothing(tmp_path, reference, start,
                                                          wait_for, hang_s):
  workdir = str(tmp_path / 'w')
  ckpts = os.path.join(workdir, 'checkpoints')
  # Orbax writes <step>.orbax-checkpoint-tmp... and renames it when the save is done
  unfinished = lambda: {n for n in os.listdir(ckpts) if 'tmp' in n} if os.path.isdir(
      ckpts) else set()
  left, resume_from = set(), None  # unfinished writes of the killed runs; the last complete

  def mid_save():  # a save under way (saves are asynchronous), after a complete checkpoint
    done = saved_steps(workdir)
    return bool(done) and any(int(n.split('.')[0]) > done[-1] for n in unfinished() - left)

  for _ in range(2):
    proc = start(workdir)
    while True:  # until the process is frozen in the middle of one of its own saves
      wait_for(mid_save, proc)
      proc.send_signal(signal.SIGSTOP)  # frozen: the save cannot end between look and kill
      if mid_save():
        break
      proc.send_signal(signal.SIGCONT)
    complete = saved_steps(workdir)
    proc.kill()
    proc.wait()
    # killed mid-save: the write is left unfinished, and every complete checkpoint stays
    assert mid_save() and saved_steps(workdir) == complete
    left, resume_from = unfinished(), complete[-1]
  proc = start(workdir)
  out, err = proc.communicate(timeout=hang_s)
  assert proc.returncode == 0, err[-2000:]
  # the rerun resumed from the last complete checkpoint, cleared the unfinished writes and
  # ended as if never killed
  assert f'(step {resume_from})' in out and 'resumed' in out, out
  assert not unfinished()
  assert_same_as_reference(workdir, reference)


def _trained(tiny, tmp_path, epochs=3):
  workdir = str(tmp_path / 'w')
  train_and_evaluate(tiny(train__num_epochs=epochs, checkpoint__max_to_keep=5), workdir)
  return workdir


@pytest.mark.slow
@pytest.mark.parametrize('damage', ['truncate_array', 'manifest', 'metadata', 'empty', 'tmp'])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage, caplog, tiny):
  workdir = _trained(tiny, tmp_path)
  ckpts = os.path.join(workdir, 'checkpoints')
  steps = checkpoint.saved_steps(ckpts)
  last = os.path.join(ckpts, str(steps[-1]))
  if damage == 'truncate_array':
    files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(last, 'state', 'd'))
             for f in fs]
    for f in files:
      open(f, 'r+b').truncate(max(0, os.path.getsize(f) // 3))
  elif damage == 'manifest':
    os.remove(os.path.join(last, 'state', 'manifest.ocdbt'))
  elif damage == 'metadata':
    os.remove(os.path.join(last, 'state', '_METADATA'))
  elif damage == 'empty':
    shutil.rmtree(last)
    os.makedirs(last)
  else:  # an interrupted save: Orbax's tmp folder beside the finished checkpoints
    os.makedirs(os.path.join(ckpts, f'{steps[-1] + 5}.orbax-checkpoint-tmp-123'))
  with caplog.at_level('WARNING', logger='ae_jax'):
    train_and_evaluate(tiny(train__num_epochs=4, checkpoint__max_to_keep=5), workdir)
  if damage == 'tmp':
    assert 'an unfinished checkpoint write' in caplog.text
  else:
    assert f'checkpoint {steps[-1]} does not restore' in caplog.text
    assert os.path.isdir(os.path.join(workdir, 'checkpoints_damaged', str(steps[-1])))
  assert inference.load(workdir).epoch == 4


@pytest.mark.slow
def test_a_damaged_checkpoint_is_one_line_on_the_command_line(tmp_path, root, start, hang_s,
                                                              checkout_env):
  # A failed Orbax restore leaves TensorStore reads in flight that end on their own, each
  # with a traceback (closed event loop, finalized coroutines, futures never retrieved):
  # 30 to 260 lines around our one line before checkpoint.py's hook.
  import glob
  workdir = str(tmp_path / 'w')
  train_and_evaluate(config(epochs=3), workdir)  # a checkpoint every epoch, the last two kept
  last = saved_steps(workdir)[-1]
  os.remove(os.path.join(workdir, 'checkpoints', str(last), 'state', 'manifest.ocdbt'))
  proc = start(workdir, epochs=4)
  out, err = proc.communicate(timeout=hang_s)
  assert proc.returncode == 0, err[-2000:]
  lines = err.strip().splitlines()
  assert len(lines) == 1, err[-3000:]
  assert f'checkpoint {last} does not restore' in lines[0] and 'trying an older one' in lines[0]
  assert 'resumed' in out and inference.load(workdir).epoch == 4
  # The arrays of the newest checkpoint cut short (its metadata intact).
  newest = saved_steps(workdir)[-1]
  for f in glob.glob(os.path.join(workdir, 'checkpoints', str(newest), 'state', 'ocdbt.*',
                                  'd', '*')):
    os.truncate(f, 10)
  env = checkout_env(JAX_PLATFORMS='cpu')
  r = subprocess.run([sys.executable, '-m', 'ae_jax.main', '--mode=evaluate', '--workdir',
                      workdir, '--metrics=psnr'], cwd=root, env=env, capture_output=True,
                     text=True, timeout=hang_s)
  assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-3000:]
  assert r.stderr.startswith(f'error: {workdir}/checkpoints/{newest} does not restore (')
  assert 'TensorStore details' not in r.stderr  # the first line of the reason, no spec dump
  proc = start(workdir, epochs=5)
  out, err = proc.communicate(timeout=hang_s)
  assert proc.returncode == 0 and len(err.strip().splitlines()) == 1, err[-3000:]
  assert f'checkpoint {newest} does not restore' in err and inference.load(workdir).epoch == 5


@pytest.mark.slow
def test_no_restorable_checkpoint_is_one_clear_error(tmp_path, tiny):
  workdir = _trained(tiny, tmp_path, epochs=1)
  ckpts = os.path.join(workdir, 'checkpoints')
  for s in checkpoint.saved_steps(ckpts):
    os.remove(os.path.join(ckpts, str(s), 'state', '_METADATA'))
  with pytest.raises(CheckpointError, match='no checkpoint could be restored'):
    train_and_evaluate(tiny(train__num_epochs=2), workdir)


@pytest.mark.slow
def test_torn_metrics_line_is_repaired_and_garbage_config_is_named(tmp_path, caplog, tiny):
  workdir = _trained(tiny, tmp_path, epochs=2)
  path = os.path.join(workdir, 'metrics.jsonl')
  with open(path, 'a') as f:
    f.write('{"epoch": 3, "step": 13')  # a kill mid-write
  with caplog.at_level('WARNING', logger='ae_jax'):
    train_and_evaluate(tiny(train__num_epochs=3), workdir)
  assert 'dropped a torn last line' in caplog.text
  rows = [json.loads(line) for line in open(path)]
  assert [r['epoch'] for r in rows if r['split'] == 'train'] == [1, 2, 3]
  open(os.path.join(workdir, 'config.json'), 'w').write('{"model": ')
  with pytest.raises(WorkdirError, match=r'config.json is damaged .*--fresh'):
    train_and_evaluate(tiny(train__num_epochs=3), workdir)
  with pytest.raises(WorkdirError, match='config.json is damaged'):
    inference.load(workdir)


@pytest.mark.slow
def test_a_full_disk_keeps_the_earlier_checkpoints(tmp_path, monkeypatch, tiny):
  import orbax.checkpoint as ocp
  workdir = _trained(tiny, tmp_path, epochs=1)
  before = saved_steps(workdir)
  real = ocp.CheckpointManager.save

  def full(self, step, *a, **k):
    if step > before[-1]:
      raise OSError(28, 'No space left on device')
    return real(self, step, *a, **k)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', full)
  with pytest.raises(CheckpointError, match=r'writing the checkpoint of step \d+ failed '
                                            r'\(OSError: .*No space left.*the earlier '
                                            r'checkpoints are intact'):
    train_and_evaluate(tiny(train__num_epochs=2), workdir)
  assert saved_steps(workdir) == before
  assert inference.load(workdir).epoch == 1


@pytest.mark.slow
def test_a_diverging_member_is_frozen_while_the_others_train(tmp_path, tiny):
  workdir = str(tmp_path / 'w')
  cfg = tiny(train__num_epochs=2, sweep__learning_rate=(1e-3, 1e30),
             train__skip_nonfinite_members=True)
  summary = train_and_evaluate(cfg, workdir)
  by_name = {m['name']: m for m in summary['members']}
  bad, good = by_name['learning_rate=1e+30'], by_name['learning_rate=0.001']
  assert bad['frozen']['step'] >= 1 and 'frozen' not in good
  assert np.isfinite(good['eval']['loss'])  # (the frozen member's may be inf: huge weights)
  assert 'member learning_rate=1e+30 was frozen at step' in summary['table']
  # Its last finite state is what the checkpoint holds.
  frozen = inference.load(workdir, member='learning_rate=1e+30')
  assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(frozen.params))
  # Without the option the whole run stops, naming the member.
  from ae_jax.errors import NonFiniteLossError
  with pytest.raises(NonFiniteLossError, match=r"member 'learning_rate=1e\+30'.*; no "
                     'checkpoint had been saved yet'):  # it stops in its first epoch
    train_and_evaluate(tiny(train__num_epochs=1, sweep__learning_rate=(1e-3, 1e30)),
                       str(tmp_path / 'x'))
