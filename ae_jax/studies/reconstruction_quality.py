"""Reconstruction quality (reports 000, 001): AE and VAE, MLP and conv presets, on the same
images; PSNR / SSIM (and LPIPS when its extra is installed) against PCA at the same latent
size, loss curves, and a ground truth / AE / VAE grid of 10 random test images.

  python -m ae_jax.studies reconstruction_quality --workdir runs/recon_quality

Default budget (about 12 minutes on a 2-core CPU): 32x32 photo patches (1,600 train / 400
test), mlp_ae_50 / mlp_vae_50 (their published 128 / 256 latents), conv_ae_bn_mish (its code
is its last conv layer: 1024 units at 32x32) and conv_vae_bn_mish with a 256-unit code, a
few epochs each.

The reports' full settings, on 256x256 RGB images in a folder (report 001) or 50x50 (000):

  python -m ae_jax.studies reconstruction_quality --workdir runs/recon_full \\
    --config.data.name=folder --config.data.path=images/ --config.data.image_size=256 \\
    --config.train.num_epochs=100
"""
from __future__ import annotations

from ae_jax import figures
from ae_jax.latent import tools
from ae_jax.studies import Study, base_config
from ae_jax.studies.report import Report

NAME = 'reconstruction_quality'
MODELS = (  # key, preset, kind, epochs, learning rate, latent (0: the preset's own)
    ('mlp_ae', 'mlp_ae_50', 'ae', 20, 1e-3, 0),
    ('mlp_vae', 'mlp_vae_50', 'vae', 20, 5e-4, 0),
    ('conv_ae', 'conv_ae_bn_mish', 'ae', 6, 1e-3, 0),  # its code: the last conv, 1024 units
    ('conv_vae', 'conv_vae_bn_mish', 'vae', 6, 1e-3, 256),
)
QUICK = ['--config.data.name=digits', '--config.train.num_epochs=1', '--config.model.preset=',
         '--config.model.latent_dim=4', '--config.train.batch_size=32',
         "--config.eval.metrics=('loss','recon','kl','psnr','ssim','pca_psnr')"]
QUICK_MODEL = {'mlp': ['--config.model.arch=mlp', '--config.model.hidden=(16,)'],
               'conv': ['--config.model.arch=conv', '--config.model.conv.channels=(8,)']}


def _config(study: Study, preset, kind, epochs, lr, latent):
  cfg = base_config()
  with cfg.unlocked():
    cfg.data.name, cfg.data.image_size, cfg.data.num_examples = 'photos', 32, 2000
    cfg.model.preset, cfg.model.kind, cfg.model.latent_dim = preset, kind, latent
    cfg.train.num_epochs, cfg.train.learning_rate, cfg.train.batch_size = epochs, lr, 32
    cfg.train.eval_every = epochs
    cfg.loss.reconstruction, cfg.loss.reduction = 'mse', 'sum'
    cfg.figures.enabled = False
    cfg.checkpoint.max_to_keep = 1
    cfg.eval.metrics = ('default', 'pca_psnr', 'pca_ssim')
  return study.config(cfg, QUICK + QUICK_MODEL[preset.split('_')[0]])


def run(study: Study) -> Report:
  rep = Report('Reconstruction quality',
               'AEs and VAEs of the reports, MLP and convolutional, trained on the same images '
               'and measured on the same test split, against PCA at the same latent size (the '
               'best linear autoencoder).')
  members, records = [], []
  for key, preset, kind, epochs, lr, latent in MODELS:
    cfg = _config(study, preset, kind, epochs, lr, latent)
    study.train(key, cfg)
    for m in study.members(key):
      members.append({**m, 'name': key})
    records += [{**r, 'member': key} for r in study.records(key)]
  rep.settings(cfg, ('data.name', 'data.image_size', 'train.batch_size', 'loss.reconstruction'))
  rep.table('Models', ['model', 'preset', 'kind', 'epochs', 'learning rate', 'latent'],
            [[k, study.source(k).model.config.model.preset or 'mlp', kind.upper(),
              study.source(k).model.epoch, lr, study.source(k).model.latent_dim]
             for k, _, kind, _, lr, _ in MODELS])
  rep.metrics(members, 'Test metrics',
              note='PCA columns: the same test images projected on the top principal '
                   'components of the training images, as many as the model has latents.')
  path = study.save_figure(figures.loss_curves(records, 'loss'), 'loss_curves.png')
  rep.figure(path, 'Training curves', 'Training loss (solid) and test loss (dashed) per epoch '
             'of each model; AE and VAE losses differ by the KL term.')
  sources = [study.source(k) for k, *_ in MODELS]
  ids = sources[0].random_ids(10, seed=0)
  grid = tools.reconstruct(sources, ids, study.out('reconstruct'))
  rep.figure(grid['figure'], 'Ground truth and reconstructions',
             '10 random test images (top) and each model\'s reconstruction of them: the '
             'VAEs trade sharpness for a code that can be sampled.')
  rep.architecture(sources[2].model, 'Architecture of conv_ae')
  return rep
