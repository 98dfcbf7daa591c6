"""A run's specification (`RunSpec`): the config, the model record, the model, its members
and their hyperparameters, the step spec and the metrics. Built by one constructor,
`RunSpec.build(config, record, members)`, which training (with a record of its data) and
loading (with the workdir's model.json) both call. Nothing here reads data, compiles, or
reads pretrained weights: training compiles from it (compile.py), loading restores
parameters into its abstract variables.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections
import numpy as np

from ae_jax import config_lib, critic, data, objectives, optim, steps, sweep
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.losses import LossSpec
from ae_jax.metrics import registry
from ae_jax.models import AutoEncoder, abstract_variables, build_model, latent_shape, ldm
from ae_jax.record import ModelRecord, complete_members, read_members
from ae_jax.workdir import Workdir


@dataclasses.dataclass(frozen=True, eq=False)
class RunSpec:
  config: ml_collections.FrozenConfigDict
  record: ModelRecord          # complete: latent shape, kind and members filled in
  model: AutoEncoder
  members: tuple[dict, ...]
  hparams: dict[str, np.ndarray]  # {vmapped axis: [K]} (and latent_mask [K, ..., L])
  seeds: np.ndarray            # [K] int32
  step: steps.StepSpec
  metrics: tuple[Any, ...]     # the registry's metrics this run evaluates

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self.record.image_shape

  @property
  def latent_shape(self) -> tuple[int, ...]:
    return self.record.latent_shape

  @property
  def steps_per_epoch(self) -> int:
    return self.record.steps_per_epoch

  @property
  def num_members(self) -> int:
    return len(self.members)

  def epoch_of(self, step: int):
    return self.record.epoch_of(step)

  @classmethod
  def build(cls, config, record: ModelRecord, members=None) -> 'RunSpec':
    """The spec of `config`'s model (its vmapped sweep, or `members`: a program's share of a
    sweep) on the images `record` describes."""
    config = config_lib.resolve(config)  # a no-op for the resolved configs callers pass
    members = tuple(members if members is not None else sweep.expand(config))
    model = build_model(config.model, record.image_shape)
    batch = config.train.batch_size
    if record.num_train and batch > record.num_train:
      raise ConfigError(f'config.train.batch_size={batch} is larger than the '
                        f'{record.num_train} training examples of data.name='
                        f'{config.data.name!r}')
    spe = record.steps_per_epoch
    shape = latent_shape(model, record.image_shape)
    factors = (ldm.latent_normalization(config.model.preset)
               if config.model.preset in ldm.LDM_PRESETS else None)
    record = record.replace(latent_shape=tuple(shape), kind=model.kind, members=tuple(members),
                            latent_normalization=(None if factors is None else
                                                  {**factors, 'preset': config.model.preset}))
    step = steps.StepSpec(
        model=model, loss=LossSpec.from_config(config.loss),
        objective=objectives.get(config.loss.objective).spec(config, members),
        optim=optim.spec_from_config(config, spe), batch_size=batch, steps_per_epoch=spe,
        eval_batch_size=config.train.eval_batch_size, dtype=config.dtype,
        skip_nonfinite=bool(config.train.skip_nonfinite_members),
        num_train=record.num_train or spe * batch,
        critic=_critic(config, members, model, record.image_shape, spe))
    hparams = sweep.hparams(list(members))
    if sweep.swept_latent(config):
      hparams['latent_mask'] = sweep.latent_masks(list(members), shape)
    metrics = registry.resolve(tuple(config.eval.metrics), model.kind,
                               image_shape=record.image_shape,
                               objective=config.loss.objective,
                               photographs=data.photographic(config.data, record.image_shape),
                               latent_shape=tuple(shape))
    return cls(config=config, record=record, model=model, members=members, hparams=hparams,
               seeds=np.asarray([m['seed'] for m in members], np.int32), step=step,
               metrics=metrics)

  @classmethod
  def from_workdir(cls, wd: Workdir, config=None) -> 'RunSpec':
    """The spec of a trained workdir from its config.json, members.json and model.json
    alone (`config`: that config with other free settings, already checked by the
    caller)."""
    config = config_lib.resolve(config if config is not None else config_lib.read_config(wd))
    members = read_members(wd)
    if members is not None:
      members = complete_members(members, config)
    if members and 'program' in members[0]:
      raise WorkdirError(
          f'{wd.path!r} holds several programs; use one of '
          f'{sorted({m["program"] for m in members})} under {wd.path}/programs/, or export a '
          'member (python -m ae_jax.export)')
    record = ModelRecord.read(wd)
    # what fixes the optimizer's schedule: the record's steps per epoch
    record = record.replace(num_train=record.num_train or
                            record.steps_per_epoch * config.train.batch_size)
    return cls.build(config, record, members)

  # ---- shapes, without computing anything ----------------------------------------------

  def abstract_variables(self) -> dict:
    """{'params', 'batch_stats', 'model_state'} of every member, [K, ...] shapes and dtypes:
    what loading restores a checkpoint into."""
    one = abstract_variables(self.model, self.image_shape)
    stack = lambda t: jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct((self.num_members, *s.shape), s.dtype), t)
    return {'params': stack(one['params']), 'batch_stats': stack(one.get('batch_stats', {})),
            'model_state': stack({c: one[c] for c in steps.STATE_COLLECTIONS if c in one})}

  def initial_state(self) -> steps.TrainState:
    """The members' initial [K, ...] train state, computed (weight import's template)."""
    init = jax.vmap(lambda seed: steps.init_state(self.step, seed, self.image_shape))
    return jax.jit(init)(self.seeds)

  def abstract_state(self) -> steps.TrainState:
    """The [K, ...] train state's shapes and dtypes (optimizer and critic included)."""
    init = jax.vmap(lambda seed: steps.init_state(self.step, seed, self.image_shape))
    return jax.eval_shape(init, self.seeds)


def _critic(config, members, model, image_shape, steps_per_epoch: int):
  """The discriminator trained beside the model (critic.py), checked against the run."""
  params = abstract_variables(model, image_shape)['params']
  impl = getattr(model.decoder, 'conv_impl', 'xla')
  spec = critic.from_config(config, [m['gan_weight'] for m in members], params, image_shape,
                            conv_impl=impl)
  total = config.train.num_epochs * steps_per_epoch
  if spec is not None and spec.kind == 'patch' and spec.start >= total:
    raise ConfigError(f'config.loss.gan_start_step={spec.start} is at or after the run\'s '
                      f'last step ({total} = train.num_epochs {config.train.num_epochs} x '
                      f'{steps_per_epoch} steps per epoch): the discriminator would '
                      'never train; lower it or train longer')
  return spec
