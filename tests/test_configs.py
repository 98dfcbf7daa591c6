"""Every shipped config trains for one short epoch, as a user would run it (overrides only
shrink time: one epoch, fewer generated examples), so a broken config cannot ship."""
import glob
import os

import numpy as np
import pytest

from ae_jax import config_lib
from ae_jax.train import train_and_evaluate

# the checkout, here at import time: the shipped configs parametrize the tests below
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if not p.endswith('__init__.py'))
GENERATED = ('wafer', 'dsprites', 'photos')  # datasets whose size is data.num_examples


def test_every_config_is_listed():
  assert 'configs/vae_beta.py' in CONFIGS and len(CONFIGS) >= 9


# the default config (vae_beta) trains through the CLI in
# test_new_user::test_the_default_config_runs_short, with the same checks
@pytest.mark.slow
@pytest.mark.parametrize('path', [c for c in CONFIGS if c != 'configs/vae_beta.py'])
def test_shipped_config_trains_one_short_epoch(path, tmp_path, idx_folder):
  config = config_lib.load(path, [])
  # the end-of-run pass metrics (LPIPS, PCA baseline) have tests of their own
  overrides = ['--config.train.num_epochs=1', '--config.progress=False',
               '--config.figures.enabled=False',
               "--config.eval.metrics=('loss','recon','kl','psnr','ssim')"]
  if config.data.name in GENERATED:
    overrides.append('--config.data.num_examples=48')
  if config.data.name == 'idx':  # tiny IDX files stand in for the dataset's (a Debian package)
    idx_folder(tmp_path / 'idx', num_train=200, num_test=40, size=config.data.image_size or 28)
    overrides.append(f'--config.data.path={tmp_path / "idx"}')
  if config.data.image_size == 64:  # the 64x64 presets also build at 32x32, in half the time
    overrides.append('--config.data.image_size=32')
  if config.model.preset in ('conv_ae_bn_mish', 'conv_vae_bn_mish'):  # 256x256 in the file:
    overrides.append('--config.data.image_size=32')  # any multiple of 32 builds
  if config.model.preset == 'conv_vae_bn_mish':  # a 1024->1024 transposed conv first: 128
    overrides.append('--config.model.latent_dim=128')  # latent channels build in 2/3 the time
  if config.model.preset in ('mlp_ae_50', 'mlp_vae_50'):  # 7500-4096-...: 70M parameters at
    overrides.append('--config.data.image_size=16')  # 50x50, 4M at 16x16
  if config.model.arch == 'resnet':  # the photo configs build at 16x16 too (3 halvings)
    overrides.append('--config.data.image_size=16')
  config = config_lib.load(path, overrides)
  if config.data.name in GENERATED and config.train.batch_size > 16:  # 38 training examples
    with config.unlocked():
      config.train.batch_size = 16
  config, _ = config_lib.fit_eval_epochs(config, explicit=False)
  summary = train_and_evaluate(config, str(tmp_path / 'run'))
  for member in summary['members']:
    assert np.isfinite(member['eval']['loss']), member
    assert 0 < member['eval']['psnr'] < 100


# Each report's models, with the report's settings (tests/test_configs trains each above).
REPORT_MODELS = {
    'mlp_ae_50': {'data.image_size': 50, 'train.batch_size': 20, 'train.learning_rate': 1e-3,
                  'train.num_epochs': 100, 'loss.reconstruction': 'mse',
                  'loss.reduction': 'mean'},
    'mlp_vae_50': {'data.image_size': 50, 'train.batch_size': 20, 'train.learning_rate': 5e-4,
                   'train.num_epochs': 500, 'loss.reduction': 'sum', 'loss.beta': 1.0},
    'fcn_ae_64': {'data.image_size': 64, 'data.channels': 3},
    'conv_ae_bn_mish': {'data.image_size': 256, 'optim.b1': 0.5, 'optim.b2': 0.999,
                        'optim.plateau_factor': 0.5, 'optim.plateau_patience': 10,
                        'train.learning_rate': 1e-4, 'loss.reduction': 'mean'},
    'conv_vae_bn_mish': {'data.image_size': 256, 'optim.b1': 0.5, 'optim.b2': 0.999,
                         'optim.plateau_factor': 0.5, 'optim.plateau_patience': 10,
                         'train.learning_rate': 1e-4, 'loss.reduction': 'mean',
                         'loss.beta': 2.5e-5 / (8 * 8 * 1024)},
    'conv_ae_small': {'data.name': 'wafer', 'data.image_size': 26, 'train.batch_size': 61,
                      'train.learning_rate': 1e-3, 'optim.weight_decay': 1e-5,
                      'train.num_epochs': 100, 'loss.reconstruction': 'mse',
                      'loss.reduction': 'mean'},
}


@pytest.mark.parametrize('name', sorted(REPORT_MODELS))
def test_every_report_model_has_a_config_named_after_its_preset(name):
  import ast
  from ae_jax.models import PRESETS, build_model
  config = config_lib.resolve(config_lib.load(name, []))
  assert config.model.preset == name and config.model.kind == PRESETS[name][0]
  assert config.model.latent_dim == PRESETS[name][1]  # the published code size
  for key, value in REPORT_MODELS[name].items():
    assert config_lib.get(config, key) == pytest.approx(value), key
  if 'bn_mish' in name:  # Kaiming-normal conv weights are part of the preset
    model = build_model(config.model, (32, 32, 3))
    assert model.encoder.init == 'kaiming_normal'
  doc = ast.get_docstring(ast.parse(open(os.path.join(ROOT, 'configs', f'{name}.py')).read()))
  assert f'python -m ae_jax.main --config configs/{name}.py --workdir runs/{name}' in doc
  assert 'Published' in doc or 'publishes no numbers' in doc
