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
  np.testing.assert_allclose(t['neg_elbo'], [2.5, 2.5])
  t_ae = losses.terms(out._replace(logvar=None), x, cfg, 10.0)
  np.testing.assert_allclose(t_ae['loss'], t_ae['recon'])


@pytest.mark.parametrize('name', ['nope'])
def test_unknown_reconstruction_raises(name):
  with pytest.raises(ValueError, match='nope'):
    losses.reconstruction(name, None, None, 'sum')
