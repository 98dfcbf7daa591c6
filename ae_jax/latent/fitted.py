"""Densities fitted to a model's training codes (`fit`: a Gaussian, a Gaussian mixture, or
a quantised model's (VQ-VAE, FSQ) per-position categorical) and sampling from them or from
the prior (`sample`)."""
from __future__ import annotations

import os
import zipfile

import jax
import numpy as np

from ae_jax import figures, prior_run
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.priors import density as density_lib
from ae_jax.latent.source import GAUSSIAN, Source, codes, one_run
from ae_jax.models import kinds

DENSITY = 'density.npz'  # the density `fit` fitted to a model's training codes, in latent/fit/


@one_run
def fit(source: Source, out, density: str = 'gaussian', components: int = 10,
        seed: int = 0) -> dict:
  """Fit a density to the training codes of a model, which `sample` then draws from: a
  full-covariance Gaussian (the default) or a scikit-learn Gaussian mixture of `components`
  components (`density='gmm'`, Ghosh et al.'s ex-post density for RAEs) over the codes
  (posterior means); for a quantised model (VQ-VAE, FSQ), a categorical distribution of the
  code indices at each position (`density='categorical'`, the only kind that applies: its
  codes are discrete). Writes density.npz (plain arrays) and, for a Gaussian, gaussian.npz
  as before."""
  m = source.model
  images, _, _ = source.split('train')
  kind = kinds.get(m.kind)
  if kind.quantized:
    if density not in ('categorical', 'gaussian'):  # gaussian: the flag's default
      raise ConfigError(f'--density {density}: a {kind.label}\'s codes are code indices; its '
                        'density is a categorical per position (--density categorical)')
    params = _fit_categorical(m, images)
  else:
    if density == 'categorical':
      raise ConfigError(f'--density categorical: {m.describe()} is a {m.kind.upper()} with '
                        'continuous codes; use gaussian or gmm')
    mean, _ = codes(m, images)
    params = density_lib.fit(mean, density, num_components=components, seed=seed)
  params = {**params, 'member': np.asarray(m.name), 'num_codes': np.asarray(len(images)),
            'epoch': np.asarray(m.epoch, np.float64)}
  written = {'arrays': out.arrays(DENSITY, **params)}
  if str(params['kind']) == 'gaussian':  # the file `sample` read before density.npz existed
    written['gaussian'] = out.arrays(GAUSSIAN, mean=params['mean'],
                                     scale_tril=params['scale_tril'], member=params['member'],
                                     epoch=params['epoch'], num_codes=params['num_codes'])
  return {**written, **params}


def _fit_categorical(model, images) -> dict:
  """A quantised model's code indices' frequencies at each position (add-one smoothed) ->
  {'kind': 'categorical', 'probs': [*positions, K]}."""
  mean, _ = model.encode(images)
  idx = model.code_indices(mean)  # [N, *positions]
  k = model.num_codes
  counts = np.stack([np.bincount(col, minlength=k) for col in idx.reshape(len(idx), -1).T])
  probs = (counts + 1.0) / (counts.sum(-1, keepdims=True) + k)  # [P, K]
  return {'kind': np.asarray('categorical'),
          'probs': probs.reshape(idx.shape[1:] + (k,)).astype(np.float64),
          'latent_shape': np.asarray(model.latent_shape, np.int64)}


def read_density(path: str, given: bool = False) -> dict | None:
  """The density `fit` wrote to `path` (density.npz; beside it, an older fit's gaussian.npz
  is read as a 'gaussian' density), checked; None when there is none and `given` is False."""

  candidates = [path] if given else [path, os.path.join(os.path.dirname(path), GAUSSIAN)]
  found = next((p for p in candidates if os.path.exists(p)), None)
  if found is None:
    if given:
      raise WorkdirError(f'--fitted {path}: no such file; python -m ae_jax.latent fit '
                         f'[--out DIR] writes one (DIR/{DENSITY})')
    return None
  redo = 'run python -m ae_jax.latent fit again to rewrite it'
  try:
    with np.load(found, allow_pickle=False) as f:
      params = {k: f[k] for k in f.files}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise WorkdirError(f'{found} is not a density fitted by `fit` ({type(e).__name__}: '
                       f'{" ".join(str(e).split())[:120]}); {redo}') from None
  params.setdefault('kind', np.asarray('gaussian'))
  kind = str(params['kind'])
  need = {'gaussian': ('mean', 'scale_tril'), 'gmm': ('weights_', 'means_'),
          'categorical': ('probs',)}.get(kind)
  missing = [k for k in (*(need or ()), 'member', 'epoch') if k not in params]
  if need is None or missing:
    raise WorkdirError(f'{found}: a density of kind {kind!r} lacking {missing}; {redo}')
  arrays = [np.asarray(params[k]) for k in need]
  if any(a.dtype.kind != 'f' or not np.isfinite(a).all() for a in arrays):
    raise WorkdirError(f'{found}: its {", ".join(need)} are not finite numbers; {redo}')
  return params


def _density_units(params) -> int:
  """The number of code units (or positions, a categorical) a fitted density describes."""
  kind = str(params['kind'])
  if kind == 'categorical':
    return int(np.prod(np.asarray(params['probs']).shape[:-1]))
  return int(np.asarray(params['mean'] if kind == 'gaussian' else params['means_']).shape[-1])


def _describe(params) -> str:
  kind = str(params['kind'])
  if kind == 'gmm':
    return (f'a Gaussian mixture ({int(params["n_components"])} components, '
            f'{params["covariance_type"]} covariance)')
  if kind == 'categorical':
    return 'a categorical distribution of code indices at each position (independently)'
  return 'a full-covariance Gaussian'


@one_run
def sample(source: Source, num: int, seed: int, temperature: float | None, out, density=None,
           prior: str | None = None) -> dict:
  """Samples decoded from a prior over the codes: `prior`, one trained on the workdir's
  codes (python -m ae_jax.prior; temperature None: its own); else a VAE's N(0, T² I), and
  a WAE's unless a density is given (its objective matches the codes to that prior); for
  another AE, codes from the density `fit` fitted to its training codes; for a quantised
  model (VQ-VAE, FSQ), code indices from the categorical `fit` fitted per position
  (`density`: that file's contents)."""
  m = source.model
  if prior is not None:
    images = m.sample(num, prior=prior, seed=seed, temperature=temperature)
    spec = prior_run.PriorSpec.read(prior_run.folder(source.workdir, prior))
    what = (f'samples of prior {prior!r} ({spec.kind}), trained on the codes of epoch '
            f'{spec.source_epoch}')
    return _figure(m, images, what, seed, out)
  temperature = 1.0 if temperature is None else temperature
  key = jax.random.PRNGKey(seed)
  kind = kinds.get(m.kind)
  wae = m.kind == 'ae' and m.config.loss.objective == 'wae_mmd'
  if kind.posterior or (wae and density is None):
    z = np.asarray(temperature * jax.random.normal(key, (num, *m.latent_shape)))
    if m.latent_mask is not None:
      z = z * np.asarray(m.latent_mask)
    what = f'prior samples z ~ N(0, {temperature:g}² I)'
    if wae:  # its objective matched the codes to N(0, I)
      what += ', the prior a WAE matches its codes to'
  else:
    what = (f'a {kind.label}: it needs a prior over its codes' if kind.quantized
            else 'an AE: it has no prior to sample')
    if density is None:
      flag = ' --density categorical' if kind.quantized else ''
      raise WorkdirError(f'{source.workdir} ({m.describe()}) is {what}. Fit a density to its '
                         'training codes first: python -m ae_jax.latent fit --workdir '
                         f'{source.workdir}{flag}')
    units = int(np.prod(m.latent_shape[:-1])) if kind.quantized else m.num_units
    if _density_units(density) != units:
      raise WorkdirError(f'the fitted density describes {_density_units(density)} code '
                         f'{"positions" if kind.quantized else "units"}; {m.describe()} has '
                         f'{units}: fit this model')
    if str(density['member']) != m.name or float(density['epoch']) != float(m.epoch):
      raise WorkdirError(f'the fitted density is of member {density["member"]}, epoch '
                         f'{float(density["epoch"]):g}, not {m.describe()}; rerun python -m '
                         f'ae_jax.latent fit --workdir {source.workdir} with the same '
                         '--member/--epoch')
    if str(density['kind']) == 'categorical':
      rng = np.random.default_rng(seed)
      probs = np.asarray(density['probs'])  # [*positions, K]
      flat = probs.reshape(-1, probs.shape[-1])
      idx = np.stack([rng.choice(flat.shape[1], size=num, p=p / p.sum()) for p in flat], 1)
      # [num, *positions, D]: codes that decode as those codebook entries
      z = m.index_latents(idx.reshape((num,) + probs.shape[:-1]))
      what = (f'{kind.label} samples: code indices from {_describe(density)} fitted to its '
              f'{int(density["num_codes"])} training codes; a {kind.label} needs such a prior')
    else:
      density = {'latent_shape': np.asarray(m.latent_shape, np.int64), **density}
      z = density_lib.sample(density, num, seed, temperature)
      what = (f'AE samples: codes from {_describe(density)} fitted to its training codes '
              f'(T={temperature:g}); an AE has no prior')
  return {**_figure(m, m.decode(z), what, seed, out), 'codes': out.array('codes.npy', z),
          'z': z}


def _figure(m, images, what: str, seed: int, out) -> dict:
  """samples.png (rows of 8) and samples.npy of decoded samples."""
  cols = min(len(images), 8)
  rows = [images[i:i + cols] for i in range(0, len(images), cols)]
  fig = figures.image_rows(rows, [''] * len(rows), f'{what}\n{m.describe()}, seed {seed}',
                           color_key=m.color_key)
  return {'figure': out.figure(fig, 'samples.png'), 'arrays': out.array('samples.npy', images),
          'images': images, 'title': what}
