"""Hyperparameter tables (report 000): epochs, batch size, learning rate and latent size
against training loss, PSNR and SSIM, for an AE and a VAE, through the sweep machinery.

  python -m ae_jax.studies hyperparameter_tables --workdir runs/hparams [--quick]

Each table varies one setting around the defaults: epochs are evaluation epochs of one
run (sweep.eval_epochs at a quarter, a half and all of the epochs), batch sizes are outer
axes (one program each), learning rates and latent sizes are vmapped members of one
program. The models: report 000's MLP presets (mlp_ae_50: 256-128 ReLU code; mlp_vae_50:
4096-1024-512, 256 latents) on 32x32 photo patches, batch 20.

The report's full settings, on its 50x50 images in a folder:

  python -m ae_jax.studies hyperparameter_tables --workdir runs/hparams_full \\
    --config.data.name=folder --config.data.path=images/ --config.data.image_size=50 \\
    --config.train.num_epochs=200

(AE lr 1e-3, VAE lr 5e-4, batch 20; the study keeps those defaults and the report's
table values: batch 15/20/25, lr 0.1/0.01/0.001/0.0001, VAE latent 2/64/256/512.)
"""
from __future__ import annotations

from ae_jax import figures
from ae_jax.metrics import registry
from ae_jax.studies import Experiment, Model, Study, budget_doc
from ae_jax.studies.report import Report

NAME = 'hyperparameter_tables'
BATCHES = (15, 20, 25)
RATES = (0.1, 0.01, 0.001, 0.0001)
LATENTS = {'ae': (32, 64, 128, 256), 'vae': (2, 64, 256, 512)}
AXES = (('epoch', 'epochs', 'epoch'), ('batch_size', 'batch', 'batch'),
        ('learning_rate', 'lr', 'learning rate'), ('latent_dim', 'latent', 'latent size'))
COLUMNS = ('psnr', 'ssim')
SMOKE = {'data.num_examples': 120, 'data.image_size': 16, 'train.num_epochs': 2,
         'train.eval_every': 2, 'model.preset': '', 'model.arch': 'mlp',
         'model.hidden': (32,), 'model.latent_dim': 0}


def _model(kind: str, preset: str, latent: int, epochs: int, lr: float, about: str) -> Model:
  return Model(kind, about, Experiment('photos', 32, 3, preset, kind, latent),
               budgets={'full': {'data.num_examples': 1000, 'train.num_epochs': epochs,
                                 'train.eval_every': epochs},
                        'quick': {'data.num_examples': 200, 'train.num_epochs': 4,
                                  'train.eval_every': 4},
                        'smoke': SMOKE},
               settings={'train.batch_size': 20, 'train.learning_rate': lr,
                         'loss.reconstruction': 'mse', 'loss.reduction': 'sum',
                         'eval.metrics': ('loss', 'recon', 'kl', 'psnr', 'ssim'),
                         'figures.enabled': False, 'checkpoint.max_to_keep': 1,
                         # lr 0.1 diverges (report 000's 7 dB row): freeze that member,
                         # keep the others training
                         'train.skip_nonfinite_members': True})


MODELS = (
    _model('ae', 'mlp_ae_50', 128, 30, 1e-3,
           "mlp_ae_50, report 000's AE: MLP 256-128 (ReLU code), sigmoid"),
    _model('vae', 'mlp_vae_50', 256, 12, 5e-4,
           "mlp_vae_50, report 000's VAE: MLP 4096-1024-512, 256 latents, sigmoid"),
)
__doc__ += budget_doc(MODELS)


def _sweep(cfg, axis, values):
  import copy
  cfg = copy.deepcopy(cfg)
  with cfg.unlocked():
    cfg.sweep[axis] = tuple(values)
  return cfg


def _rows(study: Study, key: str, axis: str, label: str, about: str) -> list[dict]:
  """A metrics row per member of model `key` at its last evaluation (per evaluation of
  its one member for the epoch axis), with the axis value as its name and the epoch's mean
  training loss."""
  records = study.records(key)
  train = {(r['member'], r['epoch']): r['loss'] for r in records if r['split'] == 'train'}
  out = []
  for m in study.members(key, about):
    evals = [r for r in records if r['split'] == 'eval' and r['member'] == m['name']]
    if axis != 'epoch':
      evals = [max(evals, key=lambda r: r['epoch'])]
    for r in evals:
      value = r['epoch'] if axis == 'epoch' else m[axis]
      out.append({**m, 'name': value, 'epoch': r['epoch'],
                  'key': f'{key}/{axis}={value}' if axis == 'epoch' else m['key'],
                  'description': f'{about}; {label} {value}',
                  'eval': {k: v for k, v in r.items() if k in registry.REGISTRY},
                  'train_loss': train.get((m['name'], r['epoch']), float('nan'))})
  return out


def _figure(tables: dict):
  """PSNR against each setting, AE and VAE side by side (one panel per setting)."""
  axes_names = ('epoch', 'batch', 'learning rate', 'latent size')
  fig, axes = figures.subplots(1, 4, figsize=(13, 3.2), dpi=100)
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
  tables, stopped = {}, []
  for model in MODELS:
    kind = model.key
    cfg = study.config(model)
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
    for axis, key, label in AXES:
      rows = _rows(study, f'{kind}_{key}', axis, label, model.description)
      tables[(name, label)] = [[r['name'], r['train_loss'],
                                r['eval'].get('psnr', float('nan'))] for r in rows]
      frozen = [f'{r["name"]} (frozen at step {r["frozen"]["step"]}, non-finite '
                f'{r["frozen"]["term"]})' for r in rows if r.get('frozen')]
      stopped += [f'{name} {label} {f}' for f in frozen]
      rep.metrics(rows, f'{name}: {label}', label=label, columns=COLUMNS,
                  extra={'training loss': [r['train_loss'] for r in rows]},
                  note=f'{label} ' + '; '.join(frozen) if frozen else '')
  path = study.save_figure(_figure(tables), 'psnr_by_setting.png')
  rep.figure(path, 'PSNR by setting', 'Each panel varies one setting; a point is the final '
             'test PSNR of one model.' + (f' Stopped by a non-finite loss: {"; ".join(stopped)}.'
                                         if stopped else ''))
  rep.text('How to read them',
           'Training loss is the per-image loss of the last epoch (reconstruction summed over '
           'pixels, plus the KL for the VAE), so AE and VAE losses are not comparable with each '
           'other. ' + reading(tables))
  return rep


def _finite(v) -> bool:
  return isinstance(v, (int, float)) and v == v and abs(v) != float('inf')


def reading(tables: dict) -> str:
  """What the learning-rate and latent-size tables show, sentence by sentence from their
  numbers (tables: {(kind, setting): [[value, training loss, PSNR], ...]})."""
  out = []
  for kind in ('AE', 'VAE'):
    rows = [r for r in tables.get((kind, 'learning rate'), []) if _finite(r[2])]
    if len(rows) > 1:
      best = max(rows, key=lambda r: r[2])
      top = max(tables[(kind, 'learning rate')], key=lambda r: float(r[0]))
      if not _finite(top[2]) or top[2] < best[2] - 1.0:
        psnr = f'{top[2]:.2f} dB' if _finite(top[2]) else 'no finite PSNR'
        out.append(f'{kind}: the highest learning rate ({float(top[0]):g}) ends at {psnr} '
                   f'against {best[2]:.2f} dB at {float(best[0]):g}: too high for this model.')
      else:
        out.append(f'{kind}: even the highest learning rate ({float(top[0]):g}) ends within '
                   f'1 dB of the best ({top[2]:.2f} against {best[2]:.2f} dB at '
                   f'{float(best[0]):g}).')
    rows = sorted((r for r in tables.get((kind, 'latent size'), []) if _finite(r[2])),
                  key=lambda r: float(r[0]))
    if len(rows) > 1:
      small, large = rows[0], rows[-1]
      verdict = ('caps what it reconstructs at this budget' if small[2] < large[2] - 1.0
                 else 'costs it less than 1 dB here')
      out.append(f'{kind}: the smallest latent size ({int(float(small[0]))}) ends at '
                 f'{small[2]:.2f} dB against {large[2]:.2f} at {int(float(large[0]))}: it '
                 f'{verdict}.')
  return ' '.join(out)
