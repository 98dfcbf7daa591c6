"""TensorBoard event files beside metrics.jsonl (ae_jax/tracking.py), read back the way
TensorBoard reads them, and the optional W&B extra's missing-package error."""
import importlib.util
import json
import os
import shutil
import signal

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from ae_jax import checkpoint, config_lib, tracking, train
from ae_jax.errors import ConfigError, Preempted
from ae_jax.train import train_and_evaluate
from ae_jax.workdir import Workdir

BOOKKEEPING = ('epoch', 'step', 'wall_s')


def events(run_dir, purge=True):
  """A run folder's events as TensorBoard loads them (`purge`: honouring restarts)."""
  acc = EventAccumulator(run_dir, size_guidance={'scalars': 0, 'images': 0, 'tensors': 0},
                         purge_orphaned_data=purge)
  acc.Reload()
  return acc


def read_rows(workdir):
  return [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]


def assert_events_equal_rows(workdir, rows):
  """Every number of every metrics.jsonl row is a scalar `<split>/<name>` at the row's step
  in its member's run, once, with the same float32 value; and nothing else."""
  for member in sorted({r['member'] for r in rows}):
    expected = {}
    for r in rows:
      if r['member'] == member:
        for k, v in r.items():
          if k not in BOOKKEEPING and isinstance(v, (int, float)):
            expected.setdefault(f'{r["split"]}/{k}', []).append((r['step'], np.float32(v)))
    assert {'train/loss', 'train/lr', 'eval/loss', 'eval/psnr'} <= set(expected)
    acc = events(os.path.join(workdir, 'tensorboard', member))
    got = {tag: [(e.step, np.float32(e.value)) for e in acc.Scalars(tag)]
           for tag in acc.Tags()['scalars']}
    assert got == expected, member


@pytest.mark.slow
def test_a_sweep_writes_one_run_per_member_with_scalars_images_and_hparams(tmp_path, tiny):
  workdir = str(tmp_path / 'w')
  train_and_evaluate(tiny(sweep__beta=(1.0, 4.0)), workdir)
  rows = read_rows(workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'tensorboard'))) == ['beta=1', 'beta=4']
  assert_events_equal_rows(workdir, rows)
  eval_steps = sorted({r['step'] for r in rows if r['split'] == 'eval'})
  strips = {}
  for member, beta in (('beta=1', 1.0), ('beta=4', 4.0)):
    acc = events(os.path.join(workdir, 'tensorboard', member))
    images = acc.Images(tracking.RECON_TAG)
    # each evaluation: 8 test digits (8x8, shown 8x larger) above this member's reconstructions
    assert [i.step for i in images] == eval_steps
    assert (images[-1].width, images[-1].height) == (8 * 64, 2 * 64)
    strips[member] = images[-1].encoded_image_string
    # the HParams plugin: this member's swept value, and its final metrics by scalar tag
    content = acc.PluginTagToContent('hparams')
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content['_hparams_/session_start_info']).session_start_info
    assert dict(start.hparams)['beta'].number_value == beta
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content['_hparams_/experiment']).experiment
    tags = {m.name.tag for m in experiment.metric_infos}
    assert {'eval/psnr', 'eval/loss', 'train/loss'} <= tags <= set(acc.Tags()['scalars'])
    assert [h.name for h in experiment.hparam_infos] == ['beta']
  assert strips['beta=1'] != strips['beta=4']  # each run shows its own member's images


@pytest.mark.slow
def test_a_resumed_run_shows_each_step_once(tmp_path, monkeypatch, tiny):
  workdir = str(tmp_path / 'w')
  cfg = tiny(train__num_epochs=3, train__chunk_steps=5, checkpoint__max_to_keep=5)
  real, sent = train._Run.train_chunk, []

  def sigterm_mid_epoch_2(self):
    real(self)
    if not sent and self.spe < self.step < 2 * self.spe and not self.epoch_end:
      sent.append(self.step)
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(train._Run, 'train_chunk', sigterm_mid_epoch_2)
  with pytest.raises(Preempted):
    train_and_evaluate(cfg, workdir)
  monkeypatch.undo()
  train_and_evaluate(cfg, workdir)  # resumes mid-epoch 2
  rows = read_rows(workdir)
  assert [r['epoch'] for r in rows if r['split'] == 'train'] == [1, 2, 3]
  assert_events_equal_rows(workdir, rows)
  run_dir = os.path.join(workdir, 'tensorboard', 'run')
  assert len(os.listdir(run_dir)) == 2  # one event file per start, none overwritten

  # A restart from an older checkpoint than the last rows logged (the newest lost): epoch 3
  # is trained and logged again. The first write's purge_step hides the stale events.
  ckpts = os.path.join(workdir, 'checkpoints')
  newest = checkpoint.saved_steps(ckpts)[-1]
  shutil.rmtree(os.path.join(ckpts, str(newest)))
  train_and_evaluate(cfg, workdir)
  again = read_rows(workdir)
  untimed = lambda rs: [{k: v for k, v in r.items() if k != 'wall_s'} for r in rs]
  assert untimed(again) == untimed(rows)
  assert_events_equal_rows(workdir, again)
  on_disk = [e.step for e in events(run_dir, purge=False).Scalars('train/loss')]
  assert on_disk.count(newest) == 2  # both are still in the files: purging is what hides one


@pytest.mark.slow
def test_tensorboard_off_writes_no_events_and_only_the_writer_writes(tmp_path, tiny):
  workdir = str(tmp_path / 'w')
  train_and_evaluate(tiny(train__num_epochs=1, log__tensorboard=False), workdir)
  assert os.path.exists(os.path.join(workdir, 'metrics.jsonl'))
  assert not os.path.exists(os.path.join(workdir, 'tensorboard'))
  # a process other than the writer (process 0 of a multi-process job) writes nothing
  cfg = config_lib.resolve(tiny())
  tracker = tracking.Tracker(Workdir(str(tmp_path / 'x'), writer=False), cfg, [{'name': 'run'}],
                             0)
  tracker.rows([{'epoch': 1, 'step': 5, 'split': 'train', 'member': 'run', 'loss': 1.0}])
  tracker.close()
  assert not os.path.exists(tmp_path / 'x')


@pytest.mark.skipif(importlib.util.find_spec('wandb') is not None, reason='wandb is installed')
def test_wandb_without_the_package_is_one_config_error_before_anything_runs(tmp_path, tiny):
  workdir = str(tmp_path / 'w')
  with pytest.raises(ConfigError) as e:
    train_and_evaluate(tiny(log__wandb=True), workdir)
  assert str(e.value) == ("config.log.wandb=True needs Weights & Biases: pip install "
                          "'ae_jax[wandb]'")
  assert not os.path.exists(workdir)


def test_tensorboardx_loads_without_torch_and_leaves_it_importable(tmp_path, monkeypatch):
  import sys
  # as in a fresh process where torch is installed but not imported
  for name in [n for n in sys.modules if n == 'torch' or n.split('.')[0] == 'tensorboardX']:
    monkeypatch.delitem(sys.modules, name)
  writer_cls, _ = tracking._tensorboardx()
  assert 'torch' not in sys.modules  # not imported, and not left hidden either
  with writer_cls(str(tmp_path)) as w:
    w.add_scalar('eval/loss', 1.5, 3)
  assert events(str(tmp_path)).Scalars('eval/loss')[0].value == 1.5
