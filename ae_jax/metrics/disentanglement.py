"""Disentanglement scores against ground-truth factors: MIG and the FactorVAE score.

Both follow google-research/disentanglement_lib (evaluation/metrics/mig.py, utils.py,
factor_vae.py and the unsupervised_study_v1 gin configs), so numbers are comparable with
the published ones:

- MIG (Chen et al. 2018): every code unit is discretized into 20 equal-width bins over its
  own range, the mutual information (nats) with each factor is `mutual_info_score`, and
  the score is the mean over factors of (top MI - second MI) / H(factor).
- FactorVAE score (Kim & Mnih 2018): units are scaled by their std over the data, units
  with std < 0.05 are pruned; each vote fixes one factor over a batch of 64 and picks the
  unit of least scaled variance; a majority-vote classifier (unit -> factor) is fitted
  on 10,000 votes and its accuracy on 5,000 fresh votes is the score.

A factor that takes a single value in the data (entropy 0, e.g. a dSprites factor pinned
by `data.dsprites` ranges) carries no information to disentangle: it is left out of both
scores, as disentanglement_lib leaves out dSprites' constant colour.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ae_jax.data import dsprites, resize
from ae_jax.errors import ConfigError

NUM_POINTS = 10_000    # MIG points and FactorVAE variance-estimate points
NUM_BINS = 20
FACTOR_VAE_BATCH = 64
FACTOR_VAE_TRAIN = 10_000
FACTOR_VAE_EVAL = 5_000
PRUNE_STD = 0.05


def _names(num_factors: int, factor_names) -> tuple[str, ...]:
  names = tuple(factor_names) if factor_names is not None else tuple(
      f'factor_{j}' for j in range(num_factors))
  if len(names) != num_factors:
    raise ValueError(f'{len(names)} factor names for {num_factors} factors')
  return names


def histogram_discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
  """codes [N, L] -> bin indices [N, L]: each unit binned over its own range.

  As disentanglement_lib: the left edges of `np.histogram`'s equal-width bins, then
  `np.digitize`, so values fall in bins 1..num_bins (the maximum in bin num_bins)."""
  out = np.zeros(codes.shape, np.int64)
  for i in range(codes.shape[1]):
    left_edges = np.histogram(codes[:, i], num_bins)[1][:-1]
    out[:, i] = np.digitize(codes[:, i], left_edges)
  return out


def mutual_info_score(a, b) -> float:
  """scikit-learn's mutual information (nats) of two discrete labellings; sklearn.metrics
  takes 1.5 s to import, paid here rather than by every command that imports the metrics."""
  from sklearn.metrics import mutual_info_score as score
  return score(a, b)


def mutual_info_matrix(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
  """[N, L] and [N, F] discrete values -> MI in nats [L, F]."""
  return np.array([[mutual_info_score(factors[:, j], discrete_codes[:, i])
                    for j in range(factors.shape[1])] for i in range(discrete_codes.shape[1])])


def _check(codes, factors):
  codes, factors = np.asarray(codes, np.float64), np.asarray(factors)
  if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
    raise ValueError(f'expected codes [N, L] and factors [N, F] with the same N, got '
                     f'{codes.shape} and {factors.shape}')
  if not np.isfinite(codes).all():
    raise ValueError('codes contain NaN or inf values')
  return codes, factors


def mig(codes, factors, num_bins: int = NUM_BINS, factor_names: Sequence[str] | None = None):
  """Mutual information gap -> (score, {factor name: its normalised gap}).

  codes [N, L] (encoder means), factors [N, F] discrete values (e.g. dSprites indices).
  Constant factors are left out of the mean and of the dict. With a single code unit
  the second-best MI is taken as 0 (disentanglement_lib needs two units)."""
  codes, factors = _check(codes, factors)
  names = _names(factors.shape[1], factor_names)
  m = mutual_info_matrix(histogram_discretize(codes, num_bins), factors)  # [L, F]
  entropy = np.array([mutual_info_score(f, f) for f in factors.T])  # [F]
  varying = entropy > 0
  if not varying.any():
    raise ConfigError('mig: every ground-truth factor is constant in the data; nothing to '
                      'measure (widen the data.dsprites ranges)')
  top = np.sort(m, axis=0)[::-1]  # [L, F], descending
  second = top[1] if len(top) > 1 else np.zeros_like(top[0])
  gap = (top[0] - second)[varying] / entropy[varying]
  per_factor = {names[j]: float(g) for j, g in zip(np.flatnonzero(varying), gap)}
  return float(np.mean(gap)), per_factor


# ---- dSprites sampling -----------------------------------------------------------------


def factor_values(ranges: dict | None = None) -> list[np.ndarray]:
  """Each dSprites factor's allowed indices under `ranges` (name -> (lo, hi) inclusive)."""
  ranges = ranges or {}
  for name in ranges:
    if name not in dsprites.FACTOR_NAMES:
      raise ConfigError(f'dSprites factor {name!r} is unknown; expected one of '
                        f'{dsprites.FACTOR_NAMES}')
  out = []
  for name, size in zip(dsprites.FACTOR_NAMES, dsprites.SIZES):
    lo, hi = ranges.get(name) or (0, size - 1)
    if not 0 <= lo <= hi < size:
      raise ConfigError(f'data.dsprites.{name}=({lo}, {hi}) is outside 0..{size - 1}')
    out.append(np.arange(lo, hi + 1))
  return out


def sample_factors(factor_index: int | None, factor_value, n: int,
                   rng: np.random.Generator, ranges: dict | None = None) -> np.ndarray:
  """n dSprites factor rows int32 [n, 5], uniform within `ranges` (with replacement, as
  disentanglement_lib), with factor `factor_index` fixed at `factor_value` if given."""
  values = factor_values(ranges)
  out = np.stack([v[rng.integers(len(v), size=n)] for v in values], axis=1).astype(np.int32)
  if factor_index is not None:
    out[:, factor_index] = factor_value
  return out


def render(factors: np.ndarray, image_size: int = 0) -> np.ndarray:
  """Factor rows [n, 5] -> float32 images [n, S, S, 1] in {0, 1} (S = 64 or image_size,
  resized the way `data.load` resizes dSprites, so a model sees its training inputs)."""
  images = dsprites.render(*np.asarray(factors).T).astype(np.float32)[..., None]
  if image_size and image_size != dsprites.SIZE:
    images = np.clip(resize(images, image_size, 'linear'), 0.0, 1.0)
  return images


def dsprites_sampler(ranges: dict | None = None, image_size: int = 0) -> Callable:
  """-> sample_fn(factor_index, factor_value, n, rng) -> images [n, S, S, 1]: dSprites with
  one factor fixed (factor_index None: none fixed) and the others uniform in `ranges`."""
  factor_values(ranges)  # validate once, up front

  def sample_fn(factor_index, factor_value, n, rng):
    return render(sample_factors(factor_index, factor_value, n, rng, ranges), image_size)
  return sample_fn


def _encode_batched(encode_fn, images, batch_size) -> np.ndarray:
  codes = [np.asarray(encode_fn(images[i:i + batch_size]), np.float64)
           for i in range(0, len(images), batch_size)]
  codes = np.concatenate(codes)
  return codes.reshape(len(codes), -1)  # spatial latents: every unit is a dimension


def dsprites_mig(encode_fn: Callable, num_points: int = NUM_POINTS, seed: int = 0,
                 ranges: dict | None = None, image_size: int = 0, num_bins: int = NUM_BINS,
                 encode_batch: int = 500):
  """MIG of an encoder on `num_points` fresh dSprites images -> (score, per-factor dict).

  encode_fn(images float32 [B, S, S, 1]) -> means [B, ...] (flattened to units)."""
  rng = np.random.default_rng(seed)
  factors = sample_factors(None, None, num_points, rng, ranges)
  codes = np.concatenate([_encode_batched(encode_fn, render(factors[i:i + 4096], image_size),
                                          encode_batch)
                          for i in range(0, num_points, 4096)])
  return mig(codes, factors, num_bins, dsprites.FACTOR_NAMES)


# ---- FactorVAE score -------------------------------------------------------------------


def _votes(represent_fn, sample_fn, values, varying, scale, active, num_votes, batch_size,
           rng) -> np.ndarray:
  """[F, num_active] counts of (fixed factor, unit of least scaled variance)."""
  votes = np.zeros((len(values), int(active.sum())), np.int64)
  choices = np.flatnonzero(varying)
  for _ in range(num_votes):
    k = int(rng.choice(choices))
    value = values[k][rng.integers(len(values[k]))]
    codes = np.asarray(represent_fn(sample_fn(k, value, batch_size, rng)), np.float64)
    codes = codes.reshape(batch_size, -1)
    local = np.var(codes, axis=0, ddof=1)[active] / scale[active]
    votes[k, np.argmin(local)] += 1
  return votes


def factor_vae_score(represent_fn: Callable, sample_fn: Callable,
                     values: Sequence[np.ndarray], *, batch_size: int = FACTOR_VAE_BATCH,
                     num_train: int = FACTOR_VAE_TRAIN, num_eval: int = FACTOR_VAE_EVAL,
                     num_variance_estimate: int = NUM_POINTS, prune_std: float = PRUNE_STD,
                     seed: int = 0) -> dict:
  """FactorVAE disentanglement score -> dict(eval_accuracy (the score), train_accuracy,
  num_active_dims).

  represent_fn(observations) -> codes [n, ...]; sample_fn(factor_index | None,
  factor_value, n, rng) -> observations; values[k]: the values factor k can take.
  Factors with one value are never fixed (a vote for them carries no information)."""
  rng = np.random.default_rng(seed)
  varying = np.array([len(v) > 1 for v in values])
  if not varying.any():
    raise ConfigError('factor_vae: every ground-truth factor is constant; nothing to measure')
  codes = np.asarray(represent_fn(sample_fn(None, None, num_variance_estimate, rng)),
                     np.float64).reshape(num_variance_estimate, -1)
  if not np.isfinite(codes).all():
    raise ValueError('codes contain NaN or inf values')
  variance = np.var(codes, axis=0, ddof=1)  # [L]
  active = np.sqrt(variance) >= prune_std  # collapsed units would win every argmin
  if not active.any():
    return {'eval_accuracy': 0.0, 'train_accuracy': 0.0, 'num_active_dims': 0}
  args = (represent_fn, sample_fn, values, varying, variance, active)
  train = _votes(*args, num_train, batch_size, rng)
  classifier = np.argmax(train, axis=0)  # unit -> the factor it voted for most
  cols = np.arange(train.shape[1])
  evals = _votes(*args, num_eval, batch_size, rng)
  return {'eval_accuracy': float(evals[classifier, cols].sum() / evals.sum()),
          'train_accuracy': float(train[classifier, cols].sum() / train.sum()),
          'num_active_dims': int(active.sum())}


def dsprites_factor_vae(encode_fn: Callable, ranges: dict | None = None, image_size: int = 0,
                        seed: int = 0, encode_batch: int = 500, **kw) -> dict:
  """The FactorVAE score of an encoder on fresh dSprites images (kw: factor_vae_score's
  sizes, e.g. num_train=1000 for a quick look)."""
  return factor_vae_score(lambda x: _encode_batched(encode_fn, x, encode_batch),
                          dsprites_sampler(ranges, image_size), factor_values(ranges),
                          seed=seed, **kw)
