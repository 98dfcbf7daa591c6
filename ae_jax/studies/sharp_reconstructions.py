"""Sharp reconstructions the way latent diffusion makes them: the same small KL autoencoder
(the latent-diffusion architecture, `kl_f8_small`) trained with (1) MSE, (2) L1 + LPIPS and
(3) L1 + LPIPS + a PatchGAN discriminator with the adaptive weight, against PCA with as
many units as the autoencoder's code, on 64x64 photographs.

  python -m ae_jax.studies sharp_reconstructions --workdir runs/sharp [--quick]
  # on your images: --config.data.name=folder --config.data.path=imgs/

Table: PSNR, SSIM, LPIPS-VGG, reconstruction FD (LPIPS-VGG feature space) and the
high-frequency energy retained; the GAN model's discriminator logits on real and
reconstructed images and its last adaptive weight. Figures: centre crops of test images
as each model reconstructs them, and the error spectrum.

The recipe (taming-transformers / CompVis latent-diffusion `LPIPSWithDiscriminator`):
per-pixel L1 + LPIPS (weight 1) summed over the image plus 1e-6 x the KL (here:
loss.reduction='mean' divides every term by the pixel count, so beta = 1e-6 / pixels), a
PatchGAN (`NLayerDiscriminator`) with the hinge loss, the generator's term weighted by
0.5 x the adaptive weight ||grad L_rec|| / (||grad L_G|| + 1e-4) at the decoder's last
layer, started after a warm-up. Training LPIPS uses the AlexNet trunk here (several times
cheaper on a CPU); every model is graded with LPIPS-VGG, which none of them trains on.

Full budget of the published recipe (a GPU; not this study's default): the `kl_f8` preset
(83.7M parameters) at 256x256, batch 12 (Stable Diffusion's VAE; 4.5e-6 x batch learning
rate, Adam (0.5, 0.9)), loss.lpips_net='vgg', discriminator from step 50,001 (taming's
disc_start) with 3 layers, e.g.

  python -m ae_jax.main --config base --config.data.name=folder --config.data.path=imgs/ \\
    --config.data.image_size=256 --config.model.preset=kl_f8 --config.model.kind=vae \\
    --config.loss.reconstruction=l1 --config.loss.reduction=mean \\
    --config.loss.lpips_weight=1.0 --config.loss.beta=5.1e-12 --config.loss.gan_weight=0.5 \\
    --config.loss.gan_start_step=50001 --config.model.disc.layers=3 \\
    --config.train.batch_size=12 --config.train.learning_rate=5.4e-5 --workdir runs/kl_f8
"""
from __future__ import annotations

import numpy as np

from ae_jax import figures
from ae_jax.metrics import lpips, passes, pca, registry, sample_quality as sq, spectrum
from ae_jax.studies import budget_doc, Experiment, Model, Study
from ae_jax.studies.report import Report

NAME = 'sharp_reconstructions'
SIZE, PRESET = 64, 'kl_f8_small'
BETA = 1e-6 / (SIZE * SIZE * 3)  # the recipe's 1e-6 on summed terms, over per-pixel means
# key, label, overrides on the shared settings
RECIPES = (
    ('mse', 'MSE', {'loss.reconstruction': 'mse'}),
    ('l1_lpips', 'L1 + LPIPS', {'loss.reconstruction': 'l1', 'loss.lpips_weight': 1.0}),
    ('l1_lpips_gan', 'L1 + LPIPS + PatchGAN',
     {'loss.reconstruction': 'l1', 'loss.lpips_weight': 1.0, 'loss.gan_weight': 0.5}),
)
GAN_START = 0.5  # the discriminator starts after this share of the training steps
METRICS = ('loss', 'recon', 'psnr', 'ssim', 'lpips_vgg', 'recon_fd', 'hf_retained')
GAN_METRICS = ('gan_d', 'gan_lambda', 'logits_real', 'logits_fake')  # logged in training
SHARED = {'figures.enabled': False, 'checkpoint.max_to_keep': 1, 'loss.reduction': 'mean',
          'loss.beta': BETA, 'loss.lpips_net': 'alex', 'model.disc.layers': 2,
          'train.batch_size': 8, 'train.learning_rate': 1e-3, 'data.test_fraction': 0.1,
          'eval.metrics': METRICS}
BUDGETS = {
    'full': {'data.num_examples': 3000, 'train.num_epochs': 3, 'train.eval_every': 3},
    'quick': {'data.num_examples': 600, 'train.num_epochs': 1, 'train.eval_every': 1},
    'smoke': {'data.num_examples': 96, 'train.num_epochs': 1, 'train.eval_every': 1,
              'train.batch_size': 8, 'model.preset': '', 'model.arch': 'conv',
              'model.conv.channels': (8,), 'model.latent_dim': 8, 'data.image_size': 32,
              'model.disc.channels': 8, 'eval.metrics': ('loss', 'recon', 'psnr', 'ssim')}}
MODELS = tuple(Model(key, f'{PRESET} KL autoencoder, {label}',
                     Experiment('photos', SIZE, 3, PRESET, 'vae', 4),
                     BUDGETS, {**SHARED, **o}) for key, label, o in RECIPES)
CROP = 24
__doc__ += budget_doc(MODELS)


def _config(study: Study, model: Model):
  cfg = study.config(model)
  with cfg.unlocked():
    if cfg.loss.gan_weight:
      train = int(cfg.data.num_examples * (1 - cfg.data.test_fraction))
      steps = cfg.train.num_epochs * (train // cfg.train.batch_size)
      cfg.loss.gan_start_step = int(GAN_START * steps)
    if not registry.get('lpips_vgg').available():  # no lpips extra: the study says so
      cfg.eval.metrics = tuple(m for m in cfg.eval.metrics if m not in ('lpips_vgg',
                                                                         'recon_fd'))
  return cfg


def _pca_row(images, train, units: int, ctx_metrics) -> tuple[dict, np.ndarray]:
  """PCA with `units` components fitted on `train`: its row of the table and its
  reconstructions of `images`."""
  model = pca.fit(train, units)
  recon = np.clip(pca.reconstruct(model, images), 0.0, 1.0).astype(np.float32)
  psnr, ssim = passes._psnr_ssim(recon, images)
  ev = {'psnr': psnr, 'ssim': ssim,
        'hf_retained': float(np.sum(spectrum.hf_energy(recon))
                             / np.sum(spectrum.hf_energy(images)))}
  if 'lpips_vgg' in ctx_metrics:
    lp = lpips.Evaluator('vgg')
    ev['lpips_vgg'] = float(np.mean(lp(images, recon, desc='LPIPS-vgg [PCA]')))
    ev['recon_fd'] = sq.frechet_distance(lp.features(images), lp.features(recon))
  row = {'name': f'PCA, {units} units', 'key': 'pca',
         'description': f'PCA with {units} components (the code size) fitted on the '
                        'training split', 'eval': ev, 'sweep': {}}
  return row, recon


def run(study: Study) -> Report:
  rep = Report('Sharp reconstructions',
               'The latent-diffusion autoencoder\'s recipe against plain MSE and against the '
               'best linear autoencoder with as many units: is the blur a property of the '
               'loss, and does a perceptual loss and a discriminator remove it?')
  members, configs = [], []
  for model, (key, label, _) in zip(MODELS, RECIPES):
    cfg = _config(study, model)
    configs.append(cfg)
    study.train(key, cfg)
    members += [{**m, 'name': label} for m in study.members(key)]
  cfg = configs[-1]
  rep.settings(cfg, ('data.name', 'data.image_size', 'data.num_examples', 'model.preset',
                     'model.arch', 'model.kind', 'train.num_epochs', 'train.batch_size',
                     'train.learning_rate', 'loss.reduction', 'loss.beta', 'loss.lpips_net',
                     'loss.gan_weight', 'loss.gan_start_step', 'model.disc.layers'))
  sources = [study.source(key) for key, _, _ in RECIPES]
  images, _, ids = sources[0].split('test')
  train, _, _ = sources[0].split('train')
  units = int(np.prod(sources[0].model.latent_shape))
  pca_row, pca_recon = _pca_row(images, train, units, cfg.eval.metrics)
  train_rows = [r for r in study.records(RECIPES[-1][0]) if r.get('split') == 'train']
  gan = train_rows[-1] if train_rows else {}
  for m in members[-1:]:  # results.json keeps how far the discriminator got
    m['eval'] = {**m['eval'], **{k: gan[k] for k in GAN_METRICS if k in gan}}
    m['description'] += ' (gan_d, gan_lambda and the logits: the last training log)'
  rows = members + [pca_row]
  columns = [m for m in ('psnr', 'ssim', 'lpips_vgg', 'recon_fd', 'hf_retained')
             if m in cfg.eval.metrics]
  rep.metrics(rows, 'Test metrics', columns=columns,
              note='LPIPS-VGG grades every model with a network none of them trains on '
                   '(the LPIPS models train with AlexNet). Reconstruction FD: the Fréchet '
                   'distance between the test images\' and the reconstructions\' LPIPS-VGG '
                   'features (not FID). HF energy: the share of the originals\' power above '
                   'half the Nyquist frequency that the reconstructions keep.')
  rep.text('Against MSE and PCA', _verdict(members, pca_row))
  if 'logits_real' in gan:
    rep.text('The discriminator', (
        f'From step {cfg.loss.gan_start_step:,} of {gan["step"]:,}: over the last logged '
        f'training steps its mean logit is {gan["logits_real"]:+.3f} on training images and '
        f'{gan["logits_fake"]:+.3f} on their reconstructions (hinge loss {gan["gan_d"]:.3f}; '
        f'1.0 is a discriminator that cannot tell them apart, 0 one that always can), and '
        f'the adaptive weight is {gan["gan_lambda"]:.3g}.'))

  recons = [np.clip(s.model.reconstruct(images), 0.0, 1.0) for s in sources] + [pca_recon]
  labels = [m['name'] for m in members] + [pca_row['name']]
  freqs, original = spectrum.radial_power(images)
  curves = {lab: spectrum.radial_power(r - images)[1] for lab, r in zip(labels, recons)}
  path = study.save_figure(figures.error_spectrum(freqs, original, curves),
                           'error_spectrum.png')
  rep.figure(path, 'Error spectrum', 'Radially averaged power of the residual x\' - x against '
             'spatial frequency (cycles per pixel), with the originals\' own spectrum (black): '
             'where a curve meets the black one, that model has dropped the frequency.')
  picks = [int(i) for i in np.random.default_rng(0).choice(len(images), 4, replace=False)]
  crop = min(CROP, images.shape[1])
  path = study.save_figure(
      figures.crops([('original', images[picks])]
                    + [(lab, r[picks]) for lab, r in zip(labels, recons)],
                    [int(ids[i]) for i in picks], crop), 'crops.png')
  rep.figure(path, 'Crops', f'The centre {crop}x{crop} pixels of {len(picks)} test images, '
             'enlarged, as each model reconstructs them.')
  return rep


def _verdict(members: list[dict], pca: dict) -> str:
  """The targets: L1 + LPIPS at <= 0.75x the MSE model's and PCA's LPIPS-VGG, at no more
  than 2 dB below the MSE model's PSNR."""
  mse, lp = members[0]['eval'], members[1]['eval']
  if 'lpips_vgg' not in lp:
    return ('LPIPS-VGG was not measured at this budget' + (
        '' if registry.get('lpips_vgg').available() else " (pip install 'ae_jax[lpips]')")
        + ': the targets cannot be checked.')
  r_mse = lp['lpips_vgg'] / mse['lpips_vgg']
  r_pca = lp['lpips_vgg'] / pca['eval']['lpips_vgg']
  d_psnr = lp['psnr'] - mse['psnr']
  met = r_mse <= 0.75 and r_pca <= 0.75 and d_psnr >= -2.0
  return (f'L1 + LPIPS: LPIPS-VGG {r_mse:.2f}x the MSE model\'s and {r_pca:.2f}x PCA\'s, '
          f'PSNR {d_psnr:+.2f} dB against the MSE model. Target (<= 0.75x both, >= -2 dB): '
          + ('met.' if met else 'not met at this budget.'))
