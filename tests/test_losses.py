import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import losses
from ae_jax.models import ModelOutput


def test_mse_and_l1_by_hand():
  x = jnp.array([[[[0.0], [1.0]]]])          # [1, 1, 2, 1]
  r = jnp.array([[[[0.5], [0.25]]]])
  assert np.isclose(losses.mse(r, x, 'sum')[0], 0.25 + 0.5625)
  assert np.isclose(losses.mse(r, x, 'mean')[0], (0.25 + 0.5625) / 2)
  assert np.isclose(losses.l1(r, x, 'sum')[0], 0.5 + 0.75)
  assert np.isclose(losses.l1(r, x, 'mean')[0], 0.625)


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


def test_kl_matches_monte_carlo():
  mean = jnp.array([[0.7, -1.2, 0.1]])
  logvar = jnp.array([[-0.5, 0.8, -2.0]])
  std = jnp.exp(0.5 * logvar)
  z = mean + std * jax.random.normal(jax.random.PRNGKey(0), (400_000, 3))
  log_q = jax.scipy.stats.norm.logpdf(z, mean, std).sum(-1)
  log_p = jax.scipy.stats.norm.logpdf(z).sum(-1)
  mc = float(jnp.mean(log_q - log_p))
  assert abs(mc - float(losses.kl_divergence(mean, logvar)[0])) < 0.02


def test_kl_of_spatial_latent_sums_every_unit():
  mean = jnp.ones((2, 3, 3, 4))
  logvar = jnp.zeros((2, 3, 3, 4))
  np.testing.assert_allclose(losses.kl_divergence(mean, logvar), [18.0, 18.0])


def test_kl_warmup_is_linear_then_flat():
  w = [float(losses.kl_weight(4.0, e, 2.0)) for e in (0.0, 1.0, 2.0, 5.0)]
  assert w == [0.0, 2.0, 4.0, 4.0]
  assert float(losses.kl_weight(4.0, 0.0, 0.0)) == 4.0


def test_terms_beta_weighs_kl_and_ae_has_no_kl():
  x = jnp.full((2, 2, 2, 1), 0.5)
  out = ModelOutput(recon=x * 0, logits=x * 0, mean=jnp.ones((2, 3)), logvar=jnp.zeros((2, 3)),
                    z=jnp.ones((2, 3)))
  cfg = type('C', (), {'reconstruction': 'mse', 'reduction': 'sum', 'nll_sigma': 0.1})
  t = losses.terms(out, x, cfg, 10.0)
  np.testing.assert_allclose(t['recon'], [1.0, 1.0])
  np.testing.assert_allclose(t['kl'], [1.5, 1.5])
  np.testing.assert_allclose(t['loss'], [16.0, 16.0])
  assert 'neg_elbo' not in t  # not recon + kl in general: metrics.core computes it
  t_ae = losses.terms(out._replace(logvar=None), x, cfg, 10.0)
  np.testing.assert_allclose(t_ae['loss'], t_ae['recon'])


@pytest.mark.parametrize('kind,reduction', [('mse', 'sum'), ('mse', 'mean'), ('l1', 'sum'),
                                            ('gaussian_nll', 'mean'), ('bce', 'sum')])
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
  logp = {
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
