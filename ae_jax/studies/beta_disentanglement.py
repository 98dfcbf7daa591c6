"""β and disentanglement: a β-VAE sweep on dSprites-style shapes with known generating
factors, scored by the Mutual Information Gap (MIG, Chen et al. 2018) per β, with a latent
traversal of the most disentangled member.

  python -m ae_jax.studies beta_disentanglement --workdir runs/beta_mig [--quick]

The model: generated 64x64 dSprites images (shape, scale, orientation, x, y), an MLP VAE
(512-256) with 10 latents, β ∈ BETAS in one vmapped program.
"""
from __future__ import annotations

from ae_jax.latent import tools
from ae_jax.studies import Experiment, Model, Study, budget_doc
from ae_jax.studies.report import Report

NAME = 'beta_disentanglement'
BETAS = (1.0, 4.0, 16.0)
SPAN, POINTS = 2.5, 7  # the traversal: ±SPAN·σ in POINTS steps
MODELS = (
    Model('vae', f'MLP VAE 4096-512-256, 10 latents, BCE; β ∈ {BETAS} in one vmapped sweep',
          Experiment('dsprites', 64, 1, 'mlp', 'vae', 10),
          budgets={'full': {'data.num_examples': 8000, 'train.num_epochs': 15},
                   'quick': {'data.num_examples': 2000, 'train.num_epochs': 2},
                   'smoke': {'data.num_examples': 256, 'train.num_epochs': 1,
                             'model.hidden': (16,), 'model.latent_dim': 4}},
          settings={'model.hidden': (512, 256), 'loss.reconstruction': 'bce',
                    'loss.reduction': 'sum', 'train.batch_size': 64,
                    'train.learning_rate': 1e-3, 'sweep.beta': BETAS,
                    'figures.enabled': False, 'checkpoint.max_to_keep': 1,
                    'eval.metrics': ('loss', 'recon', 'kl', 'psnr', 'active_units', 'mig')}),
)
__doc__ = __doc__.replace('BETAS', str(BETAS)) + budget_doc(MODELS)


def _config(study: Study):
  cfg = study.config(MODELS[0])
  with cfg.unlocked():
    cfg.train.eval_every = cfg.train.num_epochs
  return cfg


def run(study: Study) -> Report:
  rep = Report('β and disentanglement',
               'A larger β presses the posterior towards a factorised prior; MIG measures '
               'whether each generating factor then lives in one latent unit.')
  cfg = _config(study)
  study.train('vae', cfg)
  members = study.members('vae')
  rep.settings(cfg, ('data.name', 'data.num_examples', 'model.hidden', 'model.latent_dim',
                     'train.num_epochs', 'loss.reconstruction'))
  rep.metrics(members, 'MIG and reconstruction per β', label='member',
              note='MIG: for each factor, the gap between the two latent units with the most '
                   'mutual information with it, divided by the factor\'s entropy, averaged '
                   'over factors (0: entangled, 1: one unit per factor).')
  best = max(range(len(members)), key=lambda i: members[i]['eval'].get('mig', -1.0))
  src = study.source('vae', best)
  trav = tools.traverse(src, int(src.dataset.test['id'][0]), [], SPAN, POINTS,
                        study.out('traverse'))
  rep.figure(trav['figure'], f'Traversal of the highest-MIG member ({members[best]["name"]})',
             f'Each row moves one latent unit of the image\'s own code (highest KL first) by '
             f'−{SPAN:g}σ to +{SPAN:g}σ in {POINTS} steps (the +0.0σ column is its '
             'reconstruction); in a disentangled code a row changes one property: position, '
             'scale, rotation or shape.')
  return rep
