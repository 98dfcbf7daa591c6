"""The two-stage VAE prior (Dai & Wipf, "Diagnosing and Enhancing VAE Models", ICLR 2019):
a second, small MLP VAE trained on a first model's codes u, whose aggregate posterior need
not be N(0, I); new codes are drawn by sampling the second VAE and then decoded by the
first model's decoder (the caller's step).

The second VAE encodes u to q(z | u) = N(mean, diag(exp(logvar))) and decodes z to the mean
of p(u | z) = N(mu(z), gamma I) with one learned scalar log gamma (gamma a variance, as in
the paper; the authors' code learns log sqrt(gamma), `loggamma_z`, the same model). The
loss per example is the negative ELBO in nats,

  recon = 0.5 * (||u - mu(z)||^2 / gamma + D (log gamma + log 2 pi)),   z ~ q(z | u),
  kl    = 0.5 * sum(mean^2 + exp(logvar) - logvar - 1),

with D the code's size; a learned gamma lets the second stage tighten its fit as it trains,
which is the paper's point (gamma -> 0 where the codes lie on a manifold). Its held-out
number is this negative ELBO (one draw of z per code).

The networks follow the authors' code at a smaller size: `depth` ReLU layers of `hidden`
units, the input concatenated to the last hidden layer (`skip`), then linear heads; the
latent size defaults to the code's (theirs: 3 layers of 1024, latent as the first stage's).
Sampling decodes z ~ N(0, I) to mu(z) and adds N(0, gamma I) (`decoder_noise`, on by
default), as the authors' `generate` does: that draws from the density the loss fitted.
The mean mu(z) alone misses gamma I of the covariance; it matters where the codes fill
all their dimensions: on a 4-D Gaussian whose covariance's smallest eigenvalue is 0.099,
gamma settled at 0.10-0.13 (as probabilistic PCA with one component fewer, whose noise
variance is that eigenvalue, fits the same density), and mu(z) samples lacked that
variance (largest covariance error 0.13, against 0.02-0.04 with the noise).

Codes are normalized (stats.py) by the caller; any code shape is flattened by the encoder
and restored by the decoder.
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ae_jax.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class TwoStageSettings:
  hidden: int = 256            # hidden width of the encoder and decoder
  depth: int = 2               # hidden layers of each
  latent_dim: int = 0          # 0: the code's size (Dai & Wipf)
  skip: bool = True            # the input concatenated to the last hidden layer
  decoder_noise: bool = True   # sampling: mu(z) + N(0, gamma I); False: mu(z) alone

  def __post_init__(self):
    for name in ('hidden', 'depth'):
      if getattr(self, name) < 1:
        raise ConfigError(f'two_stage prior: {name}={getattr(self, name)}: must be >= 1')
    if self.latent_dim < 0:
      raise ConfigError(f'two_stage prior: latent_dim={self.latent_dim}: must be >= 0 '
                        '(0: the code\'s size)')


class _Trunk(nn.Module):
  hidden: int
  depth: int
  skip: bool

  @nn.compact
  def __call__(self, x):
    h = x
    for i in range(self.depth):
      h = jax.nn.relu(nn.Dense(self.hidden, name=f'dense_{i}')(h))
    return jnp.concatenate([x, h], axis=-1) if self.skip else h


class SecondStageVAE(nn.Module):
  code_shape: tuple[int, ...]
  latent_dim: int
  hidden: int = 256
  depth: int = 2
  skip: bool = True

  def setup(self):
    self.encoder = _Trunk(self.hidden, self.depth, self.skip)
    self.enc_mean = nn.Dense(self.latent_dim)
    self.enc_logvar = nn.Dense(self.latent_dim)
    self.decoder = _Trunk(self.hidden, self.depth, self.skip)
    # features=code_shape: the kernel [*, *code_shape] keeps the code's shape
    self.dec_mean = nn.DenseGeneral(self.code_shape)
    self.log_gamma = self.param('log_gamma', nn.initializers.zeros, ())  # gamma = 1 at first

  def encode(self, u):
    h = self.encoder(u.reshape(u.shape[0], -1))  # [B, D] -> [B, D + hidden]
    return self.enc_mean(h), self.enc_logvar(h)  # [B, Z] each

  def decode(self, z):
    return self.dec_mean(self.decoder(z)), self.log_gamma  # [B, *code_shape], []

  def __call__(self, u, eps):
    mean, logvar = self.encode(u)
    recon, log_gamma = self.decode(mean + jnp.exp(0.5 * logvar) * eps)
    return mean, logvar, recon, log_gamma


def _module(settings: TwoStageSettings, code_shape, latent_dim) -> SecondStageVAE:
  return SecondStageVAE(tuple(code_shape), latent_dim, hidden=settings.hidden,
                        depth=settings.depth, skip=settings.skip)


def shapes(params) -> tuple[tuple[int, ...], int]:
  """(one code's shape, the latent size), read from the parameters (static under jit)."""
  enc = params['enc_mean']['kernel']  # [in, Z] (a leading member axis, if any, first)
  code_shape = tuple(params['dec_mean']['kernel'].shape[enc.ndim - 1:])
  return code_shape, enc.shape[-1]


def init(key, codes_shape, settings: TwoStageSettings):
  """Parameters for codes of shape `codes_shape` [N, ...] (N is ignored)."""
  code_shape = tuple(codes_shape[1:])
  latent = settings.latent_dim or math.prod(code_shape)
  u = jnp.zeros((1, *code_shape), jnp.float32)
  eps = jnp.zeros((1, latent), jnp.float32)
  return _module(settings, code_shape, latent).init(key, u, eps)['params']


def terms(params, codes, key, settings: TwoStageSettings) -> dict:
  """The negative ELBO and its parts, each [B], for codes [B, ...] and one z per code."""
  code_shape, latent = shapes(params)
  if tuple(codes.shape[1:]) != code_shape:
    raise DataError(f'two_stage prior: codes of shape {tuple(codes.shape)}; this prior '
                      f'was built for [N, {", ".join(map(str, code_shape))}]')
  eps = jax.random.normal(key, (codes.shape[0], latent), codes.dtype)
  mean, logvar, recon, log_gamma = _module(settings, code_shape, latent).apply(
      {'params': params}, codes, eps)
  size = math.prod(code_shape)
  sq = jnp.square(codes - recon).reshape(codes.shape[0], -1).sum(axis=-1)
  nll = 0.5 * (sq * jnp.exp(-log_gamma) + size * (log_gamma + math.log(2 * math.pi)))
  kl = 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(logvar) - logvar - 1, axis=-1)
  return {'recon': nll, 'kl': kl, 'neg_elbo': nll + kl,
          'gamma': jnp.broadcast_to(jnp.exp(log_gamma), nll.shape)}


def loss(params, batch, key, settings: TwoStageSettings):
  """batch: normalized codes [B, ...] -> (negative ELBO [B], logged terms [B] each)."""
  out = terms(params, batch, key, settings)
  return out['neg_elbo'], out


def held_out(params, codes, key, settings: TwoStageSettings):
  """The negative ELBO [B] of held-out codes (nats, one z per code)."""
  return terms(params, codes, key, settings)['neg_elbo']


def sample(params, key, num: int, settings: TwoStageSettings):
  """`num` normalized codes [num, *code_shape]: z ~ N(0, I), mu(z) (+ N(0, gamma I))."""
  code_shape, latent = shapes(params)
  key_z, key_noise = jax.random.split(key)
  z = jax.random.normal(key_z, (num, latent), jnp.float32)
  module = _module(settings, code_shape, latent)
  mu, log_gamma = module.apply({'params': params}, z, method=module.decode)
  if settings.decoder_noise:
    mu = mu + jnp.exp(0.5 * log_gamma) * jax.random.normal(key_noise, mu.shape, mu.dtype)
  return mu
