"""The same noise through an AE and a VAE (report 000): identical draws z ~ N(0, I) decoded
by both, sets of them side by side, and how far the decoded images fall from the data.

  python -m ae_jax.studies ae_vs_vae_noise --workdir runs/ae_vs_vae [--quick]

The models: conv AE and conv VAE (configs/ae_conv.py, configs/vae_conv.py, both with a
32-unit code) on generated 26x26 wafer maps.

Why they differ: the VAE's KL term pulls its codes towards N(0, I), so draws from N(0, I)
land where its decoder was trained; an AE's codes go wherever the reconstruction wants, so
the same draws mostly decode to images unlike any training image. The table measures this
as the distance from each decoded draw to its nearest training image (root mean square over
pixels), next to the same distance for test images' reconstructions.

On your images (report 000 used 50x50 RGB and a 256-unit code):

  python -m ae_jax.studies ae_vs_vae_noise --workdir runs/ae_vs_vae_full \\
    --config.data.name=folder --config.data.path=images/ --config.data.image_size=48 \\
    --config.model.latent_dim=256 --config.train.num_epochs=100
"""
from __future__ import annotations

import numpy as np

from ae_jax.latent import ops, tools
from ae_jax.studies import Experiment, Model, Study, budget_doc
from ae_jax.studies.report import Report

NAME = 'ae_vs_vae_noise'
DRAWS, SETS, NEAREST = 8, 2, 64  # draws per set, sets, test reconstructions measured
BUDGETS = {'full': {'data.num_examples': 2000, 'train.num_epochs': 30},
           'quick': {'data.num_examples': 600, 'train.num_epochs': 2, 'train.eval_every': 2},
           'smoke': {'data.num_examples': 300, 'train.num_epochs': 1, 'model.arch': 'mlp',
                     'model.hidden': (16,), 'model.latent_dim': 4, 'train.batch_size': 64,
                     # the per-batch metrics only: LPIPS's VGG pass costs more than the model
                     'eval.metrics': ('loss', 'recon', 'kl', 'psnr', 'ssim')}}
SETTINGS = {'figures.enabled': False, 'checkpoint.max_to_keep': 1}
MODELS = tuple(
    Model(kind, f'conv {kind.upper()} of configs/{kind}_conv.py (4x4 stride-2 convs 32-64-128, '
          'BN, flat 32-unit code, BCE on one-hot maps)',
          Experiment('wafer', 26, 3, 'conv', kind, 32), BUDGETS, SETTINGS, base=f'{kind}_conv')
    for kind in ('ae', 'vae'))
__doc__ += f'\nDraws: {SETS} sets of {DRAWS}.\n' + budget_doc(MODELS)


def run(study: Study) -> Report:
  rep = Report('The same noise through an AE and a VAE',
               'Identical Gaussian draws decoded by an AE and a VAE of one latent size.')
  for model in MODELS:
    cfg = study.config(model)
    study.train(model.key, cfg)
  sources = [study.source(m.key) for m in MODELS]
  result = tools.same_noise(sources, DRAWS, SETS, 0, study.out('same_noise'))
  train, _, _ = sources[0].split('train')
  test, _, _ = sources[0].split('test', limit=NEAREST)
  members, dist = [], {'noise: mean distance': [], 'noise: median': [],
                        'reconstructions: mean': [], 'ratio': []}
  for model, s, (_, decoded) in zip(MODELS, sources, result['decoded'].items()):
    d_noise = ops.nearest_distance(decoded.reshape(-1, *decoded.shape[2:]), train)
    d_recon = ops.nearest_distance(s.model.reconstruct(test), train)
    for col, v in zip(dist, (d_noise.mean(), np.median(d_noise), d_recon.mean(),
                             d_noise.mean() / max(d_recon.mean(), 1e-8))):
      dist[col].append(float(v))
    members += [{**m, 'name': s.model.kind.upper()} for m in study.members(model.key)]
  rep.settings(cfg, ('data.name', 'data.image_size', 'model.latent_dim', 'train.num_epochs',
                     'loss.beta'))
  rep.metrics(members, 'How far decoded noise falls from the data', extra=dist,
              note='Distance to the nearest training image, root mean square over pixels; '
                   f'"reconstructions" are {len(test)} test images\' reconstructions, the '
                   'distance a decoded image has when its code is one the model made. A ratio '
                   'near 1: decoded noise looks like the model\'s own outputs. Then each '
                   'model\'s test metrics.')
  rep.figure(result['figure'], 'Same draws, two models',
             f'Each column is one draw z ~ N(0, I), decoded by the AE and by the VAE, {SETS} '
             f'sets of {DRAWS}. ' + noise_verdict(*dist['ratio']))
  return rep


def noise_verdict(ae_ratio: float, vae_ratio: float) -> str:
  """The figure's reading, from the table's ratios (decoded noise's distance to the data
  over the reconstructions'): a VAE is expected to decode noise nearer the data."""
  ratios = f'ratio {vae_ratio:.2f} against the AE\'s {ae_ratio:.2f}'
  if not (np.isfinite(ae_ratio) and np.isfinite(vae_ratio)):
    return 'The distance ratios are not finite: nothing to read from them.'
  if vae_ratio < ae_ratio:
    return (f'By the table, the VAE decodes noise nearer the data than the AE does ({ratios}), '
            'as its KL term, which shapes the code to N(0, I), would have it.')
  return (f'By the table, the VAE does not decode noise nearer the data than the AE here '
          f'({ratios}), against the usual expectation; this budget may be too small for it.')
