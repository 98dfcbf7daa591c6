"""A symbolic link planted inside a folder ae_jax writes (`ln -s ~/precious runs/x/.lock`) is
refused, never followed: no write, truncation, rename or clean-up lands outside the folder
the user named. The folder itself may be a link (a run on another disk): that works.

The planted-link tests enumerate the paths from real runs' file lists (a sweep with two
programs, an evaluation, a latent tool's default folder and --out folders), plant a link at
each, run the command that writes there, and check the link's target is byte-identical."""
import os
import shutil

import pytest

from ae_jax.errors import WorkdirError, WriteError
from ae_jax.latent.__main__ import main as latent_main
from ae_jax.main import main as ae_main
from ae_jax.workdir import Outputs, Workdir, files as files_lib, take_lock

RUN = ['--config', 'vae_mlp', '--config.data.name=digits', '--config.model.hidden=(16,)',
       '--config.model.latent_dim=4', '--config.train.num_epochs=1', '--config.progress=False',
       "--config.eval.metrics=('loss', 'recon', 'psnr')", '--config.sweep.beta=(1.0, 4.0)',
       '--config.sweep.batch_size=(32, 64)']
PROGRAM = 'programs/batch_size=32'  # a program's own workdir (the latent tools take one)
# what a run makes and removes again, or makes only sometimes
TRANSIENT = ['.write-test', 'crash.log', 'eval.json', f'{PROGRAM}/eval.json',
             f'{PROGRAM}/latent/.encode.lock', 'wandb']


def _precious(root, is_dir: bool) -> str:
  """Something of the user's outside every folder ae_jax was given."""
  if is_dir:
    path = os.path.join(root, 'precious_dir')
    os.makedirs(path)
    with open(os.path.join(path, 'notes.txt'), 'w') as f:
      f.write('my notes')
  else:
    path = os.path.join(root, 'precious')
    with open(path, 'w') as f:
      f.write('keep me')
  return path


def _plant(folder, rel, target) -> str:
  path = os.path.join(folder, rel)
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path)
  elif os.path.lexists(path):
    os.remove(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  os.symlink(target, path)
  return path


def _every_path(root) -> list[str]:
  out = []
  for here, dirs, files in os.walk(root):
    out += [os.path.relpath(os.path.join(here, n), root) for n in dirs + files]
  return sorted(out)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A real sweep's workdir (two programs, two members each), evaluated once, with the
  default folder of a latent tool: -> (its path, every path in it and the transient ones)."""
  root = tmp_path_factory.mktemp('linked')
  workdir = str(root / 'w')
  ae_main([*RUN, '--workdir', workdir])
  ae_main(['--mode=evaluate', '--workdir', workdir, '--metrics=psnr'])
  latent_main(['encode', '--workdir', os.path.join(workdir, PROGRAM), '--member',
               'batch_size=32,beta=1'])
  paths = _every_path(workdir)
  assert f'{PROGRAM}/checkpoints' in paths and '.lock' in paths and 'sweep.csv' in paths
  assert f'{PROGRAM}/latent/encode/.outputs.json' in paths and 'tensorboard' in paths
  return workdir, sorted(set(paths) | set(TRANSIENT))


def _run(capsys, main, argv):
  try:
    main(argv)
    code = 0
  except SystemExit as e:
    code = e.code
  captured = capsys.readouterr()
  return code, captured.err.strip().splitlines()


@pytest.mark.slow
def test_a_link_planted_at_any_path_a_run_writes_is_refused(trained, tmp_path, capsys,
                                                            tree_digest):
  """Training (a resume of the same sweep) refuses a link at every path of a real run's
  file list, before it writes anything: one line naming the link, exit code 2, the
  workdir and the link's target as they were."""
  workdir, paths = trained
  for rel in paths:
    case = tmp_path / rel.replace('/', '_')
    case.mkdir()
    copy = str(case / 'w')
    shutil.copytree(workdir, copy, symlinks=True)
    is_dir = os.path.isdir(os.path.join(workdir, rel)) or rel == 'wandb'
    target = _precious(str(case), is_dir)
    link = _plant(copy, rel, target)
    before, kept = tree_digest(copy), tree_digest(target) if is_dir else open(target).read()
    code, err = _run(capsys, ae_main, [*RUN, '--workdir', copy])
    assert code == 2, (rel, err)
    assert err == [f'error: {link} is a symbolic link (to {target}); ae_jax does not write '
                   'through a link inside a folder it writes: remove the link (a --workdir '
                   'or --out may itself be a link, to put it on another disk)'], rel
    assert tree_digest(copy) == before, rel
    assert (tree_digest(target) if is_dir else open(target).read()) == kept, rel
    shutil.rmtree(case)


@pytest.mark.slow
def test_a_link_planted_in_a_new_workdir_is_refused(tmp_path, capsys):
  """The same in a folder with nothing of a run yet: every top-level name a run makes."""
  for rel in ('.lock', '.write-test', 'config.json', 'metrics.jsonl', 'figures', 'checkpoints',
              'tensorboard', 'programs', 'checkpoints_best'):
    case = tmp_path / rel.strip('.')
    (case / 'w').mkdir(parents=True)
    is_dir = '.' not in rel
    target = _precious(str(case), is_dir)
    link = _plant(str(case / 'w'), rel, target)
    code, err = _run(capsys, ae_main, [*RUN, '--workdir', str(case / 'w')])
    assert code == 2 and err[0].startswith(f'error: {link} is a symbolic link'), (rel, err)
    assert os.listdir(case / 'w') == [os.path.basename(rel)]
    assert open(os.path.join(target, 'notes.txt') if is_dir else target).read() in (
        'my notes', 'keep me')


@pytest.mark.slow
@pytest.mark.parametrize('command', ['latent encode', 'latent encode --out', 'evaluate',
                                     'evaluate --out'])
def test_a_link_planted_where_a_tool_or_an_evaluation_writes(trained, command, tmp_path,
                                                             capsys):
  """Every path of a latent tool's folder (its default one and an --out) and of an
  evaluation's eval.json: a link on the way is refused, a link inside a folder the tool
  replaces as a whole is dropped with it; the target is untouched either way."""
  workdir, _ = trained
  copy = str(tmp_path / 'w')
  shutil.copytree(workdir, copy, symlinks=True)
  tool, _, out = command.partition(' --out')
  out = str(tmp_path / 'out') if out is not None and command.endswith('--out') else None
  program = os.path.join(copy, PROGRAM)
  argv = (['encode', '--workdir', program, '--member', 'batch_size=32,beta=1']
          if 'latent' in tool else ['--mode=evaluate', '--workdir', copy, '--metrics=psnr'])
  main = latent_main if 'latent' in tool else ae_main
  argv += ['--out', out] if out else []
  assert _run(capsys, main, argv)[0] == 0  # the folder as a run leaves it
  if out:
    folder = out
    paths = _every_path(out) + [f'../.{os.path.basename(out)}.lock']
  elif 'latent' in tool:
    folder = program
    paths = [p for p in _every_path(program) if p.startswith('latent')] + ['latent/.encode.lock']
  else:
    folder, paths = copy, ['eval.json', f'{PROGRAM}/eval.json']
  for rel in paths:
    case = tmp_path / ('case_' + rel.replace('/', '_').replace('.', '_'))
    case.mkdir()
    is_dir = os.path.isdir(os.path.join(folder, rel))
    target = _precious(str(case), is_dir)
    _plant(folder, rel, target)
    code, err = _run(capsys, main, argv)
    kept = open(os.path.join(target, 'notes.txt') if is_dir else target).read()
    assert kept in ('my notes', 'keep me') and os.listdir(case) == [os.path.basename(target)]
    if is_dir:
      assert os.listdir(target) == ['notes.txt'], rel
    if code:
      assert code == 2 and len(err) == 1 and 'is a symbolic link' in err[0], (rel, err)
    link = os.path.join(folder, rel)
    if os.path.islink(link):
      os.remove(link)  # as the user would, after the line naming it
    code, err = _run(capsys, main, argv)
    if rel.endswith('.outputs.json') and not os.path.exists(link):  # no mark: not the tool's
      assert code == 2 and 'holds files no ae_jax command wrote' in err[0], (rel, err)
      os.rename(out, str(case) + '_unmarked')
      assert _run(capsys, main, argv)[0] == 0
    else:
      assert code == 0, (rel, err)


# ---- the writes themselves (fast) --------------------------------------------------------


def _link(tmp_path, rel, is_dir=False):
  target = _precious(str(tmp_path), is_dir)
  return _plant(str(tmp_path / 'w'), rel, target), target


WRITES = {  # name -> (what is a link, relative to the workdir; the write)
    'a file': ('summary.json', lambda w: w.write_json('summary.json', {'a': 1})),
    'a figure folder': ('figures', lambda w: w.write_text('figures/x.md', 'x')),
    'a program folder': ('programs', lambda w: w.program('p').write_json('config.json', {})),
    'the metrics log': ('metrics.jsonl',
                        lambda w: w.metrics_log(0, resumed=False).write([{'step': 1}])),
    'the lock': ('.lock', lambda w: take_lock(w.file('.lock'), str)),
    'a TensorBoard folder': ('tensorboard', lambda w: w.folder(w.tensorboard_dir('run'))),
    "a tool's folder": ('latent/encode', lambda w: w.outputs('encode').__enter__()),
    "a tool's parent": ('latent', lambda w: w.outputs('encode').__enter__()),
}


@pytest.mark.parametrize('case', sorted(WRITES))
def test_no_write_goes_through_a_link(case, tmp_path, tree_digest):
  rel, write = WRITES[case]
  (tmp_path / 'w').mkdir()
  is_dir = '.' not in rel
  link, target = _link(tmp_path, rel, is_dir)
  before = tree_digest(tmp_path)
  with pytest.raises(WriteError) as e:
    write(Workdir(str(tmp_path / 'w'), writer=True))
  assert str(e.value).startswith(f'{link} is a symbolic link (to {target}); ')
  assert tree_digest(tmp_path) == before


def test_the_probe_and_the_scan_refuse_links(tmp_path, tree_digest):
  w = Workdir(str(tmp_path / 'w'), writer=True)
  w.prepare()
  for rel in ('.write-test', 'checkpoints/44', 'tensorboard/run/events', 'models'):
    link, _ = _link(tmp_path, rel, is_dir=False)
    before = tree_digest(tmp_path)
    with pytest.raises(WriteError, match=f'^{link} is a symbolic link'):
      w.prepare()
    assert tree_digest(tmp_path) == before
    os.remove(link)
    os.remove(tmp_path / 'precious')


def test_a_workdir_that_is_a_link_works_and_moves_aside_where_it_points(tmp_path):
  """runs/x -> /disk2/x: writes go through the link; --fresh moves the folder it points at
  aside beside itself and the link then points at a new, empty folder."""
  (tmp_path / 'disk2' / 'x').mkdir(parents=True)
  (tmp_path / 'runs').mkdir()
  os.symlink(tmp_path / 'disk2' / 'x', tmp_path / 'runs' / 'x')
  w = Workdir(str(tmp_path / 'runs' / 'x'), writer=True)
  w.prepare()
  w.write_json('summary.json', {'a': 1})
  w.metrics_log(0, resumed=False).write([{'step': 1}])
  assert os.path.isfile(tmp_path / 'disk2' / 'x' / 'summary.json')
  moved = w.move_aside()
  assert os.path.dirname(moved) == str(tmp_path / 'disk2')
  assert os.listdir(moved) and os.path.islink(tmp_path / 'runs' / 'x')
  assert os.listdir(tmp_path / 'disk2' / 'x') == []
  assert sorted(os.listdir(tmp_path / 'runs')) == ['x']


def test_an_out_that_is_a_link_replaces_the_folder_it_points_at(tmp_path):
  (tmp_path / 'real').mkdir()
  os.symlink(tmp_path / 'real', tmp_path / 'out')
  with Outputs(str(tmp_path / 'out'), tool='encode') as o:
    o.json('a.json', {'a': 1})
  assert os.path.islink(tmp_path / 'out')
  assert sorted(os.listdir(tmp_path / 'real')) == ['.outputs.json', 'a.json']
  # and one pointing at a folder of the user's own files is refused, naming it
  (tmp_path / 'mine').mkdir()
  (tmp_path / 'mine' / 'notes.txt').write_text('x')
  os.symlink(tmp_path / 'mine', tmp_path / 'out2')
  with pytest.raises(WorkdirError, match='holds files no ae_jax command wrote'):
    Outputs(str(tmp_path / 'out2'), tool='encode').__enter__()
  assert os.listdir(tmp_path / 'mine') == ['notes.txt']


def test_a_benchmark_file_is_not_written_through_a_link(tmp_path):
  target = _precious(str(tmp_path), False)
  os.symlink(target, tmp_path / 'b.json')
  with pytest.raises(WriteError, match='is a symbolic link'):
    files_lib.write_bytes(str(tmp_path / 'b.json'), b'{}')
  assert open(target).read() == 'keep me'
