"""Pure, jit-able steps of a trained prior (priors/registry.py's trained kinds) over one
member's codes; prior_train.py maps them over a sweep's members and compiles them. No I/O.

A member's state carries its PRNG key: the noise of step t is fold_in(key, t) and the data
order of epoch e is permutation(fold_in(data_key, e)), so a resumed run replays exactly, as
the autoencoder's training does (steps.py).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from ae_jax.priors.registry import PriorKind
from ae_jax.priors.flow import ema_decay_at, ema_update


class PriorStepSpec(NamedTuple):
  """Static settings of a prior's compiled steps (hashable)."""
  kind: PriorKind
  settings: Any          # the kind's frozen settings dataclass
  batch_size: int
  steps_per_epoch: int
  learning_rate: float
  grad_clip_norm: float
  ema_decay: float       # 0: no EMA of the weights


@flax.struct.dataclass
class PriorState:
  step: jax.Array        # [] int32
  params: Any
  opt_state: Any
  noise_key: jax.Array   # [2] uint32
  data_key: jax.Array    # [2] uint32
  ema: Any               # the weights' EMA (sampling uses it), or the weights' shapes' {}


def optimizer(spec: PriorStepSpec) -> optax.GradientTransformation:
  adam = optax.adam(spec.learning_rate)
  if spec.grad_clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(spec.grad_clip_norm), adam)
  return adam


def init_state(spec: PriorStepSpec, seed, codes_shape) -> PriorState:
  """One member's initial state from its integer seed; codes_shape [N, ...]."""
  init_key, noise_key, data_key = jax.random.split(jax.random.PRNGKey(seed), 3)
  params = spec.kind.init(init_key, codes_shape, spec.settings)
  return PriorState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer(spec).init(params), noise_key=noise_key,
                    data_key=data_key, ema=params if spec.ema_decay > 0 else {})


def train_step(spec: PriorStepSpec, state: PriorState, batch):
  """One Adam step on a batch of (normalized) codes -> (state, {loss, terms...})."""
  key = jax.random.fold_in(state.noise_key, state.step)

  def loss_fn(params):
    loss, terms = spec.kind.loss(params, batch, key, spec.settings)
    return loss.mean(), {k: v.mean() for k, v in terms.items()}

  (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = optimizer(spec).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = (ema_update(state.ema, params, ema_decay_at(spec.ema_decay, state.step))
         if spec.ema_decay > 0 else state.ema)
  new = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema=ema)
  return new, {'loss': loss, **terms}


def epoch(spec: PriorStepSpec, state: PriorState, codes, epoch_index):
  """One epoch over a member's codes [N, ...] as one lax.scan -> (state, metrics [steps])."""
  n = codes.shape[0]
  perm = jax.random.permutation(jax.random.fold_in(state.data_key, epoch_index), n)
  idx = perm[:spec.steps_per_epoch * spec.batch_size].reshape(spec.steps_per_epoch,
                                                              spec.batch_size)

  def body(st, i):
    return train_step(spec, st, codes[i])

  return jax.lax.scan(body, state, idx)


def sampling_params(spec: PriorStepSpec, state: PriorState):
  """The weights samples come from: their EMA where kept."""
  return state.ema if spec.ema_decay > 0 else state.params


def held_out(spec: PriorStepSpec, params, codes, key, batch: int = 1024):
  """The prior's own held-out number averaged over codes [N, ...] (in batches)."""
  n = codes.shape[0]
  total = jnp.zeros((), jnp.float32)
  for start in range(0, n, batch):
    part = codes[start:start + batch]
    total = total + spec.kind.held_out(params, part, jax.random.fold_in(key, start),
                                       spec.settings).sum()
  return total / n
