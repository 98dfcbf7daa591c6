"""The default objective: reconstruction + beta * KL(q(z|x) || N(0, I)) (a VAE), the
reconstruction alone (an AE, an FSQ autoencoder), or the reconstruction and the codebook
terms (a VQ-VAE)."""
from __future__ import annotations

from ae_jax import losses


def vq_terms(inp) -> dict:
  """A learned codebook's terms [B]: commitment (weighted loss.commitment, gradient to the
  encoder) and, when the codebook learns by its loss, the codebook term; {} for models
  without them (FSQ's implicit codebook has neither)."""
  aux = inp.out.aux or {}
  if 'commitment' not in aux:
    return {}
  extra = inp.hp['commitment'] * aux['commitment']
  if inp.settings['vq_learning'] == 'codebook_loss':
    extra = extra + aux['codebook']
  return {'commitment': aux['commitment'], 'codebook': aux['codebook'], 'vq_loss': extra}


def terms(inp) -> dict:
  t = losses.terms(inp.out, inp.x, inp.loss, inp.beta, inp.networks)
  vq = vq_terms(inp)
  if vq:
    t['loss'] = t['loss'] + vq.pop('vq_loss')
    t.update(vq)
  return t
