"""Fine-tuning from another workdir's weights (train.init_from): the new run's model starts
as the source's, bit for bit, with its own loss, optimizer and critic; what the source
lacks starts fresh and is named; the source is only read; a resumed fine-tune resumes; a
sweep's members start from their own source members."""
import json
import os

import chex
import jax
import numpy as np
import pytest

from ae_jax import checkpoint, config_lib, init_from, interop
from ae_jax.errors import ConfigError
from ae_jax.inference import load, open_workdir
from ae_jax.main import main as ae_main
from ae_jax.train import train_and_evaluate

pytestmark = pytest.mark.slow

PRESET = 'kl_f4_small'
DATA = ['--config.data.name=photos', '--config.data.num_examples=20',
        '--config.data.image_size=32', '--config.train.batch_size=8',
        '--config.progress=False', '--config.figures.enabled=False',
        "--config.eval.metrics=('loss','recon','psnr')", '--config.log.tensorboard=False']
# the latent-diffusion recipe (docs/models.md) with the cheaper AlexNet LPIPS trunk
RECIPE = ['--config.loss.reconstruction=l1', '--config.loss.reduction=mean',
          '--config.loss.lpips_weight=1.0', '--config.loss.lpips_net=alex',
          '--config.loss.beta=1e-6', '--config.loss.gan_weight=0.5',
          '--config.loss.gan_start_step=1', '--config.model.learned_logvar=True']


@pytest.fixture(scope='module')
def imported(tmp_path_factory, autoencoder_kl):
  """A kl_f4_small-sized diffusers AutoencoderKL (random weights) imported at 32x32."""
  _, path = autoencoder_kl(PRESET)
  root = tmp_path_factory.mktemp('init_from')
  workdir = str(root / 'imported')
  interop.main(['--torch-checkpoint', path, '--config', 'base', '--workdir', workdir,
                f'--config.model.preset={PRESET}', *DATA, '--config.loss.beta=1e-6'])
  return workdir, root


def _config(*extra):
  return config_lib.load('base', [f'--config.model.preset={PRESET}', *DATA, *RECIPE, *extra])


def test_a_fine_tune_starts_as_the_source_and_leaves_it_alone(imported, monkeypatch,
                                                             tree_digest, capsys):
  source, root = imported
  before = tree_digest(source)
  started = []
  real = init_from.start
  monkeypatch.setattr(init_from, 'start', lambda *a: started.append(real(*a)) or started[-1])
  workdir = str(root / 'fine_tune')
  train_and_evaluate(_config('--config.train.num_epochs=1',
                             f'--config.train.init_from={source}'), workdir)
  state, record, note = started[0]
  theirs = load(source)
  for part in ('encoder', 'decoder'):  # the model starts as the source's, bit for bit
    chex.assert_trees_all_equal(jax.tree_util.tree_map(lambda x: np.asarray(x[0]),
                                                       state.params[part]),
                                jax.tree_util.tree_map(np.asarray, theirs.params[part]))
  assert float(np.asarray(state.params['output_logvar'])[0]) == 0.0  # fresh: its init
  assert 'initialised fresh: params/output_logvar' in note
  assert 'the discriminator starts fresh' in note
  assert note in capsys.readouterr().out
  assert tree_digest(source) == before  # only read
  saved = json.load(open(os.path.join(workdir, 'model.json')))['init_from']
  assert saved['workdir'] == os.path.abspath(source) and saved['members'] == ['run']
  assert saved['digest'] == record['digest'] == init_from.digest(
      open_workdir(source).variables['params'])
  # the fine-tune trained: its weights moved away from the source's
  moved = jax.tree_util.tree_map(lambda a, b: not np.array_equal(np.asarray(a), np.asarray(b)),
                                 load(workdir).params['decoder'], theirs.params['decoder'])
  assert any(jax.tree_util.tree_leaves(moved))
  # resumed, it continues from its own checkpoint: no second start from the source
  train_and_evaluate(_config('--config.train.num_epochs=2',
                             f'--config.train.init_from={source}'), workdir)
  assert len(started) == 1
  spe = json.load(open(os.path.join(workdir, 'model.json')))['steps_per_epoch']
  assert checkpoint.saved_steps(os.path.join(workdir, 'checkpoints'))[-1] == 2 * spe
  assert json.load(open(os.path.join(workdir, 'model.json')))['init_from'] == saved


def test_a_shape_mismatch_and_a_bad_source_are_one_line(tmp_path, tiny, capsys):
  source = str(tmp_path / 'source')
  train_and_evaluate(tiny(train__num_epochs=1), source)
  for value, message in (
      (source, "['kernel'] has shape (4, 32) in"),
      (f'{source}:beta=9', "member 'beta=9' is not in"),
      (f'{source}@x', '@x is not an epoch'),
      (str(tmp_path / 'nowhere'), 'is not a folder')):
    with pytest.raises(SystemExit) as e:
      ae_main(['--config', 'base', '--workdir', str(tmp_path / 'ft'),
               '--config.data.name=digits', '--config.model.hidden=(32,)',
               '--config.model.latent_dim=6', '--config.train.num_epochs=1',
               f'--config.train.init_from={value}', '--config.progress=False'])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and message in err[0], err
  with pytest.raises(ConfigError, match='@x is not an epoch'):
    init_from.parse(f'{source}@x')


def test_a_sweeps_members_start_from_their_own_source_members(tmp_path, tiny):
  source = str(tmp_path / 'source')
  train_and_evaluate(tiny(sweep__beta=(0.5, 1.0), train__num_epochs=1), source)
  sweep = str(tmp_path / 'sweep')
  train_and_evaluate(tiny(sweep__beta=(0.5, 1.0), train__num_epochs=1, loss__kl_warmup_epochs=1.0,
                          train__init_from=source), sweep)
  for k, name in enumerate(('beta=0.5', 'beta=1')):
    alone = str(tmp_path / f'alone{k}')
    train_and_evaluate(tiny(loss__beta=(0.5, 1.0)[k], train__num_epochs=1,
                            loss__kl_warmup_epochs=1.0, train__init_from=f'{source}:{name}'),
                       alone)
    chex.assert_trees_all_close(load(sweep, member=name).params, load(alone).params,
                                rtol=1e-4, atol=1e-5)
