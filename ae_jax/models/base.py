"""The AE/VAE wrapper shared by every architecture, and its named output."""
from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from ae_jax.models import kinds


class ModelOutput(NamedTuple):
  recon: jax.Array   # [B, H, W, C] in [0, 1] (or unbounded for output_activation='none')
  logits: jax.Array  # [B, H, W, C] decoder output before the output activation
  mean: jax.Array    # [B, *latent]; for an AE, the code itself; for a VQ-VAE, the encoder's
                     # output before quantisation
  logvar: jax.Array | None  # [B, *latent]; None for an AE
  z: jax.Array       # [B, *latent] the code fed to the decoder (a VQ-VAE: quantised)
  # a quantised code's 'counts' [K] and 'indices' [B, ...] (and a learned codebook's
  # per-example 'commitment' and 'codebook' terms [B]);
  # a model with a learned output log-variance: 'output_logvar' []; else None
  aux: dict | None = None


class AutoEncoder(nn.Module):
  """AE or VAE around an encoder and decoder.

  The encoder returns features of shape [B, *latent] (AE) or [B, *latent, 2] split into
  mean and log-variance (VAE). Images enter in [0, 1]; models whose output activation
  is tanh see them mapped to [-1, 1] and map their output back, so callers, losses and
  metrics only ever deal with [0, 1].

  `latent_mask` ([*latent] of 0/1, optional) switches latent units off: their mean and
  log-variance are forced to 0 (zero KL) and the decoder sees 0 there, so the unit's
  weights receive no gradient. Sweeps use it to train several latent sizes at once.
  """
  encoder: nn.Module
  decoder: nn.Module
  kind: str = 'vae'                 # a kinds.KINDS name: 'ae' | 'vae' | 'vqvae' | 'fsq'
  output_activation: str = 'sigmoid'
  # 'pm1': the networks see and make images in [-1, 1] with no output squashing (the
  # latent-diffusion autoencoder); recon = (logits + 1) / 2. '01': by output_activation.
  model_range: str = '01'
  # a quantised kind's quantizer.VectorQuantizer or fsq.FiniteScalarQuantizer
  quantizer: nn.Module | None = None
  learned_logvar: bool = False      # a learned scalar output log-variance (loss.learned_logvar)

  def setup(self):
    if self.learned_logvar:  # latent diffusion's nll: rec / exp(s) + s per value, s learned
      self.output_logvar = self.param('output_logvar', nn.initializers.zeros, ())

  def _to_model_range(self, x):
    pm1 = self.output_activation == 'tanh' or self.model_range == 'pm1'
    return 2.0 * x - 1.0 if pm1 else x

  def _from_logits(self, logits):
    if self.model_range == 'pm1':
      return (logits + 1.0) / 2.0
    if self.output_activation == 'sigmoid':
      return jax.nn.sigmoid(logits)
    if self.output_activation == 'tanh':
      return (jnp.tanh(logits) + 1.0) / 2.0
    return logits

  def encode(self, x, train: bool = False, latent_mask: Any = None):
    """x [B,H,W,C] in [0,1] -> (mean, logvar); logvar is None without a posterior (an AE, or
    a quantised kind, whose mean is the encoder's output before quantisation)."""
    h = self.encoder(self._to_model_range(x), train=train)
    if kinds.get(self.kind).posterior:
      mean, logvar = h[..., 0], h[..., 1]
    else:
      mean, logvar = h, None
    if latent_mask is not None:
      mean = mean * latent_mask
      logvar = None if logvar is None else logvar * latent_mask
    return mean, logvar

  def quantize(self, z, train: bool = False):
    """A quantised kind's codes z [B, *latent] -> quantizer.VQOutput (or fsq.FSQOutput, the
    same fields): the quantised codes, straight through, with their indices and terms."""
    return self.quantizer(z, train=train)

  def decode(self, z, train: bool = False, latent_mask: Any = None, quantize: bool = True):
    """z [B, *latent] -> (recon in [0,1], logits). A quantised kind quantises z first (codes
    from the latent tools: interpolations, edits, noise), unless `quantize` is False."""
    if latent_mask is not None:
      z = z * latent_mask
    if self.quantizer is not None and quantize:
      z = self.quantize(z).quantized
    logits = self.decoder(z, train=train)
    return self._from_logits(logits), logits

  def __call__(self, x, train: bool = False, sample: bool = True,
               latent_mask: Any = None) -> ModelOutput:
    mean, logvar = self.encode(x, train=train, latent_mask=latent_mask)
    aux = {}
    kind = kinds.get(self.kind)
    if kind.posterior and sample:
      eps = jax.random.normal(self.make_rng('reparam'), mean.shape, mean.dtype)
      z = mean + jnp.exp(0.5 * logvar) * eps
    elif kind.quantized:
      q = self.quantize(mean, train=train)
      z = q.quantized
      aux.update(counts=q.counts, indices=q.indices)
      if kind.learned_codebook:  # FSQ has no such terms: the objective adds none
        aux.update(commitment=q.commitment, codebook=q.codebook)
    else:
      z = mean
    recon, logits = self.decode(z, train=train, latent_mask=latent_mask, quantize=False)
    if self.learned_logvar:
      aux['output_logvar'] = self.output_logvar
    return ModelOutput(recon=recon, logits=logits, mean=mean, logvar=logvar, z=z,
                       aux=aux or None)
