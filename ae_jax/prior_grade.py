"""Grading samples: the sample-quality numbers of a model's samples against its test
images, the same for every sampler (the N(0, I) prior, a fitted density, a trained prior):
the Frechet distance and precision/recall in the feature space of the dataset's classifier
where one exists (metrics/sample_quality.py: digits, wafer maps, Fashion-MNIST, MNIST), else
the Frechet distance in LPIPS-VGG feature space where the LPIPS weights are installed and
the images are large enough (16 px).
"""
from __future__ import annotations

import numpy as np

from ae_jax import data
from ae_jax.errors import ConfigError
from ae_jax.inference import Loaded, Trained
from ae_jax.metrics import lpips, sample_quality as sq


def feature_spaces(dataset: data.Dataset, data_config) -> dict:
  """{'classifier': (name, source) or None, 'lpips': bool} for a run's dataset."""
  try:
    clf = sq.classifier_dataset(dataset.info, data_config)
    if clf[0] not in sq.SHAPES:
      clf = None
  except ConfigError:  # no classifier for these images: the others grade them
    clf = None
  h, w = dataset.info.image_shape[:2]
  has_lpips = clf is None and lpips.available() and min(h, w) >= 16
  return {'classifier': clf, 'lpips': has_lpips}


def score(real, fake, spaces: dict, progress: bool = False) -> dict:
  """The sample-quality numbers of `fake` images against `real` ones (both [N, H, W, C] in
  [0, 1], N equal for comparable FDs)."""
  out = {}
  if spaces['classifier'] is not None:
    name, source = spaces['classifier']
    s = sq.score(name, real, fake, source=source)
    out.update(fd_classifier=s['fd'], precision=s['precision'], recall=s['recall'])
  if spaces['lpips']:
    ev = lpips.Evaluator('vgg', progress=progress)
    out['fd_lpips'] = sq.frechet_distance(ev.features(real), ev.features(fake))
  return out


def sample_images(member: Trained, num: int, seed: int, prior: str | None) -> np.ndarray:
  """`num` images of `member` drawn through `prior` (None: N(0, I)), in [0, 1]."""
  return np.clip(member.sample(num, prior=prior, seed=seed), 0.0, 1.0)


def grade(config, loaded: Loaded, prior: str | None, num: int | None = None,
          dataset: data.Dataset | None = None, keep: int = 0) -> list[dict]:
  """Every member's sample-quality numbers through `prior`, against as many test images as
  samples (config.prior.num_samples, at most the test split); with `keep`, also the first
  `keep` of the graded samples ('images', for a figure: no second draw to compile)."""
  dataset = dataset if dataset is not None else data.load(config.data)
  test = dataset.test['image']
  n = min(int(num or config.prior.num_samples), len(test))
  real = np.asarray(test[:n])
  spaces = feature_spaces(dataset, config.data)
  out = []
  for k, m in enumerate(loaded.members):
    fake = sample_images(loaded.member(k), n, int(config.prior.seed) + k, prior)
    out.append({'name': m['name'], 'num_samples': n,
                **score(real, fake, spaces, config.progress),
                **({'images': fake[:keep]} if keep else {})})
  return out
