"""The compiled, member-mapped programs of a run: training chunks, initial states, data
order, reconstructions and the evaluation scan (steps.py's pure functions, mapped over the
members by members.py, placed by a mesh plan, run the way cpu_policy.py chooses).

Compilations are kept by a `Compiler`, which lives as long as a run: the programs of a
sweep that share shapes and settings (equal chunks of members, say) reuse one compilation,
and nothing compiled outlives the run that asked for it, unless the caller asks for more:
runs started inside `with compile.shared():` (a notebook or a test session training many
small runs) share one Compiler, so a run equal in spec, shapes and placement to an earlier
one traces and compiles nothing. A `Runtime` is one run spec on the devices: its plan,
policy, compiled functions and inputs (the members' hyperparameters and the pretrained
networks the loss needs, placed once).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import cpu_policy, losses, mesh as mesh_lib, steps
from ae_jax.members import over_members
from ae_jax.spec import RunSpec
from ae_jax.steps import StepInputs, StepSpec


class Functions(NamedTuple):
  """The compiled functions of one program. They take the state in their internal form:
  [K, ...] for K > 1, no member axis for a single member; `stack` / `unstack` convert
  to and from the [K, ...] form that checkpoints and inference use."""
  init: Callable      # (seeds [K]) -> TrainState (internal form)
  # (state, active [K], images, idx [K, S, B], inputs) -> (state, active, metrics [K, S])
  chunk: Callable
  chunk_batches: Callable  # (state, active [K], batches [S, B, H, W, C], inputs) -> same
  order: Callable     # (state, num_examples, epoch) -> batch indices [K, steps, B]
  reconstruct: Callable  # (state, images, hp) -> recon [K, N, H, W, C] (deterministic)
  stack: Callable     # internal state -> [K, ...] state
  unstack: Callable   # [K, ...] state -> internal state
  num_members: int
  plan: Any           # mesh.Plan
  policy: cpu_policy.Policy

  @property
  def loop(self) -> str:
    return self.policy.loop

  def active(self, flags=None):
    """The [K] bool 'member still training' array, placed as the chunks return it (an
    array placed otherwise would make them compile a second time)."""
    flags = np.ones(self.num_members, bool) if flags is None else np.asarray(flags, bool)
    return self.plan.put(flags, self.plan.stacked(self.num_members))

  def epoch(self, state, images, inputs: StepInputs, epoch_index):
    """One whole epoch over device-resident `images` in chunks of the loop's size
    (tests and the benchmark; the trainer drives chunks itself)."""
    idx = self.order(state, images.shape[0], epoch_index)  # [K, steps, B]
    active = self.active()
    size = idx.shape[1] if self.loop == 'scan' else 1
    rows = []
    for s in range(0, idx.shape[1], size):
      state, active, m = self.chunk(state, active, images, idx[:, s:s + size], inputs)
      rows.append(m)
    return state, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=1), *rows)

  def step_batch(self, state, batch, inputs: StepInputs):
    """One step on one batch [B, H, W, C] (the benchmark)."""
    state, _, m = self.chunk_batches(state, self.active(), batch[None], inputs)
    return state, jax.tree_util.tree_map(lambda v: v[:, 0], m)


def _constrain(plan):
  if plan is None or plan.data == 1:
    return lambda x: x
  sharding = plan.batch(0)
  return lambda x: jax.lax.with_sharding_constraint(x, sharding)


def make_functions(spec: StepSpec, image_shape, num_members: int, plan=None,
                   policy: cpu_policy.Policy | None = None) -> Functions:
  """Compiled, member-mapped versions of steps.py's functions. With a mesh `plan` the
  state is replicated (or split over 'members'), batches are split over 'data'."""
  k = num_members
  policy = policy or cpu_policy.choose(spec.model, image_shape, k)
  plan = plan or mesh_lib.single()
  over = functools.partial(over_members, strategy=policy.vectorize)
  rep, stacked = plan.replicated(), plan.stacked(k)
  state_sh = stacked if k > 1 else rep
  if k == 1:
    init = jax.jit(lambda seeds: steps.init_state(spec, seeds[0], image_shape),
                   out_shardings=state_sh)
    stack = lambda st: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], st)
    unstack = lambda st: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[0], st)
  else:
    init = jax.jit(over(functools.partial(steps.init_state, spec, image_shape=image_shape),
                        (0,), k), out_shardings=state_sh)
    stack = unstack = lambda st: st

  reconstruct = jax.jit(over(functools.partial(steps.recon_member, spec), (0, None, 0), k))
  order = jax.jit(over(lambda st, n, e: steps.epoch_batches(spec, st.data_key, n, e),
                       (0, None, None), k), static_argnums=1)
  chunk_fn = functools.partial(steps.train_chunk, spec, _constrain(plan))
  member_inputs = StepInputs.member_axes()
  inputs_sh = StepInputs(hp=stacked, networks=rep)
  outs = (state_sh, stacked, stacked)  # state, active [K], metrics [K, S]
  options = policy.compiler_options()
  chunk = jax.jit(over(lambda st, act, images, xs, inp: chunk_fn(st, act, images, xs, inp),
                       (0, 0, None, 0, member_inputs), k, state_out=True),
                  in_shardings=(state_sh, stacked, rep, stacked, inputs_sh),
                  out_shardings=outs, donate_argnums=0, compiler_options=options)
  chunk_batches = jax.jit(over(lambda st, act, xs, inp: chunk_fn(st, act, None, xs, inp),
                               (0, 0, None, member_inputs), k, state_out=True),
                          in_shardings=(state_sh, stacked, plan.batch(1), inputs_sh),
                          out_shardings=outs, donate_argnums=0, compiler_options=options)
  return Functions(init=init, chunk=chunk, chunk_batches=chunk_batches, order=order,
                   reconstruct=reconstruct, stack=stack, unstack=unstack, num_members=k,
                   plan=plan, policy=policy)


def make_evaluate(spec: StepSpec, num_members: int, vectorize: str, metric_names: tuple,
                  plan=None):
  """Compiled evaluation of the batch metrics `metric_names`: (state, images, valid,
  inputs, key) -> {name: [K] or [K, units]}, each evaluation batch split over 'data'."""
  fn = functools.partial(steps.eval_member, spec, metric_names, _constrain(plan))
  return jax.jit(over_members(fn, (0, None, None, StepInputs.member_axes(), None),
                              num_members, vectorize))


class Compiler:
  """The compilations of one run, each made once: equal requests (a hashable step spec and
  the same shapes, members, plan and policy) get the same compiled functions."""

  def __init__(self):
    self._made: dict = {}

  def once(self, key, make):
    """make(), made once per `key` in this Compiler; made every time for a key that cannot
    be hashed (a model holding a setting as a list or an array)."""
    try:
      hash(key)
    except TypeError:
      return make()
    if key not in self._made:
      self._made[key] = make()
    return self._made[key]

  def functions(self, spec: StepSpec, image_shape, num_members: int, plan=None,
                policy: cpu_policy.Policy | None = None) -> Functions:
    policy = policy or cpu_policy.choose(spec.model, image_shape, num_members)
    key = ('functions', spec, tuple(image_shape), num_members, plan, policy)
    return self.once(key, lambda: make_functions(spec, image_shape, num_members, plan,
                                                  policy))

  def evaluate(self, spec: StepSpec, num_members: int, vectorize: str, metric_names: tuple,
               plan=None):
    key = ('evaluate', spec, num_members, vectorize, tuple(metric_names), plan)
    return self.once(key, lambda: make_evaluate(spec, num_members, vectorize, metric_names,
                                                 plan))


_SHARED: contextvars.ContextVar[Compiler | None] = contextvars.ContextVar('compiler',
                                                                        default=None)


@contextlib.contextmanager
def shared(compiler: Compiler | None = None):
  """Runs started inside share `compiler` (default: a new one): equal requests across runs
  reuse one compilation. The compilations live as long as the Compiler does."""
  token = _SHARED.set(compiler or Compiler())
  try:
    yield _SHARED.get()
  finally:
    _SHARED.reset(token)


def run_compiler() -> Compiler:
  """The Compiler a new run uses: the one `shared()` set, else a new one (the run's own)."""
  return _SHARED.get() or Compiler()


class Runtime:
  """A run spec on the devices (training and dataset evaluation; loading a model needs
  none of it): the mesh plan, the policy, the compiled functions (made on first use) and
  the step inputs (placed on first use: the LPIPS weights are read only then, and only
  when the loss has an LPIPS term)."""

  def __init__(self, spec: RunSpec, plan=None, compiler: Compiler | None = None):
    cfg = spec.config
    self.spec = spec
    self.plan = plan or mesh_lib.single()
    self.compiler = compiler or run_compiler()
    self.policy = cpu_policy.choose(spec.model, spec.image_shape, spec.num_members,
                                    loop=cfg.train.loop, vectorize=cfg.sweep.vectorize,
                                    ynnpack=cfg.model.conv.ynnpack)

  @functools.cached_property
  def functions(self) -> Functions:
    return self.compiler.functions(self.spec.step, self.spec.image_shape,
                                   self.spec.num_members, self.plan, self.policy)

  @functools.cached_property
  def inputs(self) -> StepInputs:
    stacked = self.plan.stacked(self.spec.num_members)
    put = lambda tree, sharding: jax.tree_util.tree_map(lambda x: self.plan.put(x, sharding),
                                                        tree)
    return StepInputs(hp=put(self.spec.hparams, stacked),
                      networks=put(losses.pretrained_networks(self.spec.step.loss),
                                   self.plan.replicated()))

  def evaluate(self, metric_names: tuple):
    """The compiled evaluation of the batch metrics `metric_names` (make_evaluate)."""
    return self.compiler.evaluate(self.spec.step, self.spec.num_members,
                                  self.policy.vectorize, tuple(metric_names), self.plan)
