"""The autoencoder families side by side: a plain AE, the VAE, β-VAE, β-TCVAE, FactorVAE,
WAE-MMD, RAE, IWAE and a VQ-VAE, each the same network, latent size and budget, on
dSprites (does the code separate the generating factors?) and on photographs (how well
does it reconstruct, and how good are its samples?).

  python -m ae_jax.studies model_families --workdir runs/families [--quick]

dSprites: 64x64 generated shapes, an MLP 4096-512-256 with 10 latents, Bernoulli
likelihood (BCE summed over pixels). Table: reconstruction term, MIG, FactorVAE score,
active units, sample FD. Photos: 32x32 patches, the conv encoder/decoder (32-64 channels)
with 32 latents, a Gaussian likelihood of σ = 0.1 (loss.reconstruction='gaussian_nll',
summed). Table: PSNR, SSIM, LPIPS-VGG, reconstruction FD, sample FD. Fashion-MNIST (where
its IDX files are installed: apt-get install dataset-fashion-mnist): the same conv network
on 28x28 gray images with 16 latents and the same likelihood; its sample FD is measured in
ae_jax's Fashion-MNIST classifier's feature space (fd_classifier's), the real-data table.

Samples are drawn the way each family is meant to be sampled: a VAE's (and WAE's) from
the N(0, I) prior; a plain AE's and an RAE's from a 10-component Gaussian mixture fitted to
its training codes (RAE's ex-post density, `latent fit --density gmm`); a VQ-VAE's code
indices from the categorical fitted to its training codes (a flat VQ code is one of K
codebook entries: log2 K bits, whatever the latent size). Sample FD is the Fréchet
distance between test images and as many samples in LPIPS-VGG feature space (not FID;
Fashion-MNIST: the classifier's).

Hyperparameters (each family's usual value; every weight is a vmapped sweep axis):
β-VAE β = 4; β-TCVAE β = 6 on the total correlation (α = γ = 1); FactorVAE γ = 6.4;
WAE-MMD λ = 100 (on the summed reconstruction term's scale); RAE β = 1 on ||z||²/2 with
decoder weight decay 1e-7; IWAE K = 5; VQ-VAE K = 512 codes, commitment 0.25, EMA.
"""
from __future__ import annotations

import os

from ae_jax import figures
from ae_jax.data import idx
from ae_jax.latent import fitted, tools
from ae_jax.metrics import registry, sample_quality as sq
from ae_jax.metrics.lpips import Evaluator
from ae_jax.models import kinds
from ae_jax.studies import budget_doc, Experiment, Model, Study
from ae_jax.studies.report import Report

NAME = 'model_families'
# key, label, kind, settings
FAMILIES = (
    ('ae', 'AE', 'ae', {}),
    ('vae', 'VAE', 'vae', {}),
    ('beta_vae', 'β-VAE (β=4)', 'vae', {'loss.beta': 4.0}),
    ('tcvae', 'β-TCVAE (β=6)', 'vae', {'loss.objective': 'tcvae', 'loss.beta': 6.0}),
    ('factorvae', 'FactorVAE (γ=6.4)', 'vae', {'loss.objective': 'factorvae',
                                               'loss.factor_gamma': 6.4}),
    ('wae_mmd', 'WAE-MMD (λ=100)', 'ae', {'loss.objective': 'wae_mmd', 'loss.beta': 100.0}),
    ('rae', 'RAE (β=1, L2 decoder)', 'ae', {'loss.objective': 'rae', 'loss.beta': 1.0}),
    ('iwae', 'IWAE (K=5)', 'vae', {'loss.objective': 'iwae', 'loss.iwae_samples': 5}),
    ('vqvae', 'VQ-VAE (K=512)', 'vqvae', {'model.vq.codes': 512}),
)
# --smoke: the WAE's prior, a fitted mixture, a codebook's categorical (in FAMILIES' order)
SMOKE_FAMILIES = ('wae_mmd', 'rae', 'vqvae')
SHARED = {'figures.enabled': False, 'checkpoint.max_to_keep': 1, 'train.batch_size': 64,
          'train.learning_rate': 1e-3, 'loss.reduction': 'sum'}
SPRITES = {
    'settings': {**SHARED, 'model.hidden': (512, 256), 'loss.reconstruction': 'bce',
                 'loss.critic_hidden': (256, 256, 256),
                 'eval.metrics': ('loss', 'recon', 'active_units', 'mig', 'factor_vae')},
    'budgets': {'full': {'data.num_examples': 5000, 'train.num_epochs': 8,
                         'train.eval_every': 8, 'eval.factor_vae_votes': 300},
                'quick': {'data.num_examples': 1200, 'train.num_epochs': 2,
                          'train.eval_every': 2, 'eval.factor_vae_votes': 100},
                'smoke': {'data.num_examples': 256, 'train.num_epochs': 1,
                          'train.eval_every': 1, 'model.hidden': (16,), 'model.latent_dim': 4,
                          'model.vq.codes': 16, 'eval.factor_vae_votes': 20,
                          'data.image_size': 32}}}
PHOTOS = {
    'settings': {**SHARED, 'model.conv.channels': (32, 64), 'loss.reconstruction': 'gaussian_nll',
                 'loss.nll_sigma': 0.1, 'loss.critic_hidden': (256, 256, 256),
                 'eval.metrics': ('loss', 'recon', 'psnr', 'ssim', 'lpips_vgg', 'recon_fd')},
    'budgets': {'full': {'data.num_examples': 5000, 'train.num_epochs': 6,
                         'train.eval_every': 6, 'eval.max_images': 500},
                'quick': {'data.num_examples': 1200, 'train.num_epochs': 2,
                          'train.eval_every': 2},
                'smoke': {'data.num_examples': 256, 'train.num_epochs': 1,
                          'train.eval_every': 1, 'model.conv.channels': (8,),
                          'model.latent_dim': 4, 'model.vq.codes': 16,
                          'eval.metrics': ('loss', 'recon', 'psnr', 'ssim')}}}
FASHION = idx.DEBIAN_FASHION_MNIST
FASHION_SPEC = {
    'settings': {**PHOTOS['settings'], 'data.path': FASHION,
                 'eval.metrics': ('loss', 'recon', 'psnr', 'ssim')},
    'budgets': {'full': {'data.num_examples': 10000, 'train.num_epochs': 5,
                         'train.eval_every': 5, 'eval.max_images': 2000},
                'quick': {'data.num_examples': 2000, 'train.num_epochs': 2,
                          'train.eval_every': 2},
                'smoke': PHOTOS['budgets']['smoke']}}
DATASETS = (('dsprites', 'dSprites', Experiment('dsprites', 64, 1, 'mlp', '', 10), SPRITES),
            ('photos', 'Photographs', Experiment('photos', 32, 3, 'conv', '', 32), PHOTOS),
            ('fashion', 'Fashion-MNIST', Experiment('idx', 28, 1, 'conv', '', 16), FASHION_SPEC))
SAMPLES = {'full': 500, 'quick': 200, 'smoke': 32}  # per family, for the sample FD
SHOWN = 8  # samples per family in the figure


def _model(ds: str, exp: Experiment, spec: dict, key: str, label: str, kind: str,
           settings: dict) -> Model:
  e = Experiment(exp.data, exp.image_size, exp.channels, exp.family, kind, exp.latent)
  return Model(f'{ds}/{key}', f'{label}: {e.describe()}', e, spec['budgets'],
               {**spec['settings'], **settings})


MODELS = tuple(_model(ds, exp, spec, *f) for ds, _, exp, spec in DATASETS for f in FAMILIES)
__doc__ += budget_doc(MODELS)


def datasets():
  """The datasets this machine has: Fashion-MNIST only where its files are (FASHION)."""
  return [d for d in DATASETS if d[0] != 'fashion' or os.path.isdir(FASHION)]


def families(study: Study):
  return [f for f in FAMILIES if study.budget != 'smoke' or f[0] in SMOKE_FAMILIES]


def _config(study: Study, model: Model):
  cfg = study.config(model)
  if model.key.startswith('fashion/'):  # where this machine keeps the files (FASHION)
    with cfg.unlocked():
      cfg.data.path = FASHION
  if not registry.get('lpips_vgg').available():
    with cfg.unlocked():
      cfg.eval.metrics = tuple(m for m in cfg.eval.metrics if m not in ('lpips_vgg',
                                                                        'recon_fd'))
  return cfg


def _samples(study: Study, key: str, num: int, seed: int = 0):
  """-> (images, how they were drawn): each family sampled the way it is meant to be."""
  src = study.source(key)
  name = key.replace('/', '_')
  kind = src.model.kind
  cfg = src.model.config
  density = None
  if kinds.get(kind).quantized:
    density = fitted.fit(src, study.out(f'fit_{name}'), 'categorical')
  elif kind == 'ae' and cfg.loss.objective != 'wae_mmd':  # a WAE samples its prior
    density = fitted.fit(src, study.out(f'fit_{name}'), 'gmm', 10, seed)
  out = fitted.sample(src, num, seed, 1.0, study.out(f'samples_{name}'), density)
  return out['images'], out['title'].split(':')[0]


def _sample_fd(ev, real_features, samples) -> float:
  return sq.frechet_distance(real_features, ev.features(samples))


def run(study: Study) -> Report:
  rep = Report('Autoencoder families',
               'Every family on the same network, latent size and budget: what each one\'s '
               'regulariser buys in disentanglement, reconstruction and samples.')
  chosen = families(study)
  for ds, title, _, _ in datasets():
    by_key = {m.key: m for m in MODELS if m.key.startswith(f'{ds}/')}
    # sample FD: LPIPS-VGG features (not at --smoke, whose tiny models it would not rank);
    # Fashion-MNIST's in its classifier's space
    lpips = registry.get('lpips_vgg').available() and study.budget != 'smoke'
    measured = ds == 'fashion' or lpips
    rows, shown, how, cfg = [], [], [], None
    for key, label, _, _ in chosen:
      model = by_key[f'{ds}/{key}']
      cfg = _config(study, model)
      study.train(model.key, cfg)
      rows += [{**m, 'name': label} for m in study.members(model.key)]
    src = study.source(f'{ds}/{chosen[0][0]}')
    num = min(SAMPLES[study.budget], 4 * len(src.dataset.test['id']))
    test, _, _ = src.split('test', limit=num)
    fds, space = [], 'LPIPS-VGG'
    if ds == 'fashion':  # the real dataset's classifier (trained once, then cached)
      ev = sq.classifier('fashion_mnist', (28, 28, 1), source=FASHION)
      real, space = ev.features(test), 'Fashion-MNIST classifier'
    elif lpips:  # one compiled feature extractor, the test images' features once
      ev = Evaluator('vgg')
      real = ev.features(test)
    for key, label, _, _ in chosen:
      samples, drawn = _samples(study, f'{ds}/{key}', num)
      shown.append(samples[:SHOWN])
      how.append(f'{label}: {drawn}')
      fds.append(_sample_fd(ev, real, samples) if measured else float('nan'))
    rep.settings(cfg, ('data.name', 'data.image_size', 'data.num_examples', 'model.arch',
                       'model.hidden' if ds == 'dsprites' else 'model.conv.channels',
                       'model.latent_dim', 'loss.reconstruction', 'train.num_epochs',
                       'train.batch_size', 'train.learning_rate'),
                 heading=f'{title}: settings')
    extra = ({f'sample FD ({space}) (↓)': [round(float(v), 4) for v in fds]} if measured
             else {})
    note = (f'Sample FD: Fréchet distance between {len(test)} test images and {num} samples '
            f'in {space} feature space.' if measured else 'Sample FD: not measured (it needs '
            "the lpips extra, and is not measured at --smoke).")
    if ds == 'dsprites':
      note += (' MIG and the FactorVAE score measure whether each generating factor (shape, '
               'scale, orientation, x, y) lives in one unit (1 = perfectly, 0 / 0.2 = not at '
               'all). Active units: Var_x E[z|x] > 0.01.')
    rep.metrics(rows, f'{title}: test metrics', label='family', extra=extra, note=note)
    path = study.save_figure(figures.image_rows(shown, [c for _, c, _, _ in chosen],
                                                f'{title}: samples of each family'),
                             f'samples_{ds}.png')
    rep.figure(path, f'{title}: samples', 'Each row: the first samples of one family, drawn '
               'as its table row\'s sample FD drew them: ' + '; '.join(how) + '.')
    if ds == 'dsprites' and 'mig' in rows[0]['eval']:
      best = max(range(len(rows)), key=lambda i: rows[i]['eval'].get('mig', -1.0))
      s = study.source(f'{ds}/{chosen[best][0]}')
      trav = tools.traverse(s, int(s.dataset.test['id'][0]), [], 2.5, 7,
                            study.out('traverse_dsprites'))
      rep.figure(trav['figure'], f'dSprites: traversal of the highest-MIG family '
                 f'({rows[best]["name"]})', 'Each row moves one latent unit of the image\'s '
                 'own code (most informative first) by −2.5σ to +2.5σ of its spread over the '
                 'test codes (+0.0σ: the reconstruction).')
  return rep
