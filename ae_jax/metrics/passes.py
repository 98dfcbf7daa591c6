"""Pass metrics: host-side functions over the whole test split and the trained members.

Each takes an `evaluate.PassContext` and returns {metric name: [K] values}; the registry
names which function computes which metric.
"""
from __future__ import annotations

import math

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import progress
from ae_jax.data import dsprites
from ae_jax.errors import ConfigError
from ae_jax.metrics import core, disentanglement, likelihood, lpips, pca, sample_quality as sq
from ae_jax.priors import fitted


def _psnr_ssim(a, b) -> tuple[float, float]:
  a, b = jnp.asarray(a), jnp.asarray(b)
  size = core.ssim_filter_size(a.shape[1:3])
  psnr = pix.psnr(a, b)
  ssim = pix.ssim(a, b, max_val=1.0, filter_size=size)
  return float(jnp.mean(psnr)), float(jnp.mean(ssim))


def _who(ctx, k: int) -> str:
  """' [beta=4]' for a sweep's member k in progress lines, '' for a single model."""
  return f' [{ctx.members[k].name}]' if len(ctx.members) > 1 else ''


def _lpips(net: str, a, b, ctx, what: str = '') -> float:
  ev = lpips.Evaluator(net, progress=ctx.config.progress)
  return float(np.mean(ev(a, b, desc=f'LPIPS-{net}{what}')))


def lpips_vgg(ctx) -> dict:
  return {'lpips_vgg': [_lpips('vgg', ctx.images, ctx.recon(k), ctx, _who(ctx, k))
                        for k in range(len(ctx.members))]}


def lpips_alex(ctx) -> dict:
  return {'lpips_alex': [_lpips('alex', ctx.images, ctx.recon(k), ctx, _who(ctx, k))
                         for k in range(len(ctx.members))]}


FLOAT_BITS = 32  # a PCA coefficient, like a unit of an AE's or a VAE's code, is a float32


def baseline_components(member) -> int:
  """How many principal components the member's PCA baseline gets: its code's storage.

  A continuous code (AE, VAE) of U units is U float32 values: U components. A VQ-VAE's code
  is an index into K codes at each of P positions, P*log2(K) bits, whatever the width of
  its pre-quantisation units: in float32 values that is P*log2(K)/32 components (rounded,
  at least 1). Counting both codes in the same storage keeps the comparison fair: given a
  component per pre-quantisation unit, the PCA would hold far more than the code does."""
  positions = math.prod(member.latent_shape) // member.latent_shape[-1]
  if member.kind == 'vqvae':
    return max(1, round(positions * math.log2(member.num_codes) / FLOAT_BITS))
  return member.latent_dim * positions


def pca_baseline(ctx) -> dict:
  """The best linear autoencoder with each member's code size (baseline_components)."""
  out = {'pca_psnr': [], 'pca_ssim': [], 'pca_lpips_vgg': []}
  fitted = {}
  for m in ctx.members:
    units = baseline_components(m)
    if units not in fitted:
      model = pca.fit(ctx.train_images, units)
      recon = pca.reconstruct(model, ctx.images)
      p, s = _psnr_ssim(recon, ctx.images)
      lp = (_lpips('vgg', ctx.images, recon, ctx, f' [PCA, {units} units]')
            if 'pca_lpips_vgg' in ctx.wanted else float('nan'))
      fitted[units] = (p, s, lp)
    p, s, lp = fitted[units]
    out['pca_psnr'].append(p)
    out['pca_ssim'].append(s)
    out['pca_lpips_vgg'].append(lp)
  return out


def iwae(ctx) -> dict:
  """-log p(x) by the importance-weighted bound, and in bits per dimension."""
  cfg = ctx.config
  nll = []
  for k, m in enumerate(ctx.members):
    loss = m.config.loss

    def encode(x, m=m):
      return m.encode_fn(m.variables, x)

    def log_px(x, z, m=m, loss=loss):
      recon, logits = m.decode_fn(m.variables, z)
      return likelihood.log_px_given_z(loss.reconstruction,
                                       logits if loss.reconstruction == 'bce' else recon,
                                       x, loss.nll_sigma)

    values = []
    batch = max(1, min(64, len(ctx.images)))
    with progress.Progress(len(ctx.images), f'IWAE, {cfg.eval.iwae_samples} samples'
                           f'{_who(ctx, k)}', unit='images', enabled=cfg.progress) as bar:
      for i in range(0, len(ctx.images), batch):
        x = jnp.asarray(ctx.images[i:i + batch])
        values.append(np.asarray(likelihood.iwae(
            jax.random.fold_in(ctx.key(k), i), x, encode, log_px, cfg.eval.iwae_samples,
            min(cfg.eval.iwae_chunk, cfg.eval.iwae_samples))))
        bar.update(len(x))
    nll.append(-float(np.mean(np.concatenate(values))))
  dims = math.prod(ctx.image_shape)
  return {'nll_iwae': nll, 'bits_per_dim_iwae': [v / (dims * math.log(2.0)) for v in nll]}


def sample_quality(ctx) -> dict:
  name, source = sq.classifier_dataset(ctx.info, ctx.config.data)
  out = {'fd_classifier': [], 'precision': [], 'recall': []}
  for k, m in enumerate(ctx.members):
    fake = m.sample_prior(ctx.config.eval.num_samples, seed=ctx.config.train.seed + k)
    s = sq.score(name, ctx.images, fake, source=source)
    out['fd_classifier'].append(s['fd'])
    out['precision'].append(s['precision'])
    out['recall'].append(s['recall'])
  return out


# the generation signal while training: a fixed, small prior fitted to the current codes
GEN_FIT, GEN_SAMPLES, GEN_COMPONENTS = 2000, 500, 10


def _feature_space(ctx):
  """(dataset, source) of the dataset's classifier, or None for LPIPS-VGG features."""
  try:
    name, source = sq.classifier_dataset(ctx.info, ctx.config.data)
  except ConfigError:
    name = None
  if name in sq.SHAPES:
    return name, source
  if min(ctx.image_shape[:2]) < 16 or not lpips.available():
    raise ConfigError("metric 'gen_fd' scores samples in a dataset classifier's feature space "
                      f'(one of {sorted(sq.SHAPES)}) or, for other data, LPIPS-VGG\'s, which '
                      "needs the lpips extra and images of at least 16 px")
  return None


def generation_signal(ctx) -> dict:
  """gen_fd: the Frechet distance between GEN_SAMPLES test images and as many samples of a
  small prior fitted to the member's current codes of GEN_FIT training images (a
  GEN_COMPONENTS-component Gaussian mixture over continuous codes, a per-position
  categorical over a quantized model's code indices), in the dataset classifier's feature
  space (else LPIPS-VGG's); deterministic, seeded by train.seed."""
  space = _feature_space(ctx)
  real = ctx.images[:GEN_SAMPLES]
  train = ctx.train_images[:GEN_FIT]
  ev = None if space is not None else lpips.Evaluator('vgg')
  real_feats = None if ev is None else ev.features(real)
  out = []
  for k, m in enumerate(ctx.members):
    seed = ctx.config.train.seed + k
    codes, _ = m.encode(train)
    if m.kind_info.quantized:  # a VQ-VAE, FSQ: indices, decoded as their codebook entries
      idx = m.code_indices(codes)
      params = fitted.fit_categorical(idx, fitted.CategoricalSettings(num_codes=m.num_codes))
      z = m.index_latents(fitted.sample_categorical(params, len(real), seed))
    else:
      params = fitted.fit_gmm(codes, fitted.GMMSettings(components=GEN_COMPONENTS), seed)
      z = fitted.sample_continuous(params, len(real), seed)
    fake = np.clip(m.decode(z), 0.0, 1.0)
    if space is not None:
      out.append(sq.score(space[0], real, fake, source=space[1])['fd'])
    else:
      out.append(sq.frechet_distance(real_feats, ev.features(fake)))
  return {'gen_fd': out}


def fd_lpips(ctx) -> dict:
  ev = lpips.Evaluator('vgg', progress=ctx.config.progress)
  real = ev.features(ctx.images, desc='LPIPS features, test images')
  out = []
  for k, m in enumerate(ctx.members):
    fake = m.sample_prior(min(ctx.config.eval.num_samples, 4 * len(ctx.images)),
                          seed=ctx.config.train.seed + k)
    out.append(sq.frechet_distance(real, ev.features(fake, desc=f'LPIPS features, samples'
                                                               f'{_who(ctx, k)}')))
  return {'fd_lpips': out}


def recon_fd(ctx) -> dict:
  """Fréchet distance between the test images' and each member's reconstructions' LPIPS
  feature vectors (lpips.features: each layer's unit-normalised, head-weighted features,
  averaged over space)."""
  ev = lpips.Evaluator('vgg')
  real = ev.features(ctx.images)
  return {'recon_fd': [sq.frechet_distance(real, ev.features(ctx.recon(k)))
                       for k in range(len(ctx.members))]}


def mig(ctx) -> dict:
  if ctx.factors is None:
    raise ConfigError("metric 'mig' needs ground-truth factors: data.name='dsprites'")
  out = []
  for m in ctx.members:
    codes, _ = m.encode(ctx.images)
    out.append(disentanglement.mig(codes.reshape(len(codes), -1), ctx.factors)[0])
  return {'mig': out}


def factor_vae(ctx) -> dict:
  """The FactorVAE score of each member's encoder (posterior means) on fresh dSprites
  images drawn within the config's factor ranges, at the test images' size."""
  if ctx.factors is None:
    raise ConfigError("metric 'factor_vae' needs ground-truth factors: data.name='dsprites'")
  d = ctx.config.data.dsprites
  ranges = {n: tuple(d[n]) for n in dsprites.FACTOR_NAMES if d[n] is not None}
  votes = int(ctx.config.eval.factor_vae_votes)
  out = []
  for k, m in enumerate(ctx.members):
    with progress.Progress(1, f'FactorVAE score{_who(ctx, k)}',
                           enabled=ctx.config.progress) as bar:
      score = disentanglement.dsprites_factor_vae(
          lambda x, m=m: m.encode(x)[0], ranges, ctx.images.shape[1],
          seed=ctx.config.train.seed,
          num_train=votes, num_eval=max(1, votes // 2),
          num_variance_estimate=min(disentanglement.NUM_POINTS, 10 * votes))
      bar.update(1)
    out.append(score['eval_accuracy'])
  return {'factor_vae': out}
