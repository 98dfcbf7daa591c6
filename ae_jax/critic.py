"""A discriminator trained beside the autoencoder, inside the same compiled step: the
PatchGAN of the latent-diffusion recipe (loss.gan_weight > 0) or FactorVAE's total-
correlation discriminator (loss.objective='factorvae'). Pure functions; no I/O.

Its parameters, BatchNorm statistics and Adam state are one more entry of the train state
(TrainState.critic), so they are member-stacked with the model's, checkpointed with them and
restored bit for bit. Its optimizer is Adam with optim.disc_learning_rate and betas
(optim.disc_b1, optim.disc_b2): (0.5, 0.9) as taming and FactorVAE use.

PatchGAN (taming's VQLPIPSWithDiscriminator / latent diffusion's LPIPSWithDiscriminator):
- the generator's term g = loss.gan_generator(D(x')) per image (hinge: -mean D(x'), which
  taming uses for either discriminator loss; or the non-saturating softplus(-D(x'))),
  weighted by gan_weight * lambda, lambda = ||grad_w L|| / (||grad_w g|| + 1e-4) clipped to
  [0, 1e4] at the decoder's last layer w (loss.gan_adaptive; else 1): steps.py computes both
  gradients from one forward pass;
- the discriminator's loss (hinge or vanilla) on the batch's images and the (stopped)
  reconstructions, each through D on its own, as taming calls it (BatchNorm sees real and
  fake batches apart);
- both count from loss.gan_start_step on: before it the generator's weight is 0 and the
  discriminator's gradient is 0, so Adam leaves it where it started.
"""
from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ae_jax import adversarial
from ae_jax.models import discriminators


class CriticSpec(NamedTuple):
  """Static settings of a program's discriminator (hashable: part of steps.StepSpec)."""
  kind: str               # 'patch' | 'tc'
  module: nn.Module       # discriminators.PatchDiscriminator | TCDiscriminator
  learning_rate: float
  b1: float
  b2: float
  d_loss: str = 'hinge'        # patch: adversarial.D_LOSSES
  g_loss: str = 'hinge'        # patch: adversarial.G_LOSSES
  start: int = 0               # patch: loss.gan_start_step
  adaptive: bool = True        # patch: loss.gan_adaptive
  last_layer: str = ''         # patch: the decoder's last layer (module name)


def from_config(config, gan_weights=(), model_params_like=None, image_shape=None,
                conv_impl: str = 'xla') -> CriticSpec | None:
  """The program's critic, or None: a PatchGAN when a member's loss.gan_weight is > 0
  (`gan_weights`: the members' values), the TC discriminator for
  loss.objective='factorvae'."""
  optim_args = (float(config.optim.disc_learning_rate), float(config.optim.disc_b1),
                float(config.optim.disc_b2))
  if config.loss.objective == 'factorvae':
    return CriticSpec('tc', discriminators.TCDiscriminator(tuple(config.loss.critic_hidden)),
                      *optim_args)
  if not any(float(w) > 0 for w in gan_weights):
    return None
  d = config.model.disc
  if image_shape is not None:
    discriminators.check_image_size(image_shape[0], image_shape[1], int(d.layers),
                                    key='model.disc.layers')
  module = discriminators.PatchDiscriminator(int(d.channels), int(d.layers), d.norm, conv_impl)
  return CriticSpec('patch', module, *optim_args, config.loss.gan_loss,
                    config.loss.gan_generator, int(config.loss.gan_start_step),
                    bool(config.loss.gan_adaptive),
                    last_layer(model_params_like) if model_params_like is not None else '')


def last_layer(params) -> str:
  """The name of the decoder's last layer (the one the adaptive weight measures)."""
  decoder = params['decoder']
  for name in ('conv_out', 'out_conv', 'out'):
    if name in decoder:
      return name
  tconvs = sorted((int(k.rsplit('_', 1)[1]), k) for k in decoder if k.startswith('tconv_'))
  return tconvs[-1][1]


def optimizer(spec: CriticSpec) -> optax.GradientTransformation:
  return optax.adam(spec.learning_rate, b1=spec.b1, b2=spec.b2)


def _input(spec: CriticSpec, x):
  """What D sees: images mapped to [-1, 1] (patch), or flattened codes (tc)."""
  if spec.kind == 'patch':
    return discriminators.to_disc_input(x)
  return x.reshape(x.shape[0], -1)


def init(spec: CriticSpec, key, image_shape, latent_shape) -> dict:
  """{'params', 'batch_stats', 'opt_state'} of a fresh discriminator."""
  shape = image_shape if spec.kind == 'patch' else latent_shape
  variables = spec.module.init(key, _input(spec, jnp.zeros((1, *shape), jnp.float32)))
  params = variables['params']
  return {'params': params, 'batch_stats': variables.get('batch_stats', {}),
          'opt_state': optimizer(spec).init(params)}


def _apply(spec, state, x, train: bool):
  """D(x) with `state`'s parameters: (logits, its new batch statistics)."""
  variables = {'params': state['params'],
               **({'batch_stats': state['batch_stats']} if state['batch_stats'] else {})}
  if spec.kind == 'tc':
    return spec.module.apply(variables, _input(spec, x)), state['batch_stats']
  if state['batch_stats'] and train:
    logits, new = spec.module.apply(variables, _input(spec, x), train=True,
                                    mutable=['batch_stats'])
    return logits, new['batch_stats']
  return spec.module.apply(variables, _input(spec, x), train=train), state['batch_stats']


def critic_fn(spec: CriticSpec, state):
  """x -> D(x) with fixed (stopped) parameters, for the model's side of the loss: the
  gradient reaches the model's output, never D. In training mode for a PatchGAN (its
  BatchNorm normalises the batch it sees, as taming's generator pass does; the statistics
  it would update are dropped)."""
  frozen = jax.lax.stop_gradient(state)
  return lambda x: _apply(spec, frozen, x, train=True)[0]


def generator_term(spec: CriticSpec, state, recon):
  """The PatchGAN generator's term per image [B] on reconstructions in [0, 1]."""
  return adversarial.G_LOSSES[spec.g_loss](critic_fn(spec, state)(recon))


def active(spec: CriticSpec, step):
  """1.0 from loss.gan_start_step on (a PatchGAN), else 0.0; always 1.0 for the TC critic."""
  if spec.kind == 'tc':
    return jnp.ones((), jnp.float32)
  return (step >= spec.start).astype(jnp.float32)


def update(spec: CriticSpec, state, real, fake, key, step):
  """One Adam step of the discriminator on `real` and (stopped) `fake` inputs: images
  (patch) or codes whose dimensions it permutes (tc). -> (new state, metrics)."""
  fake = jax.lax.stop_gradient(fake)
  on = active(spec, step)

  def loss_fn(params):
    st = {**state, 'params': params}
    if spec.kind == 'tc':
      logits_q, _ = _apply(spec, st, jax.lax.stop_gradient(real), True)
      logits_p, _ = _apply(spec, st, adversarial.permute_dims(fake, key), True)
      d = adversarial.tc_discriminator_loss(logits_q, logits_p)
      acc = 0.5 * (jnp.mean(logits_q[:, 0] > logits_q[:, 1])
                   + jnp.mean(logits_p[:, 1] > logits_p[:, 0]))
      return jnp.mean(d), (state['batch_stats'], {'critic_loss': jnp.mean(d),
                                                  'critic_acc': acc})
    logits_real, stats = _apply(spec, st, real, True)
    logits_fake, stats = _apply(spec, {**st, 'batch_stats': stats}, fake, True)
    d = adversarial.D_LOSSES[spec.d_loss](logits_real, logits_fake)
    return on * jnp.mean(d), (stats, {'gan_d': jnp.mean(d),
                                      'logits_real': jnp.mean(logits_real),
                                      'logits_fake': jnp.mean(logits_fake)})

  (_, (stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state['params'])
  updates, opt_state = optimizer(spec).update(grads, state['opt_state'], state['params'])
  params = optax.apply_updates(state['params'], updates)
  # before the start D's statistics stay as they were too, so nothing of it moves
  stats = jax.tree_util.tree_map(lambda new, old: jnp.where(on > 0, new, old), stats,
                                 state['batch_stats'])
  return {'params': params, 'batch_stats': stats, 'opt_state': opt_state}, metrics

