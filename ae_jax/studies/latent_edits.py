"""Latent edits (report 004): the fully connected AE with a 10-dim code on 64x64 faces;
original, reconstruction, dimension 0 ×2 and dimension 2 +5, and a traversal of every
dimension.

  python -m ae_jax.studies latent_edits --workdir runs/latent_edits

Default budget (about 4 minutes on a 2-core CPU): fcn_ae_64 (12288-1024-256-64-10, tanh
code) on the embedded faces (lfw_subset, 64x64 gray as RGB), 60 epochs. The report's
setting on its own face images:

  python -m ae_jax.studies latent_edits --workdir runs/latent_edits_full \\
    --config.data.name=folder --config.data.path=faces/ --config.data.image_size=64
"""
from __future__ import annotations

from ae_jax.latent import tools
from ae_jax.studies import Study, base_config
from ae_jax.studies.report import Report

NAME = 'latent_edits'
QUICK = ['--config.data.name=digits', '--config.data.image_size=8', '--config.train.num_epochs=1',
         '--config.model.preset=', '--config.model.hidden=(16,)', '--config.model.latent_dim=4',
         '--config.data.channels=0']
EDITS = '0*2,2+5'


def _config(study: Study):
  cfg = base_config()
  with cfg.unlocked():
    cfg.data.name, cfg.data.image_size, cfg.data.channels = 'faces', 64, 3
    cfg.model.preset, cfg.model.kind = 'fcn_ae_64', 'ae'
    cfg.train.num_epochs, cfg.train.batch_size, cfg.train.learning_rate = 60, 32, 1e-3
    cfg.train.eval_every = 20
    cfg.loss.reconstruction, cfg.loss.reduction = 'mse', 'sum'
    cfg.figures.enabled = False
    cfg.checkpoint.max_to_keep = 1
  return study.config(cfg, QUICK)


def run(study: Study) -> Report:
  rep = Report('Latent edits',
               'What a single code dimension does: scale it, shift it, or sweep it, and decode.')
  cfg = _config(study)
  study.train('fcn_ae', cfg)
  src = study.source('fcn_ae')
  ids = [int(i) for i in src.dataset.test['id'][:8]]
  edits = tools.parse_edits(EDITS)
  edits = [e for e in edits if e[0] < src.model.latent_dim]
  result = tools.edit(src, ids, edits, study.out('edit'))
  trav = tools.traverse(src, ids[0], [], 3.0, 7, study.out('traverse'))
  rep.settings(cfg, ('model.preset', 'data.name', 'data.image_size', 'model.latent_dim',
                     'train.num_epochs', 'train.learning_rate'))
  rep.architecture(src.model)
  rep.metrics([{**m, 'name': 'fcn_ae'} for m in study.members('fcn_ae')], 'Test metrics')
  rep.figure(result['figure'], 'Edits: dim 0 ×2, dim 2 +5',
             'Rows: the test faces, their reconstructions, then the reconstruction with '
             'dimension 0 doubled and with 5 added to dimension 2 (report 004\'s edits).')
  rep.figure(trav['figure'], 'Every dimension swept',
             'One row per code dimension (most variable first), swept from −3σ to +3σ of its '
             'spread over the test faces: the dimensions an AE learns are not one attribute '
             'each, which is what a β-VAE is for.')
  return rep
