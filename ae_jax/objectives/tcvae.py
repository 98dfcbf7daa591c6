"""beta-TCVAE (Chen et al. 2018): the ELBO's KL term split in three, estimated on a batch.

Averaged over the data, KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || prod_l q(z_l))
+ sum_l KL(q(z_l) || p(z_l)), where q(z) = (1/N) sum_n q(z|x_n) is the aggregate posterior
over the N training examples. Per example, at its sample z ~ q(z|x):

  MI   = log q(z|x)        - log q(z)              index-code mutual information
  TC   = log q(z)          - log prod_l q(z_l)     total correlation
  dwKL = log prod_l q(z_l) - log p(z)              dimension-wise KL

They sum to log q(z|x) - log p(z), the one-sample estimate of KL(q(z|x) || p(z)), for any
estimate of q(z) and q(z_l), so alpha = beta = gamma = 1 is the plain ELBO. beta-TCVAE
trains with alpha * MI + beta * TC + gamma * dwKL in place of the KL (Chen et al.: alpha =
gamma = 1 and beta > 1 penalises TC alone; the defaults here are all 1). Nats, per example;
the caller reduces. q(z|x) = N(mean, diag(exp(logvar))) and p(z) = N(0, I).

q(z_i) and q(z_il) are estimated from the batch's posteriors,

  log q(z_i)    ~ logsumexp_j [log w_ij + sum_l log q(z_il | x_j)]
  log q(z_il)   ~ logsumexp_j [log w_ij + log q(z_il | x_j)],

a [B, B, L] array of per-unit log-densities, with weights w_ij by `estimator`:

- 'mss' (default), stratified: w_ii = 1/N for the example's own posterior and
  w_ij = (N - 1) / (N (B - 1)) for each of the other B - 1. The others are a uniform draw
  from the other N - 1 examples, so sum_j w_ij q(z_i|x_j) is an unbiased estimate of
  q(z_i) (the log of it biases low, less as B grows) and TC tends to the true total
  correlation as B grows (tested). Chen et al.'s MSS puts (N - B + 1) / (N (B - 1)) on one
  designated other member and 1 / (B - 1) on the rest: the same total, also unbiased;
  equal weights have the smaller variance and no index pattern to get wrong (the one in
  rtqichen/beta-tcvae gives one row two stratum weights and another none; its PR #1).
- 'mws', minibatch weighted sampling: w_ij = 1 / (N B) for all j, Chen et al.'s eq. and
  the default of their code (rtqichen/beta-tcvae `vae_quant.py`). Its weights sum to 1/N,
  not 1: where the batch resolves q(z) (sum_j q(z_i|x_j) ~ B q(z_i)) it gives
  log q(z) - log N, so TC carries + (L - 1) log N, MI + log N and dwKL - L log N. The
  offsets have no gradient, but the
  example's own term is weighted as much as any other member's (N/B times too much
  against them), which does change the gradient. With N = B it is 'mss' - log B exactly.

Hence 'mss' is the default: its numbers are the quantities they are named after. A unit
with mean 0 and logvar 0 in every posterior (a latent_dim sweep member's switched-off
unit) adds 0 to each 'mss' term, since the weights of a row sum to 1, but + log N to TC
and - log N to dwKL under 'mws'; `latent_mask` drops such units from every density, so
they add exactly 0 under either. The estimates need B >= 2 and N >= B.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
from jax.scipy.special import logsumexp

from ae_jax import losses

ESTIMATORS = ('mss', 'mws')


class LogDensities(NamedTuple):
  log_qz_x: jnp.ndarray     # [B] log q(z|x) at the example's own sample
  log_qz: jnp.ndarray       # [B] log q(z), the aggregate posterior (estimated)
  log_qz_prod: jnp.ndarray  # [B] log prod_l q(z_l) (estimated)
  log_pz: jnp.ndarray       # [B] log p(z), N(0, I)


def log_normal_units(z, mean, logvar):
  """log N(z; mean, exp(logvar)) per unit, broadcasting, nothing summed."""
  return -0.5 * (math.log(2 * math.pi) + logvar + jnp.square(z - mean) * jnp.exp(-logvar))


def log_weights(batch_size: int, dataset_size, estimator: str = 'mss'):
  """log w [B, B] of the module docstring; row i is the estimate for example i's sample.
  dataset_size may be a traced scalar (one per vmapped sweep member)."""
  n = jnp.asarray(dataset_size, jnp.float32)
  b = batch_size
  if estimator == 'mws':
    return jnp.full((b, b), -jnp.log(n * b))
  if estimator == 'mss':
    # log((N - 1) / (N (B - 1))); -inf for N = 1, when there are no others anyway
    other = jnp.log(n - 1.0) - jnp.log(n) - math.log(max(b - 1, 1))
    return jnp.where(jnp.eye(b, dtype=bool), -jnp.log(n), other)
  raise ValueError(f'TC estimator {estimator!r}: expected one of {ESTIMATORS}')


def log_densities(z, mean, logvar, dataset_size, estimator: str = 'mss',
                  latent_mask=None) -> LogDensities:
  """The four log-densities per example from z, mean, logvar [B, L] (z ~ q(z|x)).

  latent_mask [L] of 0/1 (optional): units with 0 are left out of every density, so they
  add exactly 0 to MI, TC and dwKL (a latent_dim sweep member's switched-off units)."""
  b = z.shape[0]
  mask = jnp.ones(z.shape[-1], z.dtype) if latent_mask is None else latent_mask
  # [B (sample i), B (posterior j), L]: every sample under every example's posterior
  pairs = log_normal_units(z[:, None, :], mean[None, :, :], logvar[None, :, :]) * mask
  logw = log_weights(b, dataset_size, estimator)  # [B, B]
  log_qz = logsumexp(logw + pairs.sum(-1), axis=1)  # [B]
  log_qz_prod = (logsumexp(logw[:, :, None] + pairs, axis=1) * mask).sum(-1)  # [B]
  log_qz_x = (log_normal_units(z, mean, logvar) * mask).sum(-1)
  log_pz = (log_normal_units(z, 0.0, 0.0) * mask).sum(-1)
  return LogDensities(log_qz_x, log_qz, log_qz_prod, log_pz)


def decomposition(z, mean, logvar, dataset_size, estimator: str = 'mss',
                  latent_mask=None) -> dict:
  """Per-example mi, tc, dwkl [B] (nats); mi + tc + dwkl = log q(z|x) - log p(z)."""
  d = log_densities(z, mean, logvar, dataset_size, estimator, latent_mask)
  return {'mi': d.log_qz_x - d.log_qz, 'tc': d.log_qz - d.log_qz_prod,
          'dwkl': d.log_qz_prod - d.log_pz}


def loss_terms(z, mean, logvar, dataset_size, alpha=1.0, beta=1.0, gamma=1.0,
               estimator: str = 'mss', latent_mask=None) -> dict:
  """beta-TCVAE's replacement for the KL term, per example [B]:
  weighted_kl = alpha * mi + beta * tc + gamma * dwkl, with the three terms. The weights
  and dataset_size may be traced scalars (per sweep member); estimator is static."""
  t = decomposition(z, mean, logvar, dataset_size, estimator, latent_mask)
  t['weighted_kl'] = alpha * t['mi'] + beta * t['tc'] + gamma * t['dwkl']
  return t


def terms(inp) -> dict:
  """The beta-TCVAE objective's terms [B]: reconstruction + alpha * MI + beta * TC +
  gamma * dwKL (loss.tc_alpha, loss.beta, loss.tc_gamma); the analytic KL is logged beside
  the three estimates."""
  out = inp.out
  t = losses.terms(out, inp.x, inp.loss, 0.0, inp.networks)  # recon, kl; loss = recon+extra
  mask = None if inp.latent_mask is None else inp.latent_mask.reshape(-1)
  flat = lambda v: v.reshape(v.shape[0], -1)
  split = loss_terms(flat(out.z), flat(out.mean), flat(out.logvar), inp.num_train,
                     inp.hp['tc_alpha'], inp.beta, inp.hp['tc_gamma'],
                     inp.settings['tc_estimator'], mask)
  t['loss'] = t['loss'] + split.pop('weighted_kl')
  t.update(split)
  return t
