"""Reconstruction quality (reports 000, 001): AE and VAE, MLP and conv presets, on the same
images; PSNR / SSIM (and LPIPS when its extra is installed) against PCA at the same latent
size, loss curves, and a ground truth / AE / VAE grid of random test images.

  python -m ae_jax.studies reconstruction_quality --workdir runs/recon_quality [--quick]

The models, on 32x32 photo patches: mlp_ae_50 / mlp_vae_50 (their published 128 / 256
latents), conv_ae_bn_mish (its code is its last conv layer: 1024 units at 32x32) and
conv_vae_bn_mish with a 256-unit code.

The reports' full settings, on 256x256 RGB images in a folder (report 001) or 50x50 (000);
each model alone, with the report's own optimiser and loss: configs/mlp_ae_50.py,
mlp_vae_50.py, conv_ae_bn_mish.py, conv_vae_bn_mish.py.

  python -m ae_jax.studies reconstruction_quality --workdir runs/recon_full \\
    --config.data.name=folder --config.data.path=images/ --config.data.image_size=256 \\
    --config.train.num_epochs=100
"""
from __future__ import annotations

import numpy as np

from ae_jax import figures
from ae_jax.latent import tools
from ae_jax.studies import Experiment, Model, Study, budget_doc, effective
from ae_jax.studies.report import Report

NAME = 'reconstruction_quality'
NUM_IMAGES = 10  # random test images in the grid (report 001's 10)
SMOKE = {'data.name': 'digits', 'data.channels': 0, 'train.num_epochs': 1,
         'train.eval_every': 1, 'model.preset': '', 'model.latent_dim': 4,
         'eval.metrics': ('loss', 'recon', 'kl', 'psnr', 'ssim', 'pca_psnr')}
SMOKE_MODEL = {'mlp': {'model.arch': 'mlp', 'model.hidden': (16,)},
               'conv': {'model.arch': 'conv', 'model.conv.channels': (8,)}}


def _model(key, preset, kind, latent, epochs, lr, about) -> Model:
  family = preset.split('_')[0]
  return Model(key, about, Experiment('photos', 32, 3, preset, kind, latent),
               budgets={'full': {'data.num_examples': 2000, 'train.num_epochs': epochs,
                                 'train.eval_every': epochs},
                        'quick': {'data.num_examples': 400, 'train.num_epochs': 1,
                                  'train.eval_every': 1},
                        'smoke': {**SMOKE, **SMOKE_MODEL[family]}},
               settings={'train.learning_rate': lr, 'train.batch_size': 32,
                         'loss.reconstruction': 'mse', 'loss.reduction': 'sum',
                         'figures.enabled': False, 'checkpoint.max_to_keep': 1,
                         'eval.metrics': ('default', 'pca_psnr', 'pca_ssim')})


MODELS = (
    _model('mlp_ae', 'mlp_ae_50', 'ae', 128, 20, 1e-3,
           "mlp_ae_50, report 000's AE: MLP 256-128 (ReLU code), sigmoid"),
    _model('mlp_vae', 'mlp_vae_50', 'vae', 256, 20, 5e-4,
           "mlp_vae_50, report 000's VAE: MLP 4096-1024-512, 256 latents, sigmoid"),
    _model('conv_ae', 'conv_ae_bn_mish', 'ae', 1024, 6, 1e-3,
           "conv_ae_bn_mish, report 001's AE: 4x4 stride-2 convs 64-...-1024, BN, Mish; "
           'its code is the last conv layer'),
    _model('conv_vae', 'conv_vae_bn_mish', 'vae', 256, 6, 1e-3,
           "conv_vae_bn_mish, report 001's VAE: as conv_ae_bn_mish with a 3x3 conv to "
           '2 x 256 channels'),
)
__doc__ += budget_doc(MODELS)


def run(study: Study) -> Report:
  rep = Report('Reconstruction quality',
               'AEs and VAEs of the reports, MLP and convolutional, trained on the same images '
               'and measured on the same test split, against PCA at the same latent size (the '
               'best linear autoencoder).')
  members, records = [], []
  configs = {}
  for model in MODELS:
    cfg = configs[model.key] = study.config(model)
    study.train(model.key, cfg)
    for m in study.members(model.key):
      members.append({**m, 'name': model.key})
    records += [{**r, 'member': model.key} for r in study.records(model.key)]
  rep.settings(cfg, ('data.name', 'data.image_size', 'data.num_examples', 'train.batch_size',
                     'loss.reconstruction'))
  sources = [study.source(m.key) for m in MODELS]
  rep.table('Models', ['model', 'family', 'kind', 'epochs', 'learning rate', 'latent'],
            [[m.key, effective(configs[m.key]).family, m.experiment.kind.upper(),
              s.model.epoch, configs[m.key].train.learning_rate, s.model.latent_dim]
             for m, s in zip(MODELS, sources)])
  rep.metrics(members, 'Test metrics',
              note='PCA columns: the same test images projected on the top principal '
                   'components of the training images, as many as the model has latents.')
  path = study.save_figure(figures.loss_curves(records, 'loss'), 'loss_curves.png')
  rep.figure(path, 'Training curves', 'Training loss (solid) and test loss (dashed) per epoch '
             'of each model; AE and VAE losses differ by the KL term.')
  ids = sources[0].random_ids(NUM_IMAGES, seed=0)
  grid = tools.reconstruct(sources, ids, study.out('reconstruct'))
  rep.figure(grid['figure'], 'Ground truth and reconstructions',
             f'{len(ids)} random test images (top) and each model\'s reconstruction of them. '
             + kinds_verdict(members, [m.experiment.kind for m in MODELS]))
  rep.architecture(sources[2].model, f'Architecture of {MODELS[2].key}')
  return rep


def kinds_verdict(members: list[dict], kinds: list[str]) -> str:
  """The AEs against the VAEs in the table's PSNR (members and kinds in MODELS' order)."""
  psnr = {k: [m['eval'].get('psnr') for m, kk in zip(members, kinds) if kk == k]
          for k in ('ae', 'vae')}
  mean = {k: float(np.mean(v)) if v and all(isinstance(x, (int, float)) for x in v)
          else float('nan') for k, v in psnr.items()}
  if not all(np.isfinite(v) for v in mean.values()):
    return ''
  both = f'{mean["vae"]:.2f} dB mean PSNR against the AEs\' {mean["ae"]:.2f}'
  if mean['vae'] < mean['ae']:
    return (f'The VAEs reconstruct less sharply here ({both}): the price of a code that can '
            'be sampled.')
  return (f'The VAEs reconstruct no worse than the AEs here ({both}): at this budget their '
          'KL term costs no PSNR.')
