"""The model kinds (models/kinds.py) and the config keys of FSQ: what each kind declares, the
quantiser each one builds, and the one-line errors for an FSQ code width, codebook name or
latent-size sweep that cannot be. Nothing here compiles."""
import pytest

from ae_jax import config_lib, objectives, schema
from ae_jax.errors import ConfigError
from ae_jax.models import build_model, fsq, kinds
from ae_jax.models.quantizer import VectorQuantizer


def test_each_kind_declares_its_code():
  assert kinds.NAMES == ('ae', 'vae', 'vqvae', 'fsq')
  assert schema.by_name()['model.kind'].allowed() == kinds.NAMES
  vae, vq, f = kinds.get('vae'), kinds.get('vqvae'), kinds.get('fsq')
  assert vae.posterior and vae.encoder == 'vae' and not vae.quantized
  assert vq.quantized and vq.learned_codebook and vq.encoder == 'ae'
  assert f.quantized and f.codebook == 'implicit' and not f.learned_codebook
  assert kinds.QUANTIZED == ('vqvae', 'fsq') and kinds.LEARNED_CODEBOOK == ('vqvae',)
  assert set(kinds.NAMES) == set(objectives.get('elbo').kinds)
  with pytest.raises(ConfigError, match=r"model.kind='gan' is not a kind of model"):
    kinds.get('gan')


@pytest.mark.parametrize('overrides,levels', [
    ({}, (8, 5, 5, 5)),                                      # the default levels
    ({'model__fsq__levels': (5, 3)}, (5, 3)),
    ({'model__fsq__codebook': '2^14'}, (8, 8, 8, 6, 5)),     # a recommended size by name
    ({'model__fsq__codebook': '2^8', 'model__fsq__levels': (8, 6, 5)}, (8, 6, 5)),
])
def test_fsq_builds_its_quantiser_and_fixes_the_code_width(overrides, levels, tiny):
  cfg = config_lib.resolve(tiny(model__kind='fsq', model__latent_dim=0, **overrides))
  assert cfg.model.latent_dim == len(levels)  # 0: the width the levels fix
  model = build_model(cfg.model, (8, 8, 1))
  assert isinstance(model.quantizer, fsq.FiniteScalarQuantizer)
  assert model.quantizer.levels == levels and model.kind == 'fsq'
  # an explicit latent size equal to the width is the same model
  same = config_lib.resolve(tiny(model__kind='fsq', model__latent_dim=len(levels), **overrides))
  assert same.model.latent_dim == len(levels)


def test_a_vq_vae_still_builds_its_codebook(tiny):
  model = build_model(config_lib.resolve(tiny(model__kind='vqvae', model__vq__codes=16)).model,
                      (8, 8, 1))
  assert isinstance(model.quantizer, VectorQuantizer) and model.quantizer.num_codes == 16
  assert build_model(config_lib.resolve(tiny()).model, (8, 8, 1)).quantizer is None


@pytest.mark.parametrize('overrides,message', [
    ({'model__latent_dim': 8}, "model.latent_dim=8: model.kind='fsq' fixes the code width at 4 "
                               r'\(model.fsq.levels=\(8, 5, 5, 5\)\); leave model.latent_dim=0 or '
                               'set it to 4'),
    ({'model__fsq__levels': (8, 1)}, r'config.model.fsq.levels=\(8, 1\).*must be >= 2'),
    ({'model__fsq__codebook': '2^14', 'model__fsq__levels': (7, 5, 5, 5, 5)},
     r"config.model.fsq.codebook='2\^14' names the levels \(8, 8, 8, 6, 5\), but "
     r'config.model.fsq.levels=\(7, 5, 5, 5, 5\): set one of them'),
    ({'model__fsq__codebook': '2^9'}, r"config.model.fsq.codebook='2\^9' is not valid"),
    ({'model__fsq__levels': (2 ** 16, 2 ** 16)}, 'do not fit int32 indices'),
    ({'sweep__latent_dim': (2, 4)}, "config.sweep.latent_dim: model.kind='fsq' fixes its latent "
                                    r'size \(4 channels'),
])
def test_what_fsq_cannot_be_is_one_config_error_line(overrides, message, tiny):
  with pytest.raises(ConfigError, match=message) as e:
    config_lib.resolve(tiny(**{'model__kind': 'fsq', 'model__latent_dim': 0, **overrides}))
  assert '\n' not in str(e.value)
