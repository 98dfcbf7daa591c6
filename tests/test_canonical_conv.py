"""Canonical-layout convolutions: values and both gradients equal lax's for every kernel,
stride and padding the models use (odd and even sizes, batch 1), models built either way
agree, and a compiled scan over a conv training step holds only canonical convolutions."""
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax.models import canonical
from ae_jax.models import layers
from ae_jax.models.layers import conv_transpose_dilated, conv_transpose_phases

DN = ('NHWC', 'HWIO', 'NHWC')
# (kernel, stride, padding): the presets' 4x4 s2 p1, 3x3 s1/s2 p1, 5x5 s1 p2, 1x1 heads,
# 3x3 s2 p2 and unpadded / asymmetric cases
CASES = [(4, 2, (1, 1)), (3, 1, (1, 1)), (3, 2, (1, 1)), (5, 1, (2, 2)), (1, 1, (0, 0)),
         (3, 2, (2, 2)), (2, 2, (0, 0)), (3, 3, (0, 1))]


def _ref(x, w, s, p):
  return jax.lax.conv_general_dilated(x, w, (s, s), (p, p), dimension_numbers=DN)


def _ours(x, w, s, p):
  return canonical.conv(x, w, (s, s), (p, p))


@pytest.mark.slow
@pytest.mark.parametrize('k,s,p', CASES)
@pytest.mark.parametrize('size,batch', [(9, 2), (8, 1)])
def test_values_and_gradients_equal_lax(k, s, p, size, batch):
  kx, kw, kg = jax.random.split(jax.random.PRNGKey(k * 10 + s), 3)
  x = jax.random.normal(kx, (batch, size, size + 1, 3))
  w = jax.random.normal(kw, (k, k, 3, 5))
  y = _ref(x, w, s, p)
  np.testing.assert_allclose(_ours(x, w, s, p), y, rtol=1e-5, atol=1e-5)
  g = jax.random.normal(kg, y.shape)
  loss = lambda f: lambda x, w: jnp.sum(f(x, w, s, p) * g)
  want = jax.grad(loss(_ref), (0, 1))(x, w)
  got = jax.grad(loss(_ours), (0, 1))(x, w)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize('k,s,p,op', [(4, 2, 1, 0), (3, 2, 1, 1), (5, 1, 2, 0), (3, 2, 2, 1)])
@pytest.mark.parametrize('form', [conv_transpose_phases, layers.conv_transpose_subpixel],
                         ids=['phases', 'subpixel'])
def test_transposed_conv_forms_with_canonical_convs(k, s, p, op, form):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 5, 4))
  w = jax.random.normal(jax.random.PRNGKey(1), (k, k, 4, 3))
  f = lambda x, w: form(x, w, s, p, op, conv=canonical.conv_general_dilated)
  ref = lambda x, w: conv_transpose_dilated(x, w, s, p, op)
  # the conv given is the one used (custom gradient, or patches + matmul for small outputs)
  lax_form = lambda x, w: form(x, w, s, p, op)
  assert str(jax.make_jaxpr(f)(x, w)) != str(jax.make_jaxpr(lax_form)(x, w))
  np.testing.assert_allclose(f(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
  gf = jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), (0, 1))(x, w)
  gr = jax.grad(lambda x, w: jnp.sum(ref(x, w) ** 2), (0, 1))(x, w)
  for a, b in zip(gf, gr):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize('impl,features,convs', [('phases', 3, 1), ('phases', 4, 1),
                                                 ('phases', 5, 4), ('phases', 8, 4),
                                                 ('subpixel', 8, 1), ('dilated', 3, 1)])
def test_an_image_output_layer_is_one_convolution_wider_ones_one_per_phase(impl, features,
                                                                           convs):
  """upsample='phases' runs a stride-2 transposed conv with <= 4 output channels (an
  image's) as the sub-pixel form: one convolution of 4 x 3 channels, not four of 3; the
  other forms are left as chosen."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 7, 5))
  m = layers.ConvTranspose(features, 3, 2, 2, 1, impl=impl, conv_impl='canonical')
  params = m.init(jax.random.PRNGKey(1), x)
  jaxpr = str(jax.make_jaxpr(lambda x: m.apply(params, x))(x))
  assert jaxpr.count('conv_general_dilated') == convs
  # the canonical (custom-gradient) convolution, except in the zero-dilated reference form
  assert ('custom_vjp_call' in jaxpr) == (impl != 'dilated')
  assert ('lhs_dilation=(2, 2)' in jaxpr) == (impl == 'dilated')
  k = params['params']['kernel']
  ref = conv_transpose_dilated(x, k, 2, 2, 1) + params['params']['bias']
  np.testing.assert_allclose(m.apply(params, x), ref, rtol=1e-5, atol=1e-5)


def test_drop_in_falls_back_for_what_it_does_not_cover():
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 6, 6, 4))
  w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 2, 4))  # grouped: 2 groups
  y = canonical.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=DN,
                                     feature_group_count=2)
  np.testing.assert_allclose(y, jax.lax.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=DN, feature_group_count=2), rtol=1e-6)


# conv_ae_small as shipped, and a BatchNorm conv VAE with 4x4 stride-2 layers down to 2x2
# (the BN+Mish presets' layer types, where small maps would otherwise swap conv operands)
MODELS = [('conv_ae_small', 26, {}),
          ('', 16, dict(model__kind='vae', model__arch='conv', model__conv__channels=(8, 16, 32),
                        model__conv__kernel=4, model__conv__stride=2, model__conv__padding=1,
                        model__conv__latent='spatial', model__norm='batch',
                        model__activation='mish', model__latent_dim=4))]


@pytest.mark.slow
@pytest.mark.parametrize('preset,size,extra', MODELS)
def test_models_agree_either_way_and_the_scan_is_canonical(tiny, preset, size, extra):
  from ae_jax.models import build_model
  outs = {}
  for impl in ('xla', 'canonical'):
    cfg = tiny(model__preset=preset, model__conv__impl=impl,
               **(extra or dict(model__kind=preset.split('_')[1], model__latent_dim=0)))
    model = build_model(cfg.model, (size, size, 3))
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, size, size, 3))
    v = jax.jit(model.init)({'params': jax.random.PRNGKey(1), 'reparam': jax.random.PRNGKey(2)}, x)

    def loss(params, x, model=model, v=v):
      out, _ = model.apply({**v, 'params': params}, x, train=True,
                           rngs={'reparam': jax.random.PRNGKey(3)}, mutable=['batch_stats'])
      return jnp.mean(out.recon ** 2)

    outs[impl] = jax.jit(jax.grad(loss))(v['params'], x)
    if impl == 'canonical':
      def body(p, _):
        return jax.tree_util.tree_map(lambda a, b: a - 1e-3 * b, p, jax.grad(loss)(p, x)), None
      hlo = jax.jit(lambda p: jax.lax.scan(body, p, None, length=2)[0]).lower(
          v['params']).compile().as_text()
      forms = set(re.findall(r'dim_labels=([0-9a-z_>-]+)', hlo))
      assert forms and forms <= {'b01f_01io->b01f'}, forms
  chex.assert_trees_all_close(outs['xla'], outs['canonical'], rtol=2e-3, atol=2e-5)
