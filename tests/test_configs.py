"""Every shipped config trains for one short epoch, as a user would run it (overrides only
shrink time: one epoch, fewer generated examples), so a broken config cannot ship."""
import glob
import os

import numpy as np
import pytest

from ae_jax import config_lib
from ae_jax.train import train_and_evaluate
from conftest import ROOT

CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if not p.endswith('__init__.py'))
GENERATED = ('wafer', 'dsprites', 'photos')  # datasets whose size is data.num_examples


def test_every_config_is_listed():
  assert 'configs/vae_beta.py' in CONFIGS and len(CONFIGS) >= 9


# the default config (vae_beta) trains through the CLI in
# test_new_user::test_the_default_config_runs_short, with the same checks
@pytest.mark.parametrize('path', [c for c in CONFIGS if c != 'configs/vae_beta.py'])
def test_shipped_config_trains_one_short_epoch(path, tmp_path):
  config = config_lib.load(path, [])
  # the end-of-run pass metrics (LPIPS, PCA baseline) have tests of their own
  overrides = ['--config.train.num_epochs=1', '--config.progress=False',
               '--config.figures.enabled=False',
               "--config.eval.metrics=('loss','recon','kl','psnr','ssim')"]
  if config.data.name in GENERATED:
    overrides.append('--config.data.num_examples=48')
  if config.data.image_size == 64:  # the 64x64 presets also build at 32x32, in half the time
    overrides.append('--config.data.image_size=32')
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
