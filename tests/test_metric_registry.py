"""The 'default' metric set fits the data: LPIPS (a distance calibrated on photographs) only
for photographs, said in one line when left out; VQ-VAE code health on the console line; the
PCA baseline's size is the code's storage."""
import types

import pytest

from ae_jax import data
from ae_jax.configs import base
from ae_jax.metrics import passes, registry

LPIPS_DEFAULTS = {'lpips_vgg', 'pca_lpips_vgg'}


def _data(name, channels=0, image_size=0):
  cfg = base.get_config().data
  with cfg.unlocked():
    cfg.name, cfg.channels, cfg.image_size = name, channels, image_size
  return cfg


@pytest.mark.parametrize('name,shape,expected', [
    ('photos', None, True), ('faces', None, True), ('cifar10', None, True),
    ('dsprites', None, False), ('digits', None, False), ('wafer', None, False),
    ('mnist', None, False), ('idx', (28, 28, 1), False),
    ('npy', (32, 32, 3), True), ('npy', (32, 32, 1), False), ('folder', (64, 64, 1), False),
    ('npy', None, True),  # channels unknown before the file is read
])
def test_which_data_are_photographs(name, shape, expected):
  assert data.photographic(_data(name), shape) is expected


@pytest.mark.skipif(not registry.get('lpips_vgg').available(), reason='needs the lpips extra')
def test_default_has_lpips_only_for_photographs():
  shape = (64, 64, 3)
  photos = set(registry.names(registry.resolve(('default',), 'vae', image_shape=shape)))
  other = set(registry.names(registry.resolve(('default',), 'vae', image_shape=shape,
                                              photographs=False)))
  assert LPIPS_DEFAULTS <= photos and not LPIPS_DEFAULTS & other
  assert photos - other == LPIPS_DEFAULTS  # nothing else changes
  # named, it runs on any data
  named = registry.resolve(('default', 'lpips_vgg'), 'vae', image_shape=shape,
                           photographs=False)
  assert 'lpips_vgg' in registry.names(named)


@pytest.mark.skipif(not registry.get('lpips_vgg').available(), reason='needs the lpips extra')
def test_a_run_on_other_data_says_in_one_line_what_default_left_out():
  note = registry.photographs_note(('default',), 'vae', (64, 64, 1), 'elbo', False, 'dsprites')
  assert note == ("LPIPS-VGG, PCA LPIPS-VGG left out of eval.metrics='default': "
                  "data.name='dsprites' images are not photographs, on which LPIPS is "
                  'calibrated (name them in eval.metrics to compute them anyway; '
                  'docs/metrics.md)')
  assert '\n' not in note
  assert registry.photographs_note(('default',), 'vae', (64, 64, 3), 'elbo', True,
                                   'photos') is None
  # metrics named without 'default', or LPIPS named: nothing left out, nothing said
  assert registry.photographs_note(('psnr',), 'vae', (64, 64, 1), 'elbo', False,
                                   'dsprites') is None
  assert registry.photographs_note(('default', 'lpips_vgg', 'pca_lpips_vgg'), 'vae',
                                   (64, 64, 1), 'elbo', False, 'dsprites') is None


def test_a_missing_lpips_extra_is_not_news_on_other_data(monkeypatch):
  monkeypatch.setitem(registry._EXTRA_MODULES, 'lpips', 'ae_jax_no_such_module')
  assert 'LPIPS' in registry.missing_extras_note(('default',), photographs=True)
  assert registry.missing_extras_note(('default',), photographs=False) is None


def test_a_vq_vaes_code_health_is_on_the_console_line():
  row = {'loss': 0.5, 'recon': 0.4, 'psnr': 21.0, 'ssim': 0.7, 'perplexity': 37.25,
         'code_usage': 0.0703, 'commitment': 0.01}
  line = registry.console_line(row)
  assert 'perplexity 37.2' in line and 'code_usage 0.070' in line
  assert line.index('psnr') < line.index('perplexity')  # after the reconstruction numbers


@pytest.mark.parametrize('kind,latent_shape,latent_dim,codes,expected', [
    ('vae', (32,), 32, None, 32),                # a continuous code: a component per unit
    ('ae', (8, 8, 4), 4, None, 256),             # spatial: positions x channels
    ('vae', (64,), 16, None, 16),                # a member of a latent sweep uses 16 units
    ('vqvae', (8, 8, 64), 64, 512, 18),          # 64 positions x 9 bits = 576 bits = 18 x 32
    ('vqvae', (10,), 10, 512, 1),                # one 9-bit index: at least one component
    ('vqvae', (16, 16, 4), 4, 256, 64),          # 256 positions x 8 bits / 32
])
def test_the_pca_baseline_gets_the_codes_storage_in_float32s(kind, latent_shape, latent_dim,
                                                            codes, expected):
  member = types.SimpleNamespace(kind=kind, latent_shape=latent_shape, latent_dim=latent_dim,
                                 num_codes=codes)
  assert passes.baseline_components(member) == expected
