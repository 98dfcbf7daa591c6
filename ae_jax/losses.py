"""Per-example loss terms (the caller reduces over the batch).

Conventions, also in the README: images are in [0, 1]. The reconstruction term reduces
over one image's pixels by `reduction` ('sum' or 'mean'); the KL to N(0, I) is always
summed over latent units; beta multiplies that sum. So with reduction='mean' and L
latent units, beta = kld_weight / L reproduces a codebase that averages both terms
(`F.mse_loss(...) + kld_weight * torch.mean(kl)`); with reduction='sum' it is
beta = kld_weight * num_pixels / L.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import optax


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
  raise ValueError(f'unknown reconstruction loss {kind!r}')


def kl_weight(beta, epoch_progress, warmup_epochs):
  """beta, ramped linearly from 0 over `warmup_epochs` (0 = no warm-up)."""
  ramp = jnp.where(warmup_epochs > 0,
                   jnp.clip(epoch_progress / jnp.maximum(warmup_epochs, 1e-9), 0.0, 1.0), 1.0)
  return beta * ramp


def terms(out, x, loss_cfg, beta_eff):
  """Per-example loss terms: recon, kl (0 for an AE), loss (recon + beta_eff * kl).

  The -ELBO is not recon + kl in general (recon may be a per-pixel mean, or drop the
  likelihood's constants): ae_jax.metrics.core.neg_elbo_terms computes it."""
  rec = reconstruction(loss_cfg.reconstruction, out, x, loss_cfg.reduction, loss_cfg.nll_sigma)
  if out.logvar is None:
    kl = jnp.zeros_like(rec)
  else:
    kl = kl_divergence(out.mean, out.logvar)
  return {'loss': rec + beta_eff * kl, 'recon': rec, 'kl': kl}
