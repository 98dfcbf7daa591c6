"""The latent tools on trained models: each takes loaded models (inference.Trained) and
images, writes figures and arrays into an `Outputs` folder, and returns what it made.
A tool's outputs are one run (`workdir.Outputs`): they replace the folder's previous run
as a whole when the tool returns, and a tool that fails leaves that folder as it was.

A `Source` bundles a trained model with its dataset (loaded on first use, only when a tool
needs images) so tools can fetch images by the dataset's own ids.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect

import jax
import numpy as np

from ae_jax import data, figures
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.latent import density as density_lib, ops

DEFAULT_GENERATE_IDS = '1-5,226-230,841-845,1471-1475'  # report 000's chosen wafer maps
GAUSSIAN = 'gaussian.npz'  # an AE's fitted code distribution, in latent/fit/


def parse_ids(text: str | None) -> list[int]:
  """'3,227' or '1-5,226-230' -> [3, 227] / [1, 2, 3, 4, 5, 226, ...]."""
  if text is None or str(text).strip() == '':
    return []
  ids = []
  for part in str(text).split(','):
    part = part.strip()
    try:
      if '-' in part:
        a, b = (int(v) for v in part.split('-', 1))
        if b < a or a < 0:
          raise ValueError
        ids += list(range(a, b + 1))
      else:
        ids.append(int(part))
        if ids[-1] < 0:
          raise ValueError
    except ValueError:
      raise ConfigError(f'--ids {text!r}: expected image ids such as 3,227 or 1-5,226-230 '
                        f'({part!r} is not an id or a rising range)') from None
  return ids


def parse_edits(text: str) -> list[tuple[int, float, float, str]]:
  """'0*2,2+5,3-1' -> [(dim, scale, shift, label)]."""
  edits = []
  for part in str(text).split(','):
    part = part.strip().replace('x', '*').replace('×', '*')
    try:
      for op in ('*', '+', '-'):
        if op in part:
          d, v = part.split(op, 1)
          d, v = int(d), float(v)
          scale, shift = (v, 0.0) if op == '*' else (1.0, v if op == '+' else -v)
          edits.append((d, scale, shift, f'dim {d} {"×" if op == "*" else op}{v:g}'))
          break
      else:
        raise ValueError
    except ValueError:
      raise ConfigError(f'--edits {text!r}: expected edits such as 0*2,2+5 (dimension, then '
                        f'*scale, +shift or -shift); {part!r} is not one') from None
  return edits


@dataclasses.dataclass
class Source:
  """A trained member and (lazily) its dataset."""
  model: object  # inference.Trained
  workdir: str

  @functools.cached_property
  def dataset(self):
    return data.load(self.model.config.data)

  def label_name(self, label: int) -> str:
    """A class index's name ('' for -1, unlabelled)."""
    names = self.model.class_names
    return names[label] if 0 <= label < len(names) else (str(label) if label >= 0 else '')

  @property
  def class_values(self):
    """The label value of each class (the user's own: 5, 0.5, 'cat'), from model.json, or
    from the dataset for a model.json written before it recorded them."""
    values = getattr(self.model, 'class_values', None)
    return values if values is not None else self.dataset.info.class_values

  def label_values(self, labels) -> np.ndarray:
    """Class indices -> the labels' own values, for arrays written for the user."""
    return data.original_labels(labels, self.class_values)

  def images(self, ids) -> tuple[np.ndarray, np.ndarray]:
    images, labels = data.by_ids(self.dataset, ids)
    if tuple(images.shape[1:]) != tuple(self.model.image_shape):
      raise ConfigError(f'the dataset of {self.workdir} now gives {images.shape[1:]} images; '
                        f'the model was trained on {tuple(self.model.image_shape)}')
    return images, labels

  def split(self, name: str = 'test', limit: int | None = None):
    """(images, labels, ids) of a split, read whole (or its first `limit` images)."""
    part = getattr(self.dataset, name)
    n = len(part['id']) if limit is None else min(limit, len(part['id']))
    x = part['image']
    images = x.read(np.arange(n)) if hasattr(x, 'read') else np.asarray(x[:n])
    return images, np.asarray(part['label'][:n]), np.asarray(part['id'][:n])

  def random_ids(self, n: int, seed: int = 0, split: str = 'test') -> list[int]:
    ids = np.asarray(getattr(self.dataset, split)['id'])
    pick = np.random.default_rng(seed).choice(len(ids), size=min(n, len(ids)), replace=False)
    return [int(i) for i in ids[np.sort(pick)]]

  def titles(self, ids, labels) -> list[str]:
    return [f'id {i}' + (f'\n{self.label_name(int(label))}' if label >= 0 else '')
            for i, label in zip(ids, labels)]


def check_dims(model, dims) -> None:
  n = int(model.latent_shape[-1])
  used = min(n, int(model.latent_dim)) if len(model.latent_shape) == 1 else n
  bad = [d for d in dims if not 0 <= d < used]
  if bad:
    what = 'channels' if len(model.latent_shape) > 1 else 'dims'
    raise ConfigError(f'dimension(s) {bad} are beyond the latent size of {model.describe()} '
                      f'({used} {what}: 0..{used - 1})')


def _codes(model, images):
  mean, logvar = model.encode(images)
  return mean, logvar


# ---- tools -------------------------------------------------------------------------------


def _one_run(tool):
  """Run `tool` holding its `out` folder, whose files then replace the previous run's."""
  signature = inspect.signature(tool)

  @functools.wraps(tool)
  def held(*args, **kwargs):
    with signature.bind(*args, **kwargs).arguments['out']:
      return tool(*args, **kwargs)
  return held


@_one_run
def reconstruct(sources: list[Source], ids: list[int], out) -> dict:
  """Originals above each model's reconstructions (models: members, workdirs or epochs)."""
  ref = sources[0]
  images, labels = ref.images(ids)
  rows, names, recons = [images], ['original'], {}
  for s in sources:
    if tuple(s.model.image_shape) != tuple(ref.model.image_shape):
      raise ConfigError(f'{s.workdir} takes {tuple(s.model.image_shape)} images, '
                        f'{ref.workdir} {tuple(ref.model.image_shape)}: compare models of one '
                        'image shape')
    r = s.model.reconstruct(images)
    label = _model_label(s, sources)
    rows.append(r)
    names.append(label)
    recons[label] = r
  flat = [n.replace('\n', ' ') for n in names[1:]]
  title = (f'test images and reconstructions ({"; ".join(flat)})' if len(sources) > 1
           else f'originals and reconstructions, {ref.model.describe()}')
  fig = figures.image_rows(rows, names, title, color_key=ref.model.color_key,
                           col_titles=ref.titles(ids, labels))
  written = {'figure': out.figure(fig, 'reconstruct.png'),
             'arrays': out.arrays('reconstruct.npz', ids=np.asarray(ids),
                                  labels=ref.label_values(labels),
                                  originals=images, **{f'recon_{i}': r for i, r in
                                                       enumerate(recons.values())},
                                  models=np.asarray(list(recons)))}
  return {**written, 'originals': images, 'recon': list(recons.values()), 'names': names[1:]}


def _model_label(s: Source, sources) -> str:
  workdirs = {x.workdir for x in sources}
  who = s.model.describe()
  if len(workdirs) > 1:
    kind = s.model.kind.upper()
    return f'{kind} {s.workdir.rstrip("/").split("/")[-1]}\n{who}'
  return who


DENSITY = 'density.npz'  # the density `fit` fitted to a model's training codes, in latent/fit/


@_one_run
def fit(source: Source, out, density: str = 'gaussian', components: int = 10,
        seed: int = 0) -> dict:
  """Fit a density to the training codes of a model, which `sample` then draws from: a
  full-covariance Gaussian (the default) or a scikit-learn Gaussian mixture of `components`
  components (`density='gmm'`, Ghosh et al.'s ex-post density for RAEs) over the codes
  (posterior means); for a VQ-VAE, a categorical distribution of the code indices at each
  position (`density='categorical'`, the only kind that applies: its codes are discrete).
  Writes density.npz (plain arrays) and, for a Gaussian, gaussian.npz as before."""
  m = source.model
  images, _, _ = source.split('train')
  if m.kind == 'vqvae':
    if density not in ('categorical', 'gaussian'):  # gaussian: the flag's default
      raise ConfigError(f'--density {density}: a VQ-VAE\'s codes are code indices; its '
                        'density is a categorical per position (--density categorical)')
    params = _fit_categorical(m, images)
  else:
    if density == 'categorical':
      raise ConfigError(f'--density categorical: {m.describe()} is a {m.kind.upper()} with '
                        'continuous codes; use gaussian or gmm')
    mean, _ = _codes(m, images)
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
  """A VQ-VAE's code indices' frequencies at each position (add-one smoothed) ->
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
  import os
  import zipfile
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


@_one_run
def sample(source: Source, num: int, seed: int, temperature: float, out, density=None) -> dict:
  """Prior samples of a VAE (z ~ N(0, T² I)), and of a WAE unless a density is given (its
  objective matches the codes to that prior); for another AE, codes from the density `fit`
  fitted to its training codes; for a VQ-VAE, code indices from the categorical `fit`
  fitted per position (`density`: that file's contents)."""
  m = source.model
  key = jax.random.PRNGKey(seed)
  wae = m.kind == 'ae' and m.config.loss.objective == 'wae_mmd'
  if m.kind == 'vae' or (wae and density is None):
    z = np.asarray(temperature * jax.random.normal(key, (num, *m.latent_shape)))
    if m.latent_mask is not None:
      z = z * np.asarray(m.latent_mask)
    what = f'prior samples z ~ N(0, {temperature:g}² I)'
    if wae:  # its objective matched the codes to N(0, I)
      what += ', the prior a WAE matches its codes to'
  else:
    what = ('an AE: it has no prior to sample' if m.kind == 'ae'
            else 'a VQ-VAE: it needs a prior over its codes')
    if density is None:
      kind = ' --density categorical' if m.kind == 'vqvae' else ''
      raise WorkdirError(f'{source.workdir} ({m.describe()}) is {what}. Fit a density to its '
                         'training codes first: python -m ae_jax.latent fit --workdir '
                         f'{source.workdir}{kind}')
    units = (int(np.prod(m.latent_shape[:-1])) if m.kind == 'vqvae' else m.num_units)
    if _density_units(density) != units:
      raise WorkdirError(f'the fitted density describes {_density_units(density)} code '
                         f'{"positions" if m.kind == "vqvae" else "units"}; {m.describe()} has '
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
      z = m.codebook()[idx.reshape((num,) + probs.shape[:-1])]  # [num, *positions, D]
      what = (f'VQ-VAE samples: code indices from {_describe(density)} fitted to its '
              f'{int(density["num_codes"])} training codes; a VQ-VAE needs such a prior')
    else:
      density = {'latent_shape': np.asarray(m.latent_shape, np.int64), **density}
      z = density_lib.sample(density, num, seed, temperature)
      what = (f'AE samples: codes from {_describe(density)} fitted to its training codes '
              f'(T={temperature:g}); an AE has no prior')
  images = m.decode(z)
  cols = min(num, 8)
  rows = [images[i:i + cols] for i in range(0, num, cols)]
  fig = figures.image_rows(rows, [''] * len(rows), f'{what}\n{m.describe()}, seed {seed}',
                           color_key=m.color_key)
  return {'figure': out.figure(fig, 'samples.png'), 'arrays': out.array('samples.npy', images),
          'codes': out.array('codes.npy', z), 'images': images, 'z': z, 'title': what}


@_one_run
def interpolate(source: Source, ids: list[int], steps: int, out) -> dict:
  """Decoded codes on the way between two real images (linear and spherical), with the
  real images at both ends."""
  if len(ids) != 2:
    raise ConfigError(f'--ids {",".join(map(str, ids))}: interpolate takes exactly two ids')
  if steps < 2:
    raise ConfigError(f'--steps {steps}: at least 2 (the two endpoints)')
  m = source.model
  images, labels = source.images(ids)
  mean, _ = _codes(m, images)
  rows, names, arrays = [], [], {}
  for mode in ('linear', 'spherical'):
    z = np.asarray(ops.interpolate(mean[0], mean[1], steps, mode))
    decoded = m.decode(z)
    rows.append(np.concatenate([images[:1], decoded, images[1:]]))
    names.append(mode)
    arrays[mode] = decoded
    arrays[f'{mode}_codes'] = z
  a, b = (f'{i} ({source.label_name(int(label))})' if label >= 0 else str(i)
          for i, label in zip(ids, labels))
  cols = ['real'] + [f't={t:.2f}' for t in np.linspace(0, 1, steps)] + ['real']
  fig = figures.image_rows(rows, names, f'interpolation from id {a} to id {b}, {m.describe()}',
                           color_key=m.color_key, col_titles=cols)
  return {'figure': out.figure(fig, 'interpolate.png'),
          'arrays': out.arrays('interpolate.npz', ids=np.asarray(ids), endpoints=images,
                               **arrays),
          **arrays, 'endpoints': images}


@_one_run
def edit(source: Source, ids: list[int], edits, out) -> dict:
  """Chosen dimensions scaled and shifted: original, plain reconstruction, one row per edit."""
  m = source.model
  check_dims(m, [d for d, *_ in edits])
  images, labels = source.images(ids)
  mean, _ = _codes(m, images)
  rows, names = [images, m.decode(mean)], ['original', 'reconstruction']
  arrays = {'original': images, 'reconstruction': rows[1]}
  for d, scale, shift, label in edits:
    decoded = m.decode(np.asarray(ops.edit(mean, d, scale, shift)))
    rows.append(decoded)
    names.append(label)
    arrays[f'dim{d}_scale{scale:g}_shift{shift:g}'] = decoded
  fig = figures.image_rows(rows, names, f'latent edits, {m.describe()}', color_key=m.color_key,
                           col_titles=source.titles(ids, labels))
  return {'figure': out.figure(fig, 'edit.png'),
          'arrays': out.arrays('edit.npz', ids=np.asarray(ids), **arrays), **arrays}


@_one_run
def traverse(source: Source, image_id: int, dims, span: float, points: int, out) -> dict:
  """One row per dimension: the image's code with that dimension swept over
  mean ± span·σ (σ: the dimension's spread over the test codes). With no dims given, the
  most informative ones first (by KL for a VAE, by code variance for an AE)."""
  m = source.model
  test, _, _ = source.split('test', limit=2000)
  t_mean, t_logvar = _codes(m, test)
  order, score = ops.order_dims(t_mean, t_logvar)
  n_used = min(int(m.latent_shape[-1]), int(m.latent_dim))
  order = [int(d) for d in np.asarray(order) if d < n_used]
  dims = list(dims) if dims else order[:10]
  check_dims(m, dims)
  images, labels = source.images([image_id])
  mean, _ = _codes(m, images)
  flat = np.reshape(t_mean, (-1, t_mean.shape[-1]))
  centre, sigma = flat.mean(0), flat.std(0) + 1e-8
  rows, names, grid = [], [], []
  recon = m.decode(mean)
  for d in dims:
    values = centre[d] + np.linspace(-span, span, points) * sigma[d]
    decoded = m.decode(np.asarray(ops.traverse(mean[0], d, values)))
    rows.append(np.concatenate([images, recon, decoded]))
    crit = 'KL' if m.kind == 'vae' else 'var'
    names.append(f'dim {d}\n{crit} {float(score[d]):.3g}')
    grid.append(decoded)
  cols = ['original', 'recon'] + [f'{v:+.1f}σ' for v in np.linspace(-span, span, points)]
  lab = source.label_name(int(labels[0]))
  fig = figures.image_rows(rows, names, f'traversal of id {image_id}{f" ({lab})" if lab else ""}'
                           f', ±{span:g}σ per dimension, {m.describe()}',
                           color_key=m.color_key, col_titles=cols)
  return {'figure': out.figure(fig, 'traverse.png'),
          'arrays': out.arrays('traverse.npz', dims=np.asarray(dims), grid=np.stack(grid),
                               order=np.asarray(order), score=np.asarray(score)),
          'dims': dims, 'order': order, 'grid': np.stack(grid)}


@_one_run
def generate(source: Source, ids: list[int], k: int, sigma, seed: int, out,
             per_class: int = 0, classes=()) -> dict:
  """Latent-noise generation: k new samples per source image, decoded from its code (the
  posterior mean for a VAE) plus Gaussian noise of scale sigma (a number, or 'schedule':
  the i-th sample gets i/10). Writes gen_data.npy (the dataset's own layout and range),
  gen_label.npy (each sample inherits its source's label, as the dataset's own value and
  dtype: 5, 0.5, 'cat'; -1 unlabelled) and gen_ids.npy. `classes` are class names."""
  m = source.model
  if per_class:
    ids = _ids_per_class(source, per_class, classes, seed)
  if not ids:
    raise ConfigError('no image ids to generate from: give --ids or --per-class')
  sigmas = (np.asarray(ops.sigma_schedule(k)) if sigma == 'schedule'
            else np.full(k, float(sigma), np.float32))
  images, labels = source.images(ids)
  mean, _ = _codes(m, images)
  z = ops.add_noise(jax.random.PRNGKey(seed), np.asarray(mean), k, sigmas)
  gen = m.decode(np.asarray(z))
  gen_label = np.repeat(source.label_values(labels), k)  # the user's own label values
  gen_ids = np.repeat(np.asarray(ids), k)
  stored = data.to_storage(gen, m.storage)
  written = {'data': out.array('gen_data.npy', stored),
             'labels': out.array('gen_label.npy', gen_label),
             'ids': out.array('gen_ids.npy', gen_ids),
             'sigma': out.array('gen_sigma.npy', np.tile(sigmas, len(ids)))}
  show = _figure_rows(source, ids, labels, images, gen, k)
  sig = ('σ = i/10 for sample i' if sigma == 'schedule' else f'σ = {float(sigma):g}')
  for n, (_, rows, names) in enumerate(show):
    cols = ['original'] + [f'σ={s:.2g}' for s in sigmas]
    fig = figures.image_rows(rows, names, f'{k} samples per image from code + noise ({sig}), '
                             f'{m.describe()}, seed {seed}', color_key=m.color_key,
                             col_titles=cols)
    written[f'figure{n}'] = out.figure(fig, 'generate.png' if n == 0 else f'generate_{n}.png')
  return {**written, 'gen_data': stored, 'gen_label': gen_label, 'gen_ids': gen_ids,
          'images': gen, 'source_labels': labels}


def _figure_rows(source, ids, labels, images, gen, k, per_figure: int = 20):
  out = []
  for start in range(0, len(ids), per_figure):
    rows, names = [], []
    for j in range(start, min(start + per_figure, len(ids))):
      rows.append(np.concatenate([images[j:j + 1], gen[j * k:(j + 1) * k]]))
      lab = source.label_name(int(labels[j]))
      names.append(f'id {ids[j]}' + (f'\n{lab}' if lab else ''))
    out.append((ids[start:start + per_figure], rows, names))
  return out


def _ids_per_class(source: Source, per_class: int, classes, seed: int) -> list[int]:
  names = list(source.model.class_names)
  if not names:
    raise ConfigError(f'{source.workdir}: the dataset has no class names; give --ids')
  wanted = [str(c) for c in classes] or names
  index = {c: class_index(c, names, source.class_values) for c in wanted}
  bad = [c for c, i in index.items() if i is None]
  if bad:
    shown = names if len(names) <= 20 else names[:20] + [f'... ({len(names)} classes)']
    raise ConfigError(f'class(es) {bad} unknown; this dataset has {shown}')
  labels = np.asarray(source.dataset.train['label'])  # class indices
  ids = np.asarray(source.dataset.train['id'])
  rng = np.random.default_rng(seed)
  out = []
  for c in wanted:
    pos = np.flatnonzero(labels == index[c])
    if len(pos) == 0:
      raise ConfigError(f'class {c!r} has no training images')
    out += [int(i) for i in ids[np.sort(rng.choice(pos, min(per_class, len(pos)),
                                                   replace=False))]]
  return out


def class_index(text: str, names, values=None) -> int | None:
  """The class a user names: by its name ('5', '-1', '0.5', 'cat'; exact, else the one
  name equal ignoring case), else by numeric value ('5.0' names class 5). None: no class."""
  names = list(names)
  if text in names:
    return names.index(text)
  folded = [i for i, n in enumerate(names) if n.lower() == text.lower()]
  if len(folded) == 1:
    return folded[0]
  values = None if values is None else np.asarray(values)
  if values is not None and len(values) == len(names) and values.dtype.kind in 'iuf':
    try:
      number = float(text)
    except ValueError:
      return None
    same = np.flatnonzero((values.astype(np.float64) == number) |
                          (values == np.asarray(number).astype(values.dtype)
                           if values.dtype.kind == 'f' else False))
    return int(same[0]) if len(same) == 1 else None
  return None


@_one_run
def same_noise(sources: list[Source], num: int, sets: int, seed: int, out) -> dict:
  """Identical Gaussian draws z ~ N(0, I) decoded by every model (e.g. an AE and a VAE of one
  latent size), `sets` sets side by side."""
  if len(sources) < 2:
    raise ConfigError('same-noise compares two or more models: add --with WORKDIR[:MEMBER]')
  shapes = {tuple(s.model.latent_shape) for s in sources}
  if len(shapes) > 1:
    raise ConfigError('same-noise needs models of one latent size; got ' + ', '.join(
        f'{s.workdir} [{s.model.name}]: {tuple(s.model.latent_shape)}' for s in sources))
  shape = shapes.pop()
  rows, names, decoded = [], [], {}
  noise = np.stack([np.asarray(jax.random.normal(jax.random.PRNGKey(seed + i), (num, *shape)))
                    for i in range(sets)])
  for i in range(sets):
    for s in sources:
      x = s.model.decode(noise[i])
      label = f'set {i + 1}: {s.model.kind.upper()} {_short(s)}'
      rows.append(x)
      names.append(label)
      decoded.setdefault(_short(s), []).append(x)
  fig = figures.image_rows(rows, names, f'the same draws z ~ N(0, I) decoded by each model '
                           f'(seeds {seed}..{seed + sets - 1})',
                           color_key=sources[0].model.color_key)
  arrays = {f'decoded_{i}': np.stack(v) for i, v in enumerate(decoded.values())}
  return {'figure': out.figure(fig, 'same_noise.png'),
          'arrays': out.arrays('same_noise.npz', noise=noise, models=np.asarray(list(decoded)),
                               **arrays),
          'noise': noise, 'decoded': {k: np.stack(v) for k, v in decoded.items()}}


def _short(s: Source) -> str:
  name = s.workdir.rstrip('/').split('/')[-1]
  return name if s.model.name == 'run' else f'{name} [{s.model.name}]'


@_one_run
def encode(source: Source, split: str, out, limit: int | None = None) -> dict:
  """A split's codes (means, log-variances, labels, ids) to codes.npz, and a 2-D PCA map of
  the means coloured by label."""
  if split not in ('train', 'test'):
    raise ConfigError(f'--split {split!r}: expected train or test')
  m = source.model
  images, labels, ids = source.split(split, limit)
  mean, logvar = _codes(m, images)
  arrays = {'mean': mean, 'labels': source.label_values(labels), 'ids': ids}
  if logvar is not None:
    arrays['logvar'] = logvar
  flat = np.reshape(mean, (len(mean), -1))
  centred = flat - flat.mean(0)
  _, s, vt = np.linalg.svd(centred, full_matrices=False)
  xy = centred @ vt[:2].T if vt.shape[0] >= 2 else np.c_[centred[:, :1], np.zeros(len(flat))]
  explained = (s[:2] ** 2 / max((s ** 2).sum(), 1e-12)) if len(s) else np.zeros(2)
  fig, ax = figures.subplots(figsize=(5.5, 4.5), dpi=100)
  classes = sorted({int(label) for label in labels})
  for c, color in zip(classes, figures.colors(len(classes))):
    sel = labels == c
    ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=color,
               label=source.label_name(c) or 'unlabelled')
  ax.set_xlabel(f'PC 1 ({100 * explained[0]:.0f}% of variance)')
  if len(explained) > 1:
    ax.set_ylabel(f'PC 2 ({100 * explained[1]:.0f}%)')
  ax.set_title(f'{split} codes (posterior means), {m.describe()}', fontsize=9)
  if len(classes) > 1:
    ax.legend(fontsize=7, markerscale=2, loc='upper left', bbox_to_anchor=(1.01, 1.0))
  fig.tight_layout()
  return {'arrays': out.arrays('codes.npz', **arrays), 'figure': out.figure(fig, 'codes_map.png'),
          **arrays}
