"""Fast compiles for tests, and tiny configs built by overriding the base config."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # `configs` is imported as a package from the repository root

import jax  # noqa: E402
import pytest  # noqa: E402

# Tests compile many tiny programs; skipping most XLA optimisations makes that quicker.
jax.config.update('jax_disable_most_optimizations', True)


def tiny_config(**overrides):
  """The base config shrunk to seconds: digits at 8x8, a small MLP VAE, 2 epochs."""
  from configs import base
  config = base.get_config()
  config.data.name = 'digits'
  config.model.hidden = (32,)
  config.model.latent_dim = 4
  config.train.batch_size = 32
  config.train.num_epochs = 2
  config.train.eval_every = 1
  config.checkpoint.every_epochs = 1
  config.figures.enabled = False
  config.progress = False
  from ae_jax import config_lib
  for key, value in overrides.items():
    config_lib.set_value(config, key.replace('__', '.'), value)
  return config


@pytest.fixture
def tiny():
  return tiny_config
