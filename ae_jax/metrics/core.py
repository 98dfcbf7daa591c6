"""The metrics every evaluation computes, as per-example functions of a `BatchContext`.

Each returns per-example arrays ([B] or [B, units]) that the compiled evaluation sums over
the test split; `finalize(sums, n)` functions turn sums into values where a plain mean
is not the metric (active units, bits per dimension).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import dm_pix as pix
import jax.numpy as jnp

import optax

from ae_jax import losses, objectives
from ae_jax.losses import ssim_filter_size  # metrics and losses share the window
from ae_jax.models import quantizer


class BatchContext(NamedTuple):
  x: Any          # [B, H, W, C] test images in [0, 1]
  sampled: Any    # ModelOutput with z sampled from q(z|x) (VAE) or the code (AE)
  det: Any        # ModelOutput from the posterior mean (the deterministic reconstruction)
  terms: dict     # per-example loss terms of `sampled`: loss, recon, kl [B]
  loss: Any       # losses.LossSpec
  latent_mask: Any = None  # the member's latent mask [1, ..., 1, L] (a latent-size sweep)


def loss_terms(ctx: BatchContext) -> dict:
  return {k: ctx.terms[k] for k in ('loss', 'recon', 'kl')}


OBJECTIVE_TERMS = objectives.logged_terms()  # every objective's own terms, as declared


def objective_terms(ctx: BatchContext) -> dict:
  """The objective's own per-example terms that this model's objective produces."""
  return {k: ctx.terms[k] for k in OBJECTIVE_TERMS if k in ctx.terms}


def code_counts(ctx: BatchContext) -> dict:
  """A quantised code's per-example histogram [B, K] of the deterministic pass, by a
  scatter-add: a [B, P, K] one-hot would be gigabytes for FSQ's K = 64,000 codes."""
  idx = ctx.det.aux['indices']  # [B, ...]
  k = ctx.det.aux['counts'].shape[-1]
  flat = idx.reshape(idx.shape[0], -1)  # [B, P]
  rows = jnp.broadcast_to(jnp.arange(flat.shape[0])[:, None], flat.shape)  # [B, P]
  return {'code_counts': jnp.zeros((flat.shape[0], k), jnp.float32).at[rows, flat].add(1.0)}


def perplexity(sums: dict, n, image_shape) -> Any:
  return quantizer.perplexity(sums['code_counts'])


def code_usage(sums: dict, n, image_shape) -> Any:
  return quantizer.usage(sums['code_counts'])


# ---- compression: what a code stores per pixel ------------------------------------------

def _per_example(ctx: BatchContext, value) -> Any:
  """A value that is the same for every example, as the [B] array the evaluation sums."""
  return jnp.full((ctx.x.shape[0],), value, jnp.float32)


def latent_elements(ctx: BatchContext) -> Any:
  """Numbers in one example's code (a latent-size member: its own units only)."""
  shape = ctx.det.mean.shape[1:]  # [*latent]
  if ctx.latent_mask is None:
    return math.prod(shape)
  return math.prod(shape[:-1]) * jnp.sum(ctx.latent_mask)


def latent_per_pixel(ctx: BatchContext) -> dict:
  """Latent elements per image value: prod(latent shape) / (H * W * C)."""
  pixels = math.prod(ctx.x.shape[1:])
  return {'latent_per_pixel': _per_example(ctx, latent_elements(ctx) / pixels)}


def code_bits(ctx: BatchContext) -> dict:
  """A quantised code's bits: log2 K per position (`bits_per_code`) and positions * log2 K
  per pixel location (`bits_per_pixel`, H * W: the channels share a pixel's bits)."""
  k = ctx.det.aux['counts'].shape[-1]
  positions = math.prod(ctx.det.aux['indices'].shape[1:])
  bits = math.log2(k)
  return {'bits_per_code': _per_example(ctx, bits),
          'bits_per_pixel': _per_example(ctx, positions * bits / math.prod(ctx.x.shape[1:3]))}


def log_px_given_z(kind: str, recon_or_logits, x, sigma: float = 0.1):
  """log p(x|z) in nats per image, summed over pixels, constants included, for the
  likelihood a reconstruction loss implies (a continuous density on [0, 1]^P):
  mse -> N(x; recon, 1/2) (sum (x - recon)^2 = -log N(x; recon, 1/2) - P/2 log pi),
  l1 -> Laplace(x; recon, 1), gaussian_nll -> N(x; recon, sigma^2), bce -> Bernoulli(logits),
  log_mse -> N(x; recon, MSE) with each image's own best variance (a profile likelihood:
  -P/2 (ln(2 pi MSE) + 1)).
  """
  p = math.prod(x.shape[1:])
  flat = lambda v: v.reshape(v.shape[0], -1).sum(-1)
  if kind == 'mse':
    return -flat(jnp.square(x - recon_or_logits)) - 0.5 * p * math.log(math.pi)
  if kind == 'l1':
    return -flat(jnp.abs(x - recon_or_logits)) - p * math.log(2.0)
  if kind == 'gaussian_nll':
    return -flat(0.5 * jnp.square((x - recon_or_logits) / sigma)) - 0.5 * p * math.log(
        2 * math.pi * sigma**2)
  if kind == 'bce':
    return -flat(optax.sigmoid_binary_cross_entropy(recon_or_logits, x))
  if kind == 'log_mse':
    mse = flat(jnp.square(x - recon_or_logits)) / p
    return -0.5 * p * (jnp.log(2 * math.pi * (mse + losses.LOG_MSE_FLOOR)) + 1.0)
  raise ValueError(f'unknown reconstruction loss {kind!r}')


def neg_elbo_terms(out, x, loss) -> Any:
  """-log p(x|z) + KL per image in nats, with the decoder likelihood the loss implies."""
  logp = log_px_given_z(loss.reconstruction,
                        out.logits if loss.reconstruction == 'bce' else out.recon,
                        x, loss.nll_sigma)
  kl = 0.0 if out.logvar is None else losses.kl_divergence(out.mean, out.logvar)
  return -logp + kl


def neg_elbo(ctx: BatchContext) -> dict:
  v = neg_elbo_terms(ctx.sampled, ctx.x, ctx.loss)
  return {'neg_elbo': v, 'bits_per_dim': v}


def bits_per_dim(sums: dict, n, image_shape) -> Any:
  return sums['bits_per_dim'] / n / (math.prod(image_shape) * math.log(2.0))


def _clipped(ctx):
  return jnp.clip(ctx.det.recon, 0.0, 1.0)


def psnr(ctx: BatchContext) -> dict:
  return {'psnr': pix.psnr(_clipped(ctx), ctx.x)}


def ssim(ctx: BatchContext) -> dict:
  return {'ssim': pix.ssim(_clipped(ctx), ctx.x, max_val=1.0,
                           filter_size=ssim_filter_size(ctx.x.shape[1:3]))}


def mean_stats(ctx: BatchContext) -> dict:
  m = ctx.det.mean.reshape(ctx.det.mean.shape[0], -1)  # [B, units]
  return {'mean_sum': m, 'mean_sq': jnp.square(m)}


def active_units(sums: dict, n, image_shape) -> Any:
  # Active units (Burda et al.): latent units whose posterior mean varies across the
  # data, Var_x[E_q(z|x) z] > 0.01. Masked units have mean 0 and never count.
  var = sums['mean_sq'] / n - jnp.square(sums['mean_sum'] / n)
  return jnp.sum(var > 0.01).astype(jnp.float32)


def kl_per_dim(ctx: BatchContext) -> dict:
  out = ctx.sampled
  per = 0.5 * (jnp.exp(out.logvar) + jnp.square(out.mean) - 1.0 - out.logvar)
  return {'kl_per_dim': per.reshape(per.shape[0], -1)}  # [B, units]


def vector_mean(sums: dict, n, image_shape, name: str = 'kl_per_dim') -> Any:
  return sums[name] / n
