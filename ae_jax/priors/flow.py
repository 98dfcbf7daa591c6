"""A flow-matching prior over continuous codes: conditional flow matching with the linear
(rectified-flow) path (Lipman et al. 2023, "Flow Matching for Generative Modeling"; Liu et
al. 2023, "Flow Straight and Fast").

Between a noise draw x0 ~ N(0, I) and a code x1 (normalized, stats.py), the path is

  x_t = (1 - t) x0 + t x1,     t ~ U[0, 1] (or logit-normal: `t_dist`),

with x0 drawn independently of x1 or, with `coupling='ot'`, re-paired with the batch's
codes by an entropic minibatch optimal-transport plan (Tong et al. 2024); the path's
velocity dx_t/dt = x1 - x0 is the regression target: the loss per example is
mean over the code's elements of (v(x_t, t) - (x1 - x0))^2 (a mean, so its scale does not
grow with the code's size). Sampling integrates dx/dt = v(x, t) from t = 0 (noise) to
t = 1 (a code) with `steps` Euler or Heun steps (Heun: 2 evaluations of v per step).

The held-out number is the same loss on held-out codes (t uniform whatever `t_dist`, so
flows trained either way compare), with t stratified over
`held_out_draws` draws per code (t_k = (k + u_k) / K) to lower its variance. It is a
regression error, not a likelihood: compare it only between flows on the same codes.

The velocity network (velocity.py) is an MLP for flat codes [N, D] and a DiT for spatial
codes [N, H, W, C] (`net='auto'`). Every function takes its static settings by keyword
(`functools.partial(loss, settings=s)` before jax.jit or jax.vmap); keys are the caller's
(`fold_in(key, step)` per training step).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ae_jax.errors import ConfigError, DataError
from ae_jax.priors import velocity as velocity_nets

NETS = ('auto', 'mlp', 'dit')
SAMPLERS = ('euler', 'heun')
TIME_MODES = ('concat', 'add')
TIME_DISTS = ('uniform', 'logit_normal')
COUPLINGS = ('independent', 'ot')


@dataclasses.dataclass(frozen=True)
class FlowSettings:
  net: str = 'auto'          # 'mlp' for flat codes, 'dit' for spatial ones; or either named
  hidden: int = 256          # the MLP's width, the DiT's token width
  depth: int = 3             # the MLP's hidden layers, the DiT's blocks
  time_dim: int = 64         # sinusoidal time features
  time_scale: float = 100.0  # the fastest time feature's radians per unit t (velocity.py)
  time_mode: str = 'concat'  # MLP: time features concatenated to the input, or 'add'ed
  t_dist: str = 'uniform'    # training times: U[0, 1], or sigmoid(N(t_mean, t_std)) (SD3)
  t_mean: float = 0.0        # logit_normal: the mean of logit(t)
  t_std: float = 1.0         # logit_normal: the standard deviation of logit(t)
  coupling: str = 'independent'  # noise paired with codes at random, or by minibatch 'ot'
  ot_reg: float = 0.05       # ot: Sinkhorn's entropic weight, relative to the mean cost
  heads: int = 4             # DiT attention heads (must divide hidden)
  patch: int = 1             # DiT patch size (must divide H and W)
  mlp_ratio: int = 4         # DiT: the MLP's width over hidden
  steps: int = 50            # sampler steps
  sampler: str = 'heun'      # 'euler' | 'heun'
  held_out_draws: int = 4    # (t, x0) draws per held-out code
  ema_decay: float = 0.0     # the trainer's EMA of the weights (ema_update); 0: none

  def __post_init__(self):
    for name, value, allowed in (('net', self.net, NETS), ('sampler', self.sampler, SAMPLERS),
                                 ('time_mode', self.time_mode, TIME_MODES),
                                 ('t_dist', self.t_dist, TIME_DISTS),
                                 ('coupling', self.coupling, COUPLINGS)):
      if value not in allowed:
        raise ConfigError(f'flow prior: {name}={value!r}: expected one of {allowed}')
    for name in ('hidden', 'depth', 'time_dim', 'heads', 'patch', 'mlp_ratio', 'steps',
                 'held_out_draws'):
      if getattr(self, name) < 1:
        raise ConfigError(f'flow prior: {name}={getattr(self, name)}: must be >= 1')
    if self.hidden % self.heads:
      raise ConfigError(f'flow prior: heads={self.heads} must divide hidden={self.hidden}')
    if self.ot_reg <= 0:
      raise ConfigError(f'flow prior: ot_reg={self.ot_reg}: must be > 0')
    if self.t_std <= 0:
      raise ConfigError(f'flow prior: t_std={self.t_std}: must be > 0')
    if self.time_scale <= 0:
      raise ConfigError(f'flow prior: time_scale={self.time_scale}: must be > 0')
    if not 0 <= self.ema_decay < 1:
      raise ConfigError(f'flow prior: ema_decay={self.ema_decay}: must be in [0, 1)')


def _net_name(settings: FlowSettings, code_ndim: int) -> str:
  if settings.net != 'auto':
    return settings.net
  return 'mlp' if code_ndim == 1 else 'dit'


def network(settings: FlowSettings, code_shape: tuple[int, ...]):
  """The flax module of the velocity network for codes of one example's shape."""
  name = _net_name(settings, len(code_shape))
  if name == 'mlp':
    return velocity_nets.VelocityMLP(tuple(code_shape), hidden=settings.hidden,
                                     depth=settings.depth, time_dim=settings.time_dim,
                                     time_mode=settings.time_mode,
                                     time_scale=settings.time_scale)
  if len(code_shape) != 3:
    raise ConfigError(f'flow prior: net=dit needs spatial codes [N, H, W, C]; got codes of '
                      f'shape [N, {", ".join(map(str, code_shape))}]')
  if code_shape[0] % settings.patch or code_shape[1] % settings.patch:
    raise ConfigError(f'flow prior: patch={settings.patch} must divide the codes\' H and W '
                      f'({code_shape[0]}x{code_shape[1]})')
  return velocity_nets.DiT(width=settings.hidden, depth=settings.depth, heads=settings.heads,
                           patch=settings.patch, mlp_ratio=settings.mlp_ratio,
                           time_dim=settings.time_dim, time_scale=settings.time_scale)


def init(key, codes_shape, settings: FlowSettings):
  """Parameters of the velocity network for codes of shape `codes_shape` [N, ...] (N is
  ignored)."""
  code_shape = tuple(codes_shape[1:])
  x = jnp.zeros((1, *code_shape), jnp.float32)
  return network(settings, code_shape).init(key, x, jnp.zeros((1,)))['params']


def code_shape(params, settings: FlowSettings) -> tuple[int, ...]:
  return velocity_nets.code_shape(params, settings.patch)


def velocity(params, x, t, settings: FlowSettings):
  """v(x, t): x [B, *code_shape], t [B] -> [B, *code_shape]."""
  return network(settings, x.shape[1:]).apply({'params': params}, x, t)


def interpolate(x0, x1, t):
  """The linear path x_t = (1 - t) x0 + t x1, t [B] broadcast over each code."""
  t = t.reshape(t.shape + (1,) * (x1.ndim - 1))
  return (1 - t) * x0 + t * x1


def target(x0, x1):
  """The conditional velocity d x_t / dt of the linear path: x1 - x0."""
  return x1 - x0


def matching_loss(params, x0, x1, t, settings: FlowSettings):
  """Per-example [B] mean squared error between v(x_t, t) and the path's velocity."""
  v = velocity(params, interpolate(x0, x1, t), t, settings)
  err = jnp.square(v - target(x0, x1))
  return err.reshape(err.shape[0], -1).mean(axis=-1)


def _check(params, codes, settings: FlowSettings):
  shape = code_shape(params, settings)
  if tuple(codes.shape[1:]) != shape:
    raise DataError(f'flow prior: codes of shape {tuple(codes.shape)}; this prior was built '
                    f'for [N, {", ".join(map(str, shape))}]')


def train_times(key, num: int, settings: FlowSettings):
  """[num] training times in (0, 1): uniform, or logit-normal (t = sigmoid(n), n ~
  N(t_mean, t_std): Esser et al. 2024, SD3), which weights the middle of the path."""
  if settings.t_dist == 'uniform':
    return jax.random.uniform(key, (num,))
  return jax.nn.sigmoid(settings.t_mean + settings.t_std * jax.random.normal(key, (num,)))


SINKHORN_ITERATIONS = 100


def ot_plan(x0, x1, reg: float, iterations: int = SINKHORN_ITERATIONS):
  """log of the entropic optimal-transport plan [B, B] between the empirical measures of
  x0 [B, ...] and x1 [B, ...] (uniform weights) under the squared distance, by
  log-domain Sinkhorn; `reg` is relative to the mean cost, so it does not depend on the
  codes' scale. Rows and columns each sum to 1/B."""
  a, b = x0.reshape(x0.shape[0], -1), x1.reshape(x1.shape[0], -1)
  cost = jnp.sum(jnp.square(a[:, None] - b[None]), axis=-1)
  cost = cost / jnp.maximum(jnp.mean(cost), 1e-12)
  log_w = -jnp.log(x0.shape[0])

  def update(_, fg):
    f, g = fg
    f = reg * log_w - reg * jax.nn.logsumexp((g[None, :] - cost) / reg, axis=1)
    g = reg * log_w - reg * jax.nn.logsumexp((f[:, None] - cost) / reg, axis=0)
    return f, g

  zeros = jnp.zeros((x0.shape[0],), cost.dtype)
  f, g = jax.lax.fori_loop(0, iterations, update, (zeros, zeros))
  return (f[:, None] + g[None, :] - cost) / reg


def couple(key, x0, x1, settings: FlowSettings):
  """x0 re-paired with the codes x1: unchanged ('independent'), or, for minibatch OT
  (Tong et al. 2024; Pooladian et al. 2023), each code j takes noise row i drawn from the
  plan's column j, so paths cross less and fewer run between the codes' clusters."""
  if settings.coupling == 'independent':
    return x0
  log_plan = ot_plan(jax.lax.stop_gradient(x0), jax.lax.stop_gradient(x1), settings.ot_reg)
  rows = jax.random.categorical(key, log_plan, axis=0)  # [B]: a noise row per code
  return x0[rows]


def loss(params, batch, key, settings: FlowSettings):
  """batch: normalized codes [B, ...] -> (loss [B], {'fm_loss': [B]})."""
  _check(params, batch, settings)
  key_t, key_x0 = jax.random.split(key)
  t = train_times(key_t, batch.shape[0], settings)
  x0 = jax.random.normal(key_x0, batch.shape, batch.dtype)
  x0 = couple(jax.random.fold_in(key_x0, 1), x0, batch, settings)
  per_example = matching_loss(params, x0, batch, t, settings)
  return per_example, {'fm_loss': per_example}


def held_out(params, codes, key, settings: FlowSettings):
  """The flow-matching loss [B] of held-out codes, averaged over `held_out_draws`
  stratified times (each with its own x0)."""
  _check(params, codes, settings)
  k = settings.held_out_draws
  key_t, key_x0 = jax.random.split(key)
  u = jax.random.uniform(key_t, (k, codes.shape[0]))
  t = (jnp.arange(k, dtype=jnp.float32)[:, None] + u) / k  # [K, B], one per stratum
  x0 = jax.random.normal(key_x0, (k, *codes.shape), codes.dtype)
  draws = jax.vmap(lambda x0_k, t_k: matching_loss(params, x0_k, codes, t_k, settings))(x0, t)
  return draws.mean(axis=0)


def integrate(velocity_fn, x0, steps: int, sampler: str = 'heun'):
  """x(1) of dx/dt = velocity_fn(x, t) from x(0) = x0, with `steps` equal steps of Euler's
  method or Heun's (explicit trapezoid: an Euler predictor, then the mean of the two
  slopes). velocity_fn takes x [B, ...] and t [B]."""
  if sampler not in SAMPLERS:
    raise ConfigError(f'flow prior: sampler={sampler!r}: expected one of {SAMPLERS}')
  h = 1.0 / steps
  ones = jnp.ones((x0.shape[0],), x0.dtype)

  def step(i, x):
    t = i * h
    v = velocity_fn(x, t * ones)
    x_euler = x + h * v
    if sampler == 'euler':
      return x_euler
    return x + 0.5 * h * (v + velocity_fn(x_euler, (t + h) * ones))

  return jax.lax.fori_loop(0, steps, step, x0)


def sample(params, key, num: int, settings: FlowSettings):
  """`num` normalized codes [num, *code_shape] (unnormalize them with stats.py)."""
  shape = code_shape(params, settings)
  x0 = jax.random.normal(key, (num, *shape), jnp.float32)
  fn = lambda x, t: velocity(params, x, t, settings)
  return integrate(fn, x0, settings.steps, settings.sampler)


def ema_update(ema, params, decay):
  """One step of an exponential moving average of the weights: decay * ema + (1 - decay)
  * params, leaf by leaf (decay may be a traced scalar, e.g. a sweep member's)."""
  return jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema, params)


def ema_decay_at(decay, step):
  """The decay of the EMA's update number `step` (0-based): min(decay, (1 + step) / (10 +
  step)), the usual warm-up, so that a short run's average is of its trained weights and
  not of its initialisation (a fixed 0.999 keeps 86% of the init after 150 steps)."""
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))
