"""What a command writes, and what it finds written: every file through the one atomic
write (a full disk or a read-only folder leaves the previous version and no temporary), a
latent tool's folder as one run's outputs, results printed before they are saved, the
workdir's records checked against their shapes, and a run's records kept when its
checkpoints are gone. Each test fails on the code before these guarantees."""
import errno
import json
import os
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pytest

from ae_jax import inference, workdir as wd_lib
from ae_jax.workdir import files as files_lib
from ae_jax.errors import CheckpointError, WorkdirError, WriteError
from ae_jax.latent.__main__ import main as latent_main
from ae_jax.main import main as ae_main
from ae_jax.train import train_and_evaluate
from ae_jax.workdir import Outputs, Workdir


def _figure(value: float):
  fig, ax = plt.subplots(figsize=(2, 2))
  ax.plot([0, 1], [0, value])
  return fig


def _no_temporaries(tree_digest, root):
  left = [n for n in tree_digest(root) if '.tmp' in n or '.write-test' in n
          or '.partial-' in n or n.endswith('.lock') and '/.' in '/' + n]
  assert not left, left


# ---- 1. one atomic write --------------------------------------------------------------

WRITES = {  # name -> (file it writes, relative to the folder; a call writing version v)
    'save_figure': ('figures/loss.png', lambda w, o, v: w.save_figure(_figure(v), 'loss.png')),
    'write_json': ('summary.json', lambda w, o, v: w.write_json('summary.json', {'v': v})),
    'write_text': ('report.md', lambda w, o, v: w.write_text('report.md', f'v{v}\n' * 9)),
    'write_metrics': ('metrics.jsonl', lambda w, o, v: w.write_metrics([{'step': v}] * 5)),
    'text_file': ('docs.md', lambda w, o, v: wd_lib.write_text_file(w.file('docs.md'),
                                                                     f'{v}' * 99)),
    'outputs_figure': ('out/a.png', lambda w, o, v: o.figure(_figure(v), 'a.png')),
    'outputs_array': ('out/a.npy', lambda w, o, v: o.array('a.npy', np.full(300, v))),
    'outputs_arrays': ('out/a.npz', lambda w, o, v: o.arrays('a.npz', x=np.full(300, v))),
    'outputs_json': ('out/a.json', lambda w, o, v: o.json('a.json', {'v': [v] * 50})),
}


@pytest.mark.parametrize('failure', ['disk full midway', 'read-only folder'])
@pytest.mark.parametrize('kind', sorted(WRITES))
def test_a_failed_write_keeps_the_previous_version_and_leaves_no_temporary(
    tmp_path, monkeypatch, read_only, kind, failure, tree_digest):
  name, write = WRITES[kind]
  wd, out = Workdir(str(tmp_path), writer=True), Outputs(str(tmp_path / 'out'))
  write(wd, out, 1.0)  # the good version
  before = tree_digest(tmp_path)
  if failure == 'disk full midway':
    real = os.write

    def full(fd, data):  # some bytes land, then the disk is full
      real(fd, bytes(data[:7]))
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(files_lib, '_os_write', full)
    reason = 'No space left on device'
  else:
    read_only(tmp_path)
    reason = 'Read-only file system'
  with pytest.raises(WriteError) as e:
    write(wd, out, 2.0)
  message = str(e.value)
  assert message == (f'{tmp_path / name} could not be written ({reason}); its previous version '
                     'is intact')
  assert isinstance(e.value, WorkdirError) and isinstance(e.value, OSError)
  monkeypatch.undo()
  assert tree_digest(tmp_path) == before
  _no_temporaries(tree_digest, tmp_path)


def test_the_write_probe_and_the_metrics_log_on_a_full_disk(tmp_path, monkeypatch):
  import builtins
  real_open = builtins.open

  class Full:  # a file that opens, and whose bytes do not fit
    def __init__(self, f):
      self.f = f

    def write(self, _):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
      return self

    def __exit__(self, *a):
      self.f.close()

  def opener(path, mode='r', *a, **k):
    f = real_open(path, mode, *a, **k)
    return Full(f) if any(c in mode for c in 'wa') and str(path).startswith(str(tmp_path)) else f

  wd = Workdir(str(tmp_path / 'w'), writer=True)
  wd.prepare()
  wd.write_metrics([{'step': 1, 'split': 'train'}])
  monkeypatch.setattr(builtins, 'open', opener)
  with pytest.raises(WorkdirError, match=r'cannot be written \(No space left on device\); '
                     'choose another --workdir'):
    wd.prepare()
  with pytest.raises(WriteError, match=r'metrics.jsonl could not be appended to \(No space '
                     r'left on device\); its earlier lines are intact'):
    wd.metrics_log(1, resumed=True).write([{'step': 2, 'split': 'train'}])
  monkeypatch.undo()
  assert sorted(os.listdir(wd.path)) == ['figures', 'metrics.jsonl']  # no .write-test
  assert wd.read_metrics() == [{'step': 1, 'split': 'train'}]


# ---- 2. a tool's folder holds one run's outputs ----------------------------------------


def _latent(capsys, *argv, code=0):
  if code:
    with pytest.raises(SystemExit) as e:
      latent_main([str(a) for a in argv])
    assert e.value.code == code
  else:
    latent_main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return out, err.strip()


@pytest.fixture(scope='module')
def vae(tmp_path_factory, wafer_runs):
  """A private copy of the trained wafer VAE (the tools here write into its folders)."""
  path = tmp_path_factory.mktemp('vae') / 'w'
  shutil.copytree(wafer_runs['vae'], path, ignore=shutil.ignore_patterns('latent'))
  return str(path)


@pytest.mark.slow
def test_a_rerun_with_fewer_ids_leaves_no_stale_figure(vae, tmp_path, capsys, tree_digest):
  out = tmp_path / 'gen'
  _latent(capsys, 'generate', '--workdir', vae, '--ids', '0-24', '--per-id', '1', '--out', out)
  assert (out / 'generate_1.png').exists()  # 25 ids: two figures
  printed, _ = _latent(capsys, 'generate', '--workdir', vae, '--ids', '3,4', '--per-id', '2',
                       '--out', out)
  assert sorted(os.listdir(out)) == ['.outputs.json', 'gen_data.npy', 'gen_ids.npy',
                                     'gen_label.npy', 'gen_sigma.npy', 'generate.png']
  assert json.loads((out / '.outputs.json').read_text())['tool'] == 'generate'
  assert printed.splitlines()[0] == f'wrote {out}/gen_data.npy'
  np.testing.assert_array_equal(np.load(out / 'gen_ids.npy'), [3, 3, 4, 4])
  _no_temporaries(tree_digest, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize('stop', ['error', 'kill'])
def test_a_tool_stopped_after_its_arrays_leaves_the_previous_run_whole(
    vae, tmp_path, capsys, monkeypatch, stop, tree_digest):
  from ae_jax import figures
  out = tmp_path / 'gen'
  args = ['generate', '--workdir', vae, '--ids', '1-3', '--per-id', '2', '--out', out]
  _latent(capsys, *args)
  before = tree_digest(tmp_path)

  def broken(*a, **k):  # after the arrays, at the figure
    raise RuntimeError('the figure failed')
  monkeypatch.setattr(figures, 'image_rows', broken)
  if stop == 'kill':  # what SIGKILL leaves: the partial folder and the lock file, unlocked
    def killed(self, commit):
      self._lock.close()
    monkeypatch.setattr(Outputs, '_close', killed)
  with pytest.raises(RuntimeError, match='the figure failed'):
    _latent(capsys, *args, '--seed', '7')
  monkeypatch.undo()
  now = tree_digest(tmp_path)
  assert {k: v for k, v in now.items() if k.startswith('gen/')} == \
      {k: v for k, v in before.items() if k.startswith('gen/')}
  if stop == 'error':
    assert now == before
  else:  # the rerun clears what the killed one left and replaces the folder whole
    assert any('.gen.partial-' in k and k.endswith('gen_data.npy') for k in now)
    _latent(capsys, *args, '--seed', '7')
    assert tree_digest(out) != {k[4:]: v for k, v in before.items() if k.startswith('gen/')}
  _no_temporaries(tree_digest, tmp_path)


@pytest.mark.slow
def test_a_full_disk_during_a_tool_names_the_file_and_keeps_the_previous_run(
    vae, tmp_path, capsys, monkeypatch, tree_digest):
  out = tmp_path / 'enc'
  _latent(capsys, 'encode', '--workdir', vae, '--out', out)
  before = tree_digest(tmp_path)

  def full(fd, data):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(files_lib, '_os_write', full)
  _, err = _latent(capsys, 'encode', '--workdir', vae, '--out', out, code=2)
  assert err == (f'error: {out}/codes.npz could not be written (No space left on device); the '
                 "folder's previous run is intact")
  monkeypatch.undo()
  assert tree_digest(tmp_path) == before


@pytest.mark.slow
def test_a_second_writer_of_one_folder_is_refused_naming_the_first(vae, tmp_path, capsys,
                                                                   tree_digest):
  out = tmp_path / 'shared'
  with Workdir(vae).outputs('reconstruct', str(out)):  # a run writing there meanwhile
    _, err = _latent(capsys, 'reconstruct', '--workdir', vae, '--num', '2', '--out', out,
                     code=2)
    assert err == (f'error: {out} is being written by another run (process {os.getpid()} on '
                   f'{os.uname().nodename}); wait for it to end, or give another --out')
  assert os.listdir(out) == ['.outputs.json']  # the holder's run (of no files); none of its
  _latent(capsys, 'reconstruct', '--workdir', vae, '--num', '2', '--out', out)
  assert (out / 'reconstruct.npz').exists()
  _no_temporaries(tree_digest, tmp_path)


@pytest.mark.slow
def test_an_out_folder_of_other_files_is_refused_and_a_cut_swap_is_mended(
    vae, tmp_path, capsys):
  mine = tmp_path / 'mine'
  mine.mkdir()
  (mine / 'notes.txt').write_text('keep me')
  _, err = _latent(capsys, 'encode', '--workdir', vae, '--out', mine, code=2)
  assert err == (f'error: --out {mine} holds files no ae_jax command wrote; give a new or empty '
                 'folder (`latent encode` replaces only its own previous outputs, as a whole)')
  assert os.listdir(mine) == ['notes.txt']
  # a kill between the two renames of a replacement: the previous folder comes back first
  out = tmp_path / 'enc'
  _latent(capsys, 'encode', '--workdir', vae, '--out', out)
  os.rename(out, tmp_path / '.enc.old-1234')
  with pytest.raises(SystemExit):
    _latent(capsys, 'encode', '--workdir', vae, '--split', 'nope', '--out', out)
  assert not out.exists()  # a refused flag touches nothing
  with Outputs(str(out)):
    assert (out / 'codes.npz').exists()  # mended under the lock, before anything else
  assert sorted(os.listdir(tmp_path)) == ['enc', 'mine']


# ---- 3. read-only workdirs after training ---------------------------------------------


@pytest.mark.slow
def test_evaluate_on_a_read_only_workdir_prints_then_warns(vae, tmp_path, capsys, read_only,
                                                          tree_digest):
  ro = tmp_path / 'ro'
  shutil.copytree(vae, ro / 'w')
  before = tree_digest(ro)
  read_only(ro)
  ae_main(['--mode=evaluate', '--workdir', str(ro / 'w'), '--metrics=psnr'])  # exit 0
  out, err = capsys.readouterr()
  assert out.startswith(f'evaluated {ro}/w at epoch 2 ') and '| PSNR' in out
  assert err.strip() == (f'warning: the result above is not saved: {ro}/w/eval.json could '
                         'not be written (Read-only file system); give --out DIR to write '
                         'eval.json into a folder you can write')
  ae_main(['--mode=evaluate', '--workdir', str(ro / 'w'), '--metrics=psnr', '--out',
           str(tmp_path / 'e')])
  assert capsys.readouterr().out.endswith(f'wrote {tmp_path}/e/eval.json\n')
  assert json.loads((tmp_path / 'e' / 'eval.json').read_text())['epoch'] == 2
  assert tree_digest(ro) == before


@pytest.mark.slow
def test_a_latent_tool_on_a_read_only_workdir_asks_for_out(vae, tmp_path, capsys, read_only,
                                                          tree_digest):
  ro = tmp_path / 'ro'
  shutil.copytree(vae, ro / 'w')
  before = tree_digest(ro)
  read_only(ro)
  for tool in ('reconstruct', 'fit'):
    _, err = _latent(capsys, tool, '--workdir', ro / 'w', code=2)
    assert err == (f'error: {ro}/w/latent/{tool} cannot be written (Read-only file system); '
                   "a tool's results are its files: give --out DIR, a folder you can write")
  _latent(capsys, 'fit', '--workdir', ro / 'w', '--out', tmp_path / 'fit')
  assert (tmp_path / 'fit' / 'gaussian.npz').exists()
  assert tree_digest(ro) == before


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('unshare') is None, reason='needs unshare (util-linux)')
def test_a_real_read_only_mount(vae, tmp_path, root, hang_s, checkout_env):
  """The same on a read-only bind mount (a user namespace: no privileges needed), where
  the libraries' own file access is read-only too (Orbax restores the checkpoint)."""
  import subprocess
  import sys
  ro = tmp_path / 'ro'
  shutil.copytree(vae, ro / 'w')
  probe = subprocess.run(['unshare', '-rm', 'true'], capture_output=True)
  if probe.returncode:
    pytest.skip('user namespaces are not allowed here')
  py, w = sys.executable, ro / 'w'
  script = (f'mount --bind -o ro {ro} {ro} && {py} -c "'
            'from ae_jax.main import main; main([\'--mode=evaluate\', \'--workdir\', '
            f'\'{w}\', \'--metrics=psnr\'])"; echo rc=$?; '
            f'{py} -m ae_jax.latent encode --workdir {w}; echo rc=$?')
  r = subprocess.run(['unshare', '-rm', 'sh', '-c', script], cwd=root, env=checkout_env(),
                     capture_output=True, text=True, timeout=hang_s)
  assert 'rc=0' in r.stdout and 'rc=2' in r.stdout, r.stderr[-2000:]
  assert f'{w}/eval.json could not be written (Read-only file system)' in r.stderr
  assert f'error: {w}/latent/encode cannot be written (Read-only file system)' in r.stderr
  assert 'Traceback' not in r.stderr


# ---- 4. workdir JSON of the wrong shape ------------------------------------------------

FIX_REWRITE = ("restore it from a copy, or run this workdir's training command again (it "
               'resumes, trains nothing new and rewrites it)')
FIX_CONFIG = 'restore it from a copy, or start again with --fresh (moves this workdir aside)'


def _with(**values):
  return lambda record: {**record, **values}


def _model_with(**values):
  return lambda config: {**config, 'model': {**config['model'], **values}}


@pytest.mark.slow
@pytest.mark.parametrize('name,damage,message', [
    ('model.json', lambda r: [], 'model.json holds [] (a list); expected a JSON object'),
    ('model.json', lambda r: {}, "model.json has no 'image_shape' (a list of 3 positive "
                                 'integers [H, W, C])'),
    ('model.json', _with(image_shape='26x26'), "model.json: 'image_shape' is \"26x26\" (a "
                                               'string); expected a list of 3 positive integers'),
    ('model.json', _with(steps_per_epoch='4'), "model.json: 'steps_per_epoch' is \"4\" (a "
                                               'string); expected a positive integer'),
    ('model.json', _with(class_names='abc'), "model.json: 'class_names' is \"abc\" (a string); "
                                             'expected a list of strings'),
    ('members.json', lambda r: [], 'members.json holds [] (a list); expected a non-empty list '
                                   'of objects'),
    ('members.json', lambda r: r[0], 'members.json holds an object; expected a non-empty list'),
    ('members.json', lambda r: [{'beta': 1.0}], "members.json: entry 0 has no 'name' (a "
                                                'string)'),
    ('members.json', lambda r: [{**r[0], 'latent_dim': '6'}],
     "members.json: entry 0: 'latent_dim' is \"6\" (a string); expected an integer"),
    ('config.json', lambda r: [], 'config.json holds [] (a list); expected a JSON object'),
    ('config.json', lambda r: {}, "config.json has no 'model' (a JSON object)"),
    ('config.json', _with(model='conv'), "config.json: 'model' is \"conv\" (a string); "
                                         'expected a JSON object'),
    ('config.json', _with(loss='mse'), "config.json: 'loss' is 'mse'; expected an object of "
                                       'the loss settings'),
    ('config.json', lambda r: {**r, 'model': {'kind': 'vae'}},
     "config.json has no 'model.latent_dim' (a positive integer)"),
    ('config.json', _model_with(latent_dim='6'), "config.json: 'model.latent_dim' is \"6\" (a "
                                                 'string); expected a positive integer'),
])
def test_records_of_the_wrong_shape_name_the_file_and_key(vae, tmp_path, name, damage,
                                                          message, tree_digest):
  w = tmp_path / 'w'
  shutil.copytree(vae, w)
  (w / name).write_text(json.dumps(damage(json.loads((w / name).read_text()))))
  before = tree_digest(w)
  with pytest.raises(WorkdirError) as e:
    inference.load(str(w))
  got = str(e.value)
  assert got.startswith(f'{w}/') and message in got and '\n' not in got
  assert got.endswith(FIX_CONFIG if name == 'config.json' else FIX_REWRITE)
  assert tree_digest(w) == before


@pytest.mark.slow
def test_rerunning_training_rewrites_damaged_model_and_members_records(vae, tmp_path, wafer_config):
  import chex
  w = str(tmp_path / 'w')
  shutil.copytree(vae, w)
  params = inference.load(w).params
  for name in ('model.json', 'members.json'):
    with open(os.path.join(w, name), 'w') as f:
      f.write('{}')
  with pytest.raises(WorkdirError, match='members.json holds {}'):
    inference.load(w)
  train_and_evaluate(wafer_config('vae', 6), w)  # resumes: nothing to train, records rewritten
  chex.assert_trees_all_equal(inference.load(w).params, params)


@pytest.mark.slow
def test_records_that_do_not_describe_the_checkpoint_are_named_not_the_checkpoint(
    vae, tmp_path):
  w = tmp_path / 'w'
  shutil.copytree(vae, w)
  model = json.loads((w / 'model.json').read_text())
  (w / 'model.json').write_text(json.dumps({**model, 'image_shape': [27, 26, 3]}))
  with pytest.raises(CheckpointError, match=r"holds a model of other shapes than the "
                     r"workdir's config.json, members.json and model.json describe \(params/"
                     r'.*: saved \(1, \d+\), expected \(1, \d+\)\); one of them was changed'):
    inference.load(str(w))


# ---- 5. a run's records without its checkpoints ----------------------------------------


@pytest.mark.slow
def test_deleted_checkpoints_move_the_old_records_aside_before_starting_again(
    tmp_path, capsys, tiny, tree_digest):
  w = str(tmp_path / 'w')
  train_and_evaluate(tiny(train__num_epochs=1), w)
  shutil.rmtree(os.path.join(w, 'checkpoints'))
  old = tree_digest(w)
  capsys.readouterr()
  train_and_evaluate(tiny(train__num_epochs=1), w)
  printed = capsys.readouterr().out
  moved = [n for n in os.listdir(tmp_path) if n.startswith('w.old-')]
  assert len(moved) == 1
  assert (f'no checkpoint found in {w}: moved the previous run\'s records to '
          f'{tmp_path / moved[0]}; training starts from epoch 0') in printed
  assert tree_digest(tmp_path / moved[0]) == old  # kept as they were
  assert inference.load(w).epoch == 1
  # a start that wrote only its first records (no metrics yet) restarts in place
  shutil.rmtree(os.path.join(w, 'checkpoints'))
  for name in ('metrics.jsonl', 'summary.json', 'latent_stats.json'):
    os.remove(os.path.join(w, name))
  train_and_evaluate(tiny(train__num_epochs=1), w)
  assert 'no checkpoint found' not in capsys.readouterr().out
  assert len([n for n in os.listdir(tmp_path) if n.startswith('w.old-')]) == 1
