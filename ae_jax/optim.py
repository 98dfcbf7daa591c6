"""optax optimizer from the config.

The learning rate is not baked into the transformation: `make_optimizer` builds a
unit-rate direction (clip -> adam -> weight decay -> plateau scaling) and the step
multiplies by `learning_rate * schedule(step)`. The learning rate is then an ordinary
array, so a sweep can vmap it like beta.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import contrib

from ae_jax.errors import ConfigError


class OptimSpec(NamedTuple):
  name: str
  b1: float
  b2: float
  eps: float
  weight_decay: float
  schedule: str
  warmup_steps: int
  total_steps: int
  plateau_factor: float
  plateau_patience: int
  steps_per_epoch: int
  grad_clip_norm: float
  freeze: tuple = ()  # parameter paths ('linear', 'encoder/linear') that never change


def spec_from_config(config, steps_per_epoch: int) -> OptimSpec:
  o = config.optim
  return OptimSpec(o.name, float(o.b1), float(o.b2), float(o.eps), float(o.weight_decay),
                   o.schedule, int(round(o.warmup_epochs * steps_per_epoch)),
                   int(config.train.num_epochs * steps_per_epoch), float(o.plateau_factor),
                   int(o.plateau_patience), int(steps_per_epoch), float(o.grad_clip_norm),
                   tuple(str(p).strip('/') for p in (o.freeze or ())))


def make_optimizer(spec: OptimSpec) -> optax.GradientTransformationExtraArgs:
  """Unit-learning-rate direction; `update(..., value=loss)` feeds reduce-on-plateau."""
  parts = []
  if spec.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(spec.grad_clip_norm))
  if spec.name == 'adam' and spec.weight_decay > 0:
    parts.append(optax.add_decayed_weights(spec.weight_decay))  # L2 in the gradient, as torch Adam
  parts.append(optax.scale_by_adam(b1=spec.b1, b2=spec.b2, eps=spec.eps))
  if spec.name == 'adamw' and spec.weight_decay > 0:
    parts.append(optax.add_decayed_weights(spec.weight_decay))  # decoupled
  if spec.plateau_factor > 0:
    # Accumulating over one epoch of steps makes the plateau test run on the epoch's
    # mean training loss, as torch's ReduceLROnPlateau(mode='min') does when stepped
    # once per epoch (threshold 1e-4, relative). torch reduces once more than `patience`
    # epochs failed to improve; optax once `patience` have, hence the +1.
    parts.append(contrib.reduce_on_plateau(
        factor=spec.plateau_factor, patience=spec.plateau_patience + 1, rtol=1e-4, atol=0.0,
        accumulation_size=spec.steps_per_epoch))
  if spec.freeze:  # zero their gradients (clipping, moments) and their updates (decay)
    zero = _freeze(spec.freeze)
    parts = [zero, *parts, zero]
  return optax.chain(*parts)


def _slashed(key_path) -> str:
  return f"/{jax.tree_util.keystr(key_path, simple=True, separator='/')}/"


def _frozen_mask(params, freeze: tuple):
  """A tree of bools: whether each parameter lies under one of the `freeze` paths (a
  module name such as 'linear' anywhere in the path, or a path 'encoder/linear')."""
  return jax.tree_util.tree_map_with_path(
      lambda kp, _: any(f'/{name}/' in _slashed(kp) for name in freeze), params)


def _check_freeze(params, freeze: tuple) -> None:
  paths = [_slashed(kp) for kp, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
  for name in freeze:
    if not any(f'/{name}/' in p for p in paths):
      modules = sorted({p.strip('/').rsplit('/', 1)[0] for p in paths})
      raise ConfigError(f'optim.freeze: {name!r} names no parameter of this model; its '
                        f'modules are: {", ".join(modules)}')


def _freeze(freeze: tuple) -> optax.GradientTransformation:
  """Stateless: updates of the parameters under `freeze` set to zero."""
  def init(params):
    _check_freeze(params, freeze)  # a path that matches nothing: one clear error
    return optax.EmptyState()

  def update(updates, state, params=None):
    return jax.tree_util.tree_map(lambda u, m: jnp.zeros_like(u) if m else u,
                                  updates, _frozen_mask(updates, freeze)), state

  return optax.GradientTransformation(init, update)


def schedule_multiplier(spec: OptimSpec, step):
  """Multiplier on the base learning rate at `step` (traced)."""
  step = jnp.asarray(step, jnp.float32)
  if spec.schedule == 'constant':
    return jnp.ones_like(step)
  total = max(spec.total_steps, 1)
  warm = spec.warmup_steps if spec.schedule == 'warmup_cosine' else 0
  decay_steps = max(total - warm, 1)
  progress = jnp.clip((step - warm) / decay_steps, 0.0, 1.0)
  cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
  if warm:
    return jnp.where(step < warm, (step + 1) / warm, cosine)
  return cosine


def plateau_scale(opt_state):
  """The current reduce-on-plateau factor (1.0 when the option is off)."""
  for s in opt_state if isinstance(opt_state, tuple) else (opt_state,):
    if isinstance(s, contrib.ReduceLROnPlateauState):
      return s.scale
  return jnp.ones(())
