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

  python -m ae_jax.studies high_frequency --workdir runs/high_frequency [--quick]

The models: a small residual conv AE (model.arch='resnet', channels 16-32-64, 64 latents)
per remedy on 32x32 photo patches, the same budget each; the MLP pair at 50x50. Table:
PSNR, SSIM, MS-SSIM, LPIPS (when installed) and the high-frequency energy retained (metric
hf_retained). docs/studies/high_frequency.md has the measured time and results.
"""
from __future__ import annotations

import numpy as np

from ae_jax import figures
from ae_jax.metrics import registry, spectrum
from ae_jax.studies import Experiment, Model, Study, budget_doc
from ae_jax.studies.report import Report, layer_table

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
# the table's metrics: LPIPS when its extra is installed (not at --smoke: its VGG pass costs
# more than the tiny models)
AVAILABLE = tuple(m for m in METRICS if registry.get(m).available())
SMOKE_METRICS = tuple(m for m in AVAILABLE if m != 'lpips_vgg')
SMOKE_REMEDIES = ('mse', 'ms_ssim_l1', 'refine')  # --smoke: a loss term, an architecture change
CROP = 16  # the crops figure: the centre CROP x CROP pixels
SHARED = {'figures.enabled': False, 'checkpoint.max_to_keep': 1, 'eval.metrics': AVAILABLE}
CONV_BUDGETS = {
    'full': {'data.num_examples': 4000, 'train.num_epochs': 4, 'train.eval_every': 4},
    'quick': {'data.num_examples': 800, 'train.num_epochs': 1, 'train.eval_every': 1},
    'smoke': {'data.num_examples': 200, 'train.num_epochs': 1, 'train.eval_every': 1,
              'train.batch_size': 16, 'model.resnet.channels': (4, 8), 'model.latent_dim': 8,
              'eval.metrics': SMOKE_METRICS}}
MLP_BUDGETS = {
    'full': {'data.num_examples': 2000, 'train.num_epochs': 2, 'train.eval_every': 2},
    'quick': {'data.num_examples': 400, 'train.num_epochs': 1, 'train.eval_every': 1},
    'smoke': {'data.num_examples': 100, 'train.num_epochs': 1, 'train.eval_every': 1,
              'train.batch_size': 16, 'model.preset': '', 'model.arch': 'mlp',
              'model.hidden': (16,), 'model.latent_dim': 8, 'eval.metrics': SMOKE_METRICS}}


def _conv_model(key: str, label: str, overrides: dict) -> Model:
  """The study's conv AE with one remedy (`overrides`; a latent size goes to its
  Experiment)."""
  changes = {k: v for k, v in overrides.items() if k != 'model.latent_dim'}
  latent = overrides.get('model.latent_dim', 64)
  return Model(key, f'residual conv AE 16-32-64, {latent} latents: {label}',
               Experiment('photos', 32, 3, 'resnet', 'ae', latent), CONV_BUDGETS,
               {**SHARED, 'model.resnet.channels': (16, 32, 64),
                'model.output_activation': 'none', 'train.batch_size': 32,
                'train.learning_rate': 1e-3, **changes})


CONV = {key: _conv_model(key, label, o) for key, label, o in REMEDIES}
MLP = {preset: Model(preset, label, Experiment('photos', 50, 3, preset, 'ae', 128), MLP_BUDGETS,
                     {**SHARED, 'train.batch_size': 32, 'train.learning_rate': 1e-4})
       for preset, label in MLP_PAIR}
MODELS = (*CONV.values(), *MLP.values())
__doc__ += budget_doc(MODELS)


def remedies(study: Study):
  """The remedies this installation can run (LPIPS needs its extra); a few at --smoke."""
  lpips = registry.get('lpips_vgg').available()
  return [r for r in REMEDIES if (lpips or r[0] != 'lpips')
          and (study.budget != 'smoke' or r[0] in SMOKE_REMEDIES)]


def run(study: Study) -> Report:
  rep = Report('High-frequency detail',
               'Why reconstructions are blurrier than the originals, and what keeps the '
               'detail: the same small conv AE trained with each loss and architecture change '
               'for the same budget, and report 000\'s MLP with and without its extra layers.')
  chosen = remedies(study)
  conv_members, conv_records = [], []
  for key, label, _ in chosen:
    cfg = study.config(CONV[key])
    study.train(key, cfg)
    conv_members += [{**m, 'name': label} for m in study.members(key)]
    conv_records += [{**r, 'member': label} for r in study.records(key)]
  base = study.config(CONV['mse'])
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
                   'the extra terms are per-pixel averages x the pixel count '
                   '(docs/losses.md).')
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
  path = study.save_figure(figures.crops(rows, [int(ids[i]) for i in picks], CROP),
                           'crops.png')
  rep.figure(path, 'Crops', f'The centre {CROP}x{CROP} pixels of {len(picks)} test images, '
             'enlarged, as each model reconstructs them.')

  mlp_members, sizes = [], []
  for preset, label in MLP_PAIR:
    cfg = study.config(MLP[preset])
    study.train(preset, cfg)
    mlp_members += [{**m, 'name': label} for m in study.members(preset)]
    model = study.source(preset).model  # what was built (--smoke: a small MLP)
    built = model.config.model.preset or model.config.model.arch
    sizes.append(f'{built} ({layer_table(model.params)[1]:,} parameters)')
  size = model.image_shape
  epochs = f'{cfg.train.num_epochs} epoch' + ('s' if cfg.train.num_epochs > 1 else '')
  rep.metrics(mlp_members, "Report 000's fix: two extra layers after the MLP decoder",
              note=f'{" and ".join(sizes)}, on {size[0]}x{size[1]} patches of the same '
                   f'photographs, the same budget ({epochs}).')
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
