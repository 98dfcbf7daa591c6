"""Pure, jit-able training and evaluation functions; no I/O, nothing compiled here.

Everything here works on one *member* (one model with its own hyperparameters);
`compile.make_functions` maps it over a leading member axis (members.py), so a single run
is a sweep of one and a sweep of K models is one compiled program.

Training runs in *chunks*: one compiled `lax.scan` over S consecutive steps (a single
compiled step when S = 1). Every data path uses the same chunk: device-resident images
gathered by index inside the scan, or streamed batches fed in.

Keys are derived by purpose and step: a member's seed gives `init`, `noise` and `data`
keys; the noise for step t is `fold_in(noise_key, t)` and the data order of epoch e is
`permutation(fold_in(data_key, e))`. A run resumed at any step therefore replays exactly.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import adversarial, critic as critic_lib, losses, objectives, optim
from ae_jax.losses import LossSpec
from ae_jax.metrics import core as metric_core, registry
from ae_jax.models import AutoEncoder, kinds, latent_shape, mask_latent_updates
from ae_jax.objectives import ObjectiveSpec


class StepSpec(NamedTuple):
  """Static settings bound into the compiled functions (hashable)."""
  model: AutoEncoder
  loss: LossSpec
  objective: ObjectiveSpec  # loss.objective and its static settings
  optim: optim.OptimSpec
  batch_size: int
  steps_per_epoch: int
  eval_batch_size: int
  dtype: str = 'float32'  # compute dtype; parameters, optimizer state and losses stay float32
  skip_nonfinite: bool = False  # freeze a member whose loss or gradients turn non-finite
  num_train: int = 0      # training examples (beta-TCVAE's N)
  critic: Any = None      # critic.CriticSpec: a discriminator trained beside the model


class StepInputs(NamedTuple):
  """What a compiled step takes besides the state and the data, as one argument: the
  member's hyperparameters (sweep axes, stacked [K] across members) and the pretrained
  networks the loss needs (losses.pretrained_networks, shared by every member, passed as
  arrays so that they are never baked into the program as constants)."""
  hp: dict
  networks: dict

  @staticmethod
  def member_axes() -> 'StepInputs':
    """in_axes over the member axis: hp per member, networks shared."""
    return StepInputs(hp=0, networks=None)


@flax.struct.dataclass
class TrainState:
  step: jax.Array        # [] int32, optimizer steps taken
  params: Any
  batch_stats: Any       # {} for models without BatchNorm
  opt_state: Any
  noise_key: jax.Array   # [2] uint32
  data_key: jax.Array    # [2] uint32
  # the model's other mutable collections ({'vq_stats': ...} of a VQ-VAE's EMA codebook)
  model_state: Any = dataclasses.field(default_factory=dict)
  # a discriminator's {'params', 'batch_stats', 'opt_state'} (critic.py), else {}
  critic: Any = dataclasses.field(default_factory=dict)


STATE_COLLECTIONS = ('vq_stats',)  # mutable model collections kept in TrainState.model_state
# per-step flags beside the metrics (train.skip_nonfinite_members): the model's loss and
# gradients were finite, and (with a discriminator) the discriminator's new state was
FLAGS = ('finite', 'critic_finite')


def _variables(state_params, batch_stats, model_state=None):
  return {'params': state_params, **({'batch_stats': batch_stats} if batch_stats else {}),
          **(model_state or {})}


def _cast(tree, dtype):
  return jax.tree_util.tree_map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def apply_model(spec: StepSpec, params, batch_stats, x, model_state=None, **kwargs):
  """model.apply computed in spec.dtype, with outputs (and updated statistics) in float32.

  For bfloat16, the float32 parameters are cast inside the step, so gradients flow
  back to them in float32 (the usual mixed-precision recipe for GPU/TPU).
  """
  variables = _variables(params, batch_stats, model_state)
  if spec.dtype == 'float32':
    return spec.model.apply(variables, x, **kwargs)
  dt = jnp.dtype(spec.dtype)
  out = spec.model.apply(_cast(variables, dt), x.astype(dt), **kwargs)
  return _cast(out, jnp.float32)


def init_state(spec: StepSpec, seed, image_shape) -> TrainState:
  """One member's initial state from its integer seed."""
  init_key, noise_key, data_key = jax.random.split(jax.random.PRNGKey(seed), 3)
  x = jnp.zeros((1, *image_shape), jnp.float32)
  variables = spec.model.init({'params': init_key, 'reparam': init_key}, x, train=False)
  params = variables['params']
  tx = optim.make_optimizer(spec.optim)
  model_state = {c: variables[c] for c in STATE_COLLECTIONS if c in variables}
  critic_state = {}
  if spec.critic is not None:
    critic_state = critic_lib.init(spec.critic, jax.random.fold_in(init_key, 1), image_shape,
                                   latent_shape(spec.model, image_shape))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}),
                    opt_state=tx.init(params), noise_key=noise_key, data_key=data_key,
                    model_state=model_state, critic=critic_state)


def _all_finite(tree):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


def _keys(rng):
  """The step's keys by purpose: the reparameterisation noise keeps the step's own key (so
  runs from before these streams existed replay), the others fold in a purpose."""
  return {'reparam': rng, 'objective': jax.random.fold_in(rng, 1),
          'vq_restart': jax.random.fold_in(rng, 2), 'critic': jax.random.fold_in(rng, 3)}


def _forward(spec: StepSpec, state: TrainState, params, images, inputs: StepInputs, beta, keys,
             train: bool, sample: bool = True):
  """The model's forward pass and the objective's per-example terms:
  -> (terms {name: [B]}, ModelOutput, the model's new mutable collections)."""
  mutable = ['batch_stats', *state.model_state] if train else False
  latent_mask = inputs.hp.get('latent_mask')
  rngs = {'reparam': keys['reparam']}
  if kinds.get(spec.model.kind).learned_codebook and train:  # dead-code restarts
    rngs['vq_restart'] = keys['vq_restart']
  apply = functools.partial(apply_model, spec, params, state.batch_stats,
                            model_state=state.model_state)
  result = apply(images, train=train, sample=sample, latent_mask=latent_mask, rngs=rngs,
                 mutable=mutable)
  out, new_vars = result if mutable else (result, {})

  def decode(z):  # the decoder at these parameters (IWAE's samples, RAE's penalty)
    decoded = apply(z, train=train, latent_mask=latent_mask, method=spec.model.decode,
                    mutable=['batch_stats'] if train else False)
    return decoded[0] if train else decoded  # (statistics of these extra passes dropped)

  critic = (critic_lib.critic_fn(spec.critic, state.critic)
            if spec.critic is not None and spec.critic.kind == 'tc' else None)
  inp = objectives.LossInputs(
      x=images, out=out, hp=inputs.hp, beta=beta, loss=spec.loss,
      settings=spec.objective.as_dict(), num_train=spec.num_train, key=keys['objective'],
      decode=decode, latent_mask=latent_mask, networks=inputs.networks, critic=critic,
      params=params)
  t = objectives.get(spec.objective.name).terms(inp)
  if kinds.get(spec.model.kind).posterior:
    t['neg_elbo'] = jax.lax.stop_gradient(metric_core.neg_elbo_terms(out, images, spec.loss))
  return t, out, new_vars


def _gradients(spec: StepSpec, state: TrainState, images, inputs: StepInputs, beta, keys):
  """(mean loss, per-example terms, ModelOutput, new collections, gradients, extra metrics).

  With a PatchGAN, one forward pass and two backward passes: the objective's gradient and
  the generator term's, combined as g_objective + gan_weight * lambda * on * g_generator
  (critic.py). `on` is 0 before loss.gan_start_step, where the update is the objective's
  alone."""
  if spec.critic is None or spec.critic.kind != 'patch':
    def loss_fn(params):
      t, out, new_vars = _forward(spec, state, params, images, inputs, beta, keys, True)
      return t['loss'].mean(), (t, out, new_vars)
    (loss, (t, out, new_vars)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    return loss, t, out, new_vars, grads, {}

  cspec = spec.critic

  def both(params):
    t, out, new_vars = _forward(spec, state, params, images, inputs, beta, keys, True)
    g = critic_lib.generator_term(cspec, state.critic, out.recon)  # [B]
    return (t['loss'].mean(), g.mean()), (t, out, new_vars, g)

  (loss, g_loss), pull, (t, out, new_vars, g) = jax.vjp(both, state.params, has_aux=True)
  one, zero = jnp.ones_like(loss), jnp.zeros_like(loss)
  (grad_main,), (grad_gen,) = pull((one, zero)), pull((zero, one))
  layer = cspec.last_layer
  if cspec.adaptive:
    lam = adversarial.adaptive_weight(grad_main['decoder'][layer]['kernel'],
                                      grad_gen['decoder'][layer]['kernel'], 1.0)
  else:
    lam = jnp.ones(())
  weight = inputs.hp['gan_weight'] * lam * critic_lib.active(cspec, state.step)
  grads = jax.tree_util.tree_map(lambda a, b: a + weight * b, grad_main, grad_gen)
  return loss + weight * g_loss, t, out, new_vars, grads, {'gan_g': g_loss, 'gan_lambda': lam}


def train_step(spec: StepSpec, state: TrainState, images, inputs: StepInputs, active=None):
  """One optimizer step on `images` [B,H,W,C]; inputs: this member's hyperparameters and
  the shared pretrained networks (StepInputs). A discriminator (spec.critic) takes its own
  step on the same batch.

  With spec.skip_nonfinite, a step whose loss or gradients are not finite (or a member
  no longer `active`) leaves the state as it was; metrics['finite'] says which happened.
  """
  rng = jax.random.fold_in(state.noise_key, state.step)
  keys = _keys(rng)
  hp = inputs.hp
  progress = state.step.astype(jnp.float32) / spec.steps_per_epoch  # in epochs
  beta_eff = losses.kl_weight(hp['beta'], progress, hp['kl_warmup_epochs'])
  mask = hp.get('latent_mask')
  loss, t, out, new_vars, grads, extra = _gradients(spec, state, images, inputs, beta_eff,
                                                    keys)
  tx = optim.make_optimizer(spec.optim)
  direction, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
  if mask is not None:
    direction = mask_latent_updates(spec.model, direction, mask)
  lr = hp['learning_rate'] * optim.schedule_multiplier(spec.optim, state.step)
  params = jax.tree_util.tree_map(lambda p, d: p - lr * d, state.params, direction)
  new_state = state.replace(
      step=state.step + 1, params=params,
      batch_stats=new_vars.get('batch_stats', state.batch_stats), opt_state=opt_state,
      model_state={c: new_vars.get(c, v) for c, v in state.model_state.items()})
  if spec.critic is not None:
    if spec.critic.kind == 'patch':
      real, fake = images, out.recon
    else:  # the codes, with a latent-size member's switched-off units at 0
      real = fake = out.z if mask is None else out.z * mask
    critic_state, critic_metrics = critic_lib.update(spec.critic, state.critic, real, fake,
                                                     keys['critic'], state.step)
    new_state = new_state.replace(critic=critic_state)
    extra.update(critic_metrics)
  keys_logged = set(registry.names(registry.METRICS))
  metrics = {k: v.mean() for k, v in t.items() if k in keys_logged}
  metrics.update({k: v for k, v in extra.items() if k in keys_logged})
  metrics['lr'] = lr * optim.plateau_scale(opt_state)
  metrics['beta'] = beta_eff
  if spec.skip_nonfinite:
    finite = jnp.isfinite(loss) & _all_finite(grads)
    if spec.critic is not None:  # a diverged discriminator freezes its member too
      metrics['critic_finite'] = _all_finite(new_state.critic)
      finite = finite & metrics['critic_finite']
    ok = finite & (True if active is None else active)
    new_state = jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new_state, state)
    metrics['finite'] = finite
  return new_state, metrics


def epoch_batches(spec: StepSpec, data_key, num_examples: int, epoch):
  """A member's data order for `epoch`: [steps, B] indices (last partial batch dropped)."""
  perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
  used = spec.steps_per_epoch * spec.batch_size
  return perm[:used].reshape(spec.steps_per_epoch, spec.batch_size)


def train_chunk(spec: StepSpec, constrain: Callable, state: TrainState, active, images, xs,
                inputs: StepInputs):
  """S consecutive steps as one lax.scan (a plain step when S = 1).

  xs [S, B] are indices into device-resident `images` [N,H,W,C]; with images None, xs
  [S, B, H, W, C] are the batches themselves (streamed data). `active` is carried so a
  member frozen for a non-finite step stays frozen for the rest of the chunk.
  """
  def body(carry, x):
    st, act = carry
    batch = constrain(x if images is None else images[x])  # [B, H, W, C]
    st, m = train_step(spec, st, batch, inputs, act)
    if spec.skip_nonfinite:
      act = act & m['finite']
    return (st, act), m

  if xs.shape[0] == 1:  # one step: no loop, so XLA sees the step as its own program
    (state, active), m = body((state, active), xs[0])
    return state, active, jax.tree_util.tree_map(lambda v: v[None], m)
  (state, active), m = jax.lax.scan(body, (state, active), xs)
  return state, active, m  # metrics: [S] per key


def eval_member(spec: StepSpec, metric_names: tuple, constrain: Callable, state: TrainState,
                images, valid, inputs: StepInputs, key):
  """The batch metrics `metric_names` over `images` [NB, EB, H, W, C] where `valid`
  [NB, EB] marks real rows, as one scan: {name: value} (vectors for vector metrics).

  Loss terms use a sampled z (a one-sample ELBO estimate); reconstruction metrics use
  the deterministic reconstruction from the posterior mean.
  """
  hp = inputs.hp
  mask = hp.get('latent_mask')
  apply = functools.partial(apply_model, spec, state.params, state.batch_stats,
                            model_state=state.model_state)
  progress = state.step.astype(jnp.float32) / spec.steps_per_epoch
  beta_eff = losses.kl_weight(hp['beta'], progress, hp['kl_warmup_epochs'])
  metrics = [registry.get(n) for n in metric_names]
  fns = tuple(dict.fromkeys(m.batch for m in metrics))  # metrics sharing a function: once
  image_shape = images.shape[2:]

  def per_example(batch, i):
    keys = _keys(jax.random.fold_in(key, i))
    terms, out, _ = _forward(spec, state, state.params, batch, inputs, beta_eff, keys, False)
    det = out
    if kinds.get(spec.model.kind).posterior:
      det = apply(batch, train=False, sample=False, latent_mask=mask)
    ctx = metric_core.BatchContext(batch, out, det, terms, spec.loss, mask)
    values = {}
    for fn in fns:
      values.update(fn(ctx))
    return values

  def body(totals, inputs):
    batch, ok, i = inputs
    values = per_example(constrain(batch), i)
    okf = ok.astype(jnp.float32)
    new = {k: totals[k] + jnp.tensordot(okf, v, axes=(0, 0)) for k, v in values.items()}
    return new, None

  shapes = jax.eval_shape(per_example, images[0], 0)
  zeros = {k: jnp.zeros(s.shape[1:], jnp.float32) for k, s in shapes.items()}
  totals, _ = jax.lax.scan(body, zeros, (images, valid, jnp.arange(images.shape[0])))
  n = valid.sum()
  out = {}
  for m in metrics:
    out[m.name] = m.finalize(totals, n, image_shape) if m.finalize else totals[m.name] / n
  return out


def recon_member(spec: StepSpec, state: TrainState, images, hp):
  """Deterministic reconstructions [N, H, W, C] (posterior mean, not clipped)."""
  out = apply_model(spec, state.params, state.batch_stats, images, train=False, sample=False,
                    latent_mask=hp.get('latent_mask'), model_state=state.model_state)
  return out.recon


def batch_for_eval(images, batch_size: int, multiple: int = 1):
  """[N,H,W,C] -> ([NB, EB, H, W, C] padded, valid [NB, EB]) with EB <= batch_size
  (rounded up to a multiple of `multiple`, the devices sharing a batch). The last batch is
  filled up with the split's first images, not zeros: padded rows weigh nothing in the
  sums, but an objective whose estimate pairs a batch's examples (tcvae, wae_mmd,
  factorvae) then pairs the real rows with real images, never with blank ones."""
  n = images.shape[0]
  eb = min(batch_size, n)
  eb = -(-eb // multiple) * multiple
  nb = -(-n // eb)
  pad = nb * eb - n
  padded = np.concatenate([images, np.take(images, np.arange(pad) % n, axis=0)])
  valid = np.arange(nb * eb) < n
  return padded.reshape(nb, eb, *images.shape[1:]), valid.reshape(nb, eb)
