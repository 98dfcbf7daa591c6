"""The latent tools on trained models: each takes loaded models (inference.Trained) and
images, writes figures and arrays into an `Outputs` folder, and returns what it made.
A tool's outputs are one run (`workdir.Outputs`): they replace the folder's previous run
as a whole when the tool returns, and a tool that fails leaves that folder as it was.

A `Source` bundles a trained model with its dataset (loaded on first use, only when a tool
needs images) so tools can fetch images by the dataset's own ids.
"""
from __future__ import annotations

import jax
import numpy as np

from ae_jax import data, figures
from ae_jax.errors import ConfigError
from ae_jax.latent import ops
from ae_jax.latent.source import (DEFAULT_GENERATE_IDS, Source, check_dims, class_index,  # noqa: F401
                                  codes, ids_per_class, one_run, parse_edits, parse_ids)
from ae_jax.models import kinds


@one_run
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


@one_run
def interpolate(source: Source, ids: list[int], steps: int, out) -> dict:
  """Decoded codes on the way between two real images (linear and spherical), with the
  real images at both ends."""
  if len(ids) != 2:
    raise ConfigError(f'--ids {",".join(map(str, ids))}: interpolate takes exactly two ids')
  if steps < 2:
    raise ConfigError(f'--steps {steps}: at least 2 (the two endpoints)')
  m = source.model
  images, labels = source.images(ids)
  mean, _ = codes(m, images)
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


@one_run
def edit(source: Source, ids: list[int], edits, out) -> dict:
  """Chosen dimensions scaled and shifted: original, plain reconstruction, one row per edit."""
  m = source.model
  check_dims(m, [d for d, *_ in edits])
  images, labels = source.images(ids)
  mean, _ = codes(m, images)
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


@one_run
def traverse(source: Source, image_id: int, dims, span: float, points: int, out) -> dict:
  """One row per dimension: the image's own code with that dimension moved by -span·σ to
  +span·σ (σ: the dimension's spread over the test codes; a spatial code's channel moves at
  every position), so the +0.0σ column is the image's reconstruction. With no dims given,
  the most informative ones first (by KL for a VAE, by code variance for an AE)."""
  m = source.model
  test, _, _ = source.split('test', limit=2000)
  t_mean, t_logvar = codes(m, test)
  order, score = ops.order_dims(t_mean, t_logvar)
  n_used = min(int(m.latent_shape[-1]), int(m.latent_dim))
  order = [int(d) for d in np.asarray(order) if d < n_used]
  dims = list(dims) if dims else order[:10]
  check_dims(m, dims)
  images, labels = source.images([image_id])
  mean, _ = codes(m, images)
  flat = np.reshape(t_mean, (-1, t_mean.shape[-1]))
  sigma = flat.std(0) + 1e-8
  rows, names, grid = [], [], []
  recon = m.decode(mean)
  steps = np.linspace(-span, span, points)
  own = np.repeat(np.asarray(mean[:1]), points, 0)  # [points, *latent]: the image's code
  for d in dims:
    shifts = (steps * sigma[d]).reshape(-1, *([1] * (own.ndim - 1)))  # [points, 1, ...]
    decoded = m.decode(np.asarray(ops.edit(own, d, 1.0, shifts)))
    rows.append(np.concatenate([images, recon, decoded]))
    crit = 'KL' if kinds.get(m.kind).posterior else 'var'
    names.append(f'dim {d}\n{crit} {float(score[d]):.3g}')
    grid.append(decoded)
  cols = ['original', 'recon'] + [f'{v:+.1f}σ' for v in steps]
  lab = source.label_name(int(labels[0]))
  fig = figures.image_rows(rows, names, f'traversal of id {image_id}{f" ({lab})" if lab else ""}'
                           f': its own code ±{span:g}σ per dimension, {m.describe()}',
                           color_key=m.color_key, col_titles=cols)
  return {'figure': out.figure(fig, 'traverse.png'),
          'arrays': out.arrays('traverse.npz', dims=np.asarray(dims), grid=np.stack(grid),
                               order=np.asarray(order), score=np.asarray(score)),
          'dims': dims, 'order': order, 'grid': np.stack(grid)}


@one_run
def generate(source: Source, ids: list[int], k: int, sigma, seed: int, out,
             per_class: int = 0, classes=()) -> dict:
  """Latent-noise generation: k new samples per source image, decoded from its code (the
  posterior mean for a VAE) plus Gaussian noise of scale sigma (a number, or 'schedule':
  the i-th sample gets i/10). Writes gen_data.npy (the dataset's own layout and range),
  gen_label.npy (each sample inherits its source's label, as the dataset's own value and
  dtype: 5, 0.5, 'cat'; -1 unlabelled) and gen_ids.npy. `classes` are class names."""
  m = source.model
  if per_class:
    ids = ids_per_class(source, per_class, classes, seed)
  if not ids:
    raise ConfigError('no image ids to generate from: give --ids or --per-class')
  sigmas = (np.asarray(ops.sigma_schedule(k)) if sigma == 'schedule'
            else np.full(k, float(sigma), np.float32))
  images, labels = source.images(ids)
  mean, _ = codes(m, images)
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


@one_run
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


@one_run
def encode(source: Source, split: str, out, limit: int | None = None) -> dict:
  """A split's codes (means, log-variances, labels, ids) to codes.npz, and a 2-D PCA map of
  the means coloured by label."""
  if split not in ('train', 'test'):
    raise ConfigError(f'--split {split!r}: expected train or test')
  m = source.model
  images, labels, ids = source.split(split, limit)
  mean, logvar = codes(m, images)
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
