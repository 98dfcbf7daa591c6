"""Latent-noise generation (reports 000, 002): new labelled wafer maps from the codes of
chosen maps plus Gaussian noise, written as gen_data.npy / gen_label.npy.

  python -m ae_jax.studies latent_noise_generation --workdir runs/noise_gen

Default budget (about 3 minutes on a 2-core CPU): a conv AE (configs/ae_conv.py) on 2,000
generated 26x26 WM-811K-style maps, 40 epochs; 5 samples for each of report 000's ids
(1-5, 226-230, 841-845, 1471-1475) with σ = 0.5, and report 002's per-class figure: 5
samples with σ = i/10 for 5 maps of Center, Edge-Loc and none (every class in the appendix).

On the real WM-811K pickle, as report 002 ran it (100 epochs, batch 61, weight decay 1e-5):

  python -m ae_jax.studies latent_noise_generation --workdir runs/noise_gen_wm811k \\
    --config.data.name=wm811k --config.data.path=LSWMD.pkl --config.train.num_epochs=100 \\
    --config.train.batch_size=61 --config.optim.weight_decay=1e-5
"""
from __future__ import annotations

import numpy as np

from ae_jax.latent import tools
from ae_jax.studies import Study, base_config
from ae_jax.studies.report import Report

NAME = 'latent_noise_generation'
REPORT_CLASSES = ('Center', 'Edge-Loc', 'none')
QUICK = ['--config.data.num_examples=300', '--config.train.num_epochs=1',
         '--config.model.arch=mlp', '--config.model.hidden=(16,)', '--config.model.latent_dim=4',
         '--config.train.batch_size=64']


def _config(study: Study):
  cfg = base_config('ae_conv')
  with cfg.unlocked():
    cfg.data.num_examples = 2000
    cfg.figures.enabled = False
    cfg.checkpoint.max_to_keep = 1
  return study.config(cfg, QUICK)


def run(study: Study) -> Report:
  rep = Report('Latent-noise generation',
               'Each new map is the decoder applied to a real map\'s code plus Gaussian noise; '
               'it inherits the real map\'s label, so the generated set is labelled.')
  cfg = _config(study)
  study.train('ae', cfg)
  src = study.source('ae')
  n = len(src.dataset.train['id']) + len(src.dataset.test['id'])
  ids = [i for i in tools.parse_ids(tools.DEFAULT_GENERATE_IDS) if i < n]
  if len(ids) < 20:  # a small dataset: the first ids of each block that exist
    ids = list(range(min(20, n)))
  chosen = tools.generate(src, ids, 5, 0.5, 0, study.out('generate'))
  classes = [c for c in REPORT_CLASSES if c in src.model.class_names]
  per_class = tools.generate(src, [], 5, 'schedule', 0, study.out('generate_per_class'),
                             per_class=5, classes=classes)
  appendix = tools.generate(src, [], 5, 'schedule', 1, study.out('generate_every_class'),
                            per_class=2)
  rep.settings(cfg, ('data.name', 'data.image_size', 'model.arch', 'model.latent_dim',
                     'train.num_epochs', 'train.batch_size', 'train.learning_rate'))
  rep.metrics([{**m, 'name': 'ae'} for m in study.members('ae')], 'Test metrics of the AE')
  names = src.model.class_names
  counts = np.bincount(chosen['gen_label'], minlength=len(names))
  rep.table('gen_data.npy / gen_label.npy', ['file', 'shape', 'dtype', 'labels'],
            [['gen_data.npy', 'x'.join(map(str, chosen['gen_data'].shape)),
              str(chosen['gen_data'].dtype), '0 off-wafer, 1 good die, 2 failing die'],
             ['gen_label.npy', str(len(chosen['gen_label'])), str(chosen['gen_label'].dtype),
              ', '.join(f'{names[i]}: {c}' for i, c in enumerate(counts) if c)]],
            note=f'In {study.out("generate").path}; each label is its source map\'s.')
  rep.figure(chosen['figure0'], 'Chosen ids', f'{len(ids)} chosen maps (left) and 5 samples '
             'each with σ = 0.5: the defect pattern survives the noise, its details vary.')
  rep.figure(per_class['figure0'], 'Five samples per class (σ = i/10)',
             f'5 maps each of {", ".join(classes)}, and samples with growing noise σ = 0.1 … '
             '0.5 (report 002\'s schedule): the further right, the further from the source.')
  rep.figure(appendix['figure0'], 'Appendix: every class', 'Two maps of every class with the '
             'same schedule.')
  return rep
