"""The PCA baseline against scikit-learn's PCA, and the optimality it stands for."""
import numpy as np
import pytest
from sklearn.decomposition import PCA as SkPCA

from ae_jax.metrics import pca


@pytest.mark.parametrize('n,shape', [(40, (6, 6, 3)), (300, (4, 4, 1)), (5000, (2, 2, 3))])
def test_reconstruction_matches_scikit_learn(n, shape):
  rng = np.random.default_rng(0)
  x = rng.random((n, *shape)).astype(np.float32) * 0.5 + 0.25  # inside [0, 1]: no clipping
  L = 5
  ours = pca.reconstruct(pca.fit(x, L), x)
  flat = x.reshape(n, -1)
  sk = SkPCA(L, svd_solver='full').fit(flat)
  ref = sk.inverse_transform(sk.transform(flat)).reshape(x.shape)
  np.testing.assert_allclose(ours, np.clip(ref, 0, 1), atol=2e-4)


def test_error_falls_with_the_code_size_and_full_rank_is_exact():
  rng = np.random.default_rng(1)
  x = rng.random((60, 3, 3, 2)).astype(np.float32)
  errs = [np.mean((pca.reconstruct(pca.fit(x, L), x) - x) ** 2) for L in (1, 4, 9, 18)]
  assert all(a > b for a, b in zip(errs, errs[1:]))
  assert errs[-1] < 1e-9


def test_pca_beats_a_random_projection_on_data_near_a_subspace():
  rng = np.random.default_rng(2)
  basis = np.linalg.qr(rng.normal(size=(48, 4)))[0]  # a 4-d subspace of 48-d images
  train = 0.5 + 0.1 * rng.normal(size=(500, 4)) @ basis.T + 0.005 * rng.normal(size=(500, 48))
  test = 0.5 + 0.1 * rng.normal(size=(200, 4)) @ basis.T + 0.005 * rng.normal(size=(200, 48))
  model = pca.fit(train.reshape(500, 4, 4, 3), 4)
  err = np.mean((pca.reconstruct(model, test.reshape(200, 4, 4, 3)).reshape(200, -1) - test) ** 2)
  q = np.linalg.qr(rng.normal(size=(48, 4)))[0]  # a random 4-d projection, same mean
  m = train.mean(0)
  rand = np.mean(((test - m) @ q @ q.T + m - test) ** 2)
  assert err < 0.1 * rand
  assert err < 3e-5  # what is left is the off-subspace noise (44/48 * 0.005^2)
