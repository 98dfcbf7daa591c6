"""What a finished program leaves: summary.json's entries, the reconstructions of the
test images the figures show, and the figures."""
from __future__ import annotations

import numpy as np

from ae_jax import codes, figures, mesh as mesh_lib, progress
from ae_jax.inference import Trained
from ae_jax.metrics import registry
from ae_jax.models import kinds
from ae_jax.training import Training
from ae_jax.workdir import STATS, Workdir

def recon_rows(training: Training, state):
  cfg = training.config
  n = min(cfg.figures.num_images, training.dataset.test['image'].shape[0])
  originals = np.asarray(training.dataset.test['image'][:n])
  recon = np.clip(mesh_lib.host(training.functions.reconstruct(
      state, training.plan.put(originals), training.inputs.hp)), 0.0, 1.0)
  labels = [('recon' if len(training.members) == 1 else m['name']) for m in training.members]
  return {'originals': originals, 'recon': recon, 'labels': labels,
          'ids': training.dataset.test['id'][:n].tolist(),
          'color_key': training.dataset.info.color_key}


def time_line(seconds: dict) -> str:
  """Where a run's time went, phase by phase: 'time: training 4 min, evaluation 12 s,
  checkpoints 2 s, LPIPS-VGG 15 min, ..., figures 3 s' (phases under half a second left
  out)."""
  phases = [('training', seconds['training']), ('evaluation', seconds['evaluation']),
            ('checkpoints', seconds['checkpoints']), *seconds['passes'].items(),
            ('figures', seconds['figures'])]
  shown = [f'{name} {progress.duration(s)}' for name, s in phases if s >= 0.5]
  return 'time: ' + (', '.join(shown) if shown else 'under a second')


def summary(training: Training, rows, last_eval, timing, frozen, seconds=None):
  """summary.json of one program; `seconds`: where this run's time went (train._Run)."""
  cfg = training.config
  out = {'num_epochs': cfg.train.num_epochs, 'steps_per_epoch': training.steps_per_epoch,
         'image_shape': list(training.spec.image_shape), 'members': []}
  for mem, ev in zip(training.members, last_eval):
    train = [r for r in rows if r['member'] == mem['name'] and r['split'] == 'train']
    entry = {
        'name': mem['name'],
        'hparams': {k: v for k, v in mem.items() if k != 'name'},
        'train_loss': train[-1]['loss'] if train else None,
        'eval': {k: v for k, v in ev.items() if k in registry.REGISTRY},
    }
    if mem['name'] in frozen:
      entry['frozen'] = frozen[mem['name']]
    out['members'].append(entry)
  if timing['timed_steps']:
    per_step = timing['train_s'] / timing['timed_steps']
    out['epoch_s'] = per_step * training.steps_per_epoch
    out['images_per_sec'] = cfg.train.batch_size * len(training.members) / per_step
  out['first_chunk_s'] = timing['compile_s']
  if seconds is not None:
    out['seconds'] = {k: ({n: round(v, 2) for n, v in s.items()} if isinstance(s, dict)
                          else round(s, 2)) for k, s in seconds.items()}
  return out


def draw_figures(training: Training, wd: Workdir, rows, last_eval, recon):
  cfg = training.config
  wd.save_figure(figures.loss_curves(rows, 'loss', cfg.figures.log_scale,
                                     'training loss (train: epoch mean; eval: test split)'),
                 'loss.png')
  if kinds.get(cfg.model.kind).posterior:
    wd.save_figure(figures.loss_curves(rows, 'neg_elbo', cfg.figures.log_scale,
                                       'negative ELBO (nats per image)'), 'neg_elbo.png')
    if last_eval and 'kl_per_dim' in last_eval[0]:
      wd.save_figure(figures.kl_per_dim(last_eval), 'kl_per_dim.png')
  wd.save_figure(figures.recon_grid([recon]), 'recon.png')


def latent_statistics(training: Training, state, wd: Workdir, epoch) -> dict:
  """Every member's per-channel mean and std of its training codes (latent diffusion's
  scaling statistics), computed once at the end of training and kept in latent_stats.json
  -> {member: {'mean': [C], 'std': [C]}}."""
  stacked = training.functions.stack(state)
  variables = {'params': stacked.params, 'batch_stats': stacked.batch_stats,
               'model_state': stacked.model_state}
  out = {}
  for k, m in enumerate(training.members):
    member = Trained(training.spec, variables, k, epoch, workdir=wd.path)
    out[m['name']] = codes.member_statistics(member, training.dataset)
  wd.write_json(STATS, {'epoch': epoch, 'codes': 'mean', 'members': out})
  return out
