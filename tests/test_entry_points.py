"""Bad input at every entry point, table by table: training, --mode=evaluate, each latent
tool, load() and the Trained methods. Each case damages a copy of a trained workdir (its
files, folders, JSON, checkpoint) or passes a bad flag or array, and must end in one line
naming the problem (exit code 2 on the command line; the documented exception type in
Python) with every file and folder that existed before byte-identical after."""
import glob
import itertools
import json
import os
import shutil

import numpy as np
import pytest

from ae_jax import inference
from ae_jax.errors import CheckpointError, ConfigError, DataError, WorkdirError
from ae_jax.latent.__main__ import TOOLS, main as latent_main
from ae_jax.main import main as ae_main
from ae_jax.train import train_and_evaluate

pytestmark = pytest.mark.slow

READ_ONLY = 'read-only'  # a damage the `read_only` fixture makes


# ---- damages, each (workdir copy, the case's folder) -> None -----------------------------


def json_file(name, value):
  return lambda w, root: (w / name).write_text(json.dumps(value))


def edit_json(name, **values):
  def damage(w, root):
    (w / name).write_text(json.dumps({**json.loads((w / name).read_text()), **values}))
  return damage


def text_file(name, text):
  return lambda w, root: (w / name).write_text(text)


def no_checkpoints(w, root):
  shutil.rmtree(w / 'checkpoints')
  (w / 'checkpoints').mkdir()


def truncated_checkpoint(w, root):
  newest = max(int(n) for n in os.listdir(w / 'checkpoints') if n.isdigit())
  for f in glob.glob(str(w / 'checkpoints' / str(newest) / 'state' / 'ocdbt.*' / 'd' / '*')):
    os.truncate(f, 10)


def out_is_a_file(w, root):
  (root / 'out').write_text('not a folder')


def out_holds_other_files(w, root):
  (root / 'out').mkdir()
  (root / 'out' / 'notes.txt').write_text('mine')


def gone(w, root):
  shutil.rmtree(w)


def fitted(text):
  def damage(w, root):
    (w / 'latent' / 'fit').mkdir(parents=True)
    (w / 'latent' / 'fit' / 'gaussian.npz').write_bytes(text)
  return damage


def fitted_of_another_size(w, root):
  (w / 'latent' / 'fit').mkdir(parents=True)
  np.savez(w / 'latent' / 'fit' / 'gaussian.npz', mean=np.zeros(3), scale_tril=np.eye(3),
           member='run', epoch=2.0)


# ---- the harness ----------------------------------------------------------------------------


@pytest.fixture
def case(tmp_path, wafer_runs, read_only):
  """prepare(damage, main='vae') -> (root, {name: path}): copies of the trained wafer
  workdirs (w: the main one, vae4: another latent size) in a fresh folder, damaged, without
  the latent/ folders other tests may have written into the shared ones."""
  def prepare(damage=None, main='vae'):
    paths = {'w': tmp_path / 'w', 'vae4': tmp_path / 'vae4', 'root': tmp_path,
             'out': tmp_path / 'out'}
    clean = shutil.ignore_patterns('latent')  # what other tests' tools wrote there
    shutil.copytree(wafer_runs[main], paths['w'], ignore=clean)
    shutil.copytree(wafer_runs['vae4'], paths['vae4'], ignore=clean)
    if damage == READ_ONLY:
      read_only(tmp_path)
    elif damage is not None:
      damage(paths['w'], tmp_path)
    return tmp_path, {k: str(v) for k, v in paths.items()}
  return prepare


def _argv(args, paths):
  return [a.format(**paths) for a in args]


def one_line_error(capsys, entry, argv, expected: str):
  """`entry(argv)` exits 2 with one `error: ...` line saying `expected`; a flag argparse
  cannot take is its usage, then one `PROG: error: ...` line (argparse's own form)."""
  with pytest.raises(SystemExit) as e:
    entry(argv)
  err = capsys.readouterr().err.strip()
  assert e.value.code == 2, err
  assert 'Traceback' not in err, err
  if err.startswith('usage: '):
    err = err.splitlines()[-1]
    assert ': error: ' in err, err
  assert err.startswith(('error: ', 'python -m ')) and '\n' not in err, err
  assert expected in err, err
  return err


# ---- every latent tool ------------------------------------------------------------------

COMMON = [  # (damage, extra flags, what the line says): for every tool
    (gone, [], 'is not a trained workdir'),
    (json_file('config.json', []), [], 'config.json holds [] (a list); expected a JSON object'),
    (edit_json('model.json', image_shape='26x26'), [], "model.json: 'image_shape' is"),
    (json_file('members.json', [{'beta': 1.0}]), [], "members.json: entry 0 has no 'name'"),
    (text_file('model.json', '{"image_shape": [26'), [], 'model.json is damaged'),
    (no_checkpoints, [], 'no checkpoint found'),
    (None, ['--member', 'nope'], "member 'nope' not in"),
    (None, ['--epoch', '99'], 'no checkpoint at epoch 99'),
    (out_is_a_file, ['--out', '{out}'], 'is a file; --out must be a folder'),
    (out_holds_other_files, ['--out', '{out}'], 'holds files no ae_jax command wrote'),
    (None, ['--out', '{root}/s.png'], 's.png: expected a folder (the tool writes its files in '
                                      'it); this names a file'),
    (READ_ONLY, [], 'cannot be written (Read-only file system); a tool\'s results are its '
                    'files: give --out DIR'),
    (None, ['--num', '0'], '--num 0: expected a positive whole number'),
    (None, ['--ids', '5-2'], "--ids '5-2'"),
]

SPECIFIC = [  # (tool, main model, damage, flags, what the line says)
    ('reconstruct', 'vae', None, ['--ids', '3,99999'], '99999'),
    ('reconstruct', 'vae', None, ['--epochs', '1,7'], 'no checkpoint at epoch 7'),
    ('reconstruct', 'vae', None, ['--with', '{root}/absent'], 'is not a trained workdir'),
    ('reconstruct', 'vae', truncated_checkpoint, [], 'does not restore'),
    ('fit', 'ae', edit_json('model.json', steps_per_epoch=0), [], "'steps_per_epoch' is 0"),
    ('sample', 'ae', None, [], 'is an AE: it has no prior to sample'),
    ('sample', 'ae', fitted(b'PK\x03\x04 not a zip'), [], 'is not a density fitted by `fit`'),
    ('sample', 'ae', fitted_of_another_size, [], 'the fitted density describes 3 code units'),
    ('sample', 'ae', None, ['--fitted', '{root}/none.npz'], 'no such file'),
    ('sample', 'vae', None, ['--temperature', 'nan'], '--temperature nan'),
    ('interpolate', 'vae', None, ['--ids', '3'], 'interpolate takes exactly two ids'),
    ('interpolate', 'vae', None, ['--steps', '1'], '--steps 1'),
    ('edit', 'vae', None, ['--edits', '9*2'], 'dimension(s) [9]'),
    ('edit', 'vae', None, ['--edits', '0/2'], "--edits '0/2'"),
    ('traverse', 'vae', None, ['--dims', '7'], 'dimension(s) [7]'),
    ('traverse', 'vae', None, ['--points', '0'], '--points 0'),
    ('traverse', 'vae', None, ['--span', 'inf'], '--span inf'),
    ('generate', 'vae', None, ['--sigma', '-1'], "--sigma '-1'"),
    ('generate', 'vae', None, ['--per-class', '1', '--classes', 'Nope'], "['Nope'] unknown"),
    ('generate', 'vae', None, ['--per-id', '0'], '--per-id 0'),
    ('same-noise', 'vae', None, [], 'compares two or more models'),
    ('same-noise', 'vae', None, ['--with', '{vae4}'], 'one latent size'),
    ('same-noise', 'vae', None, ['--sets', '0'], '--sets 0'),
    ('encode', 'vae', None, ['--split', 'val'], "--split 'val'"),
]

LATENT = ([pytest.param(tool, 'vae', *c, id=f'{tool}-{i}')
           for tool, (i, c) in itertools.product(TOOLS, enumerate(COMMON))]
          + [pytest.param(*c, id=f'{c[0]}-specific-{i}') for i, c in enumerate(SPECIFIC)])


@pytest.mark.parametrize('tool,main,damage,flags,expected', LATENT)
def test_latent_tools(case, capsys, tool, main, damage, flags, expected, tree_digest):
  root, paths = case(damage, main)
  before = tree_digest(root)
  one_line_error(capsys, latent_main, _argv([tool, '--workdir', '{w}', *flags], paths),
                 expected)
  assert tree_digest(root) == before


# ---- --mode=evaluate ----------------------------------------------------------------------

EVALUATE = [  # (damage, flags, what the line says)
    (gone, [], 'is not a trained workdir'),
    (json_file('config.json', {}), [], "config.json has no 'model'"),
    (edit_json('config.json', train='fast'), [], "config.json: 'train' is \"fast\""),
    (json_file('members.json', []), [], 'members.json holds [] (a list)'),
    (json_file('model.json', {}), [], "model.json has no 'image_shape'"),
    (text_file('members.json', ''), [], 'members.json is damaged'),
    (no_checkpoints, [], 'no checkpoint found'),
    (truncated_checkpoint, [], 'does not restore'),
    (None, ['--epoch', '99'], 'no checkpoint at epoch 99'),
    (None, ['--metrics', 'psnr,nope'], 'nope'),
    (None, ['--config.model.latent_dim=7'], 'keeps its own model.latent_dim'),
    (None, ['--config.eval.nope=1'], 'config.eval.nope is not a config key'),
    (None, ['--config.eval.max_images'], 'expected --config.<key>=<value>'),
    (out_is_a_file, ['--out', '{out}'], '--out {out} is a file'),
    (None, ['--out', '{root}/eval.json'], 'eval.json: expected a folder'),
    (None, ['--config', '{root}/none.py'], 'no such file'),
]


@pytest.mark.parametrize('damage,flags,expected', EVALUATE)
def test_evaluate(case, capsys, damage, flags, expected, tree_digest):
  root, paths = case(damage)
  before = tree_digest(root)
  one_line_error(capsys, ae_main, _argv(['--mode=evaluate', '--workdir', '{w}', *flags],
                                        paths), expected.format(**paths))
  assert tree_digest(root) == before


# ---- training -------------------------------------------------------------------------------

TRAIN = [  # (damage, config overrides, error type, what the message says)
    (json_file('config.json', []), {}, WorkdirError, 'config.json holds []'),
    (json_file('config.json', 'vae'), {}, WorkdirError, 'config.json holds "vae"'),
    (edit_json('config.json', data=[1]), {}, WorkdirError, "config.json: 'data' is [1]"),
    (text_file('config.json', '{"model": '), {}, WorkdirError, 'config.json is damaged'),
    (lambda w, root: os.remove(w / 'config.json'), {}, WorkdirError,
     'has checkpoints but no config.json'),
    (None, {'model__latent_dim': 5}, WorkdirError, 'holds a model trained with another config'),
    (None, {'train__num_epochs': 1}, WorkdirError, 'has trained 2 epochs'),
    (None, {'data__name': 'npy', 'data__path': '/no/such.npy'}, WorkdirError,
     'holds a model trained with another config'),
    (None, {'train__batch_size': 0}, ConfigError, 'batch_size'),
    (gone, {'data__name': 'npy', 'data__path': '/no/such.npy'}, DataError, '/no/such.npy'),
    (lambda w, root: (shutil.rmtree(w), w.write_text('a file')), {}, WorkdirError,
     'is a file, not a folder'),
]


def _config(wafer_config, **overrides):
  """The trained wafer VAE's config (wafer_config: the fixture) with `overrides` (`a__b=v`
  sets a.b)."""
  from ae_jax import config_lib
  config = wafer_config('vae', 6)
  for key, value in overrides.items():
    config_lib.set_value(config, key.replace('__', '.'), value)
  return config


@pytest.mark.parametrize('damage,overrides,error,expected', TRAIN)
def test_training(case, wafer_config, damage, overrides, error, expected, tree_digest):
  root, paths = case(damage)
  before = tree_digest(root)
  with pytest.raises(error) as e:
    train_and_evaluate(_config(wafer_config, **overrides), paths['w'])
  assert expected in str(e.value) and '\n' not in str(e.value)
  assert tree_digest(root) == before


def full_disk_for_appends(monkeypatch):
  """metrics.jsonl's appends fail as on a full disk (the workdir's other writes still land)."""
  import builtins
  import errno
  real = builtins.open

  def opener(path, mode='r', *a, **k):
    if 'a' in mode and str(path).endswith('metrics.jsonl'):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return real(path, mode, *a, **k)
  monkeypatch.setattr(builtins, 'open', opener)


SMALL = ['--config', 'vae_mlp', '--config.data.image_size=8', '--config.train.num_epochs=1',
         '--config.figures.enabled=False', '--config.progress=False']


@pytest.mark.parametrize('flags,expected', [
    (['--config', 'configs/nope.py'], 'configs/nope.py: no such file'),
    (['--config', 'vae_mlp', '--config.train.batch_size=0'], 'train.batch_size'),
    (['--config', 'vae_mlp', '--config.nope=1'], 'config.nope is not a config key'),
    (['--config', 'vae_mlp', '--config.train.num_epochs'], 'expected --config.<key>=<value>'),
    (['--workdir', '{w}'], '--config is required for training'),
    (['--config', 'vae_mlp', '--workdir', '{w}/config.json/x'], 'is a file, not a folder'),
    (['--config', 'vae_mlp', '--workdir', '{w}'], 'holds a model trained with another config'),
    ([*SMALL, '--workdir', '{root}/new'], 'training stopped at epoch 1 (step 22) by '
     'WriteError: {root}/new/metrics.jsonl could not be appended to (No space left on '
     'device); its earlier lines are intact; the state at step 22 is saved'),
])
def test_training_command_line(case, capsys, monkeypatch, flags, expected, tree_digest):
  root, paths = case()
  before = tree_digest(root)
  if '{root}/new' in flags:  # a disk that fills during the run: what was there stays
    full_disk_for_appends(monkeypatch)
  one_line_error(capsys, ae_main, _argv(flags, paths), expected.format(**paths))
  after = tree_digest(root)
  assert {k: after.get(k) for k in before} == before
  assert '{root}/new' in flags or after == before


# ---- load() and the Trained methods --------------------------------------------------------

LOAD = [  # (damage, load's keyword arguments, error type, what the message says)
    (gone, {}, WorkdirError, 'is not a trained workdir'),
    (json_file('model.json', 'model'), {}, WorkdirError, 'model.json holds "model"'),
    (edit_json('model.json', latent_shape=['6']), {}, WorkdirError, "'latent_shape' is"),
    (json_file('members.json', {}), {}, WorkdirError, 'members.json holds {}'),
    (edit_json('config.json', model={'kind': 'vae', 'latent_dim': 0}), {}, WorkdirError,
     "'model.latent_dim' is 0"),
    (no_checkpoints, {}, WorkdirError, 'no checkpoint found'),
    (truncated_checkpoint, {}, CheckpointError, 'does not restore'),
    (edit_json('model.json', image_shape=[25, 26, 3]), {}, CheckpointError,
     'holds a model of other shapes than the workdir\'s config.json'),
    (None, {'member': 'nope'}, ConfigError, "member 'nope' not in"),
    (None, {'member': 3}, ConfigError, 'member 3 not in'),
    (None, {'epoch': 99}, WorkdirError, 'no checkpoint at epoch 99'),
    (None, {'overrides': ['--config.model.latent_dim=3']}, ConfigError,
     'keeps its own model.latent_dim'),
]


@pytest.mark.parametrize('damage,kwargs,error,expected', LOAD)
def test_load(case, damage, kwargs, error, expected, tree_digest):
  root, paths = case(damage)
  before = tree_digest(root)
  with pytest.raises(error) as e:
    inference.load(paths['w'], **kwargs)
  assert expected in str(e.value) and '\n' not in str(e.value)
  assert tree_digest(root) == before


IMAGES = np.zeros((2, 26, 26, 3), np.float32)
METHODS = [  # (method, arguments, what the ConfigError says)
    ('encode', (np.full_like(IMAGES, np.nan),), 'images contain NaN or inf'),
    ('encode', (IMAGES + 2,), 'expected [0, 1]'),
    ('encode', (IMAGES[:, :25],), 'images of shape (2, 25, 26, 3) given'),
    ('encode', (IMAGES[:0],), 'no images given'),
    ('encode', ([IMAGES[0], IMAGES[0, :5]],), 'NumPy cannot make one array of'),
    ('encode', ('images',), 'images of shape () given'),
    ('decode', (np.zeros((2, 5)),), 'codes of shape (2, 5) given'),
    ('decode', (np.full((2, 6), np.inf),), 'codes contain NaN or inf'),
    ('decode', (np.zeros((2, 6), complex),), 'codes of dtype complex128'),
    ('decode', (np.zeros((0, 6)),), 'with N >= 1'),
    ('reconstruct', (IMAGES[..., :1],), 'images of shape (2, 26, 26, 1) given'),
    ('reconstruct', ((IMAGES + 300).astype(np.int16),), 'expected 0..255'),
    ('sample_prior', (0,), 'sample_prior(): num=0; expected a whole number >= 1'),
    ('sample_prior', (2.5,), 'num=2.5'),
    ('sample_prior', (2, 'x'), "seed='x'"),
    ('sample_prior', (2, 0, float('nan')), 'temperature=nan'),
    ('sample_prior', (2, 0, -1.0), 'temperature=-1.0'),
]


@pytest.fixture(scope='module')
def model(wafer_runs):
  return inference.load(wafer_runs['vae'])


@pytest.mark.parametrize('method,args,expected', METHODS)
def test_trained_methods(model, wafer_runs, method, args, expected, tree_digest):
  before = tree_digest(wafer_runs['vae'])
  with pytest.raises(ConfigError) as e:
    getattr(model, method)(*args)
  assert expected in str(e.value) and '\n' not in str(e.value)
  assert tree_digest(wafer_runs['vae']) == before
