"""The autoencoder families' math, each against its defining property: the VQ layer
(models/quantizer), beta-TCVAE's decomposition, WAE's MMD, the IWAE bound
(objectives/) and the ex-post latent density (latent/density)."""
import io
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax.priors import density
from ae_jax.models import quantizer
from ae_jax.models.quantizer import RESTART_RNG, STATS, VectorQuantizer
from ae_jax.objectives import iwae, mmd, tcvae

# ---- VQ-VAE --------------------------------------------------------------------------------


def _vq_grads(term):
  """Gradients of sum(out.<term>) w.r.t. the codebook parameter and z_e [4, 2, 2, 3]."""
  vq = VectorQuantizer(num_codes=5, mode='codebook_loss')
  z_e = jax.random.normal(jax.random.PRNGKey(1), (4, 2, 2, 3))
  params = vq.init(jax.random.PRNGKey(0), z_e)['params']

  def loss(p, z):
    return getattr(vq.apply({'params': p}, z), term).sum()

  g_params, g_z = jax.grad(loss, argnums=(0, 1))(params, z_e)
  out = vq.apply({'params': params}, z_e)
  e = np.asarray(params['codebook'])[np.asarray(out.indices)]  # [4, 2, 2, 3]
  return np.asarray(g_params['codebook']), np.asarray(g_z), np.asarray(z_e), e, out


@pytest.mark.slow
def test_vq_commitment_gradient_reaches_only_the_encoder_output():
  g_codebook, g_z, z_e, e, _ = _vq_grads('commitment')
  np.testing.assert_array_equal(g_codebook, 0.0)
  # d/dz_e of mean over 2x2 positions and 3 channels of (z_e - e)^2
  np.testing.assert_allclose(g_z, 2 * (z_e - e) / 12, rtol=1e-5, atol=1e-7)
  assert np.abs(g_z).max() > 1e-3


@pytest.mark.slow
def test_vq_codebook_gradient_reaches_only_the_codebook():
  g_codebook, g_z, z_e, e, out = _vq_grads('codebook')
  np.testing.assert_array_equal(g_z, 0.0)
  idx = np.asarray(out.indices).reshape(-1)
  expect = np.zeros((5, 3))
  np.add.at(expect, idx, 2 * (e - z_e).reshape(-1, 3) / 12)
  np.testing.assert_allclose(g_codebook, expect, rtol=1e-5, atol=1e-7)
  assert np.abs(g_codebook).max() > 1e-3


@pytest.mark.slow
def test_vq_straight_through_passes_the_gradient_to_z_e_unchanged():
  vq = VectorQuantizer(num_codes=5, mode='codebook_loss')
  z_e = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
  w = jax.random.normal(jax.random.PRNGKey(2), (4, 3))
  params = vq.init(jax.random.PRNGKey(0), z_e)['params']
  out = vq.apply({'params': params}, z_e)
  np.testing.assert_allclose(out.quantized, params['codebook'][out.indices], atol=1e-6)
  g_params, g_z = jax.grad(
      lambda p, z: jnp.sum(w * vq.apply({'params': p}, z).quantized), argnums=(0, 1))(
          params, z_e)
  np.testing.assert_array_equal(g_z, w)
  np.testing.assert_array_equal(g_params['codebook'], 0.0)


# three codes, four vectors: two go to code 0, two to code 1, none to code 2
_CODEBOOK = np.array([[0., 0.], [10., 0.], [0., 10.]], np.float32)
_Z = np.array([[0.5, -0.5], [1.0, 0.5], [9.0, 1.0], [11.0, -1.0]], np.float32)
# code 2's count is tiny, so Laplace smoothing moves it by ~10% (it is 1e-5 relative for
# the others); the sums need not be count * code
_SIZE = np.array([2.0, 3.0, 1e-4], np.float32)
_SUM = np.array([[0.2, 0.1], [29.0, 1.0], [1e-5, 1.1e-3]], np.float32)


def _ema_by_hand(decay=0.99, eps=1e-5):
  assign = np.array([0, 0, 1, 1])
  onehot = np.eye(3)[assign]
  size = decay * _SIZE + (1 - decay) * onehot.sum(0)
  total = decay * _SUM + (1 - decay) * onehot.T @ _Z
  n = size.sum()
  smoothed = (size + eps) / (n + 3 * eps) * n
  return assign, onehot.sum(0), size, total, total / smoothed[:, None]


def _ema_apply(dead_threshold):
  vq = VectorQuantizer(num_codes=3, dead_threshold=dead_threshold)
  stats = {'codebook': _CODEBOOK, 'cluster_size': _SIZE, 'code_sum': _SUM}
  out, new = vq.apply({STATS: stats}, _Z, train=True, mutable=[STATS],
                      rngs={RESTART_RNG: jax.random.PRNGKey(3)})
  return out, {k: np.asarray(v) for k, v in new[STATS].items()}


@pytest.mark.slow
def test_vq_one_ema_step_equals_the_formula_by_hand():
  assign, counts, size, total, codebook = _ema_by_hand()
  out, new = _ema_apply(dead_threshold=0.0)
  np.testing.assert_array_equal(out.indices, assign)
  np.testing.assert_array_equal(out.counts, counts)
  np.testing.assert_allclose(out.quantized, _CODEBOOK[assign], atol=1e-6)  # the old codebook
  np.testing.assert_allclose(new['cluster_size'], size, rtol=1e-6)
  np.testing.assert_allclose(new['code_sum'], total, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(new['codebook'], codebook, rtol=1e-5)
  # evaluation changes nothing and needs no mutable collection
  vq = VectorQuantizer(num_codes=3)
  vq.apply({STATS: {'codebook': _CODEBOOK, 'cluster_size': _SIZE, 'code_sum': _SUM}}, _Z)


@pytest.mark.slow
def test_vq_dead_code_restarts_at_an_encoder_output():
  # code 2's count stays below 1: it moves to one of this batch's vectors
  _, _, size, total, codebook = _ema_by_hand()
  _, new = _ema_apply(dead_threshold=1.0)
  np.testing.assert_allclose(new['codebook'][:2], codebook[:2], rtol=1e-5)
  np.testing.assert_allclose(new['cluster_size'][:2], size[:2], rtol=1e-6)
  np.testing.assert_allclose(new['code_sum'][:2], total[:2], rtol=1e-6)
  fresh = new['codebook'][2]
  assert np.min(np.abs(_Z - fresh).sum(1)) == 0.0, fresh
  assert new['cluster_size'][2] == 1.0
  np.testing.assert_array_equal(new['code_sum'][2], fresh)


_MEANS = np.array([[-2., -2.], [-2., 2.], [2., -2.], [2., 2.]], np.float32)


def _vq_train_on_mixture(key, dead_threshold, steps=500, batch=128):
  """EMA steps on a 4-component 2-D mixture (std 0.15) -> (final codebook, last counts)."""
  vq = VectorQuantizer(num_codes=4, dead_threshold=dead_threshold)
  stats = vq.init(key, jnp.zeros((batch, 2)))[STATS]

  def step(stats, k):
    k_comp, k_noise, k_restart = jax.random.split(k, 3)
    comp = jax.random.randint(k_comp, (batch,), 0, 4)
    z = jnp.asarray(_MEANS)[comp] + 0.15 * jax.random.normal(k_noise, (batch, 2))
    out, new = vq.apply({STATS: stats}, z, train=True, mutable=[STATS],
                        rngs={RESTART_RNG: k_restart})
    return new[STATS], out.counts

  stats, counts = jax.lax.scan(step, stats, jax.random.split(jax.random.fold_in(key, 1), steps))
  return stats['codebook'], counts[-1]


@pytest.mark.slow
def test_vq_ema_with_restarts_finds_the_mixture_means():
  keys = jax.random.split(jax.random.PRNGKey(0), 8)
  for threshold in (1.0, 0.0):
    codebooks, counts = jax.jit(jax.vmap(
        lambda k, t=threshold: _vq_train_on_mixture(k, t)))(keys)
    dist = np.linalg.norm(np.asarray(codebooks)[:, :, None] - _MEANS[None, None], axis=-1)
    # [runs, codes, means]: every mean has its own code within 0.05 (a third of the
    # component's std; measured <= 0.01 after 500 steps)
    found = [(d.min(0).max() < 0.05 and len(set(d.argmin(0))) == 4) for d in dist]
    if threshold:
      assert all(found), dist.min(1).max(1)
      assert np.all(np.asarray(counts) > 0)
    else:  # without restarts, some initial codebooks leave a code unused for good
      assert not all(found) and np.any(np.asarray(counts) == 0)


@pytest.mark.slow
def test_perplexity_and_usage_on_hand_made_counts():
  uniform_half = jnp.array([5., 5., 5., 5., 0., 0., 0., 0.])
  np.testing.assert_allclose(quantizer.perplexity(uniform_half), 4.0, rtol=1e-6)
  assert float(quantizer.usage(uniform_half)) == 0.5
  skewed = jnp.array([1., 3., 0., 0.])  # entropy -(1/4 ln 1/4 + 3/4 ln 3/4)
  entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
  np.testing.assert_allclose(quantizer.perplexity(skewed), math.exp(entropy), rtol=1e-6)
  assert float(quantizer.usage(skewed)) == 0.5


# ---- beta-TCVAE ----------------------------------------------------------------------------


def _aggregate_draw(key, batch, cov, s):
  """Posteriors N(mean_n, s^2 I) with means ~ N(0, cov - s^2 I): the aggregate posterior
  is N(0, cov) for a large data set. -> z, mean, logvar [B, L]."""
  k_mean, k_z = jax.random.split(key)
  chol = np.linalg.cholesky(cov - s**2 * np.eye(len(cov))).astype(np.float32)
  mean = jax.random.normal(k_mean, (batch, len(cov))) @ chol.T
  z = mean + s * jax.random.normal(k_z, mean.shape)
  return z, mean, jnp.full(mean.shape, 2 * math.log(s))


_tc_mean = jax.jit(lambda z, m, lv, n, est: tcvae.decomposition(z, m, lv, n, est)['tc'].mean(),
                   static_argnums=4)


@pytest.mark.slow
def test_tc_is_near_zero_for_a_factorised_aggregate_posterior():
  z, mean, logvar = _aggregate_draw(jax.random.PRNGKey(0), 2048, np.eye(2), 0.3)
  assert abs(float(_tc_mean(z, mean, logvar, 1e6, 'mss'))) < 0.03  # measured -0.008
  # MWS's weights sum to 1/N: where the batch resolves q(z), TC carries (L - 1) log N
  mws = float(_tc_mean(z, mean, logvar, 1e6, 'mws'))
  assert abs(mws - math.log(1e6)) < 0.03, mws


@pytest.mark.slow
def test_tc_approaches_the_gaussian_total_correlation_as_the_batch_grows():
  cov = np.array([[1.0, 0.8], [0.8, 1.0]])
  truth = -0.5 * math.log(np.linalg.det(cov))  # unit variances: cov is the correlation
  errors = {}
  for batch in (128, 2048):
    est = [float(_tc_mean(*_aggregate_draw(jax.random.PRNGKey(r), batch, cov, 0.2), 1e6,
                          'mss')) for r in range(4)]
    errors[batch] = abs(np.mean(est) - truth)
  # measured: 0.17 at B = 128 (the log of a sparse batch estimate biases low), 0.012 at 2048
  assert errors[2048] < 0.04 and errors[2048] < errors[128] / 3, errors


@pytest.mark.slow
def test_mi_tc_dwkl_sum_to_the_kl_in_expectation():
  key_m, key_v, key_z = jax.random.split(jax.random.PRNGKey(5), 3)
  b, units = 4096, 3
  mean = jax.random.normal(key_m, (b, units))
  logvar = jax.random.uniform(key_v, (b, units), minval=-2.0, maxval=0.5)
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key_z, (b, units))
  t = tcvae.loss_terms(z[:256], mean[:256], logvar[:256], 60000)
  d = tcvae.log_densities(z[:256], mean[:256], logvar[:256], 60000)
  # per sample, exactly log q(z|x) - log p(z) (to float rounding)
  np.testing.assert_allclose(t['weighted_kl'], d.log_qz_x - d.log_pz, atol=1e-4)
  np.testing.assert_allclose(t['mi'] + t['tc'] + t['dwkl'], t['weighted_kl'], atol=1e-5)
  # and on average the analytic KL(q(z|x) || N(0, I)): within 4 standard errors
  one_sample = np.asarray(tcvae.log_normal_units(z, mean, logvar).sum(-1)
                          - tcvae.log_normal_units(z, 0.0, 0.0).sum(-1))
  kl = np.asarray((0.5 * (jnp.exp(logvar) + mean**2 - 1 - logvar)).sum(-1))
  diff = one_sample - kl
  assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(b), (diff.mean(), diff.std())


@pytest.mark.slow
def test_mws_is_mss_minus_log_b_when_the_batch_is_the_data_set():
  z, mean, logvar = _aggregate_draw(jax.random.PRNGKey(2), 64, np.eye(3), 0.5)
  a = tcvae.log_densities(z, mean, logvar, 64, 'mss')
  b = tcvae.log_densities(z, mean, logvar, 64, 'mws')
  np.testing.assert_allclose(b.log_qz, a.log_qz - math.log(64), rtol=1e-6)
  np.testing.assert_allclose(b.log_qz_prod, a.log_qz_prod - 3 * math.log(64), rtol=1e-6)


@pytest.mark.slow
def test_tc_latent_mask_matches_the_model_without_the_masked_units():
  z, mean, logvar = _aggregate_draw(jax.random.PRNGKey(3), 64, np.eye(4), 0.5)
  keep = np.array([1., 0., 1., 0.], np.float32)
  for est in tcvae.ESTIMATORS:
    masked = tcvae.decomposition(z, mean, logvar, 1000, est, latent_mask=jnp.asarray(keep))
    small = tcvae.decomposition(z[:, ::2], mean[:, ::2], logvar[:, ::2], 1000, est)
    for k in ('mi', 'tc', 'dwkl'):
      np.testing.assert_allclose(masked[k], small[k], rtol=1e-5, atol=1e-5)


# ---- WAE-MMD -------------------------------------------------------------------------------


def _mmd_reference(x, y, scales=(0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)):
  """The unbiased MMD^2 written out with loops, float64."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  n, units = x.shape

  def k(a, b):
    return sum(s * 2 * units / (s * 2 * units + np.sum((a - b) ** 2)) for s in scales)

  xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  xy = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / (n * n)
  return xx + yy - 2 * xy


@pytest.mark.slow
def test_mmd_equals_a_plain_reference():
  kx, ky = jax.random.split(jax.random.PRNGKey(0))
  x = 0.7 * jax.random.normal(kx, (16, 3)) + 0.3
  y = jax.random.normal(ky, (16, 3))
  np.testing.assert_allclose(float(mmd.mmd2(x, y)), _mmd_reference(x, y), atol=1e-5)
  np.testing.assert_allclose(float(mmd.mmd2_per_example(x, y).mean()),
                             _mmd_reference(x, y), atol=1e-5)


@pytest.mark.slow
def test_mmd_is_zero_on_average_for_prior_codes_and_positive_for_shifted_ones():
  f = jax.jit(jax.vmap(lambda k, shift: mmd.mmd2(
      jax.random.normal(jax.random.fold_in(k, 0), (256, 8)) + shift,
      jax.random.normal(jax.random.fold_in(k, 1), (256, 8))), in_axes=(0, None)))
  keys = jax.random.split(jax.random.PRNGKey(1), 32)
  null = np.asarray(f(keys, 0.0))
  assert np.abs(null).max() < 0.03, null  # small on every batch (measured: sd 0.006)
  assert abs(null.mean()) < 3 * null.std() / math.sqrt(len(null))  # unbiased: mean ~ 0
  shifted = np.asarray(f(keys, 0.5))  # every unit shifted by half a prior sd
  # measured: 0.18 at least, 30 null sds
  assert shifted.min() > 10 * null.std() and shifted.min() > np.abs(null).max()


@pytest.mark.slow
def test_mmd_latent_mask_matches_the_smaller_latent():
  kx, ky = jax.random.split(jax.random.PRNGKey(2))
  x, y = jax.random.normal(kx, (32, 4)) + 0.5, jax.random.normal(ky, (32, 4))
  keep = jnp.array([1., 1., 0., 1.])
  np.testing.assert_allclose(mmd.mmd2(x, y, latent_mask=keep),
                             mmd.mmd2(x[:, [0, 1, 3]], y[:, [0, 1, 3]]), rtol=1e-6)


# ---- IWAE ----------------------------------------------------------------------------------
# Linear-Gaussian toy: p(z) = N(0, I_2), p(x|z) = N(A z + c, sig^2 I_3), so
# p(x) = N(c, A A^T + sig^2 I) in closed form. q(z|x) is a fixed diagonal Gaussian that
# is not the true posterior, so the bound has a gap for the samples to close.

_A = np.array([[1.0, 0.5], [-0.3, 0.8], [0.6, -1.2]], np.float32)
_C = np.array([0.1, -0.2, 0.3], np.float32)
_SIG = 0.5


def _toy():
  x = np.array([[0.5, 1.0, -0.7], [-1.0, 0.2, 0.4]], np.float32)  # two examples
  cov_x = _A @ _A.T + _SIG**2 * np.eye(3)
  diff = x - _C
  log_px = -0.5 * (3 * math.log(2 * math.pi) + np.linalg.slogdet(cov_x)[1]
                   + np.einsum('bi,ij,bj->b', diff, np.linalg.inv(cov_x), diff))
  # q: the true posterior's mean shifted by 0.3, and twice its precision's diagonal inverse
  # as a diagonal variance (too wide, so the weights stay bounded and L_K converges fast)
  prec = np.eye(2) + _A.T @ _A / _SIG**2
  post_mean = diff @ _A @ np.linalg.inv(prec).T / _SIG**2
  mean = jnp.asarray(post_mean + 0.3, jnp.float32)
  logvar = jnp.asarray(np.log(2.0 / np.diag(prec)) * np.ones((2, 1)), jnp.float32)
  return jnp.asarray(x), mean, logvar, log_px


def _log_weights(x, draws):
  recon = jnp.einsum('kbl,dl->kbd', draws.z, _A) + _C  # [K, B, 3]
  log_lik = -0.5 * (3 * math.log(2 * math.pi * _SIG**2)
                    + jnp.sum(jnp.square(x[None] - recon), -1) / _SIG**2)
  return log_lik + draws.log_p - draws.log_q  # [K, B]


def _mean_bound(key, num_samples, repeats=400):
  x, mean, logvar, _ = _toy()
  return jax.vmap(lambda k: iwae.bound(_log_weights(
      x, iwae.sample_posterior(k, mean, logvar, num_samples))))(
          jax.random.split(key, repeats)).mean(0)  # [B]


@pytest.mark.slow
def test_iwae_with_one_sample_is_the_elbo():
  x, mean, logvar, _ = _toy()
  draws = iwae.sample_posterior(jax.random.PRNGKey(0), mean, logvar, 1)
  lw = _log_weights(x, draws)
  np.testing.assert_array_equal(iwae.bound(lw), lw[0])
  # the Gaussian log-densities are the textbook ones
  z = np.asarray(draws.z[0], np.float64)
  var = np.exp(np.asarray(logvar, np.float64))
  log_q = -0.5 * np.sum(np.log(2 * np.pi * var) + (z - np.asarray(mean)) ** 2 / var, -1)
  np.testing.assert_allclose(draws.log_q[0], log_q, rtol=1e-5)
  np.testing.assert_allclose(draws.log_p[0], -0.5 * np.sum(np.log(2 * np.pi) + z**2, -1),
                             rtol=1e-5)
  # averaged, the analytic ELBO: E_q log p(x|z) - KL(q || p)
  m, v = np.asarray(mean, np.float64), var
  resid = np.asarray(x) - m @ _A.T - _C
  exp_lik = -0.5 * (3 * math.log(2 * math.pi * _SIG**2)
                    + (np.sum(resid**2, -1) + np.einsum('dl,bl->b', _A**2, v)) / _SIG**2)
  elbo = exp_lik - 0.5 * np.sum(v + m**2 - 1 - np.log(v), -1)
  np.testing.assert_allclose(_mean_bound(jax.random.PRNGKey(1), 1, 4000), elbo, atol=0.05)


@pytest.mark.slow
def test_iwae_bound_rises_with_k_towards_log_px():
  *_, log_px = _toy()
  # the same 400 keys for every K (and draw k from fold_in(key, k)): common random numbers
  bounds = np.stack([_mean_bound(jax.random.PRNGKey(2), k) for k in (1, 2, 5, 20, 100, 1000)])
  gaps = log_px - bounds  # measured: 0.82, 0.92 at K = 1; 0.003, -0.001 at K = 1000
  assert np.all(np.diff(bounds[:-1], axis=0) > 0), gaps  # rising on average up to K = 100
  assert np.all(gaps > -0.02), gaps  # a lower bound, up to the average's noise (~0.005)
  assert np.all(np.abs(gaps[-1]) < 0.02) and np.all(gaps[-1] < gaps[0] / 20), gaps


@pytest.mark.slow
def test_iwae_masked_k_max_equals_unmasked_k_exactly():
  x, mean, logvar, _ = _toy()
  key = jax.random.PRNGKey(3)
  lw_max = _log_weights(x, iwae.sample_posterior(key, mean, logvar, 64))  # [64, 2]
  lw_max = jnp.concatenate([lw_max, 50.0 * lw_max], axis=1)  # [64, 4]: small and big spreads
  for k in (1, 5):
    np.testing.assert_array_equal(  # the first k of K_max draws are the k draws
        _log_weights(x, iwae.sample_posterior(key, mean, logvar, k)), lw_max[:k, :2])
  bound = jax.jit(iwae.bound)
  for k in range(1, 65):  # a sum's association order can change with its length
    np.testing.assert_array_equal(bound(lw_max, iwae.sample_mask(k, 64)), bound(lw_max[:k]),
                                  err_msg=f'K = {k}')
  # a mask that is not a prefix: the bound of the kept samples, and no gradient to the rest
  keep = jnp.zeros(64).at[jnp.array([2, 7, 11])].set(1.0)
  np.testing.assert_array_equal(bound(lw_max, keep), bound(lw_max[jnp.array([2, 7, 11])]))
  grad = jax.grad(lambda w: iwae.bound(w, keep).sum())(lw_max)
  assert np.all(np.asarray(grad)[np.asarray(keep) == 0] == 0)


# ---- ex-post density -----------------------------------------------------------------------

_W3 = np.array([0.2, 0.3, 0.5])
_M3 = np.array([[-4.0, 0.0], [0.0, 3.0], [4.0, -1.0]])


def _mixture_codes(n=3000, seed=0):
  rng = np.random.default_rng(seed)
  comp = rng.choice(3, size=n, p=_W3)
  return (_M3[comp] + rng.standard_normal((n, 2)) * 0.5).astype(np.float32)


def test_gmm_recovers_the_weights_and_means_of_a_known_mixture():
  params = density.fit(_mixture_codes(), 'gmm', num_components=3, seed=0)
  order = np.argsort(params['means_'][:, 0])  # components matched by their first coordinate
  # 3000 codes: sampling sd ~0.008 for a weight, ~0.02 for a mean coordinate (measured
  # errors: 0.009 and 0.035 at most)
  np.testing.assert_allclose(params['weights_'][order], _W3, atol=0.03)
  np.testing.assert_allclose(params['means_'][order], _M3, atol=0.1)


@pytest.mark.slow
def test_density_sampling_is_reproducible_and_follows_the_fit():
  codes = _mixture_codes()
  for kind in density.KINDS:
    params = density.fit(codes.reshape(-1, 1, 2), kind, num_components=3)
    a, b = density.sample(params, 500, seed=7), density.sample(params, 500, seed=7)
    assert a.shape == (500, 1, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, density.sample(params, 500, seed=8))
  gauss = density.fit(codes, 'gaussian')
  many = density.sample(gauss, 20000, seed=0)
  np.testing.assert_allclose(many.mean(0), codes.mean(0), atol=0.06)
  np.testing.assert_allclose(np.cov(many.T), np.cov(codes.T), rtol=0.05, atol=0.05)
  cold = density.sample(gauss, 10, seed=0, temperature=0.0)
  np.testing.assert_allclose(cold, np.broadcast_to(gauss['mean'], cold.shape), atol=1e-6)


@pytest.mark.parametrize('covariance_type', density.COVARIANCE_TYPES)
def test_gmm_round_trips_through_npz_exactly(covariance_type):
  from sklearn.mixture import GaussianMixture
  codes = _mixture_codes(600)
  gmm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(codes)
  params = density.from_mixture(gmm, (2,))
  buf = io.BytesIO()
  np.savez(buf, **params)
  buf.seek(0)
  with np.load(buf, allow_pickle=False) as f:
    loaded = dict(f)
  assert loaded.keys() == params.keys()
  for k in params:
    np.testing.assert_array_equal(loaded[k], params[k])
  rebuilt = density.to_mixture(loaded)
  for name, value in vars(gmm).items():
    np.testing.assert_array_equal(getattr(rebuilt, name), value, err_msg=name)
  np.testing.assert_array_equal(rebuilt.score_samples(codes), gmm.score_samples(codes))
  np.testing.assert_array_equal(density.sample(loaded, 50, seed=1),
                                density.sample(params, 50, seed=1))
