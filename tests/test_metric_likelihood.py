"""The IWAE estimate on a linear-Gaussian VAE, whose exact log p(x) is known:
p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), so p(x) = N(b, W W^T + s^2 I). With
W = U diag(d) (U orthonormal) the exact posterior is diagonal."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ae_jax.metrics import likelihood

P, L, SIGMA = 12, 3, 0.3


@pytest.fixture(scope='module')
def model():
  rng = np.random.default_rng(0)
  U = np.linalg.qr(rng.normal(size=(P, L)))[0]
  d = np.array([2.0, 1.0, 0.5])
  W, b = U * d, rng.normal(size=P) * 0.1
  x = (rng.normal(size=(200, L)) @ W.T + b + SIGMA * rng.normal(size=(200, P)))
  exact = stats.multivariate_normal(b, W @ W.T + SIGMA**2 * np.eye(P)).logpdf(x)
  post_var = SIGMA**2 / (d**2 + SIGMA**2)
  post_mean = ((x - b) @ U) * (d / (d**2 + SIGMA**2))
  return dict(W=W, b=b, x=jnp.asarray(x, jnp.float32), exact=exact,
              mean=jnp.asarray(post_mean, jnp.float32),
              logvar=jnp.asarray(np.log(post_var), jnp.float32))


def _log_px(m):
  W, b = jnp.asarray(m['W'], jnp.float32), jnp.asarray(m['b'], jnp.float32)
  logvar = jnp.full((P,), 2 * math.log(SIGMA), jnp.float32)
  return lambda x, z: likelihood.log_normal(x, z @ W.T + b, jnp.broadcast_to(logvar, x.shape))


@pytest.mark.slow
@pytest.mark.parametrize('k', [1, 10, 1000])
def test_the_exact_posterior_gives_log_p_x_for_every_k(model, k):
  est = likelihood.iwae(jax.random.PRNGKey(0), model['x'], lambda x: (model['mean'],
                                                                      model['logvar']),
                        _log_px(model), k, chunk=64)
  np.testing.assert_allclose(est, model['exact'], rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_a_perturbed_posterior_is_bounded_and_tightens_with_k(model):
  mean = model['mean'] + 0.3
  logvar = model['logvar'] + 0.7
  enc = lambda x: (mean, logvar)
  ks = (1, 4, 16, 64, 1000)
  est = {k: float(np.mean(likelihood.iwae(jax.random.PRNGKey(k), model['x'], enc,
                                          _log_px(model), k, chunk=50))) for k in ks}
  exact = float(np.mean(model['exact']))
  values = [est[k] for k in ks]
  # rises with K (each step well above the Monte Carlo noise of a 200-image mean) ...
  assert all(b - a > 0.02 for a, b in zip(values[:-1], values[1:-1])), est
  assert values[-1] <= exact + 0.01  # ... and stays a lower bound
  assert exact - values[-1] < 0.05 * (exact - values[0])  # far closer than the ELBO


@pytest.mark.slow
def test_chunking_does_not_change_the_estimate(model):
  enc = lambda x: (model['mean'] + 0.2, model['logvar'])
  a = likelihood.iwae(jax.random.PRNGKey(3), model['x'], enc, _log_px(model), 300, chunk=300)
  b = likelihood.iwae(jax.random.PRNGKey(3), model['x'], enc, _log_px(model), 300, chunk=7)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_bits_per_dimension_conventions():
  assert likelihood.bits_per_dim(math.log(2.0) * 10, 10) == pytest.approx(1.0)
  assert likelihood.bits_per_dim_8bit(math.log(2.0) * 10, 10) == pytest.approx(9.0)
