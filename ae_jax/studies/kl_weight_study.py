"""The KL weight (report 003): one VAE with the KL term ×0, ×1 and ×100, trained together as
one vmapped sweep over loss.beta: −ELBO curves, reconstructions at three epochs, prior
samples, interpolations, and a table of reconstruction term, KL and active units.

  python -m ae_jax.studies kl_weight_study --workdir runs/kl_weight

Default budget (about 10 minutes on a 2-core CPU): the embedded faces at 64x64 (gray as 3
channels), the conv VAE of configs/vae_conv.py with a 32-unit code, 30 epochs, checkpoints
kept at epochs 3, 15 and 30 (report 003 shows 10, 50 and 100 of a 100-epoch run).

Report 003's full settings on its own 64x64 faces:

  python -m ae_jax.studies kl_weight_study --workdir runs/kl_full \\
    --config.data.name=folder --config.data.path=faces/ --config.train.num_epochs=100
  # epochs shown: 10, 50, 100
"""
from __future__ import annotations

import numpy as np

from ae_jax import figures
from ae_jax.latent import tools
from ae_jax.studies import Study, base_config
from ae_jax.studies.report import Report

NAME = 'kl_weight_study'
BETAS = (0.0, 1.0, 100.0)
QUICK = ['--config.data.name=digits', '--config.data.image_size=8', '--config.train.num_epochs=2',
         '--config.model.arch=mlp', '--config.model.hidden=(16,)', '--config.model.latent_dim=4',
         '--config.data.channels=0', "--config.eval.metrics=('loss','recon','kl','neg_elbo',"
         "'psnr','ssim','active_units')"]


def shown_epochs(n: int) -> tuple[int, ...]:
  """Report 003's epochs 10, 50, 100 scaled to an n-epoch run."""
  return tuple(sorted({max(1, round(n * f)) for f in (0.1, 0.5, 1.0)}))


def _config(study: Study):
  cfg = base_config('vae_conv')
  with cfg.unlocked():
    cfg.data.name, cfg.data.image_size, cfg.data.channels = 'faces', 64, 3
    cfg.model.latent_dim = 32
    cfg.train.num_epochs, cfg.train.batch_size = 30, 32
    cfg.sweep.beta = BETAS
    cfg.figures.enabled = False
    cfg.eval.metrics = ('loss', 'recon', 'kl', 'neg_elbo', 'psnr', 'ssim', 'active_units',
                        'kl_per_dim')
  cfg = study.config(cfg, QUICK)
  epochs = shown_epochs(cfg.train.num_epochs)
  with cfg.unlocked():
    cfg.sweep.eval_epochs = epochs
    cfg.checkpoint.keep_epochs = epochs
    cfg.train.eval_every = cfg.train.num_epochs
  return cfg


def run(study: Study) -> Report:
  rep = Report('KL weight study',
               'One VAE, three weights on its KL term, trained together in one vmapped program: '
               '×0 is an autoencoder with a noisy code, ×1 the VAE, ×100 a posterior pushed to '
               'the prior.')
  cfg = _config(study)
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
  rep.figure(path, '−ELBO curves', 'The negative ELBO (reconstruction + KL, in nats per image) '
             'of each member per epoch, training (solid) and test (dashed): with ×0 nothing '
             'bounds the KL, so its −ELBO can be far above the others even where its '
             'reconstruction is good.')
  first = study.source('vae', 0)
  ids = first.random_ids(8, seed=0)
  for i, m in enumerate(members):
    srcs = [study.source('vae', i, e) for e in epochs]
    r = tools.reconstruct(srcs, ids, study.out(f'reconstruct_{i}'))
    rep.figure(r['figure'], f'Reconstructions at epochs {", ".join(map(str, epochs))}, '
               f'KL ×{m["beta"]:g}', 'The same test images at three saved epochs of this member.')
  for i, m in enumerate(members):
    src = study.source('vae', i)
    s = tools.sample(src, 16, 0, 1.0, study.out(f'sample_{i}'))
    rep.figure(s['figure'], f'Prior samples, KL ×{m["beta"]:g}',
               'Decoded z ~ N(0, I): only a KL term that shapes the code makes these look '
               'like data.')
  test_ids = [int(i) for i in first.dataset.test['id'][:2]]
  for i, m in enumerate(members):
    it = tools.interpolate(study.source('vae', i), test_ids, 8, study.out(f'interpolate_{i}'))
    rep.figure(it['figure'], f'Interpolation, KL ×{m["beta"]:g}',
               f'From test image {test_ids[0]} to {test_ids[1]} through the code space.')
  def value(m, key):
    v = m['eval'].get(key, float('nan'))
    return f'{v:.4g}' if isinstance(v, (int, float)) and np.isfinite(v) else 'n/a'
  rep.text('What it shows', 'By KL weight (reconstruction term / KL / PSNR / active units): '
           + '; '.join(f'×{m["beta"]:g}: {value(m, "recon")} / {value(m, "kl")} / '
                       f'{value(m, "psnr")} dB / {value(m, "active_units")}' for m in members)
           + '. The weight trades the code\'s information (KL) against reconstruction: a large '
             'weight pushes the posterior to the prior and blurs reconstructions; no weight '
             'leaves the code unshaped, so decoded prior samples are not images.')
  return rep
