"""Latent-noise generation (reports 000, 002): new labelled wafer maps from the codes of
chosen maps plus Gaussian noise, written as gen_data.npy / gen_label.npy.

  python -m ae_jax.studies latent_noise_generation --workdir runs/noise_gen [--quick]

The model is the conv AE of configs/ae_conv.py on generated 26x26 WM-811K-style maps (enough
of them for report 000's ids 1-5, 226-230, 841-845, 1471-1475). It draws samples for each
of report 000's ids with σ = SIGMA, and report 002's per-class figure: samples with σ = i/10
for maps of Center, Edge-Loc and none (every class in the appendix).

On the real WM-811K pickle, as report 002 ran it (its epochs, batch and weight decay):

  python -m ae_jax.studies latent_noise_generation --workdir runs/noise_gen_wm811k \\
    --config.data.name=wm811k --config.data.path=LSWMD.pkl --config.train.num_epochs=100 \\
    --config.train.batch_size=61 --config.optim.weight_decay=1e-5
"""
from __future__ import annotations

import numpy as np

from ae_jax.latent import ops, tools
from ae_jax.studies import Experiment, Model, Study, budget_doc
from ae_jax.studies.report import Report

NAME = 'latent_noise_generation'
REPORT_CLASSES = ('Center', 'Edge-Loc', 'none')
PER_ID, SIGMA = 5, 0.5  # report 000: 5 samples per chosen map
PER_CLASS, APPENDIX_PER_CLASS = 5, 2  # report 002: 5 maps of each class it shows
SMOKE = {'data.num_examples': 300, 'train.num_epochs': 1, 'model.arch': 'mlp',
         'model.hidden': (16,), 'model.latent_dim': 4, 'train.batch_size': 64,
         # the per-batch metrics only: LPIPS's VGG pass costs more than the tiny model
         'eval.metrics': ('loss', 'recon', 'psnr', 'ssim')}
MODELS = (
    Model('ae', 'conv AE of configs/ae_conv.py (4x4 stride-2 convs 32-64-128, BN, flat 32-unit '
          'code, BCE on one-hot maps)', Experiment('wafer', 26, 3, 'conv', 'ae', 32),
          base='ae_conv',
          budgets={'full': {'data.num_examples': 2000, 'train.num_epochs': 30},
                   'quick': {'data.num_examples': 2000, 'train.num_epochs': 2,
                             'train.eval_every': 2},
                   'smoke': SMOKE},
          settings={'figures.enabled': False, 'checkpoint.max_to_keep': 1}),
)
__doc__ += (f'\nSamples: {PER_ID} per chosen map with σ = {SIGMA:g}; {PER_CLASS} maps of each '
            f'class in the per-class figure, {APPENDIX_PER_CLASS} in the appendix.\n'
            + budget_doc(MODELS))


def label_counts(classes, names) -> str:
  """'Center: 5, none: 10' from class indices (the dataset's own label values may be
  strings, floats or integers with gaps: never counted as numbers), unlabelled (-1) apart."""
  classes = np.asarray(classes, np.int64)
  counts = np.bincount(classes[classes >= 0], minlength=len(names))
  parts = [f'{names[i] if i < len(names) else i}: {c}' for i, c in enumerate(counts) if c]
  unlabelled = int((classes < 0).sum())
  return ', '.join(parts + ([f'unlabelled: {unlabelled}'] if unlabelled else [])) or '-'


def _stored(storage: dict) -> str:
  """What gen_data.npy's values mean, as the dataset stores its images."""
  if 'wafer' in storage:
    return '0 off-wafer, 1 good die, 2 failing die'
  top = storage.get('int_max')
  return (f'pixels 0..{top}' if top else 'pixels in [0, 1]') + f', {storage.get("layout", "NHWC")}'


def run(study: Study) -> Report:
  rep = Report('Latent-noise generation',
               'Each new map is the decoder applied to a real map\'s code plus Gaussian noise; '
               'it inherits the real map\'s label, so the generated set is labelled.')
  cfg = study.config(MODELS[0])
  study.train('ae', cfg)
  src = study.source('ae')
  n = len(src.dataset.train['id']) + len(src.dataset.test['id'])
  wanted = tools.parse_ids(tools.DEFAULT_GENERATE_IDS)
  ids = [i for i in wanted if i < n]
  chose = ''
  if len(ids) < len(wanted):  # a small dataset: as many of its first ids instead
    ids = list(range(min(len(wanted), n)))
    chose = (f'This dataset has {n} maps, too few for report 000\'s ids '
             f'{tools.DEFAULT_GENERATE_IDS}: these are ids {ids[0]}-{ids[-1]} instead.')
    print(f'note: {chose}', flush=True)
  chosen = tools.generate(src, ids, PER_ID, SIGMA, 0, study.out('generate'))
  classes = [c for c in REPORT_CLASSES if c in src.model.class_names]
  per_class = tools.generate(src, [], PER_ID, 'schedule', 0, study.out('generate_per_class'),
                             per_class=PER_CLASS, classes=classes)
  appendix = tools.generate(src, [], PER_ID, 'schedule', 1, study.out('generate_every_class'),
                            per_class=APPENDIX_PER_CLASS)
  rep.settings(cfg, ('data.name', 'data.image_size', 'data.num_examples', 'model.arch',
                     'model.latent_dim', 'train.num_epochs', 'train.batch_size',
                     'train.learning_rate'))
  rep.metrics([{**m, 'name': 'ae'} for m in study.members('ae')], 'Test metrics of the AE')
  rep.table('gen_data.npy / gen_label.npy', ['file', 'shape', 'dtype', 'labels'],
            [['gen_data.npy', 'x'.join(map(str, chosen['gen_data'].shape)),
              str(chosen['gen_data'].dtype), _stored(src.model.storage)],
             ['gen_label.npy', str(len(chosen['gen_label'])), str(chosen['gen_label'].dtype),
              label_counts(np.repeat(chosen['source_labels'], PER_ID), src.model.class_names)]],
            note=f'In {study.out("generate").path}; each label is its source map\'s.')
  rep.figure(chosen['figure0'], 'Chosen ids', f'{len(ids)} chosen maps (left) and {PER_ID} '
             f'samples each with σ = {SIGMA:g}: what to look for is whether the defect '
             'pattern survives the noise while its details vary.'
             + (f' {chose}' if chose else ''))
  last = float(np.max(ops.sigma_schedule(PER_ID)))
  rep.figure(per_class['figure0'], f'{PER_CLASS} maps per class, {PER_ID} samples each '
             '(σ = i/10)',
             f'{PER_CLASS} maps each of {", ".join(classes)}, and {PER_ID} samples with growing '
             f'noise σ = 0.1 … {last:g} (report 002\'s schedule), growing to the right.')
  rep.figure(appendix['figure0'], 'Appendix: every class', f'{APPENDIX_PER_CLASS} maps of every '
             'class with the same schedule.')
  return rep

