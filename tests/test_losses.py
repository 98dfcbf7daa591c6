import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import losses
from ae_jax.models import ModelOutput


@pytest.mark.slow
def test_mse_and_l1_by_hand():
  x = jnp.array([[[[0.0], [1.0]]]])          # [1, 1, 2, 1]
  r = jnp.array([[[[0.5], [0.25]]]])
  assert np.isclose(losses.mse(r, x, 'sum')[0], 0.25 + 0.5625)
  assert np.isclose(losses.mse(r, x, 'mean')[0], (0.25 + 0.5625) / 2)
  assert np.isclose(losses.l1(r, x, 'sum')[0], 0.5 + 0.75)
  assert np.isclose(losses.l1(r, x, 'mean')[0], 0.625)


@pytest.mark.slow
def test_bce_with_logits_by_hand():
  x = jnp.array([[[[1.0], [0.0], [0.5]]]])
  logits = jnp.array([[[[0.0], [2.0], [-1.0]]]])
  p = 1 / (1 + np.exp(-np.array([0.0, 2.0, -1.0])))
  t = np.array([1.0, 0.0, 0.5])
  expected = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum()
  assert np.isclose(losses.bce_with_logits(logits, x, 'sum')[0], expected, rtol=1e-6)


def test_gaussian_nll_by_hand():
  x = jnp.array([[[[0.3], [0.9]]]])
  r = jnp.array([[[[0.1], [1.0]]]])
  s = 0.2
  expected = sum(0.5 * ((a - b) / s) ** 2 + 0.5 * math.log(2 * math.pi * s * s)
                 for a, b in [(0.3, 0.1), (0.9, 1.0)])
  assert np.isclose(losses.gaussian_nll(r, x, s, 'sum')[0], expected, rtol=1e-6)


def test_kl_closed_form_by_hand():
  mean = jnp.array([[0.0, 1.0]])
  logvar = jnp.array([[0.0, math.log(4.0)]])
  # unit 1: 0; unit 2: 0.5 * (4 + 1 - 1 - log 4)
  assert np.isclose(losses.kl_divergence(mean, logvar)[0], 0.5 * (4 - math.log(4.0)))


@pytest.mark.slow
def test_kl_matches_monte_carlo():
  mean = jnp.array([[0.7, -1.2, 0.1]])
  logvar = jnp.array([[-0.5, 0.8, -2.0]])
  std = jnp.exp(0.5 * logvar)
  z = mean + std * jax.random.normal(jax.random.PRNGKey(0), (400_000, 3))
  log_q = jax.scipy.stats.norm.logpdf(z, mean, std).sum(-1)
  log_p = jax.scipy.stats.norm.logpdf(z).sum(-1)
  mc = float(jnp.mean(log_q - log_p))
  assert abs(mc - float(losses.kl_divergence(mean, logvar)[0])) < 0.02


@pytest.mark.slow
def test_kl_of_spatial_latent_sums_every_unit():
  mean = jnp.ones((2, 3, 3, 4))
  logvar = jnp.zeros((2, 3, 3, 4))
  np.testing.assert_allclose(losses.kl_divergence(mean, logvar), [18.0, 18.0])


def test_kl_warmup_is_linear_then_flat():
  w = [float(losses.kl_weight(4.0, e, 2.0)) for e in (0.0, 1.0, 2.0, 5.0)]
  assert w == [0.0, 2.0, 4.0, 4.0]
  assert float(losses.kl_weight(4.0, 0.0, 0.0)) == 4.0


@pytest.mark.slow
def test_terms_beta_weighs_kl_and_ae_has_no_kl():
  x = jnp.full((2, 2, 2, 1), 0.5)
  out = ModelOutput(recon=x * 0, logits=x * 0, mean=jnp.ones((2, 3)), logvar=jnp.zeros((2, 3)),
                    z=jnp.ones((2, 3)))
  cfg = losses.LossSpec(reconstruction='mse', reduction='sum', nll_sigma=0.1)
  t = losses.terms(out, x, cfg, 10.0)
  np.testing.assert_allclose(t['recon'], [1.0, 1.0])
  np.testing.assert_allclose(t['kl'], [1.5, 1.5])
  np.testing.assert_allclose(t['loss'], [16.0, 16.0])
  assert 'neg_elbo' not in t  # not recon + kl in general: metrics.core computes it
  t_ae = losses.terms(out._replace(logvar=None), x, cfg, 10.0)
  np.testing.assert_allclose(t_ae['loss'], t_ae['recon'])


@pytest.mark.parametrize('kind,reduction', [('mse', 'sum'), ('mse', 'mean'), ('l1', 'sum'),
                                            ('gaussian_nll', 'mean'), ('bce', 'sum'),
                                            ('log_mse', 'sum'), ('log_mse', 'mean')])
def test_neg_elbo_is_the_likelihood_the_loss_implies_whatever_the_reduction(kind, reduction):
  """-ELBO = -log p(x|z) summed over pixels + KL, with scipy's densities: mse is a Gaussian
  with variance 1/2, l1 a Laplace with scale 1, bce a Bernoulli (on the logits)."""
  from scipy import stats
  from ae_jax.metrics import core
  rng = np.random.default_rng(0)
  x = rng.random((3, 4, 4, 2)).astype(np.float32)
  recon = rng.random((3, 4, 4, 2)).astype(np.float32)
  logits = rng.normal(size=(3, 4, 4, 2)).astype(np.float32)
  mean, logvar = rng.normal(size=(3, 5)), rng.normal(size=(3, 5)) * 0.3
  out = ModelOutput(recon=jnp.asarray(recon), logits=jnp.asarray(logits), mean=jnp.asarray(mean),
                    logvar=jnp.asarray(logvar), z=jnp.asarray(mean))
  cfg = type('C', (), {'reconstruction': kind, 'reduction': reduction, 'nll_sigma': 0.2})
  per_image_sd = np.sqrt(np.mean((x - recon) ** 2, axis=(1, 2, 3))
                         + losses.LOG_MSE_FLOOR)[:, None, None, None]
  logp = {
      'log_mse': stats.norm.logpdf(x, recon, per_image_sd),
      'mse': stats.norm.logpdf(x, recon, np.sqrt(0.5)),
      'l1': stats.laplace.logpdf(x, recon, 1.0),
      'gaussian_nll': stats.norm.logpdf(x, recon, 0.2),
      'bce': x * np.log(1 / (1 + np.exp(-logits))) + (1 - x) * np.log(1 / (1 + np.exp(logits))),
  }[kind].reshape(3, -1).sum(1)
  kl = 0.5 * (np.exp(logvar) + mean**2 - 1 - logvar).sum(1)
  np.testing.assert_allclose(core.neg_elbo_terms(out, jnp.asarray(x), cfg), -logp + kl,
                             rtol=2e-5)


@pytest.mark.parametrize('name', ['nope'])
def test_unknown_reconstruction_raises(name):
  with pytest.raises(ValueError, match='nope'):
    losses.reconstruction(name, None, None, 'sum')


def _cfg(**kw):
  return losses.LossSpec(**{'reconstruction': 'mse', 'reduction': 'sum', 'nll_sigma': 0.1, **kw})


def _pair(shape=(3, 32, 32, 3), seed=0):
  rng = np.random.default_rng(seed)
  x = rng.random(shape).astype(np.float32)
  r = np.clip(x + 0.1 * rng.normal(size=shape), 0, 1).astype(np.float32)
  return jnp.asarray(r), jnp.asarray(x)


@pytest.mark.parametrize('reduction', ['sum', 'mean'])
def test_log_mse_is_half_the_pixel_count_times_log_mse_and_tracks_psnr(reduction):
  r, x = _pair()
  mse = np.mean((np.asarray(r) - np.asarray(x)) ** 2, axis=(1, 2, 3))
  scale = 0.5 * 32 * 32 * 3 if reduction == 'sum' else 0.5
  floor = (1 / 255) ** 2 / 12  # 8-bit rounding noise
  np.testing.assert_allclose(losses.log_mse(r, x, reduction), scale * np.log(mse + floor),
                             rtol=1e-5)
  # a perfect reconstruction is worth the 8-bit limit (58.9 dB), no more
  np.testing.assert_allclose(-losses.log_mse(x, x, 'mean') * 20 / np.log(10),
                             10 * np.log10(12 * 255 ** 2), rtol=1e-5)
  # minus the mean PSNR (dB) up to an affine map: lower loss <=> higher mean PSNR
  psnr = 10 * np.log10(1 / (mse + floor))
  np.testing.assert_allclose(-np.asarray(losses.log_mse(r, x, 'mean')) * 20 / np.log(10), psnr,
                             rtol=1e-5)


@pytest.mark.slow
def test_extra_terms_are_weighted_per_pixel_averages_added_to_the_loss_only():
  import dm_pix as pix
  from ae_jax.metrics.ms_ssim import ms_ssim
  r, x = _pair()
  out = ModelOutput(recon=r, logits=r, mean=jnp.zeros((3, 2)), logvar=None, z=None)
  base = losses.terms(out, x, _cfg(), 1.0)
  p = 32 * 32 * 3
  ssim = np.asarray(pix.ssim(r, x, max_val=1.0))
  cases = {'ssim_weight': 1 - ssim, 'ms_ssim_weight': 1 - np.asarray(ms_ssim(r, x, floor=1e-3)),
           'fft_weight': np.asarray(losses.focal_frequency_loss(r, x))}
  for key, per_image in cases.items():
    for reduction, scale in (('sum', p), ('mean', 1.0)):
      t = losses.terms(out, x, _cfg(reduction=reduction, **{key: 0.3}), 1.0)
      ref = losses.terms(out, x, _cfg(reduction=reduction), 1.0)
      np.testing.assert_allclose(t['recon'], ref['recon'])  # the likelihood term is unchanged
      np.testing.assert_allclose(t['loss'] - ref['loss'], 0.3 * scale * per_image, rtol=2e-4,
                                 err_msg=key)
  assert np.all(np.asarray(base['loss']) == np.asarray(base['recon']))


@pytest.mark.slow
def test_focal_frequency_loss_against_numpy_and_zero_at_the_target():
  r, x = _pair((2, 8, 8, 3), seed=1)
  fr = np.fft.fft2(np.asarray(r, np.float64), axes=(1, 2), norm='ortho')
  fx = np.fft.fft2(np.asarray(x, np.float64), axes=(1, 2), norm='ortho')
  d = np.abs(fr - fx) ** 2
  w = np.sqrt(d) / np.sqrt(d).max(axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(losses.focal_frequency_loss(r, x), (w * d).mean((1, 2, 3)),
                             rtol=1e-4)
  np.testing.assert_allclose(losses.focal_frequency_loss(x, x), 0.0, atol=1e-12)


@pytest.mark.slow
def test_every_extra_term_has_finite_gradients_that_lower_it():
  r, x = _pair()
  far = jnp.asarray(np.random.default_rng(2).normal(size=r.shape).astype(np.float32))
  for key in ('ssim_weight', 'ms_ssim_weight', 'fft_weight'):  # an untrained model's output
    g = jax.grad(lambda rr, key=key: losses.extra_terms(rr, x, _cfg(**{key: 1.0})).sum())(far)
    assert np.all(np.isfinite(np.asarray(g))), key
  for key in ('ssim_weight', 'ms_ssim_weight', 'fft_weight'):
    cfg = _cfg(**{key: 1.0})
    f = lambda rr, cfg=cfg: losses.extra_terms(rr, x, cfg).sum()
    g = jax.grad(f)(r)
    assert np.all(np.isfinite(np.asarray(g))), key
    assert float(f(r - 1e-3 * g / jnp.linalg.norm(g))) < float(f(r)), key
