"""Hyperparameter tables (report 000): epochs, batch size, learning rate and latent size
against training loss, PSNR and SSIM, for an AE and a VAE, through the sweep machinery.

  python -m ae_jax.studies hyperparameter_tables --workdir runs/hparams

Each table varies one setting around the defaults: epochs are evaluation epochs of one
run (sweep.eval_epochs), batch sizes are outer axes (one program each), learning rates
and latent sizes are vmapped members of one program. Default budget (about 12 minutes on
a 2-core CPU): 32x32 photo patches (800 train / 200 test), the report's MLP presets
(mlp_ae_50: 256-128 ReLU code; mlp_vae_50: 4096-1024-512, 256 latents), batch 20.

The report's full settings, on its 50x50 images in a folder:

  python -m ae_jax.studies hyperparameter_tables --workdir runs/hparams_full \\
    --config.data.name=folder --config.data.path=images/ --config.data.image_size=50 \\
    --config.train.num_epochs=200     # the tables' epochs then read 20, 80, 100, 200

(AE lr 1e-3, VAE lr 5e-4, batch 20; the study keeps those defaults and the report's
table values: batch 15/20/25, lr 0.1/0.01/0.001/0.0001, VAE latent 2/64/256/512.)
"""
from __future__ import annotations

from ae_jax import report as sweep_report
from ae_jax.studies import Study, base_config
from ae_jax.studies.report import Report

NAME = 'hyperparameter_tables'
BATCHES = (15, 20, 25)
RATES = (0.1, 0.01, 0.001, 0.0001)
LATENTS = {'ae': (32, 64, 128, 256), 'vae': (2, 64, 256, 512)}
QUICK = ['--config.data.num_examples=120', '--config.data.image_size=16',
         '--config.train.num_epochs=2', '--config.train.eval_every=2',
         '--config.model.preset=', "--config.model.hidden=(32,)"]
COLUMNS = ('train_loss', 'psnr', 'ssim')


def _config(study: Study, kind: str):
  cfg = base_config()
  with cfg.unlocked():
    cfg.data.name, cfg.data.image_size, cfg.data.num_examples = 'photos', 32, 1000
    cfg.model.kind = kind
    cfg.model.preset = 'mlp_ae_50' if kind == 'ae' else 'mlp_vae_50'
    cfg.train.batch_size = 20
    cfg.train.learning_rate = 1e-3 if kind == 'ae' else 5e-4
    cfg.train.num_epochs = 30 if kind == 'ae' else 12
    cfg.train.eval_every = cfg.train.num_epochs
    cfg.loss.reconstruction = 'mse'
    cfg.loss.reduction = 'sum'
    cfg.eval.metrics = ('loss', 'recon', 'kl', 'psnr', 'ssim')
    cfg.figures.enabled = False
    cfg.checkpoint.max_to_keep = 1
    # lr 0.1 diverges (report 000's 7 dB row): freeze that member, keep the others training
    cfg.train.skip_nonfinite_members = True
  return study.config(cfg, QUICK)


def _sweep(cfg, axis, values):
  import copy
  cfg = copy.deepcopy(cfg)
  with cfg.unlocked():
    cfg.sweep[axis] = tuple(values)
  return cfg


def _rows(study: Study, key: str, axis: str):
  """(axis value, epoch, training loss, PSNR, SSIM) rows of model `key`'s evaluations."""
  from ae_jax.workdir import Workdir
  wd = Workdir(study.model_dir(key))
  members = wd.read_members() or []
  _, table = sweep_report.table_rows(members, wd.read_metrics())
  if axis == 'epoch':
    return [[r['epoch'], *[r[c] for c in COLUMNS]] for r in table]
  last = max(r['epoch'] for r in table)
  return [[r[axis], *[r[c] for c in COLUMNS]] for r in table if r['epoch'] == last]


def _figure(tables: dict):
  """PSNR against each setting, AE and VAE side by side (one panel per setting)."""
  import matplotlib.pyplot as plt
  axes_names = ('epoch', 'batch', 'learning rate', 'latent size')
  fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), dpi=100)
  for ax, name in zip(axes, axes_names):
    for kind, style in (('AE', 'o-'), ('VAE', 's--')):
      rows = tables.get((kind, name), [])
      if rows:
        ax.plot([float(r[0]) for r in rows], [float(r[2]) for r in rows], style, label=kind)
    if name in ('learning rate', 'latent size'):
      ax.set_xscale('log')
    ax.set_xlabel(name)
    ax.set_ylabel('test PSNR (dB)')
  axes[0].legend(fontsize=8)
  fig.suptitle('Test PSNR against each setting (the others at their defaults)', fontsize=10)
  fig.tight_layout()
  return fig


def run(study: Study) -> Report:
  rep = Report('Hyperparameter tables',
               'Each table changes one setting around the defaults and reports the final '
               "epoch's mean training loss and the test split's PSNR and SSIM, as report 000 "
               'tabulates them by hand. Every table is one sweep: vmapped members in one '
               'compiled program, or one program per batch size.')
  tables = {}
  for kind in ('ae', 'vae'):
    cfg = _config(study, kind)
    n = cfg.train.num_epochs
    epochs = tuple(sorted({max(1, n // 4), max(1, n // 2), n}))
    study.train(f'{kind}_epochs', _sweep(cfg, 'eval_epochs', epochs))
    study.train(f'{kind}_batch', _sweep(cfg, 'batch_size', BATCHES))
    study.train(f'{kind}_lr', _sweep(cfg, 'learning_rate', RATES))
    study.train(f'{kind}_latent', _sweep(cfg, 'latent_dim', LATENTS[kind]))
    name = kind.upper()
    rep.settings(cfg, ('model.preset', 'data.name', 'data.image_size', 'train.batch_size',
                       'train.learning_rate', 'train.num_epochs', 'model.latent_dim',
                       'loss.reconstruction'), f'{name}: default settings')
    head = ['training loss', 'PSNR', 'SSIM']
    for axis, key, label in (('epoch', 'epochs', 'epoch'), ('batch_size', 'batch', 'batch'),
                             ('learning_rate', 'lr', 'learning rate'),
                             ('latent_dim', 'latent', 'latent size')):
      rows = _rows(study, f'{kind}_{key}', axis)
      tables[(name, label)] = rows
      rep.table(f'{name}: {label}', [label] + head, rows)
  path = study.save_figure(_figure(tables), 'psnr_by_setting.png')
  rep.figure(path, 'PSNR by setting', 'Each panel varies one setting; a point is the final '
             'test PSNR of one model (a diverged learning rate shows as the low point).')
  rep.text('How to read them',
           'Training loss is the per-image loss of the last epoch (reconstruction summed over '
           'pixels, plus the KL for the VAE), so AE and VAE losses are not comparable with each '
           'other. A learning rate too high shows as a low PSNR with a high loss; a 2-unit '
           'latent caps what the VAE can reconstruct however long it trains.')
  return rep
