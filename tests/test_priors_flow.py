"""The flow-matching prior: the linear path's target, the integrators against closed forms
and against each other, seeded samples, adaLN-zero's zero start, and a trained flow's
samples of a 2-D mixture of Gaussians."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax.errors import ConfigError, DataError
from ae_jax.priors import flow, velocity


def test_target_is_the_paths_velocity_x1_minus_x0():
  """The regression target is d x_t / dt of x_t = (1 - t) x0 + t x1, i.e. x1 - x0, at
  every t; the path starts at the noise and ends at the code."""
  k0, k1, kt = jax.random.split(jax.random.key(0), 3)
  x0 = jax.random.normal(k0, (5, 3, 2))
  x1 = jax.random.normal(k1, (5, 3, 2)) * 3 + 1
  t = jax.random.uniform(kt, (5,))
  np.testing.assert_array_equal(flow.target(x0, x1), x1 - x0)
  _, dxdt = jax.jvp(lambda s: flow.interpolate(x0, x1, s), (t,), (jnp.ones_like(t),))
  np.testing.assert_allclose(dxdt, flow.target(x0, x1), rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(flow.interpolate(x0, x1, jnp.zeros(5)), x0)
  np.testing.assert_array_equal(flow.interpolate(x0, x1, jnp.ones(5)), x1)
  half = flow.interpolate(x0, x1, jnp.full((5,), 0.5))
  np.testing.assert_allclose(half, (x0 + x1) / 2, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('steps', [1, 4, 10])
def test_euler_and_heun_match_their_closed_forms_on_linear_fields(steps):
  """dx/dt = a x: Euler gives x0 (1 + a h)^n and Heun x0 (1 + a h + (a h)^2 / 2)^n, and
  both tend to x0 e^a. dx/dt = t: Heun (the trapezoid rule) is exact, x0 + 1/2, and Euler
  (the left Riemann sum) gives x0 + (n - 1) / (2 n)."""
  a, h = -1.3, 1.0 / steps
  x0 = jnp.array([[1.0, -2.0], [0.5, 3.0]])
  euler = flow.integrate(lambda x, t: a * x, x0, steps, 'euler')
  heun = flow.integrate(lambda x, t: a * x, x0, steps, 'heun')
  np.testing.assert_allclose(euler, x0 * (1 + a * h) ** steps, rtol=1e-5)
  np.testing.assert_allclose(heun, x0 * (1 + a * h + (a * h) ** 2 / 2) ** steps, rtol=1e-5)
  time_field = lambda x, t: jnp.broadcast_to(t[:, None], x.shape)
  np.testing.assert_allclose(flow.integrate(time_field, x0, steps, 'heun'), x0 + 0.5,
                             rtol=1e-6)
  np.testing.assert_allclose(flow.integrate(time_field, x0, steps, 'euler'),
                             x0 + (steps - 1) / (2 * steps), rtol=1e-6)


# A test that compiles a velocity network is slow. Everything runs jitted: op by op, a
# DiT's init and apply dispatch hundreds of small programs (seconds each on this CPU).
def _init(codes_shape, settings, seed=0):
  fn = jax.jit(functools.partial(flow.init, settings=settings), static_argnums=1)
  return fn(jax.random.key(seed), codes_shape)


@jax.jit
def _perturbed(params, key, scale=0.3):
  """Random non-zero weights everywhere (an untrained DiT is exactly zero: adaLN-zero),
  of about `scale` / sqrt(fan-in)."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(tree, [x + scale * jax.random.normal(k, x.shape) / max(
      1, x.shape[0] if x.ndim > 1 else 1) ** 0.5 for x, k in zip(leaves, keys)])


def _integrate(params, x0, steps, sampler, settings):
  fn = lambda p, x: flow.integrate(lambda y, t: flow.velocity(p, y, t, settings), x, steps,
                                   sampler)
  return jax.jit(fn)(params, x0)


@pytest.mark.slow
@pytest.mark.parametrize('codes_shape,settings', [
    ((8, 6), flow.FlowSettings(hidden=32, depth=2, time_mode='concat')),
    ((8, 6), flow.FlowSettings(hidden=32, depth=2, time_mode='add')),
    ((8, 4, 4, 2), flow.FlowSettings(hidden=16, depth=1, heads=2, patch=2)),
], ids=['mlp_concat', 'mlp_add', 'dit'])
def test_heun_and_euler_with_many_steps_integrate_the_same_ode(codes_shape, settings):
  """On one fixed (random) velocity network, Heun with 200 steps (global error O(h^2))
  and Euler with 1000 (O(h)) reach the same x(1): within Euler's error, which halves when
  its steps double."""
  params = _perturbed(_init(codes_shape, settings), jax.random.key(1))
  x0 = jax.random.normal(jax.random.key(2), (4, *codes_shape[1:]))
  heun = _integrate(params, x0, 200, 'heun', settings)
  euler_500 = _integrate(params, x0, 500, 'euler', settings)
  euler_1000 = _integrate(params, x0, 1000, 'euler', settings)
  err_500 = float(jnp.abs(euler_500 - heun).max())
  err_1000 = float(jnp.abs(euler_1000 - heun).max())
  assert err_1000 < 3e-3 * max(1.0, float(jnp.abs(heun - x0).max()))  # measured 4e-4-6e-4
  assert 0.35 < err_1000 / err_500 < 0.7  # first order: Euler converges to Heun's answer
  assert float(jnp.abs(heun - x0).max()) > 0.1  # and the flow did move the points


@pytest.mark.slow
def test_a_fixed_seed_gives_identical_samples():
  settings = flow.FlowSettings(hidden=32, depth=2, steps=8)
  params = _perturbed(_init((8, 6), settings), jax.random.key(1))
  draw = jax.jit(functools.partial(flow.sample, settings=settings), static_argnums=2)
  a = draw(params, jax.random.key(7), 16)
  b = draw(params, jax.random.key(7), 16)
  c = draw(params, jax.random.key(8), 16)
  assert a.shape == (16, 6)
  np.testing.assert_array_equal(a, b)
  assert float(jnp.abs(a - c).min()) > 0


@pytest.mark.slow
def test_an_untrained_dit_is_zero_and_its_samples_are_the_noise():
  """adaLN-zero: the modulation and output layers start at zero, so v = 0 at init."""
  settings = flow.FlowSettings(hidden=16, depth=2, heads=2, patch=2, steps=3)
  params = _init((8, 4, 6, 3), settings)
  assert flow.code_shape(params, settings) == (4, 6, 3)
  x = jax.random.normal(jax.random.key(1), (2, 4, 6, 3))
  v = jax.jit(functools.partial(flow.velocity, settings=settings))(params, x,
                                                                   jnp.full((2,), 0.4))
  np.testing.assert_array_equal(v, 0)
  x0 = jax.random.normal(jax.random.key(3), (2, 4, 6, 3))
  draw = jax.jit(functools.partial(flow.sample, settings=settings), static_argnums=2)
  np.testing.assert_array_equal(draw(params, jax.random.key(3), 2), x0)


@pytest.mark.slow
def test_held_out_is_the_matching_loss_averaged_over_stratified_draws():
  """With one draw, held_out is exactly the loss at the draw's (t, x0); with many, its
  spread over keys shrinks."""
  settings = flow.FlowSettings(hidden=32, depth=2)
  params = _perturbed(_init((8, 6), settings), jax.random.key(1))
  codes = jax.random.normal(jax.random.key(2), (32, 6))
  one = jax.jit(functools.partial(flow.held_out, settings=flow.FlowSettings(
      hidden=32, depth=2, held_out_draws=1)))
  many = jax.jit(functools.partial(flow.held_out, settings=flow.FlowSettings(
      hidden=32, depth=2, held_out_draws=16)))
  keys = jax.random.split(jax.random.key(3), 24)
  spread_one = np.std([float(one(params, codes, k).mean()) for k in keys])
  spread_many = np.std([float(many(params, codes, k).mean()) for k in keys])
  assert spread_many < spread_one / 2
  k_t, k_x0 = jax.random.split(keys[0])
  t = jax.random.uniform(k_t, (1, 32))[0]
  x0 = jax.random.normal(k_x0, (1, 32, 6))[0]
  direct = jax.jit(functools.partial(flow.matching_loss, settings=settings))
  chex.assert_trees_all_close(one(params, codes, keys[0]), direct(params, x0, codes, t),
                              rtol=1e-6)


def test_patchify_takes_each_patch_whole_and_unpatchify_inverts_it():
  x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
  tokens = np.asarray(velocity.patchify(jnp.asarray(x), 2))
  assert tokens.shape == (2, 2, 3, 12)
  np.testing.assert_array_equal(tokens[1, 1, 2], x[1, 2:4, 4:6].reshape(-1))
  np.testing.assert_array_equal(velocity.unpatchify(jnp.asarray(tokens), 2), x)


def test_ema_update_is_the_weighted_mean():
  ema = {'a': jnp.array([1.0, 2.0]), 'b': {'c': jnp.array(4.0)}}
  params = {'a': jnp.array([3.0, -2.0]), 'b': {'c': jnp.array(0.0)}}
  out = flow.ema_update(ema, params, 0.75)
  chex.assert_trees_all_close(out, {'a': jnp.array([1.5, 1.0]), 'b': {'c': jnp.array(3.0)}})
  chex.assert_trees_all_close(flow.ema_update(ema, params, 0.0), params)


def test_the_ema_warms_up_so_a_short_run_averages_trained_weights():
  # (1 + t) / (10 + t) while below the decay, then the decay itself
  assert float(flow.ema_decay_at(0.999, 0)) == pytest.approx(0.1)
  assert float(flow.ema_decay_at(0.999, 90)) == pytest.approx(0.91)
  assert float(flow.ema_decay_at(0.999, 10**6)) == pytest.approx(0.999)
  assert float(flow.ema_decay_at(0.5, 90)) == 0.5
  # 150 updates towards weights that moved to 1 from an init of 0: the warmed-up average
  # sits near the weights, a fixed 0.999 would keep 86% of the init
  ema = fixed = jnp.zeros(())
  for t in range(150):
    ema = flow.ema_update(ema, jnp.ones(()), flow.ema_decay_at(0.999, t))
    fixed = flow.ema_update(fixed, jnp.ones(()), 0.999)
  assert float(ema) > 0.85 and float(fixed) < 0.14


def test_training_times_are_uniform_or_logit_normal_as_set():
  key = jax.random.key(3)
  u = np.asarray(flow.train_times(key, 20000, flow.FlowSettings()))
  assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
  assert abs(u.std() - 12 ** -0.5) < 0.01  # U[0, 1]
  t = np.asarray(flow.train_times(key, 20000, flow.FlowSettings(
      t_dist='logit_normal', t_mean=-0.5, t_std=0.8)))
  logit = np.log(t / (1 - t))
  assert abs(logit.mean() + 0.5) < 0.02 and abs(logit.std() - 0.8) < 0.02
  # the held-out number stays uniform in t, so flows trained either way compare
  settings = flow.FlowSettings(hidden=8, depth=1, t_dist='logit_normal')
  params = _init((4, 3), settings)
  codes = jax.random.normal(jax.random.key(1), (4, 3))
  chex.assert_trees_all_close(
      flow.held_out(params, codes, jax.random.key(2), settings),
      flow.held_out(params, codes, jax.random.key(2), flow.FlowSettings(hidden=8, depth=1)))


def test_the_ot_coupling_pairs_noise_with_codes_near_the_exact_optimal_assignment():
  from scipy.optimize import linear_sum_assignment
  x0 = jax.random.normal(jax.random.key(0), (128, 4))
  centres = 2.0 * jax.random.normal(jax.random.key(1), (6, 4))
  x1 = centres[jax.random.randint(jax.random.key(2), (128,), 0, 6)] + 0.3 * jax.random.normal(
      jax.random.key(3), (128, 4))
  # the plan's rows and columns each carry 1/B: it is a coupling of the two batches
  plan = np.exp(np.asarray(flow.ot_plan(x0, x1, 0.05)))
  np.testing.assert_allclose(plan.sum(0), 1 / 128, rtol=1e-3)
  np.testing.assert_allclose(plan.sum(1), 1 / 128, rtol=1e-3)
  cost = np.asarray(jnp.sum(jnp.square(x0[:, None] - x1[None]), -1))
  rows, cols = linear_sum_assignment(cost)
  exact, independent = cost[rows, cols].mean(), np.trace(cost) / 128
  paired = flow.couple(jax.random.key(4), x0, x1, flow.FlowSettings(coupling='ot'))
  ot = float(jnp.sum(jnp.square(paired - x1), -1).mean())
  # measured: independent 19.0, ot 9.13, exact 8.90
  assert ot < exact + 0.25 * (independent - exact), (ot, exact, independent)
  # each code keeps its place; only the noise rows are drawn, from the batch's own rows
  assert set(map(tuple, np.asarray(paired).round(6))) <= set(map(tuple, np.asarray(x0).round(6)))
  assert flow.couple(jax.random.key(4), x0, x1, flow.FlowSettings()) is x0


def test_bad_settings_and_codes_are_one_clear_error():
  with pytest.raises(ConfigError, match='sampler'):
    flow.FlowSettings(sampler='rk4')
  with pytest.raises(ConfigError, match='t_dist'):
    flow.FlowSettings(t_dist='beta')
  with pytest.raises(ConfigError, match='t_std=0'):
    flow.FlowSettings(t_std=0)
  with pytest.raises(ConfigError, match='coupling'):
    flow.FlowSettings(coupling='exact')
  with pytest.raises(ConfigError, match='ot_reg=0'):
    flow.FlowSettings(ot_reg=0)
  with pytest.raises(ConfigError, match='heads=3 must divide hidden=32'):
    flow.FlowSettings(hidden=32, heads=3)
  with pytest.raises(ConfigError, match='patch=3 must divide'):
    flow.init(jax.random.key(0), (2, 4, 4, 1), flow.FlowSettings(patch=3))
  with pytest.raises(ConfigError, match='net=dit needs spatial codes'):
    flow.init(jax.random.key(0), (2, 16), flow.FlowSettings(net='dit'))
  settings = flow.FlowSettings(hidden=8, depth=1)
  # shapes only (no compile): the check comes before any computation
  params = jax.eval_shape(functools.partial(flow.init, codes_shape=(2, 16), settings=settings),
                          jax.random.key(0))
  with pytest.raises(DataError, match=r'built for \[N, 16\]'):
    flow.loss(params, jnp.zeros((2, 8)), jax.random.key(0), settings)


def _mixture(key, n):
  """Four Gaussians (std 0.15) at (+-1, +-1), equally likely."""
  k_c, k_e = jax.random.split(key)
  centres = jnp.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
  c = jax.random.randint(k_c, (n,), 0, 4)
  return centres[c] + 0.15 * jax.random.normal(k_e, (n, 2))


def energy_distance(x, y):
  """2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely & Rizzo): >= 0, 0 iff X and Y agree in
  distribution; the V-statistic of two samples."""
  d = lambda a, b: jnp.sqrt(jnp.sum(jnp.square(a[:, None] - b[None]), -1) + 1e-12).mean()
  return float(2 * d(x, y) - d(x, x) - d(y, y))


@pytest.mark.slow
def test_trained_flow_samples_match_a_2d_mixture(train_on_draws):
  """After 1500 Adam steps on fresh mixture draws (per-dimension std 1.01: already
  normalized), 1000 Heun samples are within an energy distance of 0.02 of 1000 fresh
  draws, and the untrained network's samples (N(0, I) moved by a random field) are more
  than twice as far. Measured: trained 0.005, untrained 0.09, two independent sets of
  fresh draws 0.001."""
  settings = flow.FlowSettings(hidden=64, depth=3, steps=20, sampler='heun')
  params = _init((256, 2), settings)
  trained = train_on_draws(functools.partial(flow.loss, settings=settings), params, _mixture,
                           1500, 3e-3)
  draw = jax.jit(functools.partial(flow.sample, settings=settings), static_argnums=2)
  fresh = _mixture(jax.random.key(100), 1000)
  floor = energy_distance(_mixture(jax.random.key(101), 1000), fresh)
  after = energy_distance(draw(trained, jax.random.key(5), 1000), fresh)
  before = energy_distance(draw(params, jax.random.key(5), 1000), fresh)
  assert floor < 0.01
  assert after < 0.02, (after, before, floor)
  assert before > 0.04, (after, before, floor)
