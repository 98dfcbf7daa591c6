"""Why reconstructions are blurry, and what keeps the detail (report 000's "Hint: Loss").

An autoencoder trained with MSE outputs, for each code, the mean of the images that share
it: where the code cannot pin a detail down (the exact position of an edge, a texture's
phase), the mean averages the possibilities into blur. A VAE adds posterior noise to the
code, so it averages over more. The blur is the loss of high spatial frequencies: the
residual x' - x holds its power there. This study draws that error spectrum for each
model and measures remedies on the same model and budget:

- losses: MSE, L1, MSE + SSIM, MS-SSIM + L1 (Zhao et al. 2017), MSE + a focal frequency
  loss (Jiang et al. 2021), MSE + LPIPS (when the lpips extra is installed), log-MSE;
- architecture: extra refinement blocks at the decoder's end, a wider latent;
- report 000's own fix: its MLP AE (mlp_ae_50) against the same with two extra 7500->7500
  layers after the decoder (mlp_ae_50_refine) on 50x50 patches.

  python -m ae_jax.studies high_frequency --workdir runs/high_frequency

Default budget (README, "Studies", for the measured time on a 2-core CPU): 32x32 photo
patches (3,200 train / 800 test), a small residual conv AE (model.arch='resnet', channels
16-32-64, 64 latents), 4 epochs per remedy; the MLP pair at 50x50 (1,600 / 400) for 2
epochs. Table: PSNR, SSIM, MS-SSIM, LPIPS
(when installed) and the high-frequency energy retained (metric hf_retained).
"""
from __future__ import annotations

import numpy as np

from ae_jax import config_lib, figures
from ae_jax.metrics import registry, spectrum
from ae_jax.studies import Study, base_config
from ae_jax.studies.report import Report

NAME = 'high_frequency'
# key, label, overrides on the study's conv AE. Extra-term weights: about as large as the
# MSE term near 33 dB (MS-SSIM + L1: Zhao et al.'s alpha = 0.84, i.e. 0.84 / 0.16)
REMEDIES = (
    ('mse', 'MSE', {}),
    ('l1', 'L1', {'loss.reconstruction': 'l1'}),
    ('mse_ssim', 'MSE + SSIM', {'loss.ssim_weight': 0.005}),
    ('ms_ssim_l1', 'MS-SSIM + L1', {'loss.reconstruction': 'l1', 'loss.ms_ssim_weight': 5.25}),
    ('fft', 'MSE + focal frequency', {'loss.fft_weight': 5.0}),
    ('lpips', 'MSE + LPIPS', {'loss.lpips_weight': 0.005}),
    ('log_mse', 'log-MSE', {'loss.reconstruction': 'log_mse'}),
    ('refine', 'MSE, +2 refine blocks', {'model.resnet.refine': 2}),
    ('wide', 'MSE, 4x wider latent', {'model.latent_dim': 256}),
)
MLP_PAIR = (('mlp_ae_50', 'report 000 MLP AE'),
            ('mlp_ae_50_refine', 'report 000 MLP AE + 2 refine layers'))
METRICS = ('loss', 'recon', 'psnr', 'ssim', 'ms_ssim', 'hf_retained', 'lpips_vgg')
QUICK = ['--config.data.num_examples=200', '--config.train.num_epochs=1',
         '--config.train.batch_size=16', '--config.model.resnet.channels=(4,8)',
         '--config.model.latent_dim=8']
QUICK_MLP = ['--config.data.num_examples=100', '--config.train.num_epochs=1',
             '--config.train.batch_size=16', '--config.model.preset=',
             '--config.model.arch=mlp', '--config.model.hidden=(16,)',
             '--config.model.latent_dim=8']


# --quick: the tests' run (a loss term, an architecture change)
QUICK_REMEDIES = ('mse', 'ms_ssim_l1', 'refine')


def _metrics(study: Study):
  """The table's metrics: LPIPS when its extra is installed (not at --quick: its VGG pass
  costs more than the tiny models)."""
  return tuple(m for m in METRICS if registry.get(m).available()
               and not (study.quick and m == 'lpips_vgg'))


def _conv_config(study: Study, overrides: dict):
  cfg = base_config()
  with cfg.unlocked():
    cfg.data.name, cfg.data.image_size, cfg.data.num_examples = 'photos', 32, 4000
    cfg.model.kind, cfg.model.arch, cfg.model.latent_dim = 'ae', 'resnet', 64
    cfg.model.resnet.channels = (16, 32, 64)
    cfg.model.output_activation = 'none'
    cfg.train.num_epochs, cfg.train.batch_size, cfg.train.learning_rate = 4, 32, 1e-3
  cfg = _budget(study, cfg, QUICK)
  return config_lib.apply_overrides(cfg, [f'--config.{k}={v}' for k, v in overrides.items()])


def _budget(study: Study, cfg, quick):
  """What every model of the study shares: one evaluation at the end, the table's metrics,
  the quick budget and the user's overrides."""
  with cfg.unlocked():
    cfg.figures.enabled = False
    cfg.checkpoint.max_to_keep = 1
    cfg.eval.metrics = _metrics(study)
  cfg = study.config(cfg, quick)
  with cfg.unlocked():
    cfg.train.eval_every = cfg.train.num_epochs
  return cfg


def _mlp_config(study: Study, preset: str):
  cfg = base_config()
  with cfg.unlocked():
    cfg.data.name, cfg.data.image_size, cfg.data.num_examples = 'photos', 50, 2000
    cfg.model.preset, cfg.model.kind = preset, 'ae'
    cfg.train.num_epochs, cfg.train.batch_size, cfg.train.learning_rate = 2, 32, 1e-4
  return _budget(study, cfg, QUICK_MLP)


def remedies(study: Study):
  """The remedies this installation can run (LPIPS needs its extra); a few at --quick."""
  lpips = registry.get('lpips_vgg').available()
  return [r for r in REMEDIES if (lpips or r[0] != 'lpips')
          and (not study.quick or r[0] in QUICK_REMEDIES)]


def run(study: Study) -> Report:
  rep = Report('High-frequency detail',
               'Why reconstructions are blurrier than the originals, and what keeps the '
               'detail: the same small conv AE trained with each loss and architecture change '
               'for the same budget, and report 000\'s MLP with and without its extra layers.')
  chosen = remedies(study)
  conv_members, conv_records = [], []
  for key, label, overrides in chosen:
    cfg = _conv_config(study, overrides)
    study.train(key, cfg)
    conv_members += [{**m, 'name': label} for m in study.members(key)]
    conv_records += [{**r, 'member': label} for r in study.records(key)]
  base = _conv_config(study, {})
  rep.settings(base, ('data.name', 'data.image_size', 'data.num_examples', 'model.arch',
                      'model.resnet.channels', 'model.latent_dim', 'train.num_epochs',
                      'train.batch_size', 'train.learning_rate', 'loss.reduction'))
  rep.table('Remedies', ['model', 'change from the MSE model'],
            [[label, ', '.join(f'{k}={v}' for k, v in o.items()) or '–']
             for _, label, o in chosen])
  mse = conv_members[0]['eval']
  rep.metrics(conv_members, 'Test metrics per remedy',
              note='HF energy: the share of the originals\' power above half the Nyquist '
                   'frequency that the reconstructions keep (1 = all; blur < 1). Weights of '
                   'the extra terms are per-pixel averages x the pixel count (README, '
                   '"Losses").')
  rep.text('Against MSE', _verdict(conv_members, mse))

  # the error spectrum of each model on the same test images
  sources = [study.source(key) for key, _, _ in chosen]
  images, _, ids = sources[0].split('test', limit=512)
  recons = [np.clip(s.model.reconstruct(images), 0.0, 1.0) for s in sources]
  freqs, original = spectrum.radial_power(images)
  curves = {label: spectrum.radial_power(r - images)[1]
            for (_, label, _), r in zip(chosen, recons)}
  path = study.save_figure(figures.error_spectrum(freqs, original, curves), 'error_spectrum.png')
  rep.figure(path, 'Error spectrum', 'Radially averaged power of the residual x\' - x against '
             'spatial frequency (cycles per pixel), with the originals\' own spectrum (black): '
             'where a residual curve meets the black one, the model has dropped that frequency '
             'altogether. Blur lives at the right-hand end.')
  picks = [int(i) for i in np.random.default_rng(0).choice(len(images), 4, replace=False)]
  rows = [('original', images[picks])] + [(label, r[picks])
                                          for (_, label, _), r in zip(chosen, recons)]
  path = study.save_figure(figures.crops(rows, [int(ids[i]) for i in picks]), 'crops.png')
  rep.figure(path, 'Crops', 'The centre 16x16 pixels of four test images, enlarged, as each '
             'model reconstructs them.')

  mlp_members = []
  for preset, label in MLP_PAIR:
    cfg = _mlp_config(study, preset)
    study.train(preset, cfg)
    mlp_members += [{**m, 'name': label} for m in study.members(preset)]
  rep.metrics(mlp_members, "Report 000's fix: two extra layers after the MLP decoder",
              note='mlp_ae_50 and mlp_ae_50_refine (116,428,676 parameters) on 50x50 patches of '
                   'the same photographs, same budget.')
  path = study.save_figure(figures.loss_curves(conv_records, 'psnr',
                                               title='Test PSNR per epoch'), 'psnr_curves.png')
  rep.figure(path, 'Training curves', 'Test PSNR of each remedy at its evaluations.')
  return rep


def _verdict(members, mse: dict) -> str:
  lines = []
  for m in members[1:]:
    e = m['eval']
    d_ssim = e.get('ssim', np.nan) - mse.get('ssim', np.nan)
    d_psnr = e.get('psnr', np.nan) - mse.get('psnr', np.nan)
    d_hf = e.get('hf_retained', np.nan) - mse.get('hf_retained', np.nan)
    lines.append(f'{m["name"]}: SSIM {d_ssim:+.3f}, PSNR {d_psnr:+.2f} dB, HF energy '
                 f'{d_hf:+.3f}')
  good = [m['name'] for m in members[1:]
          if m['eval'].get('ssim', np.nan) - mse.get('ssim', np.nan) >= 0.03
          and m['eval'].get('psnr', np.nan) - mse.get('psnr', np.nan) >= -0.5]
  return ('Changes against the MSE model: ' + '; '.join(lines) + '. '
          + (f'Raise SSIM by >= 0.03 at <= 0.5 dB PSNR cost: {", ".join(good)}.' if good else
             'No remedy raised SSIM by >= 0.03 at <= 0.5 dB PSNR cost at this budget.'))
