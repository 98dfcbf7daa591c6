"""Tokenizers: a KL autoencoder, a VQ codebook learned by EMA and finite scalar quantization
(FSQ, Mentzer et al. 2024) at two codebook sizes, each the same latent-diffusion network
trained with the same reconstruction recipe and budget, on photographs.

  python -m ae_jax.studies tokenizers --workdir runs/tokenizers [--quick]

Table: PSNR, SSIM, LPIPS-VGG, reconstruction FD (LPIPS-VGG feature space), the share of the
codebook used and its perplexity on the test split, the compression (latent elements per
image value; bits per pixel location of a discrete code) and the training step time relative
to the KL autoencoder's. Figure: centre crops of test images as each model reconstructs
them.

The matching. Every model is `kl_f4_small` (widths 16-32-64, f = 4) on 32x32 patches: the
same encoder and decoder and the same 8x8 code positions; only what sits between them
changes. Codebook sizes are matched exactly: the VQ codebooks have K = prod(levels) entries,
1000 and 15360, beside FSQ's 2^10 (8, 5, 5, 5) and 2^14 (8, 8, 8, 6, 5). The code width is
matched within a size: FSQ quantizes one channel per level count, so its code is 4 channels
wide at 2^10 and 5 at 2^14, and the VQ codebook of the same size has vectors of that width
(the network's 1x1 `quant_conv` projects to it in both), so the two differ only in the
quantizer. The KL autoencoder has the 2^10 pair's 4 channels (as Stable Diffusion's): the
2^14 pair stores a quarter more latent elements per image, as the latents-per-pixel column
shows. The test split is large (30% of the patches) so that the larger codebook can be
seen whole: usage is counted over its code positions, several per code at the full budget.

The recipe (the `l1_lpips` model of sharp_reconstructions): per-pixel L1 + LPIPS (AlexNet
trunk, weight 1), loss.reduction='mean', Adam at 1e-3, batch 8; the KL autoencoder adds
1e-6 x the summed KL (beta = 1e-6 / pixels); the VQ models add 0.25 x the commitment term.
The VQ codebook learns by EMA (decay 0.99, Laplace smoothing) without dead-code restarts:
at this batch size a code of the larger codebook is chosen less than once a step on average,
so ae_jax's default restart threshold (1 a step) would redraw nearly every code at every
step. LPIPS-VGG, which none of the models trains on, grades all of them.

Fashion-MNIST is not part of the default budget: its IDX files hold 60,000 training images,
so even one epoch of five models costs hours of CPU at this network's per-image cost. Its
table is the same study with the data overridden (LPIPS-AlexNet needs 31 pixels, so the
recipe there is L1 + LPIPS-VGG, or L1 alone with loss.lpips_weight=0):

  python -m ae_jax.studies tokenizers --workdir runs/tokenizers_fashion \\
    --config.data.name=idx --config.data.path=/usr/share/datasets/fashion-mnist \\
    --config.data.image_size=28 --config.data.channels=1 --config.loss.lpips_net=vgg
"""
from __future__ import annotations

import numpy as np

from ae_jax import config_lib, figures
from ae_jax.metrics import registry
from ae_jax.models import kinds
from ae_jax.studies import budget_doc, Experiment, Model, Study
from ae_jax.studies.report import Report
from ae_jax.workdir import Workdir

NAME = 'tokenizers'
SIZE, PRESET = 32, 'kl_f4_small'
# key, kind, code width, its own settings
TOKENIZERS = (
    ('kl', 'vae', 4, {}),
    ('vq_1000', 'vqvae', 4, {'model.vq.codes': 1000}),
    ('fsq_1000', 'fsq', 4, {'model.fsq.codebook': '2^10'}),
    ('vq_15360', 'vqvae', 5, {'model.vq.codes': 15360}),
    ('fsq_15360', 'fsq', 5, {'model.fsq.codebook': '2^14'}),
)
PAIRS = (('vq_1000', 'fsq_1000'), ('vq_15360', 'fsq_15360'))  # the same codebook size
METRICS = ('loss', 'recon', 'psnr', 'ssim', 'lpips_vgg', 'recon_fd', 'code_usage',
           'perplexity', 'bits_per_code', 'bits_per_pixel', 'latent_per_pixel')
SETTINGS = {'figures.enabled': False, 'checkpoint.max_to_keep': 1, 'loss.reduction': 'mean',
            'loss.reconstruction': 'l1', 'loss.lpips_weight': 1.0, 'loss.lpips_net': 'alex',
            'loss.beta': 1e-6 / (SIZE * SIZE * 3), 'model.vq.restart_threshold': 0.0,
            'train.batch_size': 8, 'train.learning_rate': 1e-3, 'data.test_fraction': 0.3,
            'eval.metrics': METRICS}
# At least two epochs at every budget: the first compiles, the others are timed (summary.json's
# epoch_s), which the step-time column reads.
BUDGETS = {
    'full': {'data.num_examples': 3600, 'train.num_epochs': 3, 'train.eval_every': 3,
             'eval.max_images': 500},
    'quick': {'data.num_examples': 1000, 'train.num_epochs': 2, 'train.eval_every': 2,
              'eval.max_images': 200},
    'smoke': {'data.num_examples': 96, 'train.num_epochs': 2, 'train.eval_every': 2,
              'data.image_size': 16, 'loss.lpips_weight': 0.0, 'model.preset': '',
              'model.arch': 'conv', 'model.conv.channels': (8,), 'model.conv.latent': 'spatial',
              'model.vq.codes': 32,
              'eval.metrics': ('loss', 'recon', 'psnr', 'ssim', 'code_usage', 'perplexity',
                               'bits_per_pixel', 'latent_per_pixel')}}


def _model(key: str, kind: str, width: int, own: dict) -> Model:
  e = Experiment('photos', SIZE, 3, PRESET, kind, width)
  return Model(key, f'{kinds.get(kind).label} ({key}): {e.describe()}', e, BUDGETS,
               {**SETTINGS, **own})


MODELS = tuple(_model(*t) for t in TOKENIZERS)
CROP = 16
__doc__ += budget_doc(MODELS)


def _label(cfg) -> str:
  """How the table names a model, from what it trained (a smoke run's codebooks are not the
  full budget's)."""
  m = cfg.model
  if m.kind == 'vqvae':
    return f'VQ (EMA), K = {m.vq.codes}'
  if m.kind == 'fsq':
    levels = kinds.fsq_levels(m)
    return f'FSQ {levels}, K = {int(np.prod(levels))}'
  return f'KL autoencoder, {config_lib.resolve(cfg).model.latent_dim} channels'


def _config(study: Study, model: Model):
  cfg = study.config(model)
  if not registry.get('lpips_vgg').available():  # no lpips extra: the study says so
    with cfg.unlocked():
      cfg.loss.lpips_weight = 0.0
      cfg.eval.metrics = tuple(m for m in cfg.eval.metrics
                               if m not in ('lpips_vgg', 'recon_fd'))
  return cfg


def _step_seconds(study: Study, key: str):
  """Seconds per training step after the first epoch (which compiles), from summary.json;
  None for a run of one epoch."""
  s = Workdir(study.model_dir(key)).read_json('summary.json')
  return s['epoch_s'] / s['steps_per_epoch'] if s.get('epoch_s') else None


def run(study: Study) -> Report:
  rep = Report('Tokenizers: KL, VQ and FSQ',
               'One network, one recipe and one budget; only the code differs: continuous '
               '(KL), a learned VQ codebook, or FSQ\'s fixed grid, at two codebook sizes. '
               'Does FSQ use its whole codebook where the EMA codebook does not, and does it '
               'reconstruct as well?')
  rows, configs, seconds = [], [], []
  for model in MODELS:
    cfg = _config(study, model)
    configs.append(cfg)
    study.train(model.key, cfg)
    rows += [{**m, 'name': _label(cfg)} for m in study.members(model.key)]
    seconds.append(_step_seconds(study, model.key))
  cfg = configs[0]
  rep.settings(cfg, ('data.name', 'data.image_size', 'data.num_examples', 'model.preset',
                     'model.arch', 'train.num_epochs', 'train.batch_size',
                     'train.learning_rate', 'loss.reconstruction', 'loss.lpips_weight',
                     'loss.lpips_net', 'loss.reduction', 'model.vq.decay',
                     'model.vq.restart_threshold'))
  ratio = [round(s / seconds[0], 2) if s and seconds[0] else None for s in seconds]
  columns = [m for m in METRICS if m not in ('loss', 'recon', 'bits_per_code')]
  rep.metrics(rows, 'Test metrics', columns=columns,
              extra={'step s': [None if s is None else round(s, 4) for s in seconds],
                     'step time (× KL)': ratio},
              note='Codes used and perplexity: over the test split\'s code positions '
                   '(FSQ\'s codebook is every combination of its levels). Latents/pixel: '
                   'latent elements per image value; bits/pixel: positions x log2 K per pixel '
                   'location. Step time: seconds per training step after compiling, over the '
                   'KL autoencoder\'s, on the machine that ran it. LPIPS-VGG and recon FD '
                   '(Fréchet distance of LPIPS-VGG features, not FID): no model trains on '
                   'VGG.')
  rep.text('FSQ against the EMA codebook', _verdict(rows, [m.key for m in MODELS]))
  sources = [study.source(m.key) for m in MODELS]
  images, _, ids = sources[0].split('test', limit=64)
  picks = [int(i) for i in np.random.default_rng(0).choice(len(images), 4, replace=False)]
  recons = [np.clip(s.model.reconstruct(images[picks]), 0.0, 1.0) for s in sources]
  crop = min(CROP, images.shape[1])
  path = study.save_figure(
      figures.crops([('original', images[picks])]
                    + [(r['name'], x) for r, x in zip(rows, recons)],
                    [int(ids[i]) for i in picks], crop), 'crops.png')
  rep.figure(path, 'Crops', f'The centre {crop}x{crop} pixels of {len(picks)} test images, '
             'enlarged, as each model reconstructs them.')
  return rep


def _verdict(rows, keys) -> str:
  """The targets: FSQ's codebook usage >= 95% at both sizes where the EMA codebook's is
  lower, and FSQ at least as good as the EMA codebook of its size in PSNR and LPIPS-VGG."""
  by_key = dict(zip(keys, rows))
  lines, met = [], True
  for vq_key, fsq_key in PAIRS:
    vq, f = by_key[vq_key]['eval'], by_key[fsq_key]['eval']
    line = (f'{by_key[fsq_key]["name"]}: codes used {f["code_usage"]:.1%} (VQ '
            f'{vq["code_usage"]:.1%}), perplexity {f["perplexity"]:.0f} (VQ '
            f'{vq["perplexity"]:.0f}), PSNR {f["psnr"] - vq["psnr"]:+.2f} dB against VQ')
    ok = f['code_usage'] >= 0.95 and vq['code_usage'] < f['code_usage'] and (
        f['psnr'] >= vq['psnr'])
    if 'lpips_vgg' in f:
      line += f', LPIPS-VGG {f["lpips_vgg"]:.3f} (VQ {vq["lpips_vgg"]:.3f})'
      ok = ok and f['lpips_vgg'] <= vq['lpips_vgg']
    met = met and ok
    lines.append(line + '.')
  target = ('Target (FSQ uses >= 95% of its codebook at both sizes where the EMA codebook '
            'uses less, and reconstructs at least as well as it in PSNR and LPIPS-VGG): '
            + ('met.' if met else 'not met at this budget.'))
  return '\n\n'.join(lines + [target])
