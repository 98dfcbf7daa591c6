"""RAE (Ghosh et al. 2020): a deterministic autoencoder regularised instead of made
stochastic: reconstruction + beta * ||z||^2 / 2 + the decoder's regulariser, weighted
loss.rae_decoder_weight:

- 'l2' (RAE-L2): the decoder's weights' squared norm (the same constant for every example
  of the batch, added to each so the batch mean carries it once);
- 'gp' (RAE-GP): ||grad_z sum(decoder(z))||^2 per example, the gradient penalty as pythae
  computes it (the gradient of the output's sum, one backward pass; the full Jacobian's
  Frobenius norm would take one pass per latent unit);
- 'none'.

Samples need a density over the codes fitted after training: `python -m ae_jax.latent fit
--density gmm` (Ghosh et al.'s ex-post density estimation), then `sample`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ae_jax import losses


def _decoder_l2(params) -> jax.Array:
  return sum(jnp.sum(jnp.square(w)) for w in jax.tree_util.tree_leaves(params['decoder']))


def terms(inp) -> dict:
  rec, total = losses.reconstruction_terms(inp.out, inp.x, inp.loss, inp.networks)
  z = inp.out.z
  code = 0.5 * jnp.sum(jnp.square(z.reshape(z.shape[0], -1)), -1)  # [B]
  if inp.settings['rae_decoder'] == 'gp':
    grad = jax.grad(lambda zz: jnp.sum(inp.decode(zz)[0]))(z)  # d sum(D(z)) / dz
    reg = jnp.sum(jnp.square(grad.reshape(grad.shape[0], -1)), -1)
  elif inp.settings['rae_decoder'] == 'l2':
    reg = jnp.full_like(rec, _decoder_l2(inp.params))
  else:
    reg = jnp.zeros_like(rec)
  loss = total + inp.beta * code + inp.hp['rae_decoder_weight'] * reg
  return {'loss': loss, 'recon': rec, 'kl': jnp.zeros_like(rec), 'code_l2': code,
          'decoder_reg': reg}
