"""Loading a trained model needs neither its data nor its training machinery; weight
import reads no dataset; a training run reads each dataset once."""
import logging
import os
import sys

import numpy as np
import pytest

from ae_jax import compile as compile_lib, data, inference, steps, train
from ae_jax.metrics import lpips

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def lpips_run(tmp_path_factory):
  """A tiny conv VAE trained with an LPIPS term (the AlexNet trunk, the cheaper one) on 32x32
  images from an .npy file."""
  root = tmp_path_factory.mktemp('lpips_run')
  images = np.random.default_rng(0).random((80, 32, 32, 3)).astype(np.float32)
  path = str(root / 'images.npy')
  np.save(path, images)
  from ae_jax.configs import base
  config = base.get_config()
  settings = {
      'data.name': 'npy', 'data.path': path, 'model.arch': 'conv',
      'model.conv.channels': (4,), 'model.latent_dim': 3, 'train.batch_size': 32,
      'train.num_epochs': 1, 'loss.lpips_weight': 0.1, 'loss.lpips_net': 'alex',
      'figures.enabled': False, 'progress': False, 'log.tensorboard': False,
      'eval.metrics': ('loss', 'recon', 'psnr')}
  from ae_jax import config_lib
  for key, value in settings.items():
    config_lib.set_value(config, key, value)
  workdir = str(root / 'w')
  train.train_and_evaluate(config, workdir)
  return workdir, path, images


def test_load_needs_no_data_no_training_step_and_no_lpips_weights(lpips_run, monkeypatch):
  workdir, path, images = lpips_run
  os.remove(path)  # the training data is gone
  traced, read = [], []
  step = steps.train_step
  monkeypatch.setattr(steps, 'train_step', lambda *a, **k: traced.append(1) or step(*a, **k))
  weights = lpips.load
  monkeypatch.setattr(lpips, 'load', lambda *a, **k: read.append(a) or weights(*a, **k))

  def refuse(*a, **k):
    raise AssertionError('loading made the training functions')

  monkeypatch.setattr(compile_lib, 'make_functions', refuse)
  monkeypatch.setattr(data, 'load', lambda *a, **k: refuse())
  before = (sys.unraisablehook, sys.stdout, list(logging.getLogger().handlers))

  m = inference.load(workdir)
  recon = m.reconstruct(images[:4])
  sample = m.sample_prior(2)

  assert recon.shape == (4, 32, 32, 3) and sample.shape == (2, 32, 32, 3)
  assert np.isfinite(recon).all()
  assert traced == [] and read == []
  # a notebook's process is left as it was
  assert (sys.unraisablehook, sys.stdout, list(logging.getLogger().handlers)) == before


def test_a_training_run_reads_each_dataset_once(tmp_path, monkeypatch, tiny):
  calls = []
  load = data.load
  monkeypatch.setattr(data, 'load', lambda cfg: calls.append(cfg.name) or load(cfg))
  # two programs (an outer batch-size axis) over one dataset, members split by the memory
  # estimate: one read
  config = tiny(sweep__beta=(0.0, 1.0), sweep__batch_size=(16, 32), train__num_epochs=1)
  train.train_and_evaluate(config, str(tmp_path / 'w'))
  assert calls == ['digits']


def test_weight_import_reads_no_dataset(tmp_path, monkeypatch, tiny):
  torch = pytest.importorskip('torch')
  from ae_jax import interop, torch_models
  torch.manual_seed(0)
  net = torch_models.build('conv_ae_small', (26, 26, 3), 64)
  ckpt = str(tmp_path / 'model.pt')
  torch.save(net.state_dict(), ckpt)

  def refuse(*a, **k):
    raise AssertionError('weight import read a dataset')

  monkeypatch.setattr(data, 'load', refuse)
  workdir = str(tmp_path / 'imported')
  missing = str(tmp_path / 'nowhere' / 'images.npy')
  interop.main(['--torch-checkpoint', ckpt, '--config', 'conv_ae_small', '--workdir', workdir,
                '--config.data.name=npy', f'--config.data.path={missing}',
                '--config.data.image_size=26', '--config.data.channels=3'])
  m = inference.load(workdir)
  assert m.image_shape == (26, 26, 3) and m.epoch == 0
  x = np.random.default_rng(0).random((2, 26, 26, 3)).astype(np.float32)
  with torch.no_grad():
    want = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(m.reconstruct(x), want, atol=1e-5)


def test_weight_import_without_the_image_shape_is_one_line(tmp_path, tiny):
  from ae_jax import config_lib, interop
  from ae_jax.errors import ConfigError
  config = config_lib.load('conv_ae_small', ['--config.data.name=npy',
                                             f'--config.data.path={tmp_path}/x.npy'])
  with pytest.raises(ConfigError, match='set data.image_size and data.channels'):
    interop.import_to_workdir({}, config, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w')
