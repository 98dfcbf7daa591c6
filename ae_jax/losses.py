"""Per-example loss terms (the caller reduces over the batch).

Conventions, also in docs/losses.md: images are in [0, 1]. The reconstruction term reduces
over one image's pixels by `reduction` ('sum' or 'mean'); the KL to N(0, I) is always
summed over latent units; beta multiplies that sum. So with reduction='mean' and L
latent units, beta = kld_weight / L reproduces a codebase that averages both terms
(`F.mse_loss(...) + kld_weight * torch.mean(kl)`); with reduction='sum' it is
beta = kld_weight * num_pixels / L.
"""
from __future__ import annotations

import dataclasses
import math

import dm_pix as pix
import jax
import jax.numpy as jnp
import optax

from ae_jax.metrics import lpips, ms_ssim


@dataclasses.dataclass(frozen=True, kw_only=True)
class LossSpec:
  """The reconstruction loss's static settings, the `loss.*` keys of the same names
  (`from_config`); hashable, so it can be bound into compiled steps."""
  reconstruction: str = 'mse'
  reduction: str = 'sum'
  nll_sigma: float = 0.1
  ssim_weight: float = 0.0     # extra training terms (extra_terms)
  ms_ssim_weight: float = 0.0
  fft_weight: float = 0.0
  lpips_weight: float = 0.0
  lpips_net: str = 'vgg'       # the LPIPS term's trunk

  @classmethod
  def from_config(cls, loss_config) -> 'LossSpec':
    """The spec of `config.loss` (a ConfigDict subtree): each field from its own key."""
    return cls(**{f.name: loss_config[f.name] for f in dataclasses.fields(cls)})


def _reduce(per_pixel, reduction: str):
  axes = tuple(range(1, per_pixel.ndim))
  return per_pixel.sum(axes) if reduction == 'sum' else per_pixel.mean(axes)


def mse(recon, x, reduction='sum'):
  return _reduce(jnp.square(recon - x), reduction)


def l1(recon, x, reduction='sum'):
  return _reduce(jnp.abs(recon - x), reduction)


def bce_with_logits(logits, x, reduction='sum'):
  """Bernoulli NLL of targets x in [0, 1] under sigmoid(logits)."""
  return _reduce(optax.sigmoid_binary_cross_entropy(logits, x), reduction)


def gaussian_nll(recon, x, sigma: float, reduction='sum'):
  """NLL of x under N(recon, sigma^2) per pixel, constants included."""
  per_pixel = 0.5 * (jnp.square((x - recon) / sigma) + math.log(2 * math.pi * sigma**2))
  return _reduce(per_pixel, reduction)


# log_mse's variance floor: the rounding noise of 8-bit pixel values, (1/255)^2 / 12 (58.9
# dB). A perfect reconstruction stays finite, and no image earns credit for precision below
# what its pixels hold (at 1e-8, clipped near-black patches were driven to 110 dB, carrying
# the mean PSNR over images while the typical image gained nothing).
LOG_MSE_FLOOR = (1 / 255) ** 2 / 12


def log_mse(recon, x, reduction='sum'):
  """Gaussian NLL with each image's own best variance sigma^2 = its MSE (up to constants):
  P/2 ln MSE per image ('sum'; 'mean': 1/2 ln MSE). Minimising it maximises the mean PSNR
  over images, where MSE weights every pixel of the batch alike (PCA's criterion)."""
  p = math.prod(x.shape[1:])
  m = jnp.mean(jnp.square(recon - x), axis=tuple(range(1, x.ndim)))
  return (0.5 * p if reduction == 'sum' else 0.5) * jnp.log(m + LOG_MSE_FLOOR)


def kl_divergence(mean, logvar):
  """KL(N(mean, exp(logvar)) || N(0, I)), summed over all latent units -> [B]."""
  per_unit = 0.5 * (jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar)
  return per_unit.reshape(per_unit.shape[0], -1).sum(-1)


def reconstruction(kind: str, out, x, reduction: str, nll_sigma: float = 0.1):
  """The configured reconstruction term for a ModelOutput `out` -> [B]."""
  if kind == 'mse':
    return mse(out.recon, x, reduction)
  if kind == 'l1':
    return l1(out.recon, x, reduction)
  if kind == 'bce':
    return bce_with_logits(out.logits, x, reduction)
  if kind == 'gaussian_nll':
    return gaussian_nll(out.recon, x, nll_sigma, reduction)
  if kind == 'log_mse':
    return log_mse(out.recon, x, reduction)
  raise ValueError(f'unknown reconstruction loss {kind!r}')


def kl_weight(beta, epoch_progress, warmup_epochs):
  """beta, ramped linearly from 0 over `warmup_epochs` (0 = no warm-up)."""
  ramp = jnp.where(warmup_epochs > 0,
                   jnp.clip(epoch_progress / jnp.maximum(warmup_epochs, 1e-9), 0.0, 1.0), 1.0)
  return beta * ramp


# ---- perceptual and frequency terms (added to the training loss, not likelihoods) ------
#
# Each is a per-image average in [0, ~1]; under reduction='sum' it is multiplied by the
# number of pixel values P, so a weight means the same against the reconstruction term
# under either reduction (weight 1: as much as a per-pixel squared error of that size).


def ssim_filter_size(image_shape) -> int:
  """dm-pix's 11-px window, shrunk (odd) to fit images under 11 px."""
  size = min(11, image_shape[0], image_shape[1])
  return size if size % 2 else size - 1


def ssim_loss(recon, x):
  """1 - SSIM per image (dm-pix, 11-px Gaussian window, smaller under 11 px)."""
  return 1.0 - pix.ssim(recon, x, max_val=1.0, filter_size=ssim_filter_size(x.shape[1:3]))


def ms_ssim_loss(recon, x):
  """1 - MS-SSIM per image (five scales; images of at least 32 px)."""
  # each scale's term is raised to a fractional power, whose gradient is infinite at 0 (a
  # far-off reconstruction early in training): clip the terms at 1e-3, not 0
  return 1.0 - ms_ssim.ms_ssim(recon, x, floor=1e-3)


def focal_frequency_loss(recon, x, alpha: float = 1.0):
  """Focal frequency loss (Jiang et al. 2021) per image: the squared distance between the
  orthonormal 2-D spectra of recon and x, each frequency weighted by its own distance^alpha
  (normalised to [0, 1] per image, no gradient), so the frequencies the model gets most
  wrong, typically the high ones, dominate. Averaged over frequencies and channels."""
  fr = jnp.fft.fft2(recon, axes=(1, 2), norm='ortho')
  fx = jnp.fft.fft2(x, axes=(1, 2), norm='ortho')
  d = jnp.square(jnp.abs(fr - fx))  # [B, H, W, C]
  w = jax.lax.stop_gradient(jnp.sqrt(d) ** alpha)
  w = w / jnp.maximum(w.max(axis=(1, 2, 3), keepdims=True), 1e-12)
  return jnp.mean(w * d, axis=(1, 2, 3))


def lpips_loss(recon, x, weights, net: str = 'vgg'):
  """LPIPS per image with the `net` trunk; `weights`: ae_jax.metrics.lpips.load(net) (the
  v0.1 weights, from the lpips extra), passed in by the caller (losses.pretrained_networks)
  so that they enter compiled code as arguments."""
  return lpips.distance(weights, recon, x, net)


EXTRA_TERMS = ('ssim', 'ms_ssim', 'fft', 'lpips')


def pretrained_networks(spec: LossSpec) -> dict:
  """The pretrained networks the configured terms need, as NumPy weights read outside any
  trace: {'lpips_<net>': ...} (loss.lpips_net) when loss.lpips_weight > 0, else {}."""
  if not spec.lpips_weight:
    return {}
  return {f'lpips_{spec.lpips_net}': lpips.load(spec.lpips_net)}


def extra_terms(recon, x, loss_cfg: LossSpec, pretrained=None):
  """sum_k weight_k * term_k per image, in the reconstruction term's units -> [B].
  `pretrained`: pretrained_networks(loss_cfg) (the LPIPS weights, when its term is on)."""
  scale = math.prod(x.shape[1:]) if loss_cfg.reduction == 'sum' else 1.0
  total = jnp.zeros(x.shape[0], jnp.float32)
  if loss_cfg.ssim_weight:
    total += loss_cfg.ssim_weight * ssim_loss(recon, x)
  if loss_cfg.ms_ssim_weight:
    total += loss_cfg.ms_ssim_weight * ms_ssim_loss(recon, x)
  if loss_cfg.fft_weight:
    total += loss_cfg.fft_weight * focal_frequency_loss(recon, x)
  if loss_cfg.lpips_weight:
    net = loss_cfg.lpips_net
    if not pretrained or f'lpips_{net}' not in pretrained:
      raise ValueError('loss.lpips_weight > 0 needs the LPIPS weights: pass '
                       'pretrained=losses.pretrained_networks(loss_cfg)')
    total += loss_cfg.lpips_weight * lpips_loss(recon, x, pretrained[f'lpips_{net}'], net)
  return scale * total


def has_extra_terms(loss_cfg: LossSpec) -> bool:
  return any(getattr(loss_cfg, f'{k}_weight') for k in EXTRA_TERMS)


def reconstruction_terms(out, x, loss_cfg: LossSpec, pretrained=None):
  """(recon, total) per example [B]: the configured reconstruction term, and what the
  objective minimises for it: recon plus the weighted extra terms, and with a learned
  output log-variance s (model.learned_logvar) that sum / exp(s) + s per pixel value (the
  latent-diffusion autoencoder's nll)."""
  rec = reconstruction(loss_cfg.reconstruction, out, x, loss_cfg.reduction, loss_cfg.nll_sigma)
  total = rec
  if has_extra_terms(loss_cfg):
    total = total + extra_terms(out.recon.astype(jnp.float32), x, loss_cfg, pretrained)
  if out.aux is not None and 'output_logvar' in out.aux:
    s = out.aux['output_logvar']
    values = math.prod(x.shape[1:]) if loss_cfg.reduction == 'sum' else 1.0
    total = total * jnp.exp(-s) + values * s
  return rec, total


def terms(out, x, loss_cfg: LossSpec, beta_eff, pretrained=None):
  """Per-example loss terms: recon, kl (0 for an AE), loss (recon + extra + beta_eff * kl),
  where extra is the weighted perceptual/frequency terms (0 unless configured;
  `pretrained`: the networks they need, pretrained_networks(loss_cfg)).

  The -ELBO is not recon + kl in general (recon may be a per-pixel mean, or drop the
  likelihood's constants): ae_jax.metrics.core.neg_elbo_terms computes it."""
  rec, total = reconstruction_terms(out, x, loss_cfg, pretrained)
  kl = jnp.zeros_like(rec) if out.logvar is None else kl_divergence(out.mean, out.logvar)
  return {'loss': total + beta_eff * kl, 'recon': rec, 'kl': kl}
