"""The KL weight (report 003): one VAE with the KL term ×0, ×1 and ×100, trained together as
one vmapped sweep over loss.beta: −ELBO curves, reconstructions at 10 %, 50 % and 100 % of
training (report 003's epochs 10, 50 and 100 of 100), prior samples, interpolations, and a
table of reconstruction term, KL and active units.

  python -m ae_jax.studies kl_weight_study --workdir runs/kl_weight [--quick]

The model is the conv VAE of configs/vae_conv.py with a 32-unit code, on the embedded faces
at 64x64 (gray as 3 channels). Report 003's full settings on its own 64x64 faces:

  python -m ae_jax.studies kl_weight_study --workdir runs/kl_full \\
    --config.data.name=folder --config.data.path=faces/ --config.train.num_epochs=100
"""
from __future__ import annotations

import numpy as np

from ae_jax import figures
from ae_jax.latent import fitted, tools
from ae_jax.studies import Experiment, Model, Study, budget_doc
from ae_jax.studies.report import Report

NAME = 'kl_weight_study'
BETAS = (0.0, 1.0, 100.0)
NUM_IMAGES, NUM_SAMPLES, STEPS = 8, 16, 8  # reconstructed, prior samples, interpolation steps
SMOKE = {'data.name': 'digits', 'data.image_size': 8, 'data.channels': 0,
         'model.arch': 'mlp', 'model.hidden': (16,), 'model.latent_dim': 4,
         'train.num_epochs': 2,
         'eval.metrics': ('loss', 'recon', 'kl', 'neg_elbo', 'psnr', 'ssim', 'active_units')}
MODELS = (
    Model('vae', 'conv VAE of configs/vae_conv.py (4x4 stride-2 convs 32-64-128, BN, flat '
          '32-unit code), KL weight ×0, ×1 and ×100 in one vmapped sweep',
          Experiment('faces', 64, 3, 'conv', 'vae', 32), base='vae_conv',
          budgets={'full': {'train.num_epochs': 30}, 'quick': {'train.num_epochs': 3},
                   'smoke': SMOKE},
          settings={'train.batch_size': 32, 'sweep.beta': BETAS, 'figures.enabled': False,
                    'eval.metrics': ('loss', 'recon', 'kl', 'neg_elbo', 'psnr', 'ssim',
                                     'active_units', 'kl_per_dim')}),
)
__doc__ += budget_doc(MODELS)


def shown_epochs(n: int) -> tuple[int, ...]:
  """Report 003's epochs 10, 50, 100 scaled to an n-epoch run."""
  return tuple(sorted({max(1, round(n * f)) for f in (0.1, 0.5, 1.0)}))


def _config(study: Study):
  cfg = study.config(MODELS[0])
  epochs = shown_epochs(cfg.train.num_epochs)
  with cfg.unlocked():
    cfg.sweep.eval_epochs = epochs
    cfg.checkpoint.keep_epochs = epochs
    cfg.train.eval_every = cfg.train.num_epochs
  return cfg


def run(study: Study) -> Report:
  cfg = _config(study)
  betas = ', '.join(f'×{b:g}' for b in cfg.sweep.beta)
  rep = Report('KL weight study',
               f'One VAE, {len(cfg.sweep.beta)} weights on its KL term ({betas}), trained '
               'together in one vmapped program: ×0 is an autoencoder with a noisy code, ×1 '
               'the VAE, a large weight (×100) a posterior pushed to the prior.')
  study.train('vae', cfg)
  members = study.members('vae')
  epochs = shown_epochs(cfg.train.num_epochs)
  rep.settings(cfg, ('data.name', 'data.image_size', 'model.arch', 'model.latent_dim',
                     'train.num_epochs', 'train.batch_size', 'train.learning_rate',
                     'loss.reconstruction'))
  rep.metrics(members, 'Final test metrics per KL weight', label='member',
              extra={'KL weight': [f'×{m["beta"]:g}' for m in members]},
              note='recon: the reconstruction term per image; KL in nats; active units: latent '
                   'units whose posterior mean varies across images (covariance > 0.01).')
  records = study.records('vae')
  path = study.save_figure(figures.loss_curves(records, 'neg_elbo',
                                               title='−ELBO per epoch (train solid, test dashed)'),
                           'neg_elbo.png')
  off = figures.outliers({_name(m): m['eval'].get('neg_elbo') for m in members})
  rep.figure(path, '−ELBO curves', 'The negative ELBO (reconstruction + KL, in nats per image) '
             'of each member per epoch, training (solid) and test (dashed).'
             + (f' {" and ".join(off)} ran off the others\' scale (up to '
                f'{max(abs(v) for v in off.values()):.3g}): drawn clipped at the top, with '
                '^ markers.' if off else ''))
  first = study.source('vae', 0)
  ids = first.random_ids(NUM_IMAGES, seed=0)
  shown = ', '.join(map(str, epochs))
  for i, m in enumerate(members):
    srcs = [study.source('vae', i, e) for e in epochs]
    r = tools.reconstruct(srcs, ids, study.out(f'reconstruct_{i}'))
    rep.figure(r['figure'], f'Reconstructions at epochs {shown}, KL ×{m["beta"]:g}',
               f'The same {len(ids)} test images at epochs {shown} of this member\'s '
               f'{cfg.train.num_epochs}-epoch run.')
  for i, m in enumerate(members):
    src = study.source('vae', i)
    s = fitted.sample(src, NUM_SAMPLES, 0, 1.0, study.out(f'sample_{i}'))
    rep.figure(s['figure'], f'Prior samples, KL ×{m["beta"]:g}',
               f'{NUM_SAMPLES} decoded z ~ N(0, I): a code that the KL term shapes to N(0, I) '
               'is what should make these look like data.')
  test_ids = [int(i) for i in first.dataset.test['id'][:2]]
  for i, m in enumerate(members):
    it = tools.interpolate(study.source('vae', i), test_ids, STEPS,
                           study.out(f'interpolate_{i}'))
    rep.figure(it['figure'], f'Interpolation, KL ×{m["beta"]:g}',
               f'From test image {test_ids[0]} to {test_ids[1]} through the code space in '
               f'{STEPS} steps.')
  rep.text('What it shows', what_it_shows(members))
  return rep


def _name(m) -> str:
  return f'×{m["beta"]:g}'


def _value(m, key) -> float:
  v = m['eval'].get(key)
  return float(v) if isinstance(v, (int, float)) else float('nan')


def what_it_shows(members: list[dict]) -> str:
  """The report's reading of its own table: every sentence that interprets is built from
  the members' numbers, says when they go against the usual expectation, and names a member
  whose KL or −ELBO ran away."""
  fmt = lambda v, unit='': f'{v:.4g}{unit}' if np.isfinite(v) else 'n/a'
  out = ['By KL weight (reconstruction term / KL / PSNR / active units): ' + '; '.join(
      f'{_name(m)}: {fmt(_value(m, "recon"))} / {fmt(_value(m, "kl"))} / '
      f'{fmt(_value(m, "psnr"), " dB")} / {fmt(_value(m, "active_units"))}'
      for m in members) + '.']
  runaway = {}
  for key, what in (('kl', 'KL'), ('neg_elbo', '−ELBO')):
    for name, v in figures.outliers({_name(m): _value(m, key) for m in members}).items():
      runaway.setdefault(name, []).append(f'{what} {v:.3g}' if np.isfinite(v) else
                                          f'{what} not finite')
  for m in members:
    if _name(m) in runaway:
      why = (' (nothing in its loss bounds the KL at weight 0)' if m['beta'] == 0 else '')
      out.append(f'{_name(m)} diverged: {", ".join(runaway[_name(m)])}{why}, far off the '
                 'other members\' scale; its KL and −ELBO are not comparable with theirs.')
  one = next((m for m in members if m['beta'] == 1.0), None)
  big = max(members, key=lambda m: m['beta'])
  if one is not None and big['beta'] > 1.0:
    p1, pb = _value(one, 'psnr'), _value(big, 'psnr')
    k1, kb = _value(one, 'kl'), _value(big, 'kl')
    a1, ab = _value(one, 'active_units'), _value(big, 'active_units')
    if np.isfinite(p1) and np.isfinite(pb):
      if pb < p1 - 0.1:
        psnr = (f'The largest weight ({_name(big)}) reconstructs worse than ×1 ({pb:.2f} '
                f'against {p1:.2f} dB PSNR), the blur a KL weight buys')
      elif pb > p1 + 0.1:
        psnr = (f'The largest weight ({_name(big)}) reconstructs better than ×1 here '
                f'({pb:.2f} against {p1:.2f} dB PSNR): at this budget the blur usually '
                'blamed on a large KL weight does not show')
      else:
        psnr = (f'The largest weight ({_name(big)}) reconstructs about as well as ×1 '
                f'({pb:.2f} against {p1:.2f} dB PSNR)')
      code = ''
      if np.isfinite(k1) and np.isfinite(kb) and _name(big) not in runaway:
        code = (f', with a code that carries {"less" if kb < k1 else "no less"} information '
                f'(KL {kb:.3g} against {k1:.3g} nats')
        if np.isfinite(a1) and np.isfinite(ab):
          code += f'; {ab:.0f} against {a1:.0f} active units'
        code += ')'
      out.append(psnr + code + '.')
  zero = next((m for m in members if m['beta'] == 0), None)
  if zero is not None:
    out.append(f'{_name(zero)} puts no weight on the KL, so nothing shapes its code to '
               'N(0, I): its prior samples above are not expected to look like data.')
  return ' '.join(out)
