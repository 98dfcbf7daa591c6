"""The IWAE training objective (Burda et al. 2016): the K-sample importance-weighted bound

  L_K(x) = log (1/K) sum_k w_k,   log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),

with z_1..z_K ~ q(z|x) drawn by reparameterisation, so L_K is differentiable in both the
encoder and the decoder. L_1 is the one-sample ELBO; E[L_K] rises with K towards
log p(x) (Burda et al., Theorem 1). Nats per example [B]; the training loss is -L_K
averaged over the batch by the caller. Its gradient is the plain reparameterised one,
whose signal-to-noise ratio for the encoder falls as K grows (Rainforth et al. 2018;
the doubly reparameterised estimator of Tucker et al. 2019 is not done here).

The caller draws the samples (`sample_posterior`: z [K, B, *latent] with log q(z|x) and
log p(z), p = N(0, I)), decodes each and forms log w [K, B] with its likelihood
log p(x|z) (`ae_jax.metrics.core.log_px_given_z`, whose constants the bound needs).
`bound` is the same log-mean-exp as the evaluation estimator
`ae_jax.metrics.likelihood.iwae`, in one piece rather than chunks (training holds all K
decodings for the gradient anyway).

A sweep over K vmaps members with different K by drawing K_max samples for all and
giving each member a 0/1 mask over them (`sample_mask`): masked samples get weight 0 and
the mean divides by the number kept, so a member's bound equals the unmasked bound with
K = sum(mask) (tested: exactly, for a mask that keeps the first K draws, because the
draws are the same ones). At least one sample must be kept.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ae_jax import losses


class PosteriorDraws(NamedTuple):
  z: jax.Array      # [K, B, *latent] reparameterised samples from q(z|x)
  log_q: jax.Array  # [K, B] log q(z_k|x), summed over latent units
  log_p: jax.Array  # [K, B] log N(z_k; 0, I)


def _log_normal(z, mean, logvar):
  """log N(z; mean, diag(exp(logvar))) summed over the latent axes (all but the first two:
  samples and batch) -> [K, B]."""
  per = -0.5 * (math.log(2 * math.pi) + logvar + jnp.square(z - mean) * jnp.exp(-logvar))
  return per.reshape(per.shape[:2] + (-1,)).sum(-1)


def sample_posterior(key, mean, logvar, num_samples: int) -> PosteriorDraws:
  """K reparameterised draws from q(z|x) = N(mean, diag(exp(logvar))), mean and logvar
  [B, *latent], with their Gaussian log-densities. Draw k uses fold_in(key, k), as the
  evaluation estimator does, so the first K of a K_max draw are the K draws."""
  def draw(k):
    return jax.random.normal(jax.random.fold_in(key, k), mean.shape, mean.dtype)

  eps = jax.vmap(draw)(jnp.arange(num_samples))  # [K, B, *latent]
  z = mean[None] + jnp.exp(0.5 * logvar)[None] * eps
  zeros = jnp.zeros_like(z)
  return PosteriorDraws(z=z, log_q=_log_normal(z, mean[None], logvar[None]),
                        log_p=_log_normal(z, zeros, zeros))


def sample_mask(num_samples, max_samples: int):
  """[K_max] of 0/1 keeping the first num_samples draws (num_samples may be traced)."""
  return (jnp.arange(max_samples) < num_samples).astype(jnp.float32)


def _sum_in_order(x):
  """x [K, B] summed over K one sample after another. A reduction's association order may
  depend on K, so sum(x[:K]) and sum of x with zeros past K can differ by an ulp; added in
  order, a masked sample's exact 0 leaves every partial sum unchanged."""
  return jax.lax.fori_loop(0, x.shape[0], lambda k, acc: acc + x[k],
                           jnp.zeros(x.shape[1:], x.dtype))


def bound(log_weights, mask=None):
  """L_K per example [B] from log_weights [K, B]; mask [K] of 0/1 keeps a subset of the
  K samples (the mean is over the kept ones), and the result then equals the unmasked
  bound of the kept samples bit for bit."""
  if mask is None:
    count = jnp.asarray(log_weights.shape[0], log_weights.dtype)
  else:
    # where, not log(mask) + w: a masked weight of -inf or nan then cannot leak a nan
    log_weights = jnp.where(mask[:, None] > 0, log_weights, -jnp.inf)
    count = jnp.sum(mask).astype(log_weights.dtype)
  # log-mean-exp around the largest weight; the shift has no gradient and needs none
  # (the value does not depend on it)
  top = jax.lax.stop_gradient(jnp.max(log_weights, axis=0))  # [B]
  total = _sum_in_order(jnp.exp(log_weights - top[None]))  # [B], >= 1
  # log(total / K), not log(total) - log(K): XLA folds a constant K's log on the host and
  # takes a masked count's at run time, an ulp apart; a division rounds the same either way
  return top + jnp.log(total / count)


def terms(inp) -> dict:
  """The IWAE objective's terms [B]: loss = -L_K with K = loss.iwae_samples (this member's;
  up to the program's largest, loss.iwae_max, by masking), the log-weights
  -recon(x, z_k) - beta (log q(z_k|x) - log p(z_k)) in the reconstruction term's units. The
  first draw is the forward pass's own z. With K = 1 the loss is the ELBO objective's,
  reconstruction + beta * the closed-form KL, bit for bit: the one-sample bound would be
  its noisier estimate (the same in expectation). Perceptual extra terms are added to
  either outside the bound. Logged: iwae_bound (L_K) and the ELBO objective's recon, kl."""
  out, x = inp.out, inp.x
  rec, total = losses.reconstruction_terms(out, x, inp.loss, inp.networks)
  kl = losses.kl_divergence(out.mean, out.logvar)
  elbo = total + inp.beta * kl
  k_max = inp.settings['iwae_max']
  if k_max == 1:
    return {'loss': elbo, 'recon': rec, 'kl': kl, 'iwae_bound': -elbo}
  draws = sample_posterior(inp.key, out.mean, out.logvar, k_max)  # z [K, B, *latent]
  z = draws.z.at[0].set(out.z)
  recon, logits = inp.decode(z.reshape((-1,) + z.shape[2:]))  # [K * B, H, W, C]
  tile = lambda v: jnp.broadcast_to(v[None], (k_max,) + v.shape).reshape((-1,) + v.shape[1:])
  rec_k = losses.reconstruction(inp.loss.reconstruction, out._replace(recon=recon, logits=logits),
                                tile(x), inp.loss.reduction, inp.loss.nll_sigma)
  zeros = jnp.zeros_like(z)
  log_w = (-rec_k.reshape(k_max, -1)
           - inp.beta * (_log_normal(z, out.mean[None], out.logvar[None])
                         - _log_normal(z, zeros, zeros)))  # [K, B]
  lk = bound(log_w, sample_mask(inp.hp['iwae_samples'], k_max))
  single = inp.hp['iwae_samples'] <= 1
  return {'loss': jnp.where(single, elbo, -lk + (total - rec)), 'recon': rec, 'kl': kl,
          'iwae_bound': jnp.where(single, -elbo, lk)}
