"""FactorVAE (Kim & Mnih 2018): the ELBO plus gamma times the total correlation of the
codes, TC(z) = KL(q(z) || prod_j q(z_j)), estimated by a discriminator D as
E_q[log D(z)_0 - log D(z)_1] (the density-ratio trick; adversarial.tc_per_example).

D (models/discriminators.py TCDiscriminator) trains beside the model, in the same step,
on the batch's codes (label 0) and the same codes with each dimension permuted across the
batch (label 1; adversarial.permute_dims): the step's critic update (steps.py). Here it is
a fixed function of the codes (`inp.critic`): the TC term's gradient reaches the encoder,
never D. Kim & Mnih permute a second batch's codes; permuting the same batch's (as pythae
and others do) keeps one batch per step, and a permutation of B codes is already a sample
of prod_j q(z_j) once B is large.
"""
from __future__ import annotations

from ae_jax import adversarial, losses


def terms(inp) -> dict:
  t = losses.terms(inp.out, inp.x, inp.loss, inp.beta, inp.networks)
  z = inp.out.z if inp.latent_mask is None else inp.out.z * inp.latent_mask
  tc = adversarial.tc_per_example(inp.critic(z))  # [B]
  t['tc'] = tc
  t['loss'] = t['loss'] + inp.hp['factor_gamma'] * tc
  return t
