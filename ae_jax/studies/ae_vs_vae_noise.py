"""The same noise through an AE and a VAE (report 000): identical draws z ~ N(0, I) decoded
by both, two sets side by side, and how far the decoded images fall from the data.

  python -m ae_jax.studies ae_vs_vae_noise --workdir runs/ae_vs_vae

Default budget (about 3 minutes on a 2-core CPU): conv AE and conv VAE (configs/ae_conv.py,
configs/vae_conv.py, both with a 32-unit code) on 2,000 generated 26x26 wafer maps.

Why they differ: the VAE's KL term pulls its codes towards N(0, I), so draws from N(0, I)
land where its decoder was trained; an AE's codes go wherever the reconstruction wants, so
the same draws mostly decode to images unlike any training image. The table measures this
as the distance from each decoded draw to its nearest training image (root mean square over
pixels), next to the same distance for test images' reconstructions.

On your images (report 000 used 50x50 RGB and a 256-unit code):

  python -m ae_jax.studies ae_vs_vae_noise --workdir runs/ae_vs_vae_full \\
    --config.data.name=folder --config.data.path=images/ --config.data.image_size=48 \\
    --config.model.latent_dim=256 --config.train.num_epochs=100
"""
from __future__ import annotations

import numpy as np

from ae_jax.latent import ops, tools
from ae_jax.studies import Study, base_config
from ae_jax.studies.report import Report

NAME = 'ae_vs_vae_noise'
QUICK = ['--config.data.num_examples=300', '--config.train.num_epochs=1',
         '--config.model.arch=mlp', '--config.model.hidden=(16,)', '--config.model.latent_dim=4',
         '--config.train.batch_size=64']


def _config(study: Study, name: str):
  cfg = base_config(name)
  with cfg.unlocked():
    cfg.data.num_examples = 2000
    cfg.model.latent_dim = 32
    cfg.figures.enabled = False
    cfg.checkpoint.max_to_keep = 1
  return study.config(cfg, QUICK)


def run(study: Study) -> Report:
  rep = Report('The same noise through an AE and a VAE',
               'Identical Gaussian draws decoded by an AE and a VAE of one latent size.')
  for key, name in (('ae', 'ae_conv'), ('vae', 'vae_conv')):
    cfg = _config(study, name)
    study.train(key, cfg)
  sources = [study.source('ae'), study.source('vae')]
  result = tools.same_noise(sources, 8, 2, 0, study.out('same_noise'))
  train, _, _ = sources[0].split('train')
  test, _, _ = sources[0].split('test', limit=64)
  rows = []
  for s, (_, decoded) in zip(sources, result['decoded'].items()):
    d_noise = ops.nearest_distance(decoded.reshape(-1, *decoded.shape[2:]), train)
    d_recon = ops.nearest_distance(s.model.reconstruct(test), train)
    rows.append([s.model.kind.upper(), f'{d_noise.mean():.4f}', f'{np.median(d_noise):.4f}',
                 f'{d_recon.mean():.4f}', f'{d_noise.mean() / max(d_recon.mean(), 1e-8):.2f}'])
  rep.settings(cfg, ('data.name', 'data.image_size', 'model.latent_dim', 'train.num_epochs',
                     'loss.beta'))
  rep.table('How far decoded noise falls from the data',
            ['model', 'noise: mean distance', 'noise: median', 'reconstructions: mean',
             'ratio'], rows,
            note='Distance to the nearest training image, root mean square over pixels; '
                 '"reconstructions" are 64 test images\' reconstructions, the distance a '
                 'decoded image has when its code is one the model made. A ratio near 1: '
                 'decoded noise looks like the model\'s own outputs.')
  rep.figure(result['figure'], 'Same draws, two models',
             'Each column is one draw z ~ N(0, I), decoded by the AE and by the VAE, two sets: '
             'the VAE turns noise into plausible maps; the AE mostly does not.')
  return rep
