"""Generating from what ae_jax trains: each autoencoder family sampled every way that
applies to it, from its N(0, I) prior (the VAEs, the WAE) to a prior trained on its codes
(python -m ae_jax.prior), graded the same way on the same test images.

  python -m ae_jax.studies generation --workdir runs/generation [--quick]

Families (one conv network per dataset, the same latent size and budget): a plain AE, the
VAE, β-VAE (β = 4), RAE (β = 1, L2 decoder), WAE-MMD (λ = 100), a VQ-VAE (a spatial code of
K = 64 entries) and the latent-diffusion KL autoencoder (kl_f4_small, KL weight 1e-3, its
spatial 3-channel code). Samplers: N(0, I); a 10-component Gaussian mixture fitted to the
training codes (GMM-10, Ghosh et al.'s ex-post density); the two-stage VAE (Dai & Wipf);
a flow-matching prior (an MLP velocity field on flat codes, a small DiT on spatial ones);
for the VQ-VAE the per-position categorical of its code indices and an autoregressive
transformer over them. Priors train on the posterior means of the training split.

Each trained prior takes EPOCH_SCALE times prior.num_epochs: the flow on flat codes (an
MLP) 4 times on digits and 40 on Fashion-MNIST (its steps are the cheapest of the trained
priors and its held-out loss still falls there); on Fashion-MNIST the DiT flow on the KL
autoencoder's spatial codes and the autoregressive transformer half (their steps are the
dearest, and the default budget has a time limit).

Datasets: 8x8 digits (embedded, every machine) and Fashion-MNIST (28x28, the Debian package
`dataset-fashion-mnist`; its table appears when /usr/share/datasets/fashion-mnist/ exists).
Sample FD, precision and recall are measured in the feature space of a small classifier
trained on the dataset (metric fd_classifier; not FID), between as many test images as
samples. Each row also gives the autoencoder's PSNR, the prior's own held-out number on the
test codes and its training time against the autoencoder's.
"""
from __future__ import annotations

import os
import time

from ae_jax import config_lib, figures, prior_grade, prior_train
from ae_jax.data import idx
from ae_jax.inference import open_workdir
from ae_jax.studies import budget_doc, Experiment, Model, Study
from ae_jax.studies.report import Report
from ae_jax.workdir import Workdir

NAME = 'generation'
# key, label, kind, preset, settings
FAMILIES = (
    ('ae', 'AE', 'ae', {}),
    ('vae', 'VAE', 'vae', {}),
    ('beta_vae', 'β-VAE (β=4)', 'vae', {'loss.beta': 4.0}),
    ('rae', 'RAE (β=1)', 'ae', {'loss.objective': 'rae', 'loss.beta': 1.0}),
    ('wae', 'WAE-MMD (λ=100)', 'ae', {'loss.objective': 'wae_mmd', 'loss.beta': 100.0}),
    ('vqvae', 'VQ-VAE (K=64)', 'vqvae', {'model.vq.codes': 64, 'model.conv.latent': 'spatial'}),
    ('kl', 'KL autoencoder (kl_f4_small)', 'vae', {'loss.beta': 1e-3}),
)
# the samplers that apply to each family, in the table's order ('normal': N(0, I))
SAMPLERS = {'ae': ('gmm', 'two_stage', 'flow'), 'rae': ('gmm', 'two_stage', 'flow'),
            'vae': ('normal', 'gmm', 'two_stage', 'flow'),
            'beta_vae': ('normal', 'gmm', 'two_stage', 'flow'),
            'wae': ('normal', 'gmm', 'two_stage', 'flow'),
            'kl': ('normal', 'gmm', 'two_stage', 'flow'),
            'vqvae': ('categorical', 'autoregressive')}
SAMPLER_LABELS = {'normal': 'N(0, I)', 'gmm': 'GMM-10', 'two_stage': 'two-stage VAE',
                  'flow': 'flow matching', 'categorical': 'categorical per position',
                  'autoregressive': 'autoregressive transformer'}
SMOKE_FAMILIES = ('vae', 'vqvae')
FASHION = idx.DEBIAN_FASHION_MNIST
SHARED = {'figures.enabled': False, 'checkpoint.max_to_keep': 1, 'train.batch_size': 64,
          'train.learning_rate': 1e-3, 'loss.reduction': 'sum',
          'loss.reconstruction': 'gaussian_nll', 'loss.nll_sigma': 0.1,
          'eval.metrics': ('loss', 'recon', 'psnr', 'ssim'), 'log.tensorboard': False,
          'prior.gmm.components': 10, 'prior.flow.hidden': 256, 'prior.flow.depth': 3,
          'prior.two_stage.hidden': 256, 'prior.autoregressive.width': 128,
          'prior.autoregressive.depth': 2, 'prior.batch_size': 256}
SPATIAL_FLOW = {'prior.flow.hidden': 96, 'prior.flow.depth': 2, 'prior.flow.heads': 4}
DIGITS = {
    'settings': {**SHARED, 'model.conv.channels': (32, 64)},
    'budgets': {'full': {'train.num_epochs': 15, 'train.eval_every': 15,
                         'prior.num_epochs': 100, 'prior.num_samples': 350},
                'quick': {'train.num_epochs': 8, 'train.eval_every': 8,
                          'prior.num_epochs': 50, 'prior.num_samples': 350},
                'smoke': {'train.num_epochs': 1, 'train.eval_every': 1,
                          'model.conv.channels': (8,), 'prior.num_epochs': 2,
                          'prior.num_samples': 64, 'prior.flow.hidden': 16,
                          'prior.flow.depth': 1, 'prior.two_stage.hidden': 16,
                          'prior.autoregressive.width': 16,
                          'prior.autoregressive.depth': 1}}}
FASHION_SPEC = {
    'settings': {**SHARED, 'model.conv.channels': (32, 64), 'data.path': FASHION,
                 'train.batch_size': 100},
    'budgets': {'full': {'data.num_examples': 4000, 'train.num_epochs': 3,
                         'train.eval_every': 3, 'prior.num_epochs': 10,
                         'prior.num_samples': 1000},
                'quick': {'data.num_examples': 2000, 'train.num_epochs': 2,
                          'train.eval_every': 2, 'prior.num_epochs': 5,
                          'prior.num_samples': 500},
                'smoke': {'data.num_examples': 512, 'train.num_epochs': 1,
                          'train.eval_every': 1, 'model.conv.channels': (8,),
                          'prior.num_epochs': 1, 'prior.num_samples': 64,
                          'prior.flow.hidden': 16, 'prior.flow.depth': 1,
                          'prior.two_stage.hidden': 16, 'prior.autoregressive.width': 16,
                          'prior.autoregressive.depth': 1}}}
# prior.num_epochs' factor per (prior, dataset), 1 where not listed. The flow prior on flat
# codes (an MLP, 'flow') has the cheapest steps of the trained priors, and its sample FD
# still fell at these epochs (digits VAE: 7.97 at 100 epochs, 6.08 at 400; Fashion-MNIST
# VAE: 60.4 at 10, 45.0 at 200, 43.2 at 400, the fitted GMM's 44.3). The DiT flow on the kl
# model's spatial codes ('flow_dit') and the autoregressive prior have the dearest.
EPOCH_SCALE = {('flow', 'digits'): 4, ('flow', 'fashion'): 40, ('flow_dit', 'fashion'): 0.5,
               ('autoregressive', 'fashion'): 0.5}


def epoch_scale(kind: str, family: str, ds: str) -> float:
  """prior.num_epochs' factor for prior `kind` on model `family`'s codes of dataset `ds`
  (the kl model's spatial codes take the DiT flow)."""
  name = 'flow_dit' if kind == 'flow' and family == 'kl' else kind
  return EPOCH_SCALE.get((name, ds), 1)


DATASETS = (('digits', 'Digits (8x8)', 8, 1, 8, DIGITS),
            ('fashion', 'Fashion-MNIST (28x28)', 28, 1, 16, FASHION_SPEC))


def _model(ds, size, channels, latent, spec, key, label, kind, settings) -> Model:
  data = 'idx' if ds == 'fashion' else ds
  family = 'kl_f4_small' if key == 'kl' else 'conv'
  code = 3 if key == 'kl' else (8 if key == 'vqvae' else latent)
  e = Experiment(data, size, channels, family, kind, code)
  extra = SPATIAL_FLOW if key == 'kl' else {}
  return Model(f'{ds}/{key}', f'{label}: {e.describe()}', e, spec['budgets'],
               {**spec['settings'], **settings, **extra})


MODELS = tuple(_model(ds, size, ch, latent, spec, *f)
               for ds, _, size, ch, latent, spec in DATASETS for f in FAMILIES)
__doc__ += budget_doc(MODELS)


def families(study: Study):
  return [f for f in FAMILIES if study.budget != 'smoke' or f[0] in SMOKE_FAMILIES]


def _datasets():
  """The datasets this machine has: digits always, Fashion-MNIST where installed."""
  return [d for d in DATASETS if d[0] != 'fashion' or os.path.isdir(FASHION)]


def _prior(config, workdir: str, kind: str, key: str) -> dict:
  """Train (or resume) prior `kind` on the codes of model `key` (in `workdir`) -> its
  summary (no grading)."""
  config = config_lib.thaw(config)
  with config.unlocked():
    config.prior.kind, config.prior.name, config.prior.num_samples = kind, kind, 0
    ds, family = key.split('/')
    config.prior.num_epochs = max(1, round(config.prior.num_epochs *
                                           epoch_scale(kind, family, ds)))
  return prior_train.train_prior(config, workdir)


def _scales(ds: str) -> str:
  """The table note's line on this dataset's prior epochs."""
  names = {'flow': 'the flow prior on flat codes', 'flow_dit': 'the DiT flow on the KL '
           'autoencoder\'s codes', 'autoregressive': 'the autoregressive prior'}
  parts = [f'{names[k]} {v:g} x' for (k, d), v in EPOCH_SCALE.items() if d == ds]
  return f'Prior epochs: {"; ".join(parts)} prior.num_epochs.' if parts else ''


def _row(study: Study, model: Model, config, sampler: str, dataset, label: str) -> dict:
  """One table row: the model's PSNR, the sampler's sample-quality numbers, the prior's
  held-out number and training time against the autoencoder's."""
  workdir = study.model_dir(model.key)
  member = study.members(model.key)[0]
  extra = {'prior held-out': '', 'prior s': '', 'AE s': ''}
  prior = None
  if sampler != 'normal':
    summary = _prior(config, workdir, sampler, model.key)
    held = summary['members'][0]['held_out']
    name, value = next(iter(held.items()))
    extra['prior held-out'] = f'{name} {value:.4g}'
    # training time without the compile, as the autoencoder's epoch_s is
    seconds = (summary['epoch_s'] * summary['num_epochs'] if 'epoch_s' in summary
               else summary['prior_s'])
    extra['prior s'] = round(seconds, 1)
    prior = sampler
  trained = Workdir(workdir).read_json('summary.json')
  extra['AE s'] = round(float(trained.get('epoch_s', 0.0)) * config.train.num_epochs, 1)
  loaded = open_workdir(workdir, config=config)
  grades = prior_grade.grade(config, loaded, prior, dataset=dataset, keep=8)[0]
  metrics = {'psnr': member['eval'].get('psnr'), 'fd_classifier': grades.get('fd_classifier'),
             'precision': grades.get('precision'), 'recall': grades.get('recall')}
  return {'name': f'{label} · {SAMPLER_LABELS[sampler]}', 'key': f'{model.key}/{sampler}',
          'description': f'{model.description}; sampled by {SAMPLER_LABELS[sampler]}',
          'eval': {k: v for k, v in metrics.items() if v is not None}, 'extra': extra,
          'images': grades['images']}


def run(study: Study) -> Report:
  rep = Report('Generating from autoencoders',
               'Each family sampled every way that applies to it, graded alike: its prior, '
               'a density fitted to its codes, and priors trained on its codes.')
  for ds, title, *_ in _datasets():
    models = {m.key: m for m in MODELS if m.key.startswith(f'{ds}/')}
    rows, cfg, dataset, t0 = [], None, None, time.perf_counter()
    for key, label, _, _ in families(study):
      model = models[f'{ds}/{key}']
      cfg = study.config(model)
      study.train(model.key, cfg)
      if dataset is None:
        dataset = study.source(model.key).dataset
      for sampler in SAMPLERS[key]:
        rows.append(_row(study, model, cfg, sampler, dataset, label))
    rep.settings(cfg, ('data.name', 'data.num_examples', 'model.conv.channels',
                       'model.latent_dim', 'loss.reconstruction', 'train.num_epochs',
                       'train.batch_size', 'prior.num_epochs', 'prior.batch_size',
                       'prior.num_samples'), heading=f'{title}: settings')
    extra = {h: [r['extra'][h] for r in rows] for h in rows[0]['extra']}
    rep.metrics(rows, f'{title}: samples of each family and sampler', label='model · sampler',
                extra=extra, columns=('psnr', 'fd_classifier', 'precision', 'recall'),
                note=f'Sample FD, precision and recall: {cfg.prior.num_samples} samples '
                     'against as many test images, in the feature space of a classifier '
                     'trained on the dataset (lower FD is better). PSNR: the autoencoder\'s '
                     'reconstructions of the test split. Prior held-out: the prior\'s own '
                     'number on the test codes (nll in nats, fm_loss, neg_elbo, bits per '
                     f'code). {_scales(ds)} '
                     'Times: seconds of training (the prior\'s includes its fit or '
                     f'compile); {time.perf_counter() - t0:.0f} s for this table.')
    path = study.save_figure(figures.image_rows([r['images'] for r in rows],
                                                [r['name'] for r in rows],
                                                f'{title}: samples of each family and sampler'),
                             f'samples_{ds}.png')
    rep.figure(path, f'{title}: samples', 'Each row: eight samples of one family through one '
               'sampler (the table\'s rows, in order).')
  return rep
