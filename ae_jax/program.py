"""A program's model, members, hyperparameters and compiled functions, built from the config
and the data's *shape* alone: training adds the data, loading a trained model does not
need it (`from_workdir` reads what training recorded in model.json).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ae_jax import compat, config_lib, mesh as mesh_lib, steps, sweep
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.metrics import registry
from ae_jax.models import build_model, latent_shape
from ae_jax.optim import spec_from_config
from ae_jax.workdir import Workdir


class ModelSetup:
  """Everything derived from a config and the image shape that training, evaluation and
  inference share. `members` defaults to the config's own vmapped sweep; a sweep with
  outer axes or chunks passes each program's members explicitly."""

  def __init__(self, config, image_shape, num_train: int, members=None, plan=None):
    config = config_lib.resolve(config)  # a no-op for the resolved configs callers pass
    self.members = members if members is not None else sweep.expand(config)
    self.config = config
    self.image_shape = tuple(int(s) for s in image_shape)
    self.num_train = int(num_train)
    self.model = build_model(config.model, self.image_shape)
    batch = config.train.batch_size
    if batch > self.num_train:
      raise ConfigError(f'config.train.batch_size={batch} is larger than the {self.num_train} '
                        f'training examples of data.name={config.data.name!r}')
    self.steps_per_epoch = self.num_train // batch
    loss = config.loss
    self.spec = steps.StepSpec(
        model=self.model,
        loss=steps.LossSpec(loss.reconstruction, loss.reduction, float(loss.nll_sigma),
                            float(loss.ssim_weight), float(loss.ms_ssim_weight),
                            float(loss.fft_weight), float(loss.lpips_weight),
                            loss.objective,
                            max(int(m.get('iwae_samples', 1)) for m in self.members),
                            loss.tc_estimator, loss.rae_decoder, config.model.vq.learning,
                            loss.lpips_net),
        optim=spec_from_config(config, self.steps_per_epoch),
        batch_size=batch, steps_per_epoch=self.steps_per_epoch,
        eval_batch_size=config.train.eval_batch_size, dtype=config.dtype,
        skip_nonfinite=bool(config.train.skip_nonfinite_members), num_train=self.num_train,
        critic=self._critic(config))
    hp = sweep.hparams(self.members)
    self.latent_shape = latent_shape(self.model, self.image_shape)
    if sweep.swept_latent(config):
      hp['latent_mask'] = sweep.latent_masks(self.members, self.latent_shape)
    self.hparams = {k: jnp.asarray(v) for k, v in hp.items()}
    self.seeds = jnp.asarray([m['seed'] for m in self.members], jnp.int32)
    self.plan = plan or mesh_lib.plan(config, len(self.members))
    self.metrics = registry.resolve(tuple(config.eval.metrics), self.model.kind,
                                    image_shape=self.image_shape,
                                    objective=config.loss.objective)

  def _critic(self, config):
    """The discriminator trained beside the model (critic.py), checked against the run."""
    from ae_jax import critic
    params = jax.eval_shape(lambda: self.model.init(
        {'params': jax.random.PRNGKey(0), 'reparam': jax.random.PRNGKey(0)},
        jnp.zeros((1, *self.image_shape))))['params']
    impl = getattr(self.model.decoder, 'conv_impl', 'xla')
    spec = critic.from_config(config, params, self.image_shape, conv_impl=impl)
    total = config.train.num_epochs * self.steps_per_epoch
    if spec is not None and spec.kind == 'patch' and spec.start >= total:
      raise ConfigError(f'config.loss.gan_start_step={spec.start} is at or after the run\'s '
                        f'last step ({total} = train.num_epochs {config.train.num_epochs} x '
                        f'{self.steps_per_epoch} steps per epoch): the discriminator would '
                        'never train; lower it or train longer')
    return spec

  @functools.cached_property
  def fns(self) -> steps.Functions:
    return steps.make_functions(self.spec, self.image_shape, len(self.members),
                                self.config.train.loop, self.config.sweep.vectorize, self.plan,
                                self.config.model.conv.ynnpack)

  def init_state(self):
    """Initial state in the compiled functions' form (fns.stack gives the [K, ...] form)."""
    return self.fns.init(self.seeds)

  def abstract_state(self):
    """The [K, ...] state's shapes and dtypes, without computing it."""
    return jax.eval_shape(lambda: self.fns.stack(self.fns.init(self.seeds)))

  def epoch_of(self, step: int) -> float:
    e = step / self.steps_per_epoch
    return int(e) if e.is_integer() else round(e, 3)

  def model_info(self, info) -> dict:
    """model.json: what loading this program's models needs, without its data."""
    return {
        'format': compat.MODEL_FORMAT,
        'dataset': info.name,
        'image_shape': list(self.image_shape),
        'value_range': [0.0, 1.0],
        'class_names': list(info.class_names),
        **info.label_record(),  # class_values (the labels' own values) and label_dtype
        'color_key': [list(c) for c in getattr(info, 'color_key', ())],
        'storage': dict(getattr(info, 'storage', {}) or {}),
        'num_train': self.num_train,
        'steps_per_epoch': self.steps_per_epoch,
        'latent_shape': list(self.latent_shape),
        'kind': self.model.kind,
        'members': self.members,
        'checkpoint_unit': 'step',
    }

  @classmethod
  def from_workdir(cls, wd: Workdir, config=None, plan=None) -> 'ModelSetup':
    """The setup of a trained workdir from its config.json and model.json alone (`config`:
    that config with other free settings, already checked by the caller)."""
    config = config_lib.resolve(config if config is not None else wd.read_config())
    members = wd.read_members()
    if members is not None:
      members = compat.complete_members(members, config)
    if members and 'program' in members[0]:
      raise WorkdirError(
          f'{wd.path!r} holds several programs; use one of '
          f'{sorted({m["program"] for m in members})} under {wd.path}/programs/, or export a '
          'member (python -m ae_jax.export)')
    info = compat.model_record(wd)
    image_shape, spe = info['image_shape'], info['steps_per_epoch']
    num_train = spe * config.train.batch_size  # what fixes the optimizer's state shapes
    setup = cls(config, image_shape, num_train, members, plan or mesh_lib.single())
    setup.info = info
    return setup
