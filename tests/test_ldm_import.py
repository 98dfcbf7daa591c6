"""A diffusers AutoencoderKL's weights through the import command into a workdir that every
other command uses: load() (its outputs equal diffusers'), --mode=evaluate, a latent tool,
and fine-tuning, which resumes from the imported step-0 checkpoint."""
import json
import os

import numpy as np
import pytest

from ae_jax import interop
from ae_jax.evaluate import evaluate_workdir
from ae_jax.inference import load
from ae_jax.latent.__main__ import main as latent_main
from ae_jax.train import train_and_evaluate

pytestmark = pytest.mark.slow

PRESET = 'kl_f4_small'
FLAGS = ['--config.model.preset=kl_f4_small', '--config.data.name=photos',
         '--config.data.num_examples=40', '--config.data.image_size=16',
         '--config.train.batch_size=8', '--config.train.num_epochs=1', '--config.progress=False',
         '--config.figures.enabled=False', "--config.eval.metrics=('loss','recon','psnr')",
         '--config.loss.reconstruction=l1', '--config.loss.beta=1e-6']


@pytest.fixture(scope='module')
def imported(tmp_path_factory, autoencoder_kl):
  ref, path = autoencoder_kl(PRESET)
  root = tmp_path_factory.mktemp('ldm_import')
  workdir = str(root / 'w')
  interop.main(['--torch-checkpoint', path, '--config', 'base', '--workdir', workdir, *FLAGS])
  return ref, path, workdir, root


def test_the_imported_model_computes_what_diffusers_does(imported, computes_what_diffusers_does):
  ref, _, workdir, _ = imported
  m = load(workdir)
  assert m.epoch == 0 and m.latent_shape == (4, 4, 3)
  computes_what_diffusers_does(m, ref)


def test_every_command_uses_the_imported_workdir(imported, tmp_path):
  _, _, workdir, _ = imported
  result = evaluate_workdir(workdir, ['psnr'])
  assert result['epoch'] == 0 and np.isfinite(result['members'][0]['eval']['psnr'])
  latent_main(['interpolate', '--workdir', workdir, '--ids', '0,1', '--steps', '3',
               '--out', str(tmp_path / 'i')])
  assert os.path.getsize(tmp_path / 'i' / 'interpolate.png') > 0
  # fine-tuning resumes from the imported checkpoint (step 0) and trains an epoch
  from ae_jax import config_lib
  tuned = str(tmp_path / 'tuned')
  import shutil
  shutil.copytree(workdir, tuned)
  config = config_lib.load('base', FLAGS)
  summary = train_and_evaluate(config, tuned)
  rows = [json.loads(line) for line in open(os.path.join(tuned, 'metrics.jsonl'))]
  assert [r['epoch'] for r in rows if r['split'] == 'train'] == [1]
  assert np.isfinite(summary['members'][0]['eval']['loss'])
  assert load(tuned).epoch == 1


def test_a_state_dict_of_another_model_is_one_line_naming_the_tensor(imported, capsys):
  from safetensors.numpy import save_file
  _, _, _, root = imported
  other = str(root / 'other.safetensors')
  save_file({'encoder.conv_in.weight': np.zeros((16, 3, 3, 3), np.float32),
             'classifier.fc.weight': np.zeros((10, 16), np.float32)}, other)
  with pytest.raises(SystemExit) as e:
    interop.main(['--torch-checkpoint', other, '--config', 'base',
                  '--workdir', str(root / 'x'), *FLAGS])
  err = capsys.readouterr().err.strip()
  assert e.value.code == 2 and len(err.splitlines()) == 1
  assert err.startswith('error: classifier.fc.weight: no parameter of this model takes it'), err
  assert not os.path.exists(root / 'x' / 'checkpoints')


def test_the_ldm_presets_build_from_a_config(tiny):
  from ae_jax.training import prepare
  setup = prepare(tiny(model__preset=PRESET, model__latent_dim=0, data__name='photos',
                     data__num_examples=40, data__image_size=16, train__batch_size=8))
  assert setup.model.model_range == 'pm1' and setup.spec.latent_shape == (4, 4, 3)
