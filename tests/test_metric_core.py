"""The compiled evaluation's code metrics (metrics/core.py): the code histogram by scatter-add
against the one-hot count it replaces, usage and perplexity of FSQ codes against models/fsq.py,
and the compression metrics on shapes counted by hand."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax.metrics import core, registry
from ae_jax.models import fsq
from ae_jax.models.base import ModelOutput


def _ctx(x, mean, aux=None, latent_mask=None):
  out = ModelOutput(recon=x, logits=x, mean=mean, logvar=None, z=mean, aux=aux)
  return core.BatchContext(x, out, out, {}, None, latent_mask)


def _evaluate(metric, ctxs, image_shape):
  """The compiled evaluation's reduction: per-example values summed over the batches, then
  the metric's finalize (or the mean)."""
  sums, n = {}, 0
  for ctx in ctxs:
    for k, v in metric.batch(ctx).items():
      sums[k] = sums.get(k, 0.0) + jnp.sum(v, axis=0)
    n += ctx.x.shape[0]
  if metric.finalize:
    return float(metric.finalize(sums, n, image_shape))
  return float(sums[metric.name] / n)


@pytest.mark.parametrize('shape', [(6,), (2, 4, 5)])
def test_code_counts_by_scatter_add_equal_the_one_hot_count_it_replaces(shape):
  """Indices as the VQ layer returns them (int32 [B, *positions], a flat or a spatial code):
  the per-example histogram is the one-hot count summed over positions, as before."""
  idx = np.random.default_rng(0).integers(0, 7, shape).astype(np.int32)
  counts_k = jnp.asarray(np.bincount(idx.ravel(), minlength=7), jnp.float32)  # the layer's
  ctx = _ctx(jnp.zeros((shape[0], 4, 4, 1)), jnp.zeros((*shape, 3)),
             {'indices': jnp.asarray(idx), 'counts': counts_k})
  counts = np.asarray(core.code_counts(ctx)['code_counts'])  # [B, K]
  onehot = np.eye(7)[idx.reshape(shape[0], -1)].sum(1)  # the [B, P, K] form it replaces
  np.testing.assert_array_equal(counts, onehot)
  np.testing.assert_array_equal(counts.sum(0), np.asarray(counts_k))
  assert counts.sum() == idx.size


@pytest.mark.slow  # compiles the FSQ layer's and the metrics' functions: seconds
def test_usage_and_perplexity_of_fsq_codes_are_fsqs_of_the_same_indices():
  """Two batches of spatial codes through the FSQ layer: the registry's code_usage and
  perplexity, reduced as the evaluation reduces them, equal fsq.usage / fsq.perplexity of
  all the indices at once."""
  levels = (8, 6, 5)
  layer = fsq.FiniteScalarQuantizer(levels)
  rng = np.random.default_rng(0)
  ctxs, all_idx = [], []
  for _ in range(2):
    z = jnp.asarray(1.5 * rng.standard_normal((5, 3, 3, len(levels))), jnp.float32)
    out = layer.apply({}, z)
    ctxs.append(_ctx(jnp.zeros((5, 12, 12, 3)), z, {'indices': out.indices,
                                                     'counts': out.counts}))
    all_idx.append(np.asarray(out.indices))
  idx = np.concatenate(all_idx)
  usage = _evaluate(registry.get('code_usage'), ctxs, (12, 12, 3))
  perplexity = _evaluate(registry.get('perplexity'), ctxs, (12, 12, 3))
  assert usage == pytest.approx(float(fsq.usage(idx, levels)), abs=1e-7)
  assert perplexity == pytest.approx(float(fsq.perplexity(idx, levels)), rel=1e-6)
  assert usage == pytest.approx(len(np.unique(idx)) / math.prod(levels), abs=1e-7)
  assert 1.0 < perplexity <= len(np.unique(idx))


def test_compression_metrics_on_a_known_shape():
  """A 4x4x3 code of 16x16x3 images: 48 numbers for 768 values; with 1000 codes a position
  carries log2(1000) bits, 16 positions over 256 pixel locations. A latent-size member using
  2 of 3 channels stores 32 numbers."""
  x = jnp.zeros((2, 16, 16, 3))
  mean = jnp.ones((2, 4, 4, 3))
  aux = {'indices': jnp.zeros((2, 4, 4), jnp.int32), 'counts': jnp.zeros((1000,))}
  ctx = _ctx(x, mean, aux)
  assert _evaluate(registry.get('latent_per_pixel'), [ctx], (16, 16, 3)) == pytest.approx(
      48 / 768)
  assert _evaluate(registry.get('bits_per_code'), [ctx], (16, 16, 3)) == pytest.approx(
      math.log2(1000), rel=1e-6)
  assert _evaluate(registry.get('bits_per_pixel'), [ctx], (16, 16, 3)) == pytest.approx(
      16 * math.log2(1000) / 256, rel=1e-6)
  masked = _ctx(x, mean, aux, latent_mask=jnp.asarray([[[1.0, 1.0, 0.0]]]))
  assert _evaluate(registry.get('latent_per_pixel'), [masked], (16, 16, 3)) == pytest.approx(
      32 / 768)


def test_compression_metrics_apply_to_spatial_codes_and_bits_to_quantised_ones():
  names = ('latent_per_pixel', 'bits_per_pixel', 'bits_per_code', 'perplexity', 'code_usage',
           'commitment', 'codebook')

  def resolved(kind, latent_shape):
    return set(registry.names(registry.resolve(names, kind, latent_shape=latent_shape)))

  assert resolved('vae', (4, 4, 3)) == {'latent_per_pixel'}
  assert resolved('vae', (16,)) == set()
  assert resolved('fsq', (4, 4, 4)) == {'latent_per_pixel', 'bits_per_pixel', 'bits_per_code',
                                        'perplexity', 'code_usage'}
  assert resolved('fsq', (4,)) == {'bits_per_code', 'perplexity', 'code_usage'}
  assert resolved('vqvae', (4, 4, 4)) == resolved('fsq', (4, 4, 4)) | {'commitment',
                                                                       'codebook'}
  # FSQ logs no codebook terms in training; the VQ-VAE logs both
  assert {'commitment', 'codebook'}.isdisjoint(registry.names(registry.train_metrics('fsq')))
  assert {'commitment', 'codebook'} <= set(registry.names(registry.train_metrics('vqvae')))
