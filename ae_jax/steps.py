"""Pure, jit-able training and evaluation functions; no I/O.

Everything here works on one *member* (one model with its own hyperparameters);
`make_functions` vmaps it over a leading member axis, so a single run is a sweep of
one and a sweep of K models is one compiled program.

Keys are derived by purpose and step: a member's seed gives `init`, `noise` and `data`
keys; the noise for step t is `fold_in(noise_key, t)` and the data order of epoch e is
`permutation(fold_in(data_key, e))`. A resumed run therefore replays exactly.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import dm_pix as pix
import numpy as np
import flax
import jax
import jax.numpy as jnp

from ae_jax import losses, optim
from ae_jax.models import AutoEncoder, mask_latent_updates


class LossSpec(NamedTuple):
  reconstruction: str
  reduction: str
  nll_sigma: float


class StepSpec(NamedTuple):
  """Static settings bound into the compiled functions."""
  model: AutoEncoder
  loss: LossSpec
  optim: optim.OptimSpec
  batch_size: int
  steps_per_epoch: int
  eval_batch_size: int
  dtype: str = 'float32'  # compute dtype; parameters, optimizer state and losses stay float32


@flax.struct.dataclass
class TrainState:
  step: jax.Array        # [] int32, optimizer steps taken
  params: Any
  batch_stats: Any       # {} for models without BatchNorm
  opt_state: Any
  noise_key: jax.Array   # [2] uint32
  data_key: jax.Array    # [2] uint32


def _variables(state_params, batch_stats):
  return {'params': state_params, **({'batch_stats': batch_stats} if batch_stats else {})}


def _cast(tree, dtype):
  return jax.tree_util.tree_map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def apply_model(spec: StepSpec, params, batch_stats, x, **kwargs):
  """model.apply computed in spec.dtype, with outputs (and updated statistics) in float32.

  For bfloat16, the float32 parameters are cast inside the step, so gradients flow
  back to them in float32 (the usual mixed-precision recipe for GPU/TPU).
  """
  if spec.dtype == 'float32':
    return spec.model.apply(_variables(params, batch_stats), x, **kwargs)
  dt = jnp.dtype(spec.dtype)
  out = spec.model.apply(_variables(_cast(params, dt), _cast(batch_stats, dt)), x.astype(dt),
                         **kwargs)
  return _cast(out, jnp.float32)


def init_state(spec: StepSpec, seed, image_shape) -> TrainState:
  """One member's initial state from its integer seed."""
  init_key, noise_key, data_key = jax.random.split(jax.random.PRNGKey(seed), 3)
  x = jnp.zeros((1, *image_shape), jnp.float32)
  variables = spec.model.init({'params': init_key, 'reparam': init_key}, x, train=False)
  params = variables['params']
  tx = optim.make_optimizer(spec.optim)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}),
                    opt_state=tx.init(params), noise_key=noise_key, data_key=data_key)


def train_step(spec: StepSpec, state: TrainState, images, hp):
  """One optimizer step on `images` [B,H,W,C]; hp: this member's hyperparameters."""
  rng = jax.random.fold_in(state.noise_key, state.step)
  progress = state.step.astype(jnp.float32) / spec.steps_per_epoch  # in epochs
  beta_eff = losses.kl_weight(hp['beta'], progress, hp['kl_warmup_epochs'])
  mask = hp.get('latent_mask')

  def loss_fn(params):
    out, new_vars = apply_model(spec, params, state.batch_stats, images, train=True,
                                latent_mask=mask, rngs={'reparam': rng}, mutable=['batch_stats'])
    t = losses.terms(out, images, spec.loss, beta_eff)
    return t['loss'].mean(), (t, new_vars)

  (loss, (t, new_vars)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  tx = optim.make_optimizer(spec.optim)
  direction, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
  if mask is not None:
    direction = mask_latent_updates(spec.model, direction, mask)
  lr = hp['learning_rate'] * optim.schedule_multiplier(spec.optim, state.step)
  params = jax.tree_util.tree_map(lambda p, d: p - lr * d, state.params, direction)
  new_state = state.replace(step=state.step + 1, params=params,
                            batch_stats=new_vars.get('batch_stats', state.batch_stats),
                            opt_state=opt_state)
  metrics = {k: v.mean() for k, v in t.items()}
  metrics['lr'] = lr * optim.plateau_scale(opt_state)
  metrics['beta'] = beta_eff
  return new_state, metrics


def epoch_batches(spec: StepSpec, data_key, num_examples: int, epoch):
  """A member's data order for `epoch`: [steps, B] indices (last partial batch dropped)."""
  perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
  used = spec.steps_per_epoch * spec.batch_size
  return perm[:used].reshape(spec.steps_per_epoch, spec.batch_size)


def train_epoch(spec: StepSpec, state: TrainState, images, hp, epoch):
  """A whole epoch as one lax.scan over device-resident `images` [N,H,W,C]."""
  idx = epoch_batches(spec, state.data_key, images.shape[0], epoch)

  def body(st, batch_idx):
    return train_step(spec, st, images[batch_idx], hp)

  return jax.lax.scan(body, state, idx)  # metrics: [steps] per key


def _ssim_filter(image_shape) -> int:
  size = min(11, image_shape[0], image_shape[1])
  return size if size % 2 else size - 1


def eval_member(spec: StepSpec, state: TrainState, images, valid, hp, key):
  """Mean metrics over `images` [NB, EB, H, W, C] where `valid` [NB, EB] marks real rows.

  The loss terms use a sampled z (a one-sample ELBO estimate); PSNR and SSIM use the
  deterministic reconstruction from the posterior mean, clipped to [0, 1].
  """
  mask = hp.get('latent_mask')
  variables = _variables(state.params, state.batch_stats)
  apply = functools.partial(apply_model, spec, state.params, state.batch_stats)
  progress = state.step.astype(jnp.float32) / spec.steps_per_epoch
  beta_eff = losses.kl_weight(hp['beta'], progress, hp['kl_warmup_epochs'])
  filter_size = _ssim_filter(images.shape[2:4])

  def body(totals, inputs):
    batch, ok, i = inputs
    out = apply(batch, train=False, latent_mask=mask, rngs={'reparam': jax.random.fold_in(key, i)})
    t = losses.terms(out, batch, spec.loss, beta_eff)
    if spec.model.kind == 'vae':
      out = apply(batch, train=False, sample=False, latent_mask=mask)
    recon = jnp.clip(out.recon, 0.0, 1.0)
    t['psnr'] = pix.psnr(recon, batch)
    t['ssim'] = pix.ssim(recon, batch, max_val=1.0, filter_size=filter_size)
    okf = ok.astype(jnp.float32)
    new = {k: totals[k] + (v * okf).sum() for k, v in t.items()}
    mean = out.mean.reshape(out.mean.shape[0], -1) * okf[:, None]  # [EB, units]
    new['mean_sum'] = totals['mean_sum'] + mean.sum(0)
    new['mean_sq'] = totals['mean_sq'] + jnp.square(mean).sum(0)
    return new, None

  keys = ('loss', 'recon', 'kl', 'neg_elbo', 'psnr', 'ssim')
  units = int(np.prod(jax.eval_shape(
      lambda: spec.model.apply(variables, images[0], method=spec.model.encode)[0]).shape[1:]))
  zeros = {k: jnp.zeros((), jnp.float32) for k in keys}
  zeros.update(mean_sum=jnp.zeros(units), mean_sq=jnp.zeros(units))
  totals, _ = jax.lax.scan(body, zeros, (images, valid, jnp.arange(images.shape[0])))
  n = valid.sum()
  out = {k: totals[k] / n for k in keys}
  # Active units (Burda et al.): latent units whose posterior mean varies across the
  # data, Var_x[E_q(z|x) z] > 0.01. Masked units have mean 0 and never count.
  var = totals['mean_sq'] / n - jnp.square(totals['mean_sum'] / n)
  out['active_units'] = jnp.sum(var > 0.01).astype(jnp.float32)
  return out


class Functions(NamedTuple):
  """The compiled functions of one program. They take the state in their internal form:
  [K, ...] for K > 1, no member axis for a single member; `stack` / `unstack` convert
  to and from the [K, ...] form that checkpoints and inference use."""
  init: Callable      # (seeds [K]) -> TrainState (internal form)
  epoch: Callable     # (state, images, hp, epoch) -> (state, metrics [K, steps])
  evaluate: Callable  # (state, images, valid, hp, key) -> metrics [K]
  reconstruct: Callable  # (state, images, hp) -> recon [K, N, H, W, C] (deterministic)
  loop: str           # how `epoch` runs: 'scan' or 'python'
  order: Callable     # (state, num_examples, epoch) -> batch indices [K, steps, B]
  step_batch: Callable  # (state, batch [B,H,W,C], hp) -> (state, metrics [K]); streamed data
  scan_batches: Callable  # (state, batches [S,B,H,W,C], hp) -> (state, metrics [K, S])
  vectorize: str      # how members share the program: 'vmap' or 'unroll'
  stack: Callable     # internal state -> [K, ...] state
  unstack: Callable   # [K, ...] state -> internal state


def _over_members(fn, in_axes, num_members: int, strategy: str = 'vmap',
                  state_out: bool = False):
  """Map `fn` over the leading member axis of the arguments whose in_axes is 0.

  'vmap' batches the members; 'unroll' writes one copy of `fn` per member into the same
  program. vmapping a convolution whose weights carry the member axis makes it a grouped
  convolution, which XLA:CPU runs several times slower than the separate convolutions
  'unroll' emits.

  With one member, argument 0 is the state *without* a member axis (see
  Functions.unstack): carrying a size-1 axis through the step made XLA keep extra
  copies of the weights, 2.3x slower on the 50x50 MLP VAE. The other arguments are
  squeezed and the outputs other than the state get the axis back.
  """
  def take(args, axes, i):
    return [a if ax is None else jax.tree_util.tree_map(lambda x: x[i], a)
            for a, ax in zip(args, axes)]

  expand = lambda t: jax.tree_util.tree_map(lambda x: x[None], t)
  if num_members == 1:
    def single(*args):
      out = fn(args[0], *take(args[1:], in_axes[1:], 0))
      return (out[0], expand(out[1])) if state_out else expand(out)

    return single

  if strategy == 'vmap':
    return jax.vmap(fn, in_axes=in_axes)

  def unrolled(*args):
    outs = [fn(*take(args, in_axes, i)) for i in range(num_members)]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)

  return unrolled


def _has_conv(model: AutoEncoder, image_shape) -> bool:
  variables = jax.eval_shape(lambda: model.init(
      {'params': jax.random.PRNGKey(0), 'reparam': jax.random.PRNGKey(0)},
      jnp.zeros((1, *image_shape))))
  paths = jax.tree_util.tree_flatten_with_path(variables)[0]
  return any('conv' in jax.tree_util.keystr(path) for path, _ in paths)


def choose_vectorize(strategy: str, conv_on_cpu: bool) -> str:
  """'auto' -> 'unroll' for conv models on CPU, else 'vmap'."""
  if strategy != 'auto':
    return strategy
  return 'unroll' if conv_on_cpu else 'vmap'


def choose_loop(loop: str, conv_on_cpu: bool) -> str:
  """'auto' -> 'scan' unless convolutions would run inside a loop body on XLA:CPU.

  XLA:CPU loses its fast convolution path inside while-loop bodies (jax issue #12868):
  a conv VAE step measured 2230 ms inside lax.scan against 142 ms as its own program.
  There, a per-step loop of one compiled step (data still on the device) is faster.
  """
  if loop != 'auto':
    return loop
  return 'python' if conv_on_cpu else 'scan'


@functools.lru_cache(maxsize=16)
def make_functions(spec: StepSpec, image_shape, num_members: int, loop: str = 'auto',
                   vectorize: str = 'auto'):
  """Compiled, member-vmapped versions of the functions above.

  Cached on the (hashable, static) spec: programs of a sweep that share shapes and
  settings, such as equal chunks of members, reuse one compilation.
  """
  k = num_members
  conv_on_cpu = jax.default_backend() == 'cpu' and _has_conv(spec.model, image_shape)
  vec = choose_vectorize(vectorize, conv_on_cpu)
  over_members = functools.partial(_over_members, strategy=vec)
  if k == 1:
    init = jax.jit(lambda seeds: init_state(spec, seeds[0], image_shape))
    stack = lambda st: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], st)
    unstack = lambda st: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[0], st)
  else:
    init = jax.jit(over_members(functools.partial(init_state, spec, image_shape=image_shape),
                                (0,), k))
    stack = unstack = lambda st: st
  evaluate = jax.jit(over_members(functools.partial(eval_member, spec),
                                  (0, None, None, 0, None), k))

  def recon_member(state, images, hp):
    out = apply_model(spec, state.params, state.batch_stats, images, train=False,
                      sample=False, latent_mask=hp.get('latent_mask'))
    return out.recon

  reconstruct = jax.jit(over_members(recon_member, (0, None, 0), k))
  loop = choose_loop(loop, conv_on_cpu)
  order = jax.jit(over_members(
      lambda st, n, e: epoch_batches(spec, st.data_key, n, e), (0, None, None), k),
      static_argnums=1)
  step_batch = jax.jit(over_members(lambda st, batch, hp: train_step(spec, st, batch, hp),
                                    (0, None, 0), k, state_out=True), donate_argnums=0)
  scan_batches = jax.jit(over_members(
      lambda st, xs, hp: jax.lax.scan(lambda c, b: train_step(spec, c, b, hp), st, xs),
      (0, None, 0), k, state_out=True), donate_argnums=0)
  if loop == 'scan':
    epoch = jax.jit(over_members(functools.partial(train_epoch, spec), (0, None, 0, None), k,
                                 state_out=True), donate_argnums=0)
  else:
    step = jax.jit(over_members(lambda st, images, idx, hp: train_step(spec, st, images[idx], hp),
                                (0, None, 0, 0), k, state_out=True), donate_argnums=0)

    def epoch(state, images, hp, epoch_index):
      idx = order(state, images.shape[0], epoch_index)  # [K, steps, B] on the device
      rows = []
      for s in range(spec.steps_per_epoch):
        state, m = step(state, images, idx[:, s], hp)
        rows.append(m)
      return state, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs, axis=1), *rows)

  return Functions(init, epoch, evaluate, reconstruct, loop, order, step_batch, scan_batches,
                   vec, stack, unstack)


def batch_for_eval(images, batch_size: int):
  """[N,H,W,C] -> ([NB, EB, H, W, C] zero-padded, valid [NB, EB]) with EB <= batch_size."""
  import numpy as np
  n = images.shape[0]
  eb = min(batch_size, n)
  nb = -(-n // eb)
  pad = nb * eb - n
  padded = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
  valid = np.arange(nb * eb) < n
  return padded.reshape(nb, eb, *images.shape[1:]), valid.reshape(nb, eb)
