"""Pure, jit-able training and evaluation functions; no I/O.

Everything here works on one *member* (one model with its own hyperparameters);
`make_functions` maps it over a leading member axis, so a single run is a sweep of one
and a sweep of K models is one compiled program.

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
from ae_jax.metrics import core as metric_core, registry
from ae_jax.models import AutoEncoder, mask_latent_updates


class LossSpec(NamedTuple):
  reconstruction: str
  reduction: str
  nll_sigma: float
  ssim_weight: float = 0.0     # extra training terms (losses.extra_terms)
  ms_ssim_weight: float = 0.0
  fft_weight: float = 0.0
  lpips_weight: float = 0.0
  objective: str = 'elbo'      # loss.objective (objectives.REGISTRY)
  iwae_max: int = 1            # iwae: the program's largest loss.iwae_samples
  tc_estimator: str = 'mss'    # tcvae
  rae_decoder: str = 'l2'      # rae
  vq_learning: str = 'ema'     # vqvae: model.vq.learning
  lpips_net: str = 'vgg'       # the LPIPS term's trunk


class StepSpec(NamedTuple):
  """Static settings bound into the compiled functions."""
  model: AutoEncoder
  loss: LossSpec
  optim: optim.OptimSpec
  batch_size: int
  steps_per_epoch: int
  eval_batch_size: int
  dtype: str = 'float32'  # compute dtype; parameters, optimizer state and losses stay float32
  skip_nonfinite: bool = False  # freeze a member whose loss or gradients turn non-finite
  num_train: int = 0      # training examples (beta-TCVAE's N)
  critic: Any = None      # critic.CriticSpec: a discriminator trained beside the model


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
    from ae_jax.models import latent_shape
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


def _forward(spec: StepSpec, state: TrainState, params, images, hp, beta, keys, train: bool,
             pretrained, latent_mask, sample: bool = True):
  """The model's forward pass and the objective's per-example terms:
  -> (terms {name: [B]}, ModelOutput, the model's new mutable collections)."""
  mutable = ['batch_stats', *state.model_state] if train else False
  rngs = {'reparam': keys['reparam']}
  if spec.model.kind == 'vqvae' and train:
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
      x=images, out=out, hp=hp, beta=beta, loss=spec.loss, num_train=spec.num_train,
      key=keys['objective'], decode=decode, latent_mask=latent_mask, pretrained=pretrained,
      critic=critic, params=params)
  t = objectives.get(spec.loss.objective).function()(inp)
  if spec.model.kind == 'vae':
    t['neg_elbo'] = jax.lax.stop_gradient(metric_core.neg_elbo_terms(out, images, spec.loss))
  return t, out, new_vars


def _gradients(spec: StepSpec, state: TrainState, images, hp, beta, keys, pretrained, mask):
  """(mean loss, per-example terms, ModelOutput, new collections, gradients, extra metrics).

  With a PatchGAN, one forward pass and two backward passes: the objective's gradient and
  the generator term's, combined as g_objective + gan_weight * lambda * on * g_generator
  (critic.py). `on` is 0 before loss.gan_start_step, where the update is the objective's
  alone."""
  if spec.critic is None or spec.critic.kind != 'patch':
    def loss_fn(params):
      t, out, new_vars = _forward(spec, state, params, images, hp, beta, keys, True,
                                  pretrained, mask)
      return t['loss'].mean(), (t, out, new_vars)
    (loss, (t, out, new_vars)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    return loss, t, out, new_vars, grads, {}

  cspec = spec.critic

  def both(params):
    t, out, new_vars = _forward(spec, state, params, images, hp, beta, keys, True,
                                pretrained, mask)
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
  weight = hp['gan_weight'] * lam * critic_lib.active(cspec, state.step)
  grads = jax.tree_util.tree_map(lambda a, b: a + weight * b, grad_main, grad_gen)
  return loss + weight * g_loss, t, out, new_vars, grads, {'gan_g': g_loss, 'gan_lambda': lam}


def train_step(spec: StepSpec, state: TrainState, images, hp, active=None, pretrained=None):
  """One optimizer step on `images` [B,H,W,C]; hp: this member's hyperparameters;
  pretrained: the pretrained networks the loss needs (losses.pretrained_networks), shared
  by all members. A discriminator (spec.critic) takes its own step on the same batch.

  With spec.skip_nonfinite, a step whose loss or gradients are not finite (or a member
  no longer `active`) leaves the state as it was; metrics['finite'] says which happened.
  """
  rng = jax.random.fold_in(state.noise_key, state.step)
  keys = _keys(rng)
  progress = state.step.astype(jnp.float32) / spec.steps_per_epoch  # in epochs
  beta_eff = losses.kl_weight(hp['beta'], progress, hp['kl_warmup_epochs'])
  mask = hp.get('latent_mask')
  loss, t, out, new_vars, grads, extra = _gradients(spec, state, images, hp, beta_eff, keys,
                                                    pretrained, mask)
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
    ok = finite & (True if active is None else active)
    new_state = jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new_state, state)
    metrics['finite'] = finite
  return new_state, metrics


def epoch_batches(spec: StepSpec, data_key, num_examples: int, epoch):
  """A member's data order for `epoch`: [steps, B] indices (last partial batch dropped)."""
  perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
  used = spec.steps_per_epoch * spec.batch_size
  return perm[:used].reshape(spec.steps_per_epoch, spec.batch_size)


def train_chunk(spec: StepSpec, constrain: Callable, state: TrainState, active, images, xs, hp,
                pretrained):
  """S consecutive steps as one lax.scan (a plain step when S = 1).

  xs [S, B] are indices into device-resident `images` [N,H,W,C]; with images None, xs
  [S, B, H, W, C] are the batches themselves (streamed data). `active` is carried so a
  member frozen for a non-finite step stays frozen for the rest of the chunk.
  """
  def body(carry, x):
    st, act = carry
    batch = constrain(x if images is None else images[x])  # [B, H, W, C]
    st, m = train_step(spec, st, batch, hp, act, pretrained)
    if spec.skip_nonfinite:
      act = act & m['finite']
    return (st, act), m

  if xs.shape[0] == 1:  # one step: no loop, so XLA sees the step as its own program
    (state, active), m = body((state, active), xs[0])
    return state, active, jax.tree_util.tree_map(lambda v: v[None], m)
  (state, active), m = jax.lax.scan(body, (state, active), xs)
  return state, active, m  # metrics: [S] per key


def eval_member(spec: StepSpec, metric_names: tuple, constrain: Callable, state: TrainState,
                images, valid, hp, key, pretrained):
  """The batch metrics `metric_names` over `images` [NB, EB, H, W, C] where `valid`
  [NB, EB] marks real rows, as one scan: {name: value} (vectors for vector metrics).

  Loss terms use a sampled z (a one-sample ELBO estimate); reconstruction metrics use
  the deterministic reconstruction from the posterior mean.
  """
  mask = hp.get('latent_mask')
  apply = functools.partial(apply_model, spec, state.params, state.batch_stats,
                            model_state=state.model_state)
  progress = state.step.astype(jnp.float32) / spec.steps_per_epoch
  beta_eff = losses.kl_weight(hp['beta'], progress, hp['kl_warmup_epochs'])
  metrics = [registry.get(n) for n in metric_names]
  fns = {m.batch: registry.function(m.batch) for m in metrics}
  image_shape = images.shape[2:]

  def per_example(batch, i):
    keys = _keys(jax.random.fold_in(key, i))
    terms, out, _ = _forward(spec, state, state.params, batch, hp, beta_eff, keys, False,
                             pretrained, mask)
    det = out
    if spec.model.kind == 'vae':
      det = apply(batch, train=False, sample=False, latent_mask=mask)
    ctx = metric_core.BatchContext(batch, out, det, terms, spec.loss)
    values = {}
    for fn in fns.values():
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
    out[m.name] = (registry.function(m.finalize)(totals, n, image_shape) if m.finalize
                   else totals[m.name] / n)
  return out


def recon_member(spec: StepSpec, state: TrainState, images, hp):
  """Deterministic reconstructions [N, H, W, C] (posterior mean, not clipped)."""
  out = apply_model(spec, state.params, state.batch_stats, images, train=False, sample=False,
                    latent_mask=hp.get('latent_mask'), model_state=state.model_state)
  return out.recon


class Functions(NamedTuple):
  """The compiled functions of one program. They take the state in their internal form:
  [K, ...] for K > 1, no member axis for a single member; `stack` / `unstack` convert
  to and from the [K, ...] form that checkpoints and inference use."""
  init: Callable      # (seeds [K]) -> TrainState (internal form)
  # (state, active [K], images, idx [K, S, B], hp, pretrained) -> (state, active, metrics [K, S])
  chunk: Callable
  chunk_batches: Callable  # (state, active [K], batches [S, B, H, W, C], hp, pretrained) -> same
  order: Callable     # (state, num_examples, epoch) -> batch indices [K, steps, B]
  reconstruct: Callable  # (state, images, hp) -> recon [K, N, H, W, C] (deterministic)
  loop: str           # 'scan' (chunks of many steps) or 'python' (one step per chunk)
  vectorize: str      # how members share the program: 'vmap' or 'unroll'
  stack: Callable     # internal state -> [K, ...] state
  unstack: Callable   # [K, ...] state -> internal state
  num_members: int
  plan: Any           # mesh.Plan
  ynnpack: str = 'on'  # XLA:CPU's YNNPACK fusions in the training chunks: 'on' or 'off'
  # the pretrained networks the loss needs (LPIPS), replicated on the device: an argument
  # of every compiled function, never a closed-over constant (see metrics.lpips.load)
  pretrained: Any = None

  def active(self, flags=None):
    """The [K] bool 'member still training' array, placed as the chunks return it (an
    array placed otherwise would make them compile a second time)."""
    flags = np.ones(self.num_members, bool) if flags is None else np.asarray(flags, bool)
    return self.plan.put(flags, self.plan.stacked(self.num_members))

  def epoch(self, state, images, hp, epoch_index):
    """One whole epoch over device-resident `images` in chunks of the loop's size
    (tests and the benchmark; the trainer drives chunks itself)."""
    idx = self.order(state, images.shape[0], epoch_index)  # [K, steps, B]
    active = self.active()
    size = idx.shape[1] if self.loop == 'scan' else 1
    rows = []
    for s in range(0, idx.shape[1], size):
      state, active, m = self.chunk(state, active, images, idx[:, s:s + size], hp, self.pretrained)
      rows.append(m)
    return state, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=1), *rows)

  def step_batch(self, state, batch, hp):
    """One step on one batch [B, H, W, C] (the benchmark)."""
    state, _, m = self.chunk_batches(state, self.active(), batch[None], hp, self.pretrained)
    return state, jax.tree_util.tree_map(lambda v: v[:, 0], m)


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
  squeezed, and the outputs other than the state (output 0 when `state_out`) get the
  axis back.
  """
  def take(args, axes, i):
    return [a if ax is None else jax.tree_util.tree_map(lambda x: x[i], a)
            for a, ax in zip(args, axes)]

  expand = lambda t: jax.tree_util.tree_map(lambda x: x[None], t)
  if num_members == 1:
    def single(*args):
      out = fn(args[0], *take(args[1:], in_axes[1:], 0))
      return (out[0], *[expand(o) for o in out[1:]]) if state_out else expand(out)

    return single

  if strategy == 'vmap':
    return jax.vmap(fn, in_axes=in_axes)

  def unrolled(*args):
    outs = [fn(*take(args, in_axes, i)) for i in range(num_members)]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)

  return unrolled


def _widest_conv(model: AutoEncoder, image_shape) -> int:
  """The most output channels of any convolution kernel in `model` (0: no convolution)."""
  variables = jax.eval_shape(lambda: model.init(
      {'params': jax.random.PRNGKey(0), 'reparam': jax.random.PRNGKey(0)},
      jnp.zeros((1, *image_shape))))
  paths = jax.tree_util.tree_flatten_with_path(variables)[0]
  return max((leaf.shape[-1] for path, leaf in paths
              if 'conv' in jax.tree_util.keystr(path) and leaf.ndim == 4), default=0)


YNNPACK_OFF_MAX_CHANNELS = 128  # 'auto': no YNNPACK fusions for conv models up to this width


def choose_ynnpack(setting: str, on_cpu: bool, widest_conv: int, num_members: int = 1) -> str:
  """model.conv.ynnpack: 'auto' -> 'off' on CPU for a single conv model whose widest
  convolution has <= 128 channels, else 'on' (XLA's default). Measured with `python -m
  ae_jax.bench` (docs/performance.md): without YNNPACK fusions the training step of
  conv_ae_small ran 1.32-1.51x faster, ae_photos 1.21-1.55x, vae_conv 1.07-1.35x; but
  conv_vae_bn_mish (1024 channels) 0.61-0.69x, and vae_beta (vae_conv's layers, 4 members
  unrolled in one program) 0.89-0.93x."""
  if setting != 'auto':
    return setting
  small = 0 < widest_conv <= YNNPACK_OFF_MAX_CHANNELS
  return 'off' if on_cpu and small and num_members == 1 else 'on'


def compiler_options(ynnpack: str) -> dict | None:
  """jax.jit compiler options for a training chunk (None: XLA's defaults)."""
  return {'xla_cpu_experimental_ynn_fusion_type': ''} if ynnpack == 'off' else None


def choose_vectorize(strategy: str, conv_on_cpu: bool) -> str:
  """'auto' -> 'unroll' for conv models on CPU, else 'vmap'."""
  if strategy != 'auto':
    return strategy
  return 'unroll' if conv_on_cpu else 'vmap'


def choose_loop(loop: str, slow_conv_in_scan: bool) -> str:
  """'auto' -> 'scan' unless XLA's own convolutions would run inside a loop body on CPU.

  XLA:CPU keeps its fast convolution path inside while-loop bodies only for canonical
  (NHWC/HWIO) convolutions; XLA's own gradients there are not canonical (a conv VAE step:
  2230 ms inside lax.scan against 142 ms alone). The canonical convolutions of
  models/canonical.py (model.conv.impl='auto' on CPU) fix that, so the scan is used; with
  model.conv.impl='xla' on CPU a per-step loop of one compiled step is faster.
  """
  if loop != 'auto':
    return loop
  return 'python' if slow_conv_in_scan else 'scan'


def _constrain(plan):
  if plan is None or plan.data == 1:
    return lambda x: x
  sharding = plan.batch(0)
  return lambda x: jax.lax.with_sharding_constraint(x, sharding)


@functools.lru_cache(maxsize=16)
def make_functions(spec: StepSpec, image_shape, num_members: int, loop: str = 'auto',
                   vectorize: str = 'auto', plan=None, ynnpack: str = 'auto'):
  """Compiled, member-mapped versions of the functions above.

  Cached on the (hashable, static) spec: programs of a sweep that share shapes and
  settings, such as equal chunks of members, reuse one compilation. With a mesh `plan`
  the state is replicated (or split over 'members'), batches are split over 'data'.
  """
  k = num_members
  on_cpu = jax.default_backend() == 'cpu'
  widest = _widest_conv(spec.model, image_shape)
  conv_on_cpu = on_cpu and widest > 0
  ynn = choose_ynnpack(ynnpack, on_cpu, widest, k)
  options = compiler_options(ynn) if on_cpu else None
  canonical = getattr(spec.model.encoder, 'conv_impl', 'xla') == 'canonical'
  slow_conv_in_scan = conv_on_cpu and not canonical
  vec = choose_vectorize(vectorize, conv_on_cpu)
  over = functools.partial(_over_members, strategy=vec)
  if plan is None:
    from ae_jax import mesh as mesh_lib
    plan = mesh_lib.single()
  rep, stacked = plan.replicated(), plan.stacked(k)
  state_sh = stacked if k > 1 else rep
  if k == 1:
    init = jax.jit(lambda seeds: init_state(spec, seeds[0], image_shape), out_shardings=state_sh)
    stack = lambda st: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], st)
    unstack = lambda st: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[0], st)
  else:
    init = jax.jit(over(functools.partial(init_state, spec, image_shape=image_shape), (0,), k),
               out_shardings=state_sh)
    stack = unstack = lambda st: st

  reconstruct = jax.jit(over(functools.partial(recon_member, spec), (0, None, 0), k))
  order = jax.jit(over(lambda st, n, e: epoch_batches(spec, st.data_key, n, e), (0, None, None), k),
              static_argnums=1)
  constrain = _constrain(plan)
  chunk_fn = functools.partial(train_chunk, spec, constrain)
  outs = (state_sh, stacked, stacked)  # state, active [K], metrics [K, S]
  chunk = jax.jit(over(lambda st, act, images, xs, hp, pt: chunk_fn(st, act, images, xs, hp, pt),
                       (0, 0, None, 0, 0, None), k, state_out=True),
                  in_shardings=(state_sh, stacked, rep, stacked, stacked, rep),
                  out_shardings=outs, donate_argnums=0, compiler_options=options)
  chunk_batches = jax.jit(over(lambda st, act, xs, hp, pt: chunk_fn(st, act, None, xs, hp, pt),
                               (0, 0, None, 0, None), k, state_out=True),
                          in_shardings=(state_sh, stacked, plan.batch(1), stacked, rep),
                          out_shardings=outs, donate_argnums=0, compiler_options=options)
  pretrained = jax.tree_util.tree_map(lambda w: plan.put(w, rep),
                                      losses.pretrained_networks(spec.loss))
  return Functions(init, chunk, chunk_batches, order, reconstruct,
                   choose_loop(loop, slow_conv_in_scan), vec, stack, unstack, k, plan, ynn,
                   pretrained)


@functools.lru_cache(maxsize=32)
def make_evaluate(spec: StepSpec, num_members: int, vectorize: str, metric_names: tuple,
                  plan=None):
  """Compiled evaluation of the batch metrics `metric_names`: (state, images, valid, hp,
  key, pretrained) -> {name: [K] or [K, units]}, each evaluation batch split over 'data'
  (pretrained: Functions.pretrained, the networks the loss terms need)."""
  fn = functools.partial(eval_member, spec, metric_names, _constrain(plan))
  return jax.jit(_over_members(fn, (0, None, None, 0, None, None), num_members, vectorize))


def batch_for_eval(images, batch_size: int, multiple: int = 1):
  """[N,H,W,C] -> ([NB, EB, H, W, C] zero-padded, valid [NB, EB]) with EB <= batch_size
  (rounded up to a multiple of `multiple`, the devices sharing a batch)."""
  n = images.shape[0]
  eb = min(batch_size, n)
  eb = -(-eb // multiple) * multiple
  nb = -(-n // eb)
  pad = nb * eb - n
  padded = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
  valid = np.arange(nb * eb) < n
  return padded.reshape(nb, eb, *images.shape[1:]), valid.reshape(nb, eb)
