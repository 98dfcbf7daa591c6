"""An autoregressive prior over discrete codes: a small causal transformer over a VQ-VAE's
code indices in raster order (the prior of VQ-GAN, Esser et al. 2021; a transformer in
place of VQ-VAE's PixelCNN, van den Oord et al. 2017; GPT-2's pre-LN blocks, Radford et
al. 2019).

Codes are indices in [0, K) of shape [N, *index_shape] ([N, positions], or a spatial
[N, h, w]), read in row-major (raster) order as a sequence of P = prod(index_shape)
positions. The input at position i is the code at i - 1 (a learned start token, index K,
at position 0) plus a learned position embedding; causal self-attention lets the output
at i see inputs 0..i only, so its logits are p(x_i | x_<i). The model is the exact
factorisation p(x) = prod_i p(x_i | x_<i):

- `log_likelihood`: sum_i log p(x_i | x_<i) [N] in nats, exactly;
- `loss`: the NLL per example in nats per code (mean over positions), logged also in
  bits per code (nats / ln 2), the held-out number; log2(K) bits is a uniform model's;
- `sample`: position by position, logits / temperature, restricted to the `top_k` most
  likely codes when top_k > 0; temperature 0 takes the argmax at each position (the
  greedy sequence, which a vanishing temperature approaches).

Indices are not range-checked (a traced array cannot raise): the caller passes its
model's own code indices.
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ae_jax.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class AutoregressiveSettings:
  num_codes: int            # K, the codebook's size (the autoencoder's): required, >= 2
  width: int = 128          # token width
  depth: int = 2            # transformer blocks
  heads: int = 4            # attention heads (must divide width)
  mlp_ratio: int = 4        # the blocks' MLP width over width
  temperature: float = 1.0  # sampling: logits / temperature; 0: argmax at each position
  top_k: int = 0            # sampling: only the k most likely codes; 0: all

  def __post_init__(self):
    if self.num_codes < 2:
      raise ConfigError(f'autoregressive prior: num_codes={self.num_codes}: expected the '
                        'codebook size K (>= 2)')
    for name in ('width', 'depth', 'heads', 'mlp_ratio'):
      if getattr(self, name) < 1:
        raise ConfigError(f'autoregressive prior: {name}={getattr(self, name)}: must be >= 1')
    if self.width % self.heads:
      raise ConfigError(f'autoregressive prior: heads={self.heads} must divide '
                        f'width={self.width}')
    if self.temperature < 0 or self.top_k < 0:
      raise ConfigError(f'autoregressive prior: temperature={self.temperature}, '
                        f'top_k={self.top_k}: both must be >= 0')


class Block(nn.Module):
  """A pre-LN transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""
  width: int
  heads: int
  mlp_ratio: int

  @nn.compact
  def __call__(self, x, mask):
    h = nn.LayerNorm(name='ln_attn')(x)
    x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads, qkv_features=self.width,
                                            name='attn')(h, h, mask=mask)
    h = nn.LayerNorm(name='ln_mlp')(x)
    h = nn.Dense(self.mlp_ratio * self.width, name='mlp_in')(h)
    return x + nn.Dense(self.width, name='mlp_out')(jax.nn.gelu(h, approximate=True))


class CausalTransformer(nn.Module):
  num_codes: int
  index_shape: tuple[int, ...]
  width: int = 128
  depth: int = 2
  heads: int = 4
  mlp_ratio: int = 4

  def setup(self):
    # index num_codes is the start token
    self.token_embed = nn.Embed(self.num_codes + 1, self.width)
    # [*index_shape, width]: the parameters keep the codes' shape
    self.pos_embed = self.param('pos_embed', nn.initializers.normal(0.02),
                                (*self.index_shape, self.width))
    self.blocks = [Block(self.width, self.heads, self.mlp_ratio) for _ in range(self.depth)]
    self.ln_out = nn.LayerNorm()
    self.head = nn.Dense(self.num_codes)

  def embed(self, codes):
    """Codes [B, P] -> the token embeddings [B, P, W] of the shifted input (start, x_0,
    ..., x_{P-2})."""
    start = jnp.full((codes.shape[0], 1), self.num_codes, codes.dtype)
    return self.token_embed(jnp.concatenate([start, codes[:, :-1]], axis=1))

  def from_embeddings(self, emb):
    """Token embeddings [B, P, W] -> logits [B, P, K]; position i sees inputs 0..i."""
    b, p, _ = emb.shape
    h = emb + self.pos_embed.reshape(p, self.width)
    mask = nn.make_causal_mask(jnp.ones((b, p), jnp.int32))  # [B, 1, P, P]
    for block in self.blocks:
      h = block(h, mask)
    return self.head(self.ln_out(h))

  def __call__(self, codes):
    return self.from_embeddings(self.embed(codes))


def _module(settings: AutoregressiveSettings, index_shape) -> CausalTransformer:
  return CausalTransformer(settings.num_codes, tuple(index_shape), width=settings.width,
                           depth=settings.depth, heads=settings.heads,
                           mlp_ratio=settings.mlp_ratio)


def index_shape(params) -> tuple[int, ...]:
  """One example's index shape, read from the position embedding (static under jit)."""
  return tuple(params['pos_embed'].shape[:-1])


def init(key, codes_shape, settings: AutoregressiveSettings):
  """Parameters for codes of shape `codes_shape` [N, *index_shape] (N is ignored)."""
  shape = tuple(codes_shape[1:])
  tokens = jnp.zeros((1, math.prod(shape)), jnp.int32)
  return _module(settings, shape).init(key, tokens)['params']


def _flat(params, codes):
  shape = index_shape(params)
  if tuple(codes.shape[1:]) != shape:
    raise DataError(f'autoregressive prior: codes of shape {tuple(codes.shape)}; this prior '
                    f'was built for [N, {", ".join(map(str, shape))}]')
  return codes.reshape(codes.shape[0], -1).astype(jnp.int32)  # [B, P], raster order


def logits(params, codes, settings: AutoregressiveSettings):
  """Logits [B, P, K] of p(x_i | x_<i) for codes [B, *index_shape]."""
  flat = _flat(params, codes)
  return _module(settings, index_shape(params)).apply({'params': params}, flat)


def input_embeddings(params, codes, settings: AutoregressiveSettings):
  """The shifted input's token embeddings [B, P, W] (what `logits_from_embeddings` takes)."""
  module = _module(settings, index_shape(params))
  return module.apply({'params': params}, _flat(params, codes), method=module.embed)


def logits_from_embeddings(params, emb, settings: AutoregressiveSettings):
  """Logits [B, P, K] from input embeddings [B, P, W] (position embeddings not included)."""
  module = _module(settings, index_shape(params))
  return module.apply({'params': params}, emb, method=module.from_embeddings)


def log_likelihood(params, codes, settings: AutoregressiveSettings):
  """log p(codes) [B] in nats: the sum over positions of log p(x_i | x_<i)."""
  flat = _flat(params, codes)
  logp = jax.nn.log_softmax(logits(params, codes, settings), axis=-1)  # [B, P, K]
  return jnp.take_along_axis(logp, flat[..., None], axis=-1)[..., 0].sum(axis=-1)


def loss(params, batch, key, settings: AutoregressiveSettings):
  """batch: codes [B, *index_shape] -> (NLL in nats per code [B], logged terms [B] each).
  `key` is unused (the model is deterministic); it keeps the priors' common signature."""
  del key
  positions = math.prod(index_shape(params))
  nll = -log_likelihood(params, batch, settings) / positions
  return nll, {'nll': nll, 'bits_per_code': nll / math.log(2)}


def held_out(params, codes, key, settings: AutoregressiveSettings):
  """Bits per code [B] of held-out codes (exact; `key` unused)."""
  return loss(params, codes, key, settings)[1]['bits_per_code']


def _choose(logits_i, key, settings: AutoregressiveSettings):
  """A code per row [B] from logits [B, K] at the settings' temperature and top-k."""
  if settings.temperature == 0:
    return jnp.argmax(logits_i, axis=-1)
  scaled = logits_i / settings.temperature
  if 0 < settings.top_k < scaled.shape[-1]:
    kth = jax.lax.top_k(scaled, settings.top_k)[0][:, -1:]  # [B, 1]
    scaled = jnp.where(scaled < kth, -jnp.inf, scaled)
  return jax.random.categorical(key, scaled, axis=-1)


def sample(params, key, num: int, settings: AutoregressiveSettings):
  """`num` code sequences [num, *index_shape] (int32), drawn position by position (each
  position reruns the whole causal forward pass: P passes for P positions)."""
  shape = index_shape(params)
  positions = math.prod(shape)
  module = _module(settings, shape)

  def step(i, tokens):
    logits_i = module.apply({'params': params}, tokens)[:, i]  # [num, K]
    code = _choose(logits_i, jax.random.fold_in(key, i), settings)
    return tokens.at[:, i].set(code.astype(jnp.int32))

  tokens = jax.lax.fori_loop(0, positions, step, jnp.zeros((num, positions), jnp.int32))
  return tokens.reshape(num, *shape)
