"""A loaded model's images are in [0, 1] whatever its output range: the latent-diffusion
presets make (output + 1) / 2, which leaves [0, 1], and decode / reconstruct clip it."""
import jax
import numpy as np
import pytest

from ae_jax import config_lib
from ae_jax.inference import Trained
from ae_jax.models import init_variables
from ae_jax.record import ModelRecord
from ae_jax.spec import RunSpec

SHAPE = (16, 16, 3)


@pytest.mark.slow
def test_a_latent_diffusion_model_decodes_into_0_1(tiny):
  config = config_lib.resolve(tiny(model__preset='kl_f4_small', data__name='photos',
                                   data__image_size=16, model__latent_dim=0))
  spec = RunSpec.build(config, ModelRecord.of_shape(SHAPE, 40, 8, 'photos'), None)
  assert spec.model.model_range == 'pm1'  # recon = (output + 1) / 2: not bounded
  variables = init_variables(spec.model, SHAPE, jax.random.key(0))
  # push the last conv's output up by 3 and down by 3 on alternate channels: (out + 1) / 2
  # then lies far outside [0, 1] on both sides
  bias = variables['params']['decoder']['conv_out']['bias']
  variables['params']['decoder']['conv_out']['bias'] = bias + np.array([3.0, -3.0, 3.0])
  stacked = jax.tree_util.tree_map(lambda a: np.asarray(a)[None], variables)
  m = Trained(spec, stacked, 0, 0)
  z = np.random.default_rng(0).normal(size=(2, *m.latent_shape)).astype(np.float32)
  raw, _ = m.decode_fn(m.variables, z)
  assert np.max(raw) > 1.5 and np.min(raw) < -0.5  # the model's own range is wider
  images = m.decode(z)
  assert images.min() >= 0.0 and images.max() <= 1.0
  np.testing.assert_allclose(images, np.clip(raw, 0.0, 1.0), atol=1e-6)
  x = np.random.default_rng(1).random((2, *SHAPE)).astype(np.float32)
  recon = m.reconstruct(x)
  assert recon.min() >= 0.0 and recon.max() <= 1.0 and recon.max() == 1.0
