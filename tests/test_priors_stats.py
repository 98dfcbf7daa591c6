"""Latent statistics: normalized codes have mean 0 and std 1 per channel, and unnormalize
inverts normalize to float32 rounding."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax.priors import stats

EPS32 = float(np.finfo(np.float32).eps)  # 2^-23


def _codes(shape, seed=0):
  """Codes whose channels have very different offsets and spreads."""
  rng = np.random.default_rng(seed)
  c = shape[-1]
  offset = rng.uniform(-50, 50, c)
  scale = rng.uniform(0.01, 20, c)
  return (rng.standard_normal(shape) * scale + offset).astype(np.float32)


@pytest.mark.parametrize('shape', [(512, 16), (64, 4, 4, 3)], ids=['flat', 'spatial'])
def test_normalized_codes_have_zero_mean_unit_std_per_channel(shape):
  codes = _codes(shape)
  st = stats.fit(codes)
  assert st.mean.shape == st.std.shape == (shape[-1],)
  z = np.asarray(stats.normalize(codes, st), np.float64)
  axes = tuple(range(len(shape) - 1))
  np.testing.assert_allclose(z.mean(axis=axes), 0, atol=1e-5)
  np.testing.assert_allclose(z.std(axis=axes), 1, atol=1e-5)
  # the statistics are the codes' own (NumPy in float64, population std)
  flat = codes.reshape(-1, shape[-1]).astype(np.float64)
  np.testing.assert_allclose(st.mean, flat.mean(0), rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(st.std, flat.std(0), rtol=1e-5)


def test_one_mean_and_std_for_all_elements():
  codes = _codes((64, 4, 4, 3))
  st = stats.fit(codes, per_channel=False)
  assert st.mean.shape == st.std.shape == ()
  z = np.asarray(stats.normalize(codes, st), np.float64)
  assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5
  # a single scale leaves the channels' relative spreads as they were
  per_channel = z.reshape(-1, 3).std(0)
  assert per_channel.max() / per_channel.min() > 10


@pytest.mark.parametrize('per_channel', [True, False])
def test_unnormalize_inverts_normalize_to_float32_rounding(per_channel):
  """Not bit-exact: (x - m) / s * s + m rounds in each of its four operations. With unit
  roundoff u = eps / 2 the error is at most about (3 |x - m| + |x|) u <= 2 eps (|x| + |m|)
  (first order); every element must be within that."""
  codes = _codes((256, 8, 8, 4), seed=1)
  st = stats.fit(codes, per_channel=per_channel)
  back = np.asarray(stats.unnormalize(stats.normalize(codes, st), st))
  bound = 2 * EPS32 * (np.abs(codes) + np.abs(np.asarray(st.mean)))
  assert np.all(np.abs(back - codes) <= bound)
  assert np.any(back != codes)  # float32 rounding does show: the claim is not bit-exactness


def test_a_constant_channel_normalizes_to_zero_and_back_exactly():
  """A dead unit (or a latent-size sweep member's masked unit, constant 0) gets std
  min_std: its normalized codes are 0 and N(0, 1) draws map back to within min_std."""
  codes = _codes((128, 5))
  codes[:, 2] = 0.0
  codes[:, 4] = 3.0
  st = stats.fit(codes, min_std=1e-6)
  assert float(st.std[2]) == float(st.std[4]) == pytest.approx(1e-6)
  z = np.asarray(stats.normalize(codes, st))
  assert np.all(z[:, 2] == 0) and np.all(np.abs(z[:, 4]) < 1e-3)
  draws = jax.random.normal(jax.random.key(0), (1000, 5))
  back = np.asarray(stats.unnormalize(draws, st))
  assert np.max(np.abs(back[:, 2])) < 1e-5
  assert np.max(np.abs(back[:, 4] - 3.0)) < 1e-5


def test_stats_vmap_over_members():
  """Each member of a sweep fits its own statistics: vmap equals separate fits."""
  codes = jnp.stack([_codes((64, 6), seed=s) for s in (2, 3)])
  stacked = jax.vmap(stats.fit)(codes)
  for m in range(2):
    one = stats.fit(codes[m])
    np.testing.assert_allclose(stacked.mean[m], one.mean, rtol=1e-6)
    np.testing.assert_allclose(stacked.std[m], one.std, rtol=1e-6)
