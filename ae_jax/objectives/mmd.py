"""WAE-MMD's penalty (Tolstikhin et al. 2018): the maximum mean discrepancy between the
codes of a batch and as many draws from the prior.

  MMD^2(Q, P) = E k(z, z') + E k(y, y') - 2 E k(z, y),   z, z' ~ Q (codes), y, y' ~ P,

estimated without bias (U-statistics: the diagonal pairs k(z_i, z_i) are left out of the
first two sums):

  MMD^2_u = 1/(n(n-1)) sum_{i!=j} k(z_i, z_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
            - 2/n^2 sum_{i,j} k(z_i, y_j).

Its expectation is MMD^2 itself, so it is 0 on average when the codes follow the prior
and may come out slightly negative on a batch. The kernel is the inverse multiquadric,
summed over scales,

  k(x, y) = sum_s C_s / (C_s + ||x - y||^2),   C_s = s * 2 L sigma^2,
  s in (0.1, 0.2, 0.5, 1, 2, 5, 10),

with L the number of latent units and sigma^2 the prior's variance (1 for N(0, I)):
2 L sigma^2 is E||y - y'||^2 for two prior draws, and the seven scales from a tenth to ten
times it are those of the authors' code (tolstikhin/wae `mmd_penalty`, also pythae's
WAE_MMD). The IMQ's heavy tails keep a gradient for codes far from the prior, where a
Gaussian kernel's vanishes. Tolstikhin et al. weight the penalty by lambda = 10 (MNIST,
L = 8) and 100 (CelebA, L = 64) against a squared-error reconstruction cost.

The estimate is a batch statistic; `mmd2_per_example` splits it into per-example terms
[B] whose mean is exactly MMD^2_u, so it fits the per-example convention (the caller
reduces with a mean; a sum would scale the penalty with B).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ae_jax import losses

SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _sq_dists(a, b):
  """||a_i - b_j||^2 [n, m], from the differences (exact 0 on the diagonal of a vs a)."""
  return jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), -1)


def imq_kernel(a, b, prior_var=1.0, scales=SCALES, num_units=None):
  """sum_s C_s / (C_s + ||a_i - b_j||^2) [n, m], C_s = s * 2 L prior_var; L is a's last
  axis unless num_units is given (a traced count for masked latent_dim members)."""
  num_units = a.shape[-1] if num_units is None else num_units
  base = 2.0 * num_units * prior_var
  d2 = _sq_dists(a, b)
  return sum(s * base / (s * base + d2) for s in scales)


def mmd2_per_example(codes, prior_samples, prior_var=1.0, scales=SCALES, latent_mask=None):
  """Per-example parts [B] of the unbiased MMD^2 between codes [B, L] and as many prior
  samples [B, L]; their mean is the estimate. Row i holds
  1/(B-1) sum_{j!=i} [k(z_i, z_j) + k(y_i, y_j)] - 2/B sum_j k(z_i, y_j).

  latent_mask [L] of 0/1 (optional): the switched-off units are zeroed in both codes and
  prior samples and L counts only the units kept, so a member of a latent_dim sweep gets
  the penalty of a model of its own size. prior_var and the mask may be traced."""
  b = codes.shape[0]
  if prior_samples.shape != codes.shape:
    raise ValueError(f'codes {codes.shape} and prior samples {prior_samples.shape} must '
                     'have one shape')
  num_units = None
  if latent_mask is not None:
    codes, prior_samples = codes * latent_mask, prior_samples * latent_mask
    num_units = jnp.sum(latent_mask)
  kzz = imq_kernel(codes, codes, prior_var, scales, num_units)
  kyy = imq_kernel(prior_samples, prior_samples, prior_var, scales, num_units)
  kzy = imq_kernel(codes, prior_samples, prior_var, scales, num_units)
  off = 1.0 - jnp.eye(b, dtype=kzz.dtype)  # the U-statistic leaves out i == j
  within = ((kzz + kyy) * off).sum(1) / (b - 1)
  return within - 2.0 * kzy.sum(1) / b


def mmd2(codes, prior_samples, prior_var=1.0, scales=SCALES, latent_mask=None):
  """The unbiased MMD^2 estimate (a scalar), the mean of `mmd2_per_example`."""
  return mmd2_per_example(codes, prior_samples, prior_var, scales, latent_mask).mean()


def terms(inp) -> dict:
  """The WAE-MMD objective's terms [B]: reconstruction + beta * MMD^2 between the codes
  and as many N(0, I) draws (beta is the paper's lambda)."""
  z = inp.out.z.reshape(inp.out.z.shape[0], -1)  # [B, L]
  prior = jax.random.normal(inp.key, z.shape, z.dtype)
  mask = None if inp.latent_mask is None else inp.latent_mask.reshape(-1)
  mmd = mmd2_per_example(z, prior, latent_mask=mask)
  rec, total = losses.reconstruction_terms(inp.out, inp.x, inp.loss, inp.networks)
  return {'loss': total + inp.beta * mmd, 'recon': rec, 'kl': jnp.zeros_like(rec), 'mmd': mmd}
