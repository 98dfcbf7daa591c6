"""MIG and the FactorVAE score against independent references on real dSprites factors.

References: a MIG written here from counts (contingency tables, entropies with
scipy.stats.entropy, bins by arithmetic) rather than sklearn and np.histogram; the
discretization ceiling H(binned factor) / H(factor) that codes equal to the factors must
reach; and the exact values the definitions give for duplicated, random and constant
inputs.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy

from ae_jax.data import dsprites
from ae_jax.errors import ConfigError
from ae_jax.metrics import disentanglement as dis

N = 4000


@pytest.fixture(scope='module')
def factors():
  """Real dSprites factor indices [N, 5], drawn as disentanglement_lib draws them."""
  return dis.sample_factors(None, None, N, np.random.default_rng(0))


def _bins(x, num_bins=20):
  """Equal-width bins over x's range, by arithmetic (the maximum joins the last bin)."""
  lo, hi = x.min(), x.max()
  if hi == lo:
    return np.zeros(len(x), np.int64)
  return np.minimum(np.floor((x - lo) / (hi - lo) * num_bins), num_bins - 1).astype(np.int64)


def _mi(a, b):
  """Mutual information (nats) of two discrete arrays from their contingency table."""
  _, ai = np.unique(a, return_inverse=True)
  _, bi = np.unique(b, return_inverse=True)
  joint = np.zeros((ai.max() + 1, bi.max() + 1))
  np.add.at(joint, (ai, bi), 1)
  return entropy(joint.sum(1)) + entropy(joint.sum(0)) - entropy(joint.ravel())


def _reference_mig(codes, factors):
  binned = np.stack([_bins(c) for c in codes.T], 1)
  gaps = []
  for f in factors.T:
    h = entropy(np.unique(f, return_counts=True)[1])
    if h == 0:
      continue
    mi = np.sort([_mi(b, f) for b in binned.T])[::-1]
    gaps.append((mi[0] - mi[1]) / h)
  return float(np.mean(gaps))


def test_mig_matches_an_independent_implementation(factors):
  rng = np.random.default_rng(1)
  # Entangled codes: every unit mixes factors, plus noise; gaps well away from 0 and 1.
  codes = np.c_[factors @ rng.normal(size=(5, 6)), rng.normal(size=(N, 3))]
  codes += 0.5 * rng.normal(size=codes.shape)
  codes[:, 0] = factors[:, 3] + 0.1 * rng.normal(size=N)  # one clean-ish pos_x unit
  score, per = dis.mig(codes, factors, factor_names=dsprites.FACTOR_NAMES)
  assert score == pytest.approx(_reference_mig(codes, factors), abs=1e-10)
  assert set(per) == set(dsprites.FACTOR_NAMES)
  assert score == pytest.approx(np.mean(list(per.values())), abs=1e-12)
  assert per['pos_x'] > 0.3


def test_mig_of_the_factors_themselves_reaches_the_discretization_ceiling(factors):
  """Codes = factor indices. Each factor's top MI is H(its own 20-bin discretization):
  exactly H(factor) for shape (3 values) and scale (6), less where bins merge values
  (orientation 40 values, positions 32). So the score is not 1 but the mean ceiling
  H(binned) / H(factor), ~0.89, minus the small positive bias of the second MI."""
  score, per = dis.mig(factors.astype(float), factors, factor_names=dsprites.FACTOR_NAMES)
  ceilings = {}
  for name, f in zip(dsprites.FACTOR_NAMES, factors.T):
    h = entropy(np.unique(f, return_counts=True)[1])
    ceilings[name] = entropy(np.unique(_bins(f.astype(float)), return_counts=True)[1]) / h
    assert ceilings[name] - 0.03 < per[name] <= ceilings[name] + 1e-12, name
  assert ceilings['shape'] == pytest.approx(1.0) and ceilings['orientation'] < 0.85
  assert score > 0.85
  assert score == pytest.approx(np.mean(list(ceilings.values())), abs=0.03)


def test_mig_of_random_codes_is_near_zero(factors):
  codes = np.random.default_rng(2).normal(size=(N, 10))
  score, per = dis.mig(codes, factors)
  assert 0 <= score < 0.05 and max(per.values()) < 0.05


def test_a_duplicated_unit_has_no_gap(factors):
  """Two identical units carrying pos_y: top MI = second MI, so its gap is exactly 0; the
  other factors keep the gaps they had without the copy."""
  codes = factors.astype(float)
  _, base = dis.mig(codes, factors, factor_names=dsprites.FACTOR_NAMES)
  score, per = dis.mig(np.c_[codes, codes[:, 4]], factors,
                       factor_names=dsprites.FACTOR_NAMES)
  assert per['pos_y'] == 0.0 and base['pos_y'] > 0.8
  for name in dsprites.FACTOR_NAMES[:4]:
    assert per[name] == pytest.approx(base[name], abs=1e-12)
  assert score == pytest.approx(np.mean([base[n] for n in dsprites.FACTOR_NAMES[:4]] + [0]))


def test_constant_factors_are_left_out():
  rng = np.random.default_rng(3)
  f = dis.sample_factors(None, None, 2000, rng, ranges={'shape': (1, 1), 'scale': (5, 5)})
  assert (f[:, 0] == 1).all() and (f[:, 1] == 5).all()
  score, per = dis.mig(f.astype(float), f, factor_names=dsprites.FACTOR_NAMES)
  assert set(per) == {'orientation', 'pos_x', 'pos_y'}
  assert score == pytest.approx(_reference_mig(f.astype(float), f), abs=1e-10)
  with pytest.raises(ConfigError, match='constant'):
    dis.mig(rng.normal(size=(10, 2)), np.zeros((10, 2), int))
  with pytest.raises(ValueError, match='NaN'):
    dis.mig(np.full((10, 2), np.nan), f[:10])


@pytest.mark.slow  # builds full-size models or draws figures: seconds
def test_dsprites_mig_renders_images_whose_positions_an_encoder_can_read(centroid_encoder):
  """Through real rendered images: a centroid encoder captures pos_x and pos_y (gap
  close to their discretization ceilings, ~0.83) and nothing about orientation."""
  score, per = dis.dsprites_mig(centroid_encoder, num_points=1500, seed=0)
  assert per['pos_x'] > 0.6 and per['pos_y'] > 0.6
  assert per['orientation'] < 0.05
  assert 0 < score < 0.7


def test_factor_vae_score_of_the_factors_is_one_and_of_noise_is_chance():
  values = dis.factor_values()
  sample = lambda k, v, n, rng: dis.sample_factors(k, v, n, rng)  # observations = factors
  perfect = dis.factor_vae_score(lambda f: np.asarray(f, float), sample, values,
                                 num_train=200, num_eval=200, num_variance_estimate=2000)
  # Fixing factor k zeroes the variance of unit k and of no other: every vote is right.
  assert perfect == {'eval_accuracy': 1.0, 'train_accuracy': 1.0, 'num_active_dims': 5}
  noise = np.random.default_rng(4)
  chance = dis.factor_vae_score(lambda f: noise.normal(size=(len(f), 10)), sample, values,
                                num_train=200, num_eval=500, num_variance_estimate=2000)
  # Votes independent of the factor: accuracy is the share of the factor the classifier
  # happens to name, 1/5 in expectation (std ~0.02 over 500 votes).
  assert 0.1 < chance['eval_accuracy'] < 0.3


def test_factor_vae_prunes_collapsed_units_and_skips_constant_factors():
  values = dis.factor_values({'shape': (0, 0)})
  sample = lambda k, v, n, rng: dis.sample_factors(k, v, n, rng, {'shape': (0, 0)})

  def represent(f):
    # units: the four varying factors, a collapsed unit (std 0.01 < 0.05) that would
    # otherwise win every argmin, and the constant shape factor
    return np.c_[np.asarray(f[:, 1:], float), 0.01 * np.random.default_rng(0).normal(
        size=len(f)), f[:, 0]]

  out = dis.factor_vae_score(represent, sample, values, num_train=50, num_eval=50,
                             num_variance_estimate=1000)
  assert out == {'eval_accuracy': 1.0, 'train_accuracy': 1.0, 'num_active_dims': 4}
  with pytest.raises(ConfigError):
    dis.factor_values({'scale': (3, 9)})


@pytest.mark.slow
def test_dsprites_factor_vae_through_rendered_images(monkeypatch, centroid_encoder):
  """Centroid encoder on rendered squares (shape pinned, so it is never fixed; a square's
  centre of mass is its centre whatever its scale and orientation): a vote that fixed
  pos_x (pos_y) finds the x (y) unit still, and the majority classifier names pos_x,
  pos_y for them; scale and orientation can only be named wrongly. So the accuracy is
  exactly the share of evaluation votes that fixed a position, counted by recording the
  sampler."""
  fixed = []
  real_sampler = dis.dsprites_sampler

  def recording_sampler(*args, **kw):
    sample = real_sampler(*args, **kw)

    def fn(k, v, n, rng):
      fixed.append(k)
      return sample(k, v, n, rng)
    return fn

  monkeypatch.setattr(dis, 'dsprites_sampler', recording_sampler)
  out = dis.dsprites_factor_vae(centroid_encoder, {'shape': (0, 0)}, seed=0, batch_size=16,
                                num_train=100, num_eval=100, num_variance_estimate=400)
  assert fixed[0] is None and len(fixed) == 1 + 100 + 100
  expected = np.isin(fixed[101:], (3, 4)).mean()
  assert None not in fixed[1:] and 0 not in fixed
  assert 0.3 < expected < 0.7  # ~2/4
  assert out['num_active_dims'] == 2
  assert out['eval_accuracy'] == pytest.approx(expected)
