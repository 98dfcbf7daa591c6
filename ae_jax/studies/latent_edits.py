"""Latent edits (report 004): the fully connected AE with a 10-dim code on 64x64 faces;
original, reconstruction, dimension 0 ×2 and dimension 2 +5, and a traversal of every
dimension.

  python -m ae_jax.studies latent_edits --workdir runs/latent_edits [--quick]

The model is fcn_ae_64 (12288-1024-256-64-10, tanh output) on the embedded faces
(lfw_subset, gray as RGB, 64x64). The report's setting on its own face images:

  python -m ae_jax.studies latent_edits --workdir runs/latent_edits_full \\
    --config.data.name=folder --config.data.path=faces/ --config.data.image_size=64
"""
from __future__ import annotations

from ae_jax.latent import tools
from ae_jax.studies import Experiment, Model, Study, budget_doc
from ae_jax.studies.report import Report

NAME = 'latent_edits'
EDITS = '0*2,2+5'  # report 004's edits: dimension 0 doubled, 5 added to dimension 2
NUM_IMAGES, SPAN, POINTS = 8, 3.0, 7  # test faces edited; traversal ±SPAN·σ in POINTS steps
SMOKE = {'data.name': 'digits', 'data.image_size': 8, 'data.channels': 0,
         'model.preset': '', 'model.arch': 'mlp', 'model.hidden': (16,),
         'model.latent_dim': 4, 'train.num_epochs': 1, 'train.eval_every': 1}
MODELS = (
    Model('fcn_ae', "fcn_ae_64, report 004's AE: MLP 12288-1024-256-64-10, mirrored decoder, "
          'tanh', Experiment('faces', 64, 3, 'fcn_ae_64', 'ae', 10),
          budgets={'full': {'train.num_epochs': 60, 'train.eval_every': 20},
                   'quick': {'train.num_epochs': 6, 'train.eval_every': 6},
                   'smoke': SMOKE},
          settings={'train.batch_size': 32, 'train.learning_rate': 1e-3,
                    'loss.reconstruction': 'mse', 'loss.reduction': 'sum',
                    'figures.enabled': False, 'checkpoint.max_to_keep': 1}),
)
__doc__ += budget_doc(MODELS)


def run(study: Study) -> Report:
  rep = Report('Latent edits',
               'What a single code dimension does: scale it, shift it, or sweep it, and decode.')
  model = MODELS[0]
  cfg = study.config(model)
  study.train(model.key, cfg)
  src = study.source(model.key)
  latent = src.model.latent_dim
  ids = [int(i) for i in src.dataset.test['id'][:NUM_IMAGES]]
  asked = tools.parse_edits(EDITS)
  edits = [e for e in asked if e[0] < latent]
  result = tools.edit(src, ids, edits, study.out('edit'))
  trav = tools.traverse(src, ids[0], [], SPAN, POINTS, study.out('traverse'))
  rep.settings(cfg, ('model.preset', 'model.arch', 'data.name', 'data.image_size',
                     'model.latent_dim', 'train.num_epochs', 'train.learning_rate'))
  rep.architecture(src.model)
  rep.metrics([{**m, 'name': model.key} for m in study.members(model.key)], 'Test metrics')
  names = ', '.join(label for *_, label in edits)
  left = [e[3] for e in asked if e not in edits]
  rep.figure(result['figure'], f'Edits: {names}',
             f'Rows: {len(ids)} test faces, their reconstructions, then the reconstruction '
             f'with each edit ({names}; report 004\'s edits are {EDITS})'
             + (f'; left out, beyond the {latent}-dim code: {", ".join(left)}' if left else '')
             + '.')
  swept = len(trav['dims'])
  rep.figure(trav['figure'], 'Every dimension swept' if swept == latent else
             f'The {swept} most variable of {latent} dimensions swept',
             f'One row per code dimension (most variable first): the face\'s own code with '
             f'that dimension moved in {POINTS} steps by −{SPAN:g}σ to +{SPAN:g}σ of its spread '
             'over the test faces (+0.0σ: the reconstruction). Nothing in an AE\'s '
             'loss makes a dimension one attribute (a β-VAE\'s is meant to): a row that '
             'changes one property only is the exception to look for.')
  return rep
