"""Every key ae_jax reads, at its default (declared in ae_jax/schema.py; the table with each
key's allowed values, workdir role and meaning is docs/configs.md). Experiment configs
start from it and override:

  from ae_jax.configs import base

  def get_config():
    config = base.get_config()
    config.train.num_epochs = 50
    return config

  python -m ae_jax.main --config configs/base.py --workdir runs/base
"""
from ae_jax import schema


def get_config():
  return schema.base_config()
