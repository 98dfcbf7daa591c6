"""What a new user trips over: workdirs holding other runs, shipped configs, one-line errors,
silent preprocessing, short runs of the default config, offline tfds."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ae_jax import inference
from ae_jax.errors import ConfigError, DataError, WorkdirError
from ae_jax.train import train_and_evaluate


@pytest.fixture
def cli(root, hang_s, checkout_env):
  """cli(*args, cwd=the checkout, module='ae_jax.main') -> the finished command's
  CompletedProcess (the checkout's ae_jax, from any cwd)."""
  def run(*args, cwd=root, module='ae_jax.main'):
    return subprocess.run([sys.executable, '-m', module, *args], cwd=cwd,
                          env=checkout_env(JAX_PLATFORMS='cpu'), capture_output=True,
                          text=True, timeout=hang_s)
  return run


@pytest.fixture
def main_fails(root, capsys, monkeypatch):
  """main_fails(*args, cwd=the checkout) -> the one-line stderr of `ae_jax.main` called
  in-process with `args`, which must exit with code 2 (a refusal costs no process start)."""
  from ae_jax.main import main
  def run(*args, cwd=root):
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
      main(list(args))
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err
  return run


def _tree(path):
  """{relative file: bytes} of a folder, to show nothing in it changed."""
  out = {}
  for root, _, files in os.walk(path):
    for f in files:
      p = os.path.join(root, f)
      out[os.path.relpath(p, path)] = open(p, 'rb').read()
  return out


@pytest.mark.slow
def test_a_workdir_holding_another_experiment_is_refused_and_fresh_moves_it_aside(tmp_path, tiny):
  workdir = str(tmp_path / 'w')
  train_and_evaluate(tiny(train__num_epochs=1), workdir)
  before = _tree(workdir)
  # Other data of the same shape: once silently "resumed"; now refused before any work.
  with pytest.raises(WorkdirError) as e:
    train_and_evaluate(tiny(train__num_epochs=1, data__name='faces', data__image_size=8),
                       workdir)
  msg = str(e.value)
  assert "data.name: 'digits' -> 'faces'" in msg and '--fresh' in msg and '--workdir' in msg
  # Another model (other shapes): the same one line, not an Orbax traceback.
  with pytest.raises(WorkdirError, match=r'model.hidden: \[32\] -> \[16\]'):
    train_and_evaluate(tiny(train__num_epochs=1, model__hidden=(16,)), workdir)
  assert _tree(workdir) == before  # config.json (and everything else) untouched
  # Training longer and changing evaluation or figures stay allowed.
  train_and_evaluate(tiny(train__num_epochs=2, train__eval_every=2), workdir)
  assert json.load(open(os.path.join(workdir, 'config.json')))['train']['num_epochs'] == 2
  # --fresh moves the old run aside (nothing deleted) and starts again.
  train_and_evaluate(tiny(train__num_epochs=1, data__name='faces', data__image_size=8),
                     workdir, fresh=True)
  moved = [n for n in os.listdir(tmp_path) if n.startswith('w.old-')]
  assert len(moved) == 1
  assert json.load(open(tmp_path / moved[0] / 'config.json'))['data']['name'] == 'digits'
  assert json.load(open(os.path.join(workdir, 'config.json')))['data']['name'] == 'faces'
  assert inference.load(workdir).epoch == 1


@pytest.mark.slow
def test_cli_refusal_and_fresh_flag(tmp_path, cli, main_fails):
  workdir = str(tmp_path / 'w')
  common = ['--workdir', workdir, '--config.data.image_size=8', '--config.train.num_epochs=1',
            "--config.model.hidden=(16,)", "--config.eval.metrics=('loss','psnr')"]
  assert cli('--config', 'configs/vae_mlp.py', *common).returncode == 0
  err = main_fails('--config', 'configs/vae_mlp.py', *common, '--config.data.name=faces')
  assert err.startswith(f'error: {workdir} holds a model trained with another config')
  r = cli('--config', 'configs/vae_mlp.py', *common, '--config.data.name=faces', '--fresh')
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'moved the previous run to' in r.stdout


@pytest.mark.parametrize('make,message', [
    (lambda p: (p / 'f').write_text('x') and str(p / 'f' / 'run'), 'is a file, not a folder'),
    (lambda p: (os.makedirs(p / 'ro'), os.chmod(p / 'ro', 0o500), str(p / 'ro' / 'run'))[-1],
     'cannot be written'),
])
def test_an_unwritable_workdir_fails_before_data_loads(tmp_path, make, message, monkeypatch, tiny):
  if message == 'cannot be written' and os.geteuid() == 0:
    # root writes anywhere: simulate the failing write the check makes
    import builtins
    real_open = builtins.open
    monkeypatch.setattr(builtins, 'open', lambda f, *a, **k: (_ for _ in ()).throw(
        PermissionError(13, 'Permission denied')) if str(f).endswith('.write-test')
        else real_open(f, *a, **k))
  from ae_jax import data
  loaded = []
  monkeypatch.setattr(data, 'load', lambda cfg: loaded.append(1))
  with pytest.raises(WorkdirError, match=message):
    train_and_evaluate(tiny(), make(tmp_path))
  assert not loaded


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path, root, cli, main_fails):
  err = main_fails('--config', 'configs/vae_bta.py')
  assert ('error: --config configs/vae_bta.py: no such file (did you mean vae_beta?); shipped '
          'configs (by name): ae_conv, ') in err and ' vae_beta,' in err
  # Started elsewhere, a checkout path is not there; the shipped config runs by its name.
  err = main_fails('--config', 'configs/vae_mlp.py', cwd=str(tmp_path))
  assert ('error: --config configs/vae_mlp.py: no such file; the shipped config of that name '
          'runs from any folder as --config vae_mlp') in err, err
  tiny = ['--config.data.image_size=8', '--config.train.num_epochs=1',
          "--config.model.hidden=(16,)", "--config.eval.metrics=('psnr',)"]
  r = cli('--config', 'vae_mlp', '--workdir', str(tmp_path / 'named'), *tiny, cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr[-2000:]
  # A config file that imports the base from the package works from any working directory.
  r = cli('--config', os.path.join(root, 'configs', 'vae_mlp.py'), '--workdir',
          str(tmp_path / 'w'), *tiny, cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr[-2000:]
  err = main_fails('--workdir', str(tmp_path / 'w'), '--config.train.num_epochs=1')
  assert 'error: --config is required for training' in err
  err = main_fails('--workdir', str(tmp_path / 'w2'))
  assert 'error: --config is required for training' in err


def test_resizing_the_users_data_is_announced(tmp_path, capsys, caplog, tiny):
  x = (np.random.default_rng(0).random((40, 32, 32, 3)) * 255).astype(np.uint8)
  np.save(tmp_path / 'faces32.npy', x)
  from ae_jax import data
  cfg = tiny(data__name='npy', data__path=str(tmp_path / 'faces32.npy'),
             data__image_size=26).data
  with caplog.at_level('WARNING', logger='ae_jax'):
    ds = data.load(cfg)
  assert 'data.image_size=26 resizes the 32x32 images of' in caplog.text
  assert 'set --config.data.image_size=0 to keep their size' in caplog.text
  line = ds.info.describe()
  assert 'faces32.npy: 32 train / 8 test images, 26x26x3' in line
  assert 'resized 32x32 -> 26x26 (data.image_size)' in line


@pytest.mark.slow
def test_the_default_config_runs_short(tmp_path, cli):
  """vae_beta's own extra evaluation epoch (5) is dropped with a note when a user shortens
  the run; an explicit value beyond the run stays an error."""
  common = ['--config', 'configs/vae_beta.py', '--config.data.num_examples=100',
            '--config.train.num_epochs=2', '--config.sweep.beta=(0.,4.)',
            "--config.eval.metrics=('loss','psnr')"]
  r = cli(*common, '--workdir', str(tmp_path / 'a'))
  assert r.returncode == 0, r.stderr[-2000:]
  assert "note: dropped the config's sweep.eval_epochs [5] beyond train.num_epochs=2" in r.stdout
  members = json.load(open(tmp_path / 'a' / 'summary.json'))['members']
  assert [m['name'] for m in members] == ['beta=0', 'beta=4']
  for member in members:
    assert np.isfinite(member['eval']['loss']) and 0 < member['eval']['psnr'] < 100, member
  r = cli(*common, '--workdir', str(tmp_path / 'b'), '--config.sweep.eval_epochs=(5,)')
  assert r.returncode == 2
  assert 'config.sweep.eval_epochs=(5,): 5 is not an epoch in 1..train.num_epochs=2' in r.stderr


@pytest.mark.slow
def test_evaluation_epochs_outlive_max_to_keep(tmp_path, tiny):
  workdir = str(tmp_path / 'w')
  train_and_evaluate(tiny(train__num_epochs=4, checkpoint__max_to_keep=1,
                          sweep__eval_epochs=(2,), checkpoint__keep_epochs=(1,)), workdir)
  for epoch in (1, 2, 4):
    assert inference.load(workdir, epoch=epoch).epoch == epoch
  with pytest.raises(WorkdirError, match=r'no checkpoint at epoch 3; saved epochs: \[1, 2, 4\]'):
    inference.load(workdir, epoch=3)


@pytest.mark.slow
def test_neg_elbo_is_reported_only_where_it_is_one(tmp_path, tiny):
  ae = train_and_evaluate(tiny(model__kind='ae', train__num_epochs=1), str(tmp_path / 'a'))
  assert 'kl' not in ae['members'][0]['eval'] and 'neg_elbo' not in ae['members'][0]['eval']
  # 'mean' reduction: the loss averages pixels, the -ELBO still sums the likelihood's terms.
  s = train_and_evaluate(tiny(loss__reduction='mean', loss__reconstruction='mse',
                              train__num_epochs=1), str(tmp_path / 'm'))['members'][0]
  ev = s['eval']
  pixels = 8 * 8
  assert ev['recon'] < 1.0  # a per-pixel mean
  expected = ev['recon'] * pixels + 0.5 * pixels * np.log(np.pi) + ev['kl']
  assert ev['neg_elbo'] == pytest.approx(expected, rel=0.05)  # one-sample estimates each


def test_tfds_not_prepared_is_one_line_and_never_downloads(tmp_path, tiny):
  from ae_jax import data
  with pytest.raises(DataError) as e:
    data.load(tiny(data__name='mnist', data__path=str(tmp_path)).data)
  msg = str(e.value)
  assert f"tfds dataset 'mnist' is not prepared in {tmp_path}" in msg
  assert 'pip install tensorflow && tfds build mnist --file_format=array_record' in msg
  assert not any('downloads' in n for n in os.listdir(tmp_path))


def test_photos_at_the_bn_mish_size_and_a_size_too_large_names_the_key(tiny):
  from ae_jax import data
  ds = data.load(tiny(data__name='photos', data__image_size=64, data__num_examples=30).data)
  assert ds.train['image'].shape[1:] == (64, 64, 3)
  with pytest.raises(ConfigError, match=r'data.image_size=300 is too large .* the largest that '
                                        r'fits is \d+'):
    data.load(tiny(data__name='photos', data__image_size=300).data)


def _message_strings(path):
  """The string constants of a module that are not docstrings (messages, labels)."""
  import ast
  tree = ast.parse(open(path).read())
  docstrings = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
      body = node.body
      if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        docstrings.add(id(body[0].value))
  return [n.value for n in ast.walk(tree)
          if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_error_messages_name_only_keys_that_exist(root):
  """Every `data.x`, `model.x`, ... that a message in the package names is a config key."""
  import re
  from ae_jax.schema import base_config
  cfg = base_config()
  sections = '|'.join(k for k in cfg.keys() if hasattr(cfg[k], 'keys'))
  word = r'[a-z_][a-z_0-9]*'
  pattern = re.compile(rf'(?<![\w.])(?:config\.)?((?:{sections})(?:\.{word})+)(?![\w(])')
  files = ('json', 'jsonl', 'py', 'md', 'csv', 'html', 'png', 'npy', 'npz')
  missing, checked = set(), 0
  for folder, _, names in os.walk(os.path.join(root, 'ae_jax')):
    for f in names:
      if not f.endswith('.py'):
        continue
      for text in _message_strings(os.path.join(folder, f)):
        for key in pattern.findall(text):
          if key.rsplit('.', 1)[-1] in files:
            continue
          checked += 1
          node = cfg
          for part in key.split('.'):
            if not hasattr(node, 'keys') or part not in node:
              missing.add(f'{f}: {key}')
              break
            node = node[part]
  assert checked > 50  # the scan sees the messages
  assert not missing, sorted(missing)
