"""The priors' common interface: the registry's declarations, settings by keyword, and every
kind's functions vmapped over a leading member axis of its parameters equal to separate
calls (a sweep trains its members' priors together)."""
import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import pytest

from ae_jax import priors
from ae_jax.errors import ConfigError

CASES = {
    'flow_mlp': ('flow', dict(hidden=16, depth=1, steps=3), (8, 6)),
    'flow_dit': ('flow', dict(hidden=16, depth=1, heads=2, patch=2, steps=3), (8, 4, 4, 2)),
    'autoregressive': ('autoregressive', dict(num_codes=5, width=16, depth=1, heads=2), (8, 6)),
    'two_stage': ('two_stage', dict(hidden=16, depth=1), (8, 6)),
}


def test_registry_declares_every_kind():
  assert set(priors.PRIORS) == {'flow', 'autoregressive', 'two_stage', 'gaussian', 'gmm',
                                'categorical'}
  for name, kind in priors.PRIORS.items():
    assert kind.name == name and kind.doc
    assert set(kind.latent_kinds) <= set(priors.LATENT_KINDS)
    assert dataclasses.is_dataclass(kind.settings)
    if kind.fitted:  # fitted in closed form or by EM: no gradient steps
      assert kind.init is None and kind.sample_fitted and kind.held_out_fitted
      continue
    # the trained continuous kinds work on normalized codes
    assert kind.normalize == (kind.latent_kinds == ('continuous',))
    assert kind.held_out_name in kind.logged or kind.held_out_name == 'fm_loss'
    # every setting but the model-derived ones is a config key of its own, by name
    fields = {f.name for f in dataclasses.fields(kind.settings)}
    assert {k.name.split('.')[-1] for k in kind.keys} == fields - set(kind.derived)
  assert priors.get('flow') is priors.PRIORS['flow']
  with pytest.raises(ConfigError, match="prior 'pixelcnn': expected one of flow"):
    priors.get('pixelcnn')


def test_settings_are_built_by_keyword_frozen_and_hashable():
  """Hashable: settings can be a jit static argument as well as a partial's keyword."""
  flow = priors.get('flow').make_settings(hidden=32, sampler='euler')
  assert flow == priors.FlowSettings(hidden=32, sampler='euler')
  assert hash(flow) == hash(priors.FlowSettings(hidden=32, sampler='euler'))
  with pytest.raises(dataclasses.FrozenInstanceError):
    flow.hidden = 8
  with pytest.raises(ConfigError, match='unknown setting.*hiden.*expected some of net, hidden'):
    priors.get('flow').make_settings(hiden=32)
  with pytest.raises(ConfigError, match="sampler='rk4'"):
    priors.get('flow').make_settings(sampler='rk4')
  assert priors.get('two_stage').make_settings() == priors.TwoStageSettings()
  assert priors.get('autoregressive').make_settings(num_codes=16).num_codes == 16


def _codes(kind_name, shape, key):
  if kind_name == 'autoregressive':
    return jax.random.randint(key, shape, 0, 5)
  return jax.random.normal(key, shape)


@jax.jit
def _perturbed(params, key):
  """Non-zero weights everywhere (an untrained DiT's velocity is exactly zero, which
  would make its loss independent of the parameters)."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(tree, [x + 0.1 * jax.random.normal(k, x.shape)
                                   for x, k in zip(leaves, keys)])


@pytest.mark.slow
@pytest.mark.parametrize('case', list(CASES))
def test_vmapped_members_equal_separate_calls(case):
  """init, loss, held_out and sample vmapped over 2 members (stacked parameters, a key
  each) equal each member's own call; the batch of codes is shared, as in a sweep."""
  name, values, shape = CASES[case]
  kind = priors.get(name)
  settings = kind.make_settings(**values)
  member_keys = jax.random.split(jax.random.key(0), 2)
  init = jax.jit(functools.partial(kind.init, codes_shape=shape, settings=settings))
  stacked = jax.jit(jax.vmap(init))(member_keys)
  for m in range(2):
    chex.assert_trees_all_close(jax.tree.map(lambda x, m=m: x[m], stacked),
                                init(member_keys[m]))
  stacked = jax.jit(jax.vmap(_perturbed))(stacked, member_keys)
  members = [jax.tree.map(lambda x, m=m: x[m], stacked) for m in range(2)]
  batch = _codes(name, shape, jax.random.key(1))
  step_keys = jax.vmap(lambda k: jax.random.fold_in(k, 7))(member_keys)  # fold_in(key, step)

  loss = functools.partial(kind.loss, settings=settings)
  together = jax.jit(jax.vmap(loss, in_axes=(0, None, 0)))(stacked, batch, step_keys)
  assert together[0].shape == (2, shape[0])
  assert set(together[1]) == set(kind.logged)
  apart = [jax.jit(loss)(members[m], batch, step_keys[m]) for m in range(2)]
  for m in range(2):
    chex.assert_trees_all_close(jax.tree.map(lambda x, m=m: x[m], together), apart[m],
                                rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(apart[0][0] - apart[1][0]).max()) > 1e-4  # the members do differ

  held = functools.partial(kind.held_out, settings=settings)
  together = jax.jit(jax.vmap(held, in_axes=(0, None, 0)))(stacked, batch, step_keys)
  for m in range(2):
    chex.assert_trees_all_close(together[m], jax.jit(held)(members[m], batch, step_keys[m]),
                                rtol=1e-5, atol=1e-6)

  draw = lambda p, k: kind.sample(p, k, 3, settings=settings)
  together = jax.jit(jax.vmap(draw))(stacked, member_keys)
  assert together.shape == (2, 3, *shape[1:])
  for m in range(2):
    chex.assert_trees_all_close(together[m], jax.jit(draw)(members[m], member_keys[m]),
                                rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_jitted_loss_traces_once_per_settings():
  kind = priors.get('flow')
  settings = kind.make_settings(hidden=8, depth=1)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def loss(params, batch, key):
    return kind.loss(params, batch, key, settings=settings)

  params = jax.jit(functools.partial(kind.init, settings=settings), static_argnums=1)(
      jax.random.key(0), (4, 3))
  for step in range(3):  # new parameters, codes and keys: one trace
    key = jax.random.fold_in(jax.random.key(1), step)
    params = jax.tree.map(lambda x: x + 0.01, params)
    loss(params, jax.random.normal(key, (4, 3)), key)
