"""The model kinds (`model.kind`), each declared once: what its code is.

Everything that depends on the kind asks its declaration (`kinds.get(kind).quantized`)
rather than naming kinds, so a new quantiser is one entry in KINDS (and its layer):

- `posterior`: the encoder makes a mean and a log-variance (a VAE): the KL term, sampled
  codes in training, the ELBO metrics, N(0, I) as its prior.
- `quantized`: the decoder sees a quantised code (its encoder makes a plain code, which
  the latent tools edit; decoding quantises it): code indices, usage, perplexity, a
  per-position categorical density instead of a Gaussian one.
- `codebook`: '' (none), 'learned' (a VQ codebook: its EMA statistics or parameters, the
  commitment and codebook terms, dead-code restarts) or 'implicit' (FSQ: a product of
  fixed per-channel grids, no parameters and no terms).
- `quantizer(model_cfg)`: the quantiser module the model carries; `code_width(model_cfg)`:
  the latent size the kind fixes (FSQ quantises len(levels) channels), None where
  model.latent_dim decides.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from ae_jax.errors import ConfigError
from ae_jax.keys import Key
from ae_jax.models import fsq
from ae_jax.models.quantizer import VectorQuantizer


def fsq_levels(model_cfg) -> tuple[int, ...]:
  """model.fsq.levels, or the levels model.fsq.codebook names (a RECOMMENDED_LEVELS key)."""
  name = model_cfg.fsq.codebook
  try:
    return fsq.resolve_levels(name if name else tuple(model_cfg.fsq.levels))
  except ConfigError as e:
    key = 'model.fsq.codebook' if name else 'model.fsq.levels'
    raise ConfigError(f'config.{key}: {e}') from None


def _vq(model_cfg):
  vq = model_cfg.vq
  return VectorQuantizer(int(vq.codes), vq.learning, float(vq.decay),
                         dead_threshold=float(vq.restart_threshold))


def _fsq(model_cfg):
  return fsq.FiniteScalarQuantizer(fsq_levels(model_cfg))


@dataclasses.dataclass(frozen=True)
class ModelKind:
  name: str                  # model.kind
  label: str                 # how messages and figure titles name such a model
  posterior: bool = False    # mean and log-variance: KL, sampling, N(0, I) prior
  quantized: bool = False    # the decoder sees a quantised code
  codebook: str = ''         # '' | 'learned' | 'implicit'
  quantizer: Callable | None = None   # (model_cfg) -> the quantiser module
  code_width: Callable | None = None  # (model_cfg) -> the latent size it fixes

  @property
  def encoder(self) -> str:
    """What its encoder makes: 'vae' (mean and log-variance) or 'ae' (a plain code, which a
    quantised kind then quantises)."""
    return 'vae' if self.posterior else 'ae'

  @property
  def learned_codebook(self) -> bool:
    return self.codebook == 'learned'


KINDS: tuple[ModelKind, ...] = (
    ModelKind('ae', 'AE'),
    ModelKind('vae', 'VAE', posterior=True),
    ModelKind('vqvae', 'VQ-VAE', quantized=True, codebook='learned', quantizer=_vq),
    ModelKind('fsq', 'FSQ autoencoder', quantized=True, codebook='implicit', quantizer=_fsq,
              code_width=lambda cfg: len(fsq_levels(cfg))),
)
REGISTRY = {k.name: k for k in KINDS}
NAMES = tuple(REGISTRY)
QUANTIZED = tuple(k.name for k in KINDS if k.quantized)
LEARNED_CODEBOOK = tuple(k.name for k in KINDS if k.learned_codebook)


def get(name: str) -> ModelKind:
  if name not in REGISTRY:
    raise ConfigError(f'model.kind={name!r} is not a kind of model; expected one of '
                      f'{list(NAMES)}')
  return REGISTRY[name]


# The quantizers' settings, declared with the kinds that read them (schema.py collects them).
SETTINGS = (
    Key('model.vq.codes', 512, 'int', 'vqvae: codebook entries K (each model.latent_dim wide)',
        check='positive'),
    Key('model.vq.learning', 'ema', 'str', 'vqvae: the codebook learns by EMA (decay, Laplace '
        'smoothing) or by the codebook loss', choices=('ema', 'codebook_loss')),
    Key('model.vq.decay', 0.99, 'float', 'vqvae ema: decay of the codebook statistics',
        check='unit'),
    Key('model.vq.restart_threshold', 1.0, 'float', 'vqvae ema: a code used less than this '
        'often per step (EMA) restarts at an encoder output; 0 = never', check='non_negative'),
    Key('model.fsq.levels', (8, 5, 5, 5), 'ints', 'fsq: values per code channel (Mentzer et '
        'al. 2024); prod(levels) codes, len(levels) latent channels (model.latent_dim 0 or '
        'len(levels))', check='at_least_2', non_empty=True),
    Key('model.fsq.codebook', '', 'str', 'fsq: a codebook size by the paper\'s recommended '
        'levels (2^8 (8,6,5), 2^10 (8,5,5,5), 2^12 (7,5,5,5,5), 2^14 (8,8,8,6,5), 2^16 '
        '(8,8,8,5,5,5)), used instead of model.fsq.levels; \'\' = model.fsq.levels',
        choices=('',) + tuple(fsq.RECOMMENDED_LEVELS)),
)


def keys() -> tuple[Key, ...]:
  return SETTINGS
