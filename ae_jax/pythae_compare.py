"""The comparison with pythae: the settings under which ae_jax minimises pythae's losses,
and docs/vs_pythae.md from the newest docs/benchmarks/*-vs-pythae.json.

experiments/vs_pythae.py trains each pythae model with SETTINGS[model] over the pythae
presets (models/pythae_nets.py) and writes the file; LOSSES states both sides' losses (the
file records it, so a page always says what its numbers were trained with); `block(folder)`
renders the newest file (the docs generator's `vs_pythae` block).
"""
from __future__ import annotations

import json
import os

# config key -> value that makes ae_jax's loss pythae's (tests/test_pythae_compare.py checks
# each against pythae's loss_function). pythae's 'mse' VAE family has 1/2 sum_P (x_hat - x)^2,
# the N(x_hat, I) nll without its constant: gaussian_nll with sigma 1; its AE family has
# sum_P (x_hat - x)^2 without the 1/2: mse summed.
_VAE = {'model.kind': 'vae', 'loss.reconstruction': 'gaussian_nll', 'loss.nll_sigma': 1.0,
        'loss.reduction': 'sum'}
SETTINGS = {
    'vae': _VAE,
    'beta_vae': _VAE,  # with sweep.beta
    'iwae': {**_VAE, 'loss.objective': 'iwae', 'loss.iwae_samples': 10},
    'rae_l2': {'model.kind': 'ae', 'loss.objective': 'rae', 'loss.reconstruction': 'mse',
               'loss.reduction': 'sum', 'loss.beta': 1e-4, 'loss.rae_decoder': 'l2',
               # our term is |theta_dec|^2 (gradient 2 w theta); pythae's Adam weight decay
               # 1e-7 adds 1e-7 theta to the gradient
               'loss.rae_decoder_weight': 0.5e-7},
    'vqvae': {'model.kind': 'vqvae', 'loss.reconstruction': 'mse', 'loss.reduction': 'sum',
              'model.vq.codes': 512, 'model.vq.learning': 'codebook_loss',
              'loss.commitment': 0.25},
}
SUFFIX = '-vs-pythae.json'
COMMAND = 'python experiments/vs_pythae.py --out'

# (result key, header) of the performance page's table (docs.py reads `columns`)
COLUMNS = [['name', 'model'], ['library', 'library'], ['images_per_sec', 'images/s'],
           ['speedup', 'ae_jax / pythae'], ['first_epoch_s', 'first epoch s'],
           ['recon_mse', 'test squared error / image'], ['neg_elbo', '-ELBO'], ['fd', 'sample FD'],
           ['codebook_usage', 'codes used']]

# P = pixel values per image (784), B = batch, L = latent units; sums over pixels or units
LOSSES = [
    {'model': 'VAE',
     'pythae': 'mean_B [ 1/2 sum_P (x_hat - x)^2 + KL(q(z|x) || N(0, I)) ], one z per image',
     'ae_jax': "loss.reconstruction='gaussian_nll', loss.nll_sigma=1, loss.reduction='sum', "
               'loss.beta=1: the same plus (P/2) log 2 pi per image (the same gradient)'},
    {'model': 'IWAE',
     'pythae': 'log w_k = -(1/2 sum_P (x_hat_k - x)^2 + log q(z_k|x) - log p(z_k)), K = 10; '
               'minimises mean_B -sum_k sg(softmax(log w))_k log w_k, whose gradient is that '
               'of -log mean_k w_k (its value is not the bound)',
     'ae_jax': "loss.objective='iwae', loss.iwae_samples=10, gaussian_nll with sigma 1, "
               'reduction sum: minimises -log mean_k w_k itself'},
    {'model': 'RAE-L2',
     'pythae': 'mean_B [ sum_P (x_hat - x)^2 + 1e-4 |z|^2 / 2 ] (no 1/2 on the squared error), '
               "and Adam weight decay 1e-7 on the decoder's parameters (biases and BatchNorm "
               'included); two Adams (encoder, decoder), the encoder\'s gradient counted twice '
               '(Adam scales it away)',
     'ae_jax': "model.kind='ae', loss.objective='rae', loss.reconstruction='mse', "
               "reduction 'sum', loss.beta=1e-4, loss.rae_decoder='l2', "
               'loss.rae_decoder_weight=5e-8 (its term is |theta_dec|^2, whose gradient is '
               "2 x 5e-8 theta: torch's 1e-7 theta)"},
    {'model': 'VQ-VAE',
     'pythae': 'mean_B sum_P (x_hat - x)^2 + 0.25 mean_{B,L} (z_e - sg(e))^2 + '
               'mean_{B,L} (sg(z_e) - e)^2; each of the L units quantised on its own against '
               '512 one-dimensional codes started uniform in +-1/512; no EMA, no restarts',
     'ae_jax': "model.kind='vqvae', loss.reconstruction='mse', reduction 'sum', "
               "model.vq.learning='codebook_loss', model.vq.codes=512, loss.commitment=0.25 "
               '(the presets make [B, L, 1] codes and start the codebook as pythae does)'},
    {'model': 'beta-VAE sweep',
     'pythae': 'BetaVAE: mean_B [ 1/2 sum_P (x_hat - x)^2 + beta KL ], one run per beta',
     'ae_jax': 'the VAE above with config.sweep.beta = the 8 betas: one vmapped program'},
]


def _fmt(v, digits=4) -> str:
  if v is None:
    return '–'
  if isinstance(v, float):
    return f'{v:.{digits}g}'
  return str(v)


def _cell(v) -> str:
  return str(v).replace('|', '&#124;').replace('\n', ' ')


def _pairs_table(results) -> list[str]:
  lines = ['| model | net | library | images/s | ae_jax / pythae | first epoch s | '
           'test squared error / image | -ELBO | sample FD | codes used (perplexity) |',
           '|---|---|---|---|---|---|---|---|---|---|']
  for r in results:
    if 'per_beta' in r:
      continue
    codes = (f'{r["codebook_usage"]:.1%} ({r.get("perplexity", 0):.1f})'
             if r.get('codebook_usage') is not None else '–')
    speed = f'{r["speedup"]:g}×' if r.get('speedup') else '–'
    lines.append(f'| {r["model"]} | {r["net"]} | {r["library"]} | {_fmt(r.get("images_per_sec"))}'
                 f' | {speed} | {_fmt(r.get("first_epoch_s"), 3)} | {_fmt(r.get("recon_mse"))} | '
                 f'{_fmt(r.get("neg_elbo"))} | {_fmt(r.get("fd"))} | {codes} |')
  return lines


def _sweep_tables(results) -> list[str]:
  rows = [r for r in results if 'per_beta' in r]
  if not rows:
    return []
  out = ['', '### The beta sweep', '',
         '| library | models | images/s (all models) | ae_jax / pythae | wall s |',
         '|---|---|---|---|---|']
  for r in rows:
    speed = f'{r["speedup"]:g}×' if r.get('speedup') else '–'
    out.append(f'| {r["library"]} | {r["members"]} | {_fmt(r.get("images_per_sec"))} | {speed} '
               f'| {_fmt(r.get("wall_s"), 3)} |')
  by_lib = {r['library']: {m['beta']: m for m in r['per_beta']} for r in rows}
  betas = sorted({b for lib in by_lib.values() for b in lib})
  libs = [lib for lib in ('pythae', 'ae_jax') if lib in by_lib]
  head = ' | '.join(f'{k} ({lib})' for k in ('squared error', '-ELBO', 'KL', 'FD') for lib in libs)
  out += ['', f'| beta | {head} |', '|---|' + '---|' * (4 * len(libs))]
  for b in betas:
    cells = [_fmt(by_lib[lib].get(b, {}).get(k)) for k in ('recon_mse', 'neg_elbo', 'kl', 'fd')
             for lib in libs]
    out.append(f'| {b:g} | ' + ' | '.join(cells) + ' |')
  return out


def render(rec: dict, name: str = '') -> str:
  """The page's generated part from one benchmark record of the experiment."""
  b, d, t = rec.get('budget', {}), rec.get('data', {}), rec.get('threads', {})
  source = f'[`benchmarks/{name}`](benchmarks/{name})' if name else 'the benchmark file'
  out = [f'Measured {rec["date"]} on {rec["machine"]}, commit `{rec["commit"]}` (jax '
         f'{rec.get("jax", "?")}, torch {rec.get("torch", "?")}, pythae {rec.get("pythae", "?")}),'
         f' from {source}: `{rec["command"]}`.', '',
         f'{_cell(rec["title"])}. Data: {d.get("name", "?")}, {d.get("train", "?")} training '
         f'and {d.get("test", "?")} test images ({_cell(d.get("split", ""))}). Budget for '
         f'both: latent {b.get("latent_dim")}, batch {b.get("batch_size")}, '
         f'{b.get("optimizer")} at {b.get("learning_rate")}, {b.get("epochs")} epochs, seed '
         f'{b.get("seed")}; {t.get("threads", "?")} CPU threads each ({_cell(t.get("how", ""))}).'
         f' Samples: {b.get("samples")} per model, scored in one feature space: '
         f'{_cell(rec.get("feature_space", "?"))}.', '',
         'images/s: training images per second after the first epoch (which holds ae_jax\'s '
         'compile), without evaluation; first epoch s: the first epoch with that compile. '
         'Test squared error: sum over pixels of (x_hat - x)^2 from the code or posterior '
         'mean, averaged over test images. -ELBO: nats per image, one posterior sample, '
         'N(x_hat, I) likelihood with its constant. Samples: the prior (VAE, IWAE, beta-VAE), '
         'each library\'s 10-component GMM on the training codes (RAE-L2), one GMM protocol '
         'on the quantised codes (VQ-VAE).', '']
  out += _pairs_table(rec['results']) + _sweep_tables(rec['results'])
  losses = rec.get('losses') or []
  if losses:
    out += ['', '### The losses both libraries minimise', '', '| model | pythae | ae_jax |',
            '|---|---|---|']
    out += [f'| {_cell(x["model"])} | {_cell(x["pythae"])} | {_cell(x["ae_jax"])} |'
            for x in losses]
  if rec.get('note'):
    out += ['', _cell(rec['note'])]
  return '\n'.join(out)


def measurements(folder: str) -> list[tuple[str, dict]]:
  """(file name, record) of every *-vs-pythae.json under `folder`/benchmarks, newest first
  (one file per run: the networks of a run that measured one kind only are in its name)."""
  bench = os.path.join(folder, 'benchmarks')
  names = sorted((f for f in os.listdir(bench) if f.endswith(SUFFIX)), reverse=True) if (
      os.path.isdir(bench)) else []
  out = []
  for name in names:
    with open(os.path.join(bench, name)) as f:
      out.append((name, json.load(f)))
  return out


def newest(folder: str) -> tuple[str, dict] | None:
  """(file name, record) of the newest *-vs-pythae.json under `folder`/benchmarks."""
  found = measurements(folder)
  return found[0] if found else None


def block(folder: str, arg: str = '') -> str:
  """The docs generator's `vs_pythae` block: every measurement, newest first, rendered."""
  found = measurements(folder)
  if not found:
    return (f'(no measurement yet: `{COMMAND}` writes docs/benchmarks/<date>-cpu{SUFFIX}, then '
            '`python -m ae_jax.docs` fills this page)')
  return '\n\n'.join(f'### {name[:-len(".json")]}\n\n' + render(rec, name)
                       for name, rec in found)
