"""Fréchet distance, precision/recall and the cached dataset classifier.

References: the closed-form FD between Gaussians with the matrix root taken by
eigendecomposition (not scipy.linalg.sqrtm); FD of a pure shift = its squared norm;
precision/recall recomputed with sklearn's NearestNeighbors and scipy's cdist; the
classifier's accuracy recomputed from its logits on the digits held-out split.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors

from ae_jax import data
from ae_jax.data import wafer
from ae_jax.errors import ConfigError
from ae_jax.evaluate import evaluate_workdir
from ae_jax.inference import load
from ae_jax.metrics import sample_quality as sq


def _psd_sqrt(c):
  w, v = np.linalg.eigh(c)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _closed_form(m1, c1, m2, c2):
  """FD(N(m1, C1), N(m2, C2)) = |m1 - m2|^2 + tr C1 + tr C2 - 2 tr (C1^½ C2 C1^½)^½."""
  r1 = _psd_sqrt(c1)
  return float(np.sum((m1 - m2)**2) + np.trace(c1) + np.trace(c2)
               - 2 * np.trace(_psd_sqrt(r1 @ c2 @ r1)))


def _spd(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def test_fd_from_stats_matches_the_closed_form():
  rng = np.random.default_rng(0)
  for d in (1, 3, 16):
    m1, m2, c1, c2 = rng.normal(size=d), rng.normal(size=d), _spd(rng, d), _spd(rng, d)
    assert sq.frechet_distance_from_stats(m1, c1, m2, c2) == pytest.approx(
        _closed_form(m1, c1, m2, c2), rel=1e-8, abs=1e-10)
  # Commuting (diagonal) covariances: sum (sqrt a - sqrt b)^2 + |dm|^2.
  a, b = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
  assert sq.frechet_distance_from_stats(np.zeros(5), np.diag(a), np.ones(5), np.diag(b)) == (
      pytest.approx(5 + np.sum((np.sqrt(a) - np.sqrt(b))**2), rel=1e-10))


def test_fd_equals_the_reference_sqrtm_formula():
  """pytorch-fid's computation, tr sqrtm(S1 S2) by scipy's Schur method, on wide sample
  covariances (64 features from 200 samples each): the same value to round-off."""
  rng = np.random.default_rng(5)
  x = rng.normal(size=(200, 64)) @ rng.normal(size=(64, 64))
  y = x + rng.normal(size=x.shape)
  c1, c2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  diff = x.mean(0) - y.mean(0)
  reference = (diff @ diff + np.trace(c1) + np.trace(c2)
               - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2).real))
  assert sq.frechet_distance(x, y) == pytest.approx(reference, rel=1e-8)


def test_fd_of_samples_estimates_the_gaussians_distance():
  rng = np.random.default_rng(1)
  d = 4
  m1, m2, c1, c2 = rng.normal(size=d), rng.normal(size=d), _spd(rng, d), _spd(rng, d)
  x = rng.multivariate_normal(m1, c1, 40_000)
  y = rng.multivariate_normal(m2, c2, 40_000)
  truth = _closed_form(m1, c1, m2, c2)
  assert sq.frechet_distance(x, y) == pytest.approx(truth, rel=0.03)


def test_fd_of_a_shift_is_its_squared_norm_and_grows_with_it():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8))
  assert abs(sq.frechet_distance(x, x)) < 1e-8
  prev = 0.0
  for s in (0.1, 0.5, 2.0):
    shift = s * rng.normal(size=8)
    fd = sq.frechet_distance(x, x + shift)  # same sample covariance, only the mean moves
    assert fd == pytest.approx(np.sum(shift**2), rel=1e-6, abs=1e-8)
  for s in (0.1, 0.3, 1.0):  # added noise: strictly more distance the more there is
    fd = sq.frechet_distance(x, x + s * np.random.default_rng(3).normal(size=x.shape))
    assert fd > prev
    prev = fd


def test_more_samples_give_a_tighter_estimate():
  """FD between disjoint halves of one distribution: its true value is 0, and both its
  small-sample bias and its spread over draws shrink as n grows (~1/n). Fixed seeds;
  the asserted factor 3 is far inside the expected 10x."""
  d = 8
  stats = {}
  for n in (100, 1000):
    fds = [sq.frechet_distance(*np.split(np.random.default_rng(s).normal(size=(2 * n, d)), 2))
           for s in range(8)]
    stats[n] = (np.mean(fds), np.std(fds))
  assert stats[1000][0] < stats[100][0] / 3
  assert stats[1000][1] < stats[100][1] / 3


def test_fd_survives_singular_covariances():
  """Fewer samples than features: sample covariances are singular, sqrtm alone may fail;
  the result is finite and still right for identical sets and pure shifts."""
  rng = np.random.default_rng(4)
  x = rng.normal(size=(10, 30))
  assert abs(sq.frechet_distance(x, x)) < 1e-4
  shift = rng.normal(size=30)
  assert sq.frechet_distance(x, x + shift) == pytest.approx(np.sum(shift**2), rel=1e-3)
  dead = np.c_[x, np.zeros((10, 5))]  # dead ReLU units: zero rows/columns
  assert np.isfinite(sq.frechet_distance(dead, dead[::-1] + 0.1))


def _reference_pr(real, fake, k):
  def radii(x):
    return NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)[0][:, -1]
  precision = (cdist(fake, real) <= radii(real)[None]).any(1).mean()
  recall = (cdist(real, fake) <= radii(fake)[None]).any(1).mean()
  return precision, recall


def test_precision_recall_match_a_nearest_neighbours_reference():
  rng = np.random.default_rng(5)
  real = rng.normal(size=(400, 5))
  fake = 0.6 * rng.normal(size=(300, 5)) + 0.8  # narrower and shifted: p > r
  for k in (1, 3, 5):
    p, r = sq.precision_recall(real, fake, k=k, chunk=128)
    ref = _reference_pr(real, fake, k)
    assert (p, r) == pytest.approx(ref, abs=1e-12)
  p, r = sq.precision_recall(real, fake)
  assert p > r  # samples in the bulk of the data, missing its spread
  assert sq.precision_recall(real, real) == (1.0, 1.0)
  assert sq.precision_recall(real, real + 100.0) == (0.0, 0.0)
  with pytest.raises(ConfigError, match='k=3'):
    sq.precision_recall(real[:3], fake)


# ---- the digits classifier (trained once for the module, in a temporary cache) ----------


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
  folder = tmp_path_factory.mktemp('ae_jax_cache')
  old = os.environ.get('AE_JAX_CACHE')
  os.environ['AE_JAX_CACHE'] = str(folder)
  sq._MEMO.clear()
  yield folder
  sq._MEMO.clear()
  if old is None:
    del os.environ['AE_JAX_CACHE']
  else:
    os.environ['AE_JAX_CACHE'] = old


@pytest.fixture(scope='module')
def digits_clf(cache):
  # conftest turns XLA optimisations off for quick compiles; 440 training steps then run
  # ~20x slower. Train as users do, with them on.
  import jax
  before = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', False)
  try:
    return sq.classifier('digits')
  finally:
    jax.config.update('jax_disable_most_optimizations', before)


@pytest.fixture(scope='module')
def digits():
  return (load_digits().images / 16.0).astype(np.float32)[..., None]  # [1797, 8, 8, 1]


@pytest.mark.slow
def test_digits_classifier_is_accurate_and_its_accuracy_is_honest(digits_clf, digits):
  assert not digits_clf.loaded and digits_clf.image_shape == (8, 8, 1)
  _, te = data.split(len(digits), sq.TEST_FRACTION, sq.SEED)
  labels = load_digits().target
  recomputed = np.mean(digits_clf.logits(digits[te]).argmax(-1) == labels[te])
  assert digits_clf.accuracy == pytest.approx(recomputed)
  assert digits_clf.accuracy > 0.9
  assert digits_clf.features(digits[:5]).shape == (5, sq.FEATURES)


@pytest.mark.slow
def test_cache_loads_without_training_and_a_new_version_retrains(digits_clf, digits, cache,
                                                                  monkeypatch):
  files = sorted(p.name for p in (cache / 'classifiers').iterdir())
  assert files == ['digits_8x8x1_v1.json', 'digits_8x8x1_v1.msgpack']
  meta = json.loads((cache / 'classifiers' / 'digits_8x8x1_v1.json').read_text())
  assert meta['test_accuracy'] == digits_clf.accuracy

  def no_training(*args):
    raise AssertionError('trained although a cached classifier exists')

  monkeypatch.setattr(sq, '_train', no_training)
  monkeypatch.setattr(sq, '_MEMO', {})  # a fresh process: only the disk cache remains
  loaded = sq.classifier('digits')
  assert loaded.loaded and loaded.accuracy == digits_clf.accuracy
  np.testing.assert_array_equal(loaded.features(digits[:50]), digits_clf.features(digits[:50]))

  trained = []
  monkeypatch.setattr(sq, '_train', lambda *a: trained.append(a) or digits_clf)
  monkeypatch.setattr(sq, 'VERSION', sq.VERSION + 1)
  sq.classifier('digits')
  assert trained == [('digits', (8, 8, 1), '')]  # no IDX folder: an embedded dataset
  assert (cache / 'classifiers' / f'digits_8x8x1_v{sq.VERSION}.json').exists()


@pytest.mark.slow
def test_score_on_digits(digits_clf, digits):
  real = digits[:600]
  same = sq.score('digits', real, real)
  assert abs(same['fd']) < 1e-6 and same['precision'] == same['recall'] == 1.0
  assert same['classifier_accuracy'] == digits_clf.accuracy
  assert same['feature_space'] == 'digits-classifier 8x8x1 v1'
  noise = np.random.default_rng(6).normal(size=real.shape).astype(np.float32)
  fds = [sq.score('digits', real, np.clip(real + s * noise, 0, 1))['fd']
         for s in (0.05, 0.15, 0.4)]
  assert 0 < fds[0] < fds[1] < fds[2]
  # The same distribution, other images: a small distance, far below heavy noise.
  other = sq.score('digits', real, digits[600:1200])
  assert 0 < other['fd'] < fds[2] and other['precision'] > 0.5


@pytest.mark.slow
def test_score_converts_size_and_channels_to_the_classifier_shape(digits_clf, digits):
  """RGB 16x16 digits (what data.image_size=16, channels=3 produces) are brought back to
  8x8 gray (blurred by the round trip): the classifier still reads them as their labels,
  and they are scored in the same feature space."""
  big = data.convert_channels(data.resize(digits[:300], 16, 'linear'), 3, 'digits')
  back = sq.prepare(big, 'digits', (8, 8, 1))
  assert back.shape == (300, 8, 8, 1)
  labels = load_digits().target[:300]
  assert np.mean(digits_clf.logits(back).argmax(-1) == labels) > 0.85
  s = sq.score('digits', big, big[::-1])
  assert abs(s['fd']) < 1e-6 and s['feature_space'] == 'digits-classifier 8x8x1 v1'


def test_wafer_one_hot_and_gray_renders_convert_into_each_other():
  maps, _ = wafer.generate(20, 26, 'uniform', 0)
  onehot, gray = wafer.render(maps, 'onehot'), wafer.render(maps, 'gray')
  np.testing.assert_array_equal(sq.prepare(onehot, 'wafer', (26, 26, 1)), gray)
  np.testing.assert_array_equal(sq.prepare(gray, 'wafer', (26, 26, 3)), onehot)


def test_bad_inputs_raise_config_errors():
  x = np.zeros((10, 8, 8, 1), np.float32)
  with pytest.raises(ConfigError, match="'celeb_a'"):
    sq.score('celeb_a', x, x)
  with pytest.raises(ConfigError, match='differ in shape'):
    sq.score('digits', x, np.zeros((10, 16, 16, 1)))
  with pytest.raises(ConfigError, match='2 channels'):
    sq.score('digits', np.zeros((10, 8, 8, 2)), np.zeros((10, 8, 8, 2)))
  with pytest.raises(ConfigError, match='NaN'):
    sq.score('digits', x, np.full_like(x, np.nan))
  with pytest.raises(ConfigError, match='square'):
    sq.score('digits', np.zeros((10, 8, 6, 1)), np.zeros((10, 8, 6, 1)))
  with pytest.raises(ConfigError, match='S >= 4'):
    sq.classifier('digits', (8, 8, 2))
  with pytest.raises(ConfigError, match='width'):
    sq.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


@pytest.mark.slow
def test_the_in_training_generation_signal_is_deterministic_and_tracks_the_sampler(wafer_runs):
  """gen_fd (metrics/passes.generation_signal): a GMM-10 fitted to the current codes of the
  training images, its samples scored against 500 test images in the dataset classifier's
  space. The same checkpoint gives the same number twice; it lies between the test images'
  own score (0) and that of decoded noise at 10x the codes' scale."""
  first = evaluate_workdir(wafer_runs['ae'], ['gen_fd'], write=False)
  again = evaluate_workdir(wafer_runs['ae'], ['gen_fd'], write=False)
  a = first['members'][0]['eval']['gen_fd']
  assert a == again['members'][0]['eval']['gen_fd']  # deterministic
  assert np.isfinite(a) and a > 0
  # in the same classifier space the test images themselves score 0, and decoded noise
  # (codes far outside the GMM's reach) scores worse than the GMM's samples
  m = load(wafer_runs['ae'])
  dataset = data.load(m.config.data)
  name, source = sq.classifier_dataset(dataset.info, m.config.data)
  real = np.asarray(dataset.test['image'][:500])
  far = np.clip(m.decode(10.0 * np.random.default_rng(0).standard_normal(
      (len(real), *m.latent_shape)).astype(np.float32)), 0.0, 1.0)
  assert sq.score(name, real, real, source=source)['fd'] < 1e-3 * a
  assert sq.score(name, real, far, source=source)['fd'] > a
