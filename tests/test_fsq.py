"""Finite scalar quantization (models/fsq.py) against the paper's definition: the grids, the
straight-through gradient, the implicit codebook's indices and its usage on a uniform box."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax.errors import ConfigError
from ae_jax.models import fsq

LEVELS = (8, 5, 5, 5)


def _np_bounded(z, levels, eps=fsq.EPS):
  """The paper's bounding function in float64 numpy, written out from its formula."""
  lv = np.asarray(levels, np.float64)
  half_l = (lv - 1) * (1 + eps) / 2
  offset = np.where(lv % 2 == 0, 0.5, 0.0)
  return np.tanh(z + np.arctanh(offset / half_l)) * half_l - offset


@pytest.mark.parametrize('shape', [(64, 4), (2, 5, 3, 4)])
def test_every_code_lies_on_its_channels_grid(shape):
  z = 3.0 * jax.random.normal(jax.random.PRNGKey(0), shape)
  codes = np.asarray(fsq.quantize(z, LEVELS))
  assert codes.shape == shape
  for d, n in enumerate(LEVELS):
    steps = codes[..., d] * (n // 2)  # integers on the grid
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
    lo, hi = (-(n // 2), n // 2 - 1) if n % 2 == 0 else (-(n // 2), n // 2)
    assert steps.min() >= lo - 1e-6 and steps.max() <= hi + 1e-6


# L -> its grid, from the formula: round(bounded) in {-L/2 .. L/2 - 1} (even) or
# {-(L-1)/2 .. (L-1)/2} (odd), divided by L // 2
GRIDS = {2: [-1, 0], 3: [-1, 0, 1], 4: [-1, -.5, 0, .5], 5: [-1, -.5, 0, .5, 1],
         6: [-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3], 7: [-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 1],
         8: [-1, -.75, -.5, -.25, 0, .25, .5, .75]}


@pytest.mark.parametrize('n', sorted(GRIDS))
def test_odd_and_even_grids_are_exact_and_centred(n):
  grid = np.asarray(GRIDS[n])
  # the codebook's values on a one-channel quantiser, and every value a dense sweep of z hits
  np.testing.assert_allclose(np.asarray(fsq.implicit_codebook((n,)))[:, 0], grid, atol=1e-7)
  hit = np.unique(np.asarray(fsq.quantize(jnp.linspace(-12., 12., 20001)[:, None], (n,))))
  np.testing.assert_allclose(hit, grid, atol=1e-7)
  # odd: symmetric about 0; even: symmetric about -1/L, half a step (2/L) below 0
  centre = 0.0 if n % 2 else -1.0 / n
  np.testing.assert_allclose(grid - centre, -(grid - centre)[::-1], atol=1e-12)
  # z = 0 is bounded to 0 and quantised to the code 0 for every L (the shift's purpose)
  assert float(fsq.bound(jnp.zeros((1, 1)), (n,))[0, 0]) == pytest.approx(0.0, abs=1e-6)
  assert float(fsq.quantize(jnp.zeros((1, 1)), (n,))[0, 0]) == 0.0


def test_forward_rounds_the_bounded_value_and_the_gradient_is_the_bounded_ones():
  z = 2.0 * jax.random.normal(jax.random.PRNGKey(1), (32, 4))
  w = jax.random.normal(jax.random.PRNGKey(2), (32, 4))
  half_width = jnp.asarray([n // 2 for n in LEVELS], jnp.float32)
  bounded = np.asarray(fsq.bound(z, LEVELS))
  np.testing.assert_allclose(bounded, _np_bounded(np.asarray(z, np.float64), LEVELS),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(fsq.quantize(z, LEVELS)),
                                np.round(bounded) / np.asarray(half_width))
  g_q = jax.grad(lambda z: jnp.sum(w * fsq.quantize(z, LEVELS)))(z)
  g_b = jax.grad(lambda z: jnp.sum(w * fsq.bound(z, LEVELS) / half_width))(z)
  chex.assert_trees_all_close(g_q, g_b, rtol=1e-6)
  assert float(jnp.abs(g_q).min()) > 0  # rounding alone would give zero everywhere


@pytest.mark.parametrize('levels',
                         [(3, 4), (2, 2, 2), (7, 6), *fsq.RECOMMENDED_LEVELS.values()])
def test_index_to_code_to_index_is_the_identity_over_the_whole_codebook(levels):
  k = fsq.codebook_size(levels)
  idx = jnp.arange(k)
  codes = fsq.indices_to_codes(idx, levels)
  assert codes.shape == (k, len(levels))
  np.testing.assert_array_equal(np.asarray(fsq.codes_to_indices(codes, levels)), np.arange(k))
  assert len(np.unique(np.asarray(codes), axis=0)) == k  # K distinct codes


def test_a_codes_preimage_quantizes_back_to_it_though_quantizing_a_code_may_move_it():
  levels = (8, 5, 4, 3, 2)
  codes = fsq.implicit_codebook(levels)  # [K, D]
  np.testing.assert_array_equal(np.asarray(fsq.quantize(fsq.preimage(codes, levels), levels)),
                                np.asarray(codes))
  # L = 8's code -1 (bounded -4) quantizes again to -0.75: tanh(-1 + shift) * 3.5035 - 0.5
  # = -2.93 rounds to -3
  assert float(fsq.quantize(jnp.asarray([[-1.0]]), (8,))[0, 0]) == -0.75


def test_codes_of_spatial_quantised_values_round_trip():
  z = 3.0 * jax.random.normal(jax.random.PRNGKey(3), (2, 4, 4, 4))
  codes = fsq.quantize(z, LEVELS)
  idx = fsq.codes_to_indices(codes, LEVELS)
  assert idx.shape == (2, 4, 4) and idx.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(fsq.indices_to_codes(idx, LEVELS)), np.asarray(codes))


def test_a_hand_computed_example():
  # levels (3, 5, 4), z = (0.25, 0.6, -7):
  #   L=3: tanh(.25) * 1.001 = .2454 -> 0 -> code 0
  #   L=5: tanh(.6) * 2.002 = 1.0752 -> 1 -> code 1/2
  #   L=4: tanh(-7 + atanh(.5 / 1.5015)) * 1.5015 - .5 = -2.0015 -> -2 -> code -1
  # digits (0+1, 2+1, -2+2) = (1, 3, 0), basis (1, 3, 15): index 1 + 9 + 0 = 10
  codes = fsq.quantize(jnp.asarray([[0.25, 0.6, -7.0]]), (3, 5, 4))
  np.testing.assert_array_equal(np.asarray(codes), [[0.0, 0.5, -1.0]])
  assert int(fsq.codes_to_indices(codes, (3, 5, 4))[0]) == 10


def test_codebook_size_and_bits_are_those_of_the_levels():
  sizes = {name: fsq.codebook_size(lv) for name, lv in fsq.RECOMMENDED_LEVELS.items()}
  assert sizes == {name: math.prod(lv) for name, lv in fsq.RECOMMENDED_LEVELS.items()}
  assert sizes == {'2^8': 240, '2^10': 1000, '2^12': 4375, '2^14': 15360, '2^16': 64000}
  for name in sizes:  # each within a tenth of a bit of its name
    assert fsq.bits_per_code(name) == pytest.approx(int(name[2:]), abs=0.1)
  assert fsq.bits_per_code(LEVELS) == pytest.approx(math.log2(1000))
  assert fsq.implicit_codebook('2^8').shape == (240, 3)


def _uniform_box_z(levels, n, seed):
  """z whose bounded values are uniform over each channel's bounded interval."""
  lv = np.asarray(levels, np.float64)
  half_l = (lv - 1) * (1 + fsq.EPS) / 2
  offset = np.where(lv % 2 == 0, 0.5, 0.0)
  u = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, len(levels)))  # tanh's range
  u = np.clip(u, -1 + 1e-7, 1 - 1e-7)
  return jnp.asarray(np.arctanh(u) - np.arctanh(offset / half_l), jnp.float32), half_l, offset


def test_codes_of_a_uniform_box_use_the_whole_codebook_with_the_expected_perplexity():
  z, half_l, offset = _uniform_box_z(LEVELS, 200_000, 0)
  idx = fsq.codes_to_indices(fsq.quantize(z, LEVELS), LEVELS)
  assert float(fsq.usage(idx, LEVELS)) == 1.0
  assert float(fsq.usage(idx[:500], LEVELS)) <= 0.5  # 500 codes cannot use more
  # closed form: channels are independent, each bin k holds the share of [lo, hi] within
  # [k - 1/2, k + 1/2]; the perplexity is exp of the summed entropies
  entropy = 0.0
  for n, h, o in zip(LEVELS, half_l, offset):
    lo, hi = -h - o, h - o
    ks = np.arange(np.round(lo), np.round(hi) + 1)
    p = (np.minimum(ks + .5, hi) - np.maximum(ks - .5, lo)) / (hi - lo)
    assert len(ks) == n and p.sum() == pytest.approx(1.0)
    entropy -= np.sum(p * np.log(p))
  assert float(fsq.perplexity(idx, LEVELS)) == pytest.approx(np.exp(entropy), rel=0.01)


def test_perplexity_and_usage_of_known_histograms():
  lv = (3, 4)  # K = 12
  assert float(fsq.perplexity(jnp.full((50,), 7), lv)) == pytest.approx(1.0)
  assert float(fsq.perplexity(jnp.arange(12), lv)) == pytest.approx(12.0, rel=1e-6)
  three_to_one = jnp.asarray([0, 0, 0, 5])
  h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
  assert float(fsq.perplexity(three_to_one, lv)) == pytest.approx(np.exp(h), rel=1e-6)
  assert float(fsq.usage(three_to_one, lv)) == pytest.approx(2 / 12)
  np.testing.assert_array_equal(np.asarray(fsq.index_counts(three_to_one, lv)),
                                [3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize('shape', [(6, 4), (2, 3, 3, 4)])
def test_the_module_returns_the_vq_fields(shape):
  q = fsq.FiniteScalarQuantizer(levels=LEVELS)
  z = 2.0 * jax.random.normal(jax.random.PRNGKey(4), shape)
  variables = q.init(jax.random.PRNGKey(0), z)
  assert jax.tree_util.tree_leaves(variables) == []  # no parameters, no state
  out = q.apply(variables, z, train=True)
  assert out._fields[:5] == ('quantized', 'indices', 'commitment', 'codebook', 'counts')
  np.testing.assert_array_equal(np.asarray(out.quantized), np.asarray(fsq.quantize(z, LEVELS)))
  assert out.indices.shape == shape[:-1]
  np.testing.assert_array_equal(np.asarray(out.commitment), np.zeros(shape[0]))
  np.testing.assert_array_equal(np.asarray(out.codebook), np.zeros(shape[0]))
  assert out.counts.shape == (1000,) and float(out.counts.sum()) == np.prod(shape[:-1])


def test_bad_levels_are_one_config_error():
  for bad in [(1, 5), (), '2^9', (5, 2.5), (True, 3)]:
    with pytest.raises(ConfigError, match='FSQ levels'):
      fsq.resolve_levels(bad)
  assert fsq.resolve_levels('2^12') == (7, 5, 5, 5, 5)
  with pytest.raises(ConfigError, match='quantize 4 channels, but the code has 16'):
    fsq.FiniteScalarQuantizer(levels=LEVELS).init(jax.random.PRNGKey(0), jnp.zeros((2, 16)))
