import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax.errors import ConfigError
from ae_jax.models import FIXED_CODE, PRESETS, build_model, latent_shape
from ae_jax.models import fsq, layers
from ae_jax.models.base import AutoEncoder


def dense(i, o):
  return i * o + o


def conv(i, o, k):  # Conv2d and ConvTranspose2d alike
  return i * o * k * k + o


def bn(c):  # learnable BatchNorm parameters (weight, bias)
  return 2 * c


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def variables_of(model, shape):
  return jax.eval_shape(lambda: model.init(
      {'params': jax.random.PRNGKey(0), 'reparam': jax.random.PRNGKey(1)}, jnp.zeros((1, *shape))))


@pytest.fixture
def preset_config(tiny):
  """preset_config(name, latent): the tiny config with preset `name` at that code size."""
  def make(name, latent):
    latent = 0 if name in FIXED_CODE else latent  # their code size is the architecture's
    return tiny(model__preset=name, model__kind=PRESETS[name][0], model__latent_dim=latent)
  return make


ENC_BN = (conv(3, 64, 4) + conv(64, 128, 4) + conv(128, 256, 4) + conv(256, 512, 4)
          + conv(512, 1024, 4) + bn(64) + bn(128) + bn(256) + bn(512) + bn(1024))
DEC_BN_TAIL = (conv(1024, 512, 4) + conv(512, 256, 4) + conv(256, 128, 4) + conv(128, 64, 4)
               + bn(1024) + bn(512) + bn(256) + bn(128) + bn(64) + conv(64, 3, 3))
EXPECTED = {
    ('mlp_ae_50', 128, (50, 50, 3)):
        dense(7500, 256) + dense(256, 128) + dense(128, 256) + dense(256, 7500),
    ('mlp_ae_50_refine', 128, (50, 50, 3)):  # report 000: two 7500->7500 layers added
        dense(7500, 256) + dense(256, 128) + dense(128, 256) + dense(256, 7500)
        + 2 * dense(7500, 7500),
    ('mlp_vae_50', 256, (50, 50, 3)):
        dense(7500, 4096) + dense(4096, 1024) + dense(1024, 512) + 2 * dense(512, 256)
        + dense(256, 512) + dense(512, 1024) + dense(1024, 4096) + dense(4096, 7500),
    ('fcn_ae_64', 10, (64, 64, 3)):
        dense(12288, 1024) + dense(1024, 256) + dense(256, 64) + dense(64, 10)
        + dense(10, 64) + dense(64, 256) + dense(256, 1024) + dense(1024, 12288),
    ('conv_ae_small', 64, (26, 26, 3)):
        conv(3, 16, 3) + conv(16, 32, 3) + conv(32, 64, 5)
        + conv(64, 32, 5) + conv(32, 16, 3) + conv(16, 3, 3),
    ('conv_ae_bn_mish', 1024, (64, 64, 3)): ENC_BN + conv(1024, 1024, 4) + DEC_BN_TAIL,
    ('conv_vae_bn_mish', 128, (64, 64, 3)):
        ENC_BN + conv(1024, 2 * 128, 3) + conv(128, 1024, 4) + DEC_BN_TAIL,
    ('conv_vae_bn_mish', 1024, (64, 64, 3)):
        ENC_BN + conv(1024, 2 * 1024, 3) + conv(1024, 1024, 4) + DEC_BN_TAIL,
    # pythae's default MLP and MNIST conv net (tests/test_pythae_presets.py: ae, vqvae too)
    ('pythae_mlp', 16, (28, 28, 1)):
        dense(784, 512) + 2 * dense(512, 16) + dense(16, 512) + dense(512, 784),
    ('pythae_conv', 16, (28, 28, 1)):
        conv(1, 128, 4) + conv(128, 256, 4) + conv(256, 512, 4) + conv(512, 1024, 4)
        + bn(128) + bn(256) + bn(512) + bn(1024) + 2 * dense(1024, 16) + dense(16, 1024 * 16)
        + conv(1024, 512, 3) + conv(512, 256, 3) + conv(256, 1, 3) + bn(512) + bn(256),
    # the latent-diffusion autoencoders: what diffusers' AutoencoderKL counts for the same
    # configs (tests/test_ldm.py builds both and compares)
    ('kl_f8', 4, (64, 64, 3)): 83_653_863,
    ('kl_f4', 3, (64, 64, 3)): 55_312_063,
    ('kl_f4_small', 3, (32, 32, 3)): 680_143,
    ('kl_f8_small', 4, (32, 32, 3)): 978_103,
    # SD3's and FLUX.1's 16-channel autoencoders (tests/test_ldm16_import.py: diffusers')
    ('sd3_vae', 16, (64, 64, 3)): 83_819_683,
    ('flux1_vae', 16, (64, 64, 3)): 83_819_683,
}
PUBLISHED = {'mlp_ae_50': 128, 'mlp_ae_50_refine': 128, 'mlp_vae_50': 256, 'fcn_ae_64': 10,
             'conv_ae_small': 64,
             'conv_ae_bn_mish': 1024, 'conv_vae_bn_mish': 1024, 'kl_f8': 4, 'kl_f4': 3,
             'kl_f4_small': 3, 'kl_f8_small': 4, 'sd3_vae': 16, 'flux1_vae': 16}


@pytest.mark.slow  # builds full-size models or draws figures: seconds
@pytest.mark.parametrize('name,latent,shape', list(EXPECTED))
def test_preset_parameter_counts(name, latent, shape, preset_config):
  model = build_model(preset_config(name, latent).model, shape)
  v = variables_of(model, shape)
  assert count(v['params']) == EXPECTED[(name, latent, shape)]


def test_every_preset_has_a_count_test():
  assert {k[0] for k in EXPECTED} == set(PRESETS)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_a_preset_from_the_command_line_brings_its_published_code_size(name):
  """`--config.model.preset=NAME` on the base config (whose latent_dim is 0 = the preset's
  own) builds the published architecture, parameter count included."""
  from ae_jax import config_lib
  shape = next(s for (n, size, s) in EXPECTED if n == name and size == PUBLISHED[name])
  config = config_lib.resolve(config_lib.load(
      'configs/base.py', [f'--config.model.preset={name}',
                          f'--config.model.kind={PRESETS[name][0]}']))
  assert config.model.latent_dim == PUBLISHED[name]
  model = build_model(config.model, shape)
  assert latent_shape(model, shape)[-1] == PUBLISHED[name]
  assert count(variables_of(model, shape)['params']) == EXPECTED[(name, PUBLISHED[name], shape)]


def test_an_explicit_latent_size_overrides_the_preset_and_fixed_codes_refuse_one(tiny):
  from ae_jax import config_lib
  cfg = config_lib.resolve(tiny(model__preset='fcn_ae_64', model__kind='ae',
                                model__latent_dim=32))
  assert cfg.model.latent_dim == 32
  with pytest.raises(ConfigError, match="preset 'conv_ae_small' has no latent head"):
    config_lib.resolve(tiny(model__preset='conv_ae_small', model__kind='ae',
                            model__latent_dim=16))


def test_bn_mish_preset_batch_stats_and_latent_shape(preset_config):
  model = build_model(preset_config('conv_vae_bn_mish', 128).model, (64, 64, 3))
  v = variables_of(model, (64, 64, 3))
  assert count(v['batch_stats']) == 2 * (64 + 128 + 256 + 512 + 1024) * 2  # mean, var x enc+dec
  assert latent_shape(model, (64, 64, 3)) == (2, 2, 128)


@pytest.mark.slow
def test_kaiming_init_and_bn_init_of_bn_mish(preset_config):
  model = build_model(preset_config('conv_ae_bn_mish', 1024).model, (32, 32, 3))
  # jitted: drawing the 8M-weight kernels op by op takes 3x as long
  v = jax.jit(model.init)({'params': jax.random.PRNGKey(0)}, jnp.zeros((1, 32, 32, 3)))
  p = v['params']
  w = p['encoder']['conv_4']['kernel']  # [4, 4, 512, 1024]; torch fan_in = 512*16
  assert abs(float(w.std()) * np.sqrt(512 * 16) - 1.0) < 0.02
  t = p['decoder']['tconv_4']['kernel']  # [4, 4, 128, 64]; torch fan_in = out*16 = 64*16
  assert abs(float(t.std()) * np.sqrt(64 * 16) - 1.0) < 0.05
  assert float(jnp.abs(p['encoder']['conv_4']['bias']).max()) == 0.0
  np.testing.assert_array_equal(p['encoder']['norm_0']['scale'], 1.0)
  np.testing.assert_array_equal(p['encoder']['norm_0']['bias'], 0.0)


CUSTOM = [
    dict(model__arch='mlp'),
    dict(model__arch='conv', model__conv__latent='flat', model__norm='batch'),
    dict(model__arch='conv', model__conv__latent='spatial', model__norm='group',
         model__activation='mish'),
    dict(model__arch='conv', model__conv__kernel=3, model__conv__padding=1,
         model__norm='layer', model__activation='gelu', model__output_activation='tanh'),
]


@pytest.mark.slow
@pytest.mark.parametrize('shape', [(28, 28, 1), (50, 50, 3), (64, 64, 3)])
@pytest.mark.parametrize('kind', ['ae', 'vae'])
@pytest.mark.parametrize('overrides', CUSTOM, ids=['mlp', 'conv_flat_bn', 'conv_spatial_gn',
                                                   'conv_k3_ln_tanh'])
def test_custom_models_reconstruct_any_size(shape, kind, overrides, tiny):
  cfg = tiny(model__kind=kind, model__conv__channels=(4, 8), **overrides)
  model = build_model(cfg.model, shape)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, *shape))
  v = jax.jit(model.init)({'params': jax.random.PRNGKey(0), 'reparam': jax.random.PRNGKey(1)}, x)
  out = jax.jit(lambda v, x: model.apply(v, x, rngs={'reparam': jax.random.PRNGKey(2)}))(v, x)
  assert out.recon.shape == x.shape
  assert out.mean.shape == (2, *latent_shape(model, shape))
  assert (out.logvar is None) == (kind == 'ae')
  assert float(out.recon.min()) >= 0.0 and float(out.recon.max()) <= 1.0


# every architecture that takes the VQ codebook, with FSQ in its place (16x16x3 images)
FSQ_ARCHS = {
    'mlp': dict(model__arch='mlp'),
    'conv_flat': dict(model__arch='conv', model__conv__latent='flat'),
    'conv_spatial': dict(model__arch='conv', model__conv__latent='spatial'),
    'resnet_spatial': dict(model__arch='resnet', model__resnet__channels=(8, 16),
                           model__resnet__latent='spatial', model__conv__groups=4),
    'ldm': dict(model__arch='ldm', model__ldm__ch=8, model__ldm__ch_mult=(1, 2),
                model__ldm__blocks=1, model__ldm__groups=4),
    'ldm_preset': dict(model__preset='kl_f4_small'),
}


@pytest.mark.slow
@pytest.mark.parametrize('arch', list(FSQ_ARCHS))
def test_fsq_quantises_the_code_of_every_architecture_that_takes_a_codebook(arch, tiny):
  """The decoder's input z is on FSQ's grids (the paper's definition), its indices are the
  codes' own, the code is len(levels) wide (2^12: (7, 5, 5, 5, 5)), and FSQ adds no
  codebook terms."""
  shape = (16, 16, 3)
  cfg = tiny(model__kind='fsq', model__fsq__codebook='2^12', model__latent_dim=0,
             model__conv__channels=(4, 8), **FSQ_ARCHS[arch])
  model = build_model(cfg.model, shape)
  assert isinstance(model, AutoEncoder) and model.quantizer.levels == (7, 5, 5, 5, 5)
  lat = latent_shape(model, shape)
  assert lat[-1] == 5 and len(lat) == (1 if arch in ('mlp', 'conv_flat') else 3)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, *shape))
  v = jax.jit(model.init)({'params': jax.random.PRNGKey(0)}, x)
  out = jax.jit(model.apply)(v, 4.0 * x)  # a wider spread of codes than the init's
  assert out.recon.shape == x.shape and out.logvar is None and out.mean.shape == (2, *lat)
  steps = np.asarray(out.z) * np.asarray([3, 2, 2, 2, 2])  # L // 2 per channel
  np.testing.assert_allclose(steps, np.round(steps), atol=1e-5)
  assert np.abs(steps).max() <= 3 + 1e-5
  np.testing.assert_array_equal(out.aux['indices'],
                                fsq.codes_to_indices(out.z, (7, 5, 5, 5, 5)))
  assert set(out.aux) == {'counts', 'indices'} and out.aux['counts'].shape == (4375,)


@pytest.mark.parametrize('name,shape,numbers', [
    ('conv_ae_bn_mish', (50, 50, 3), ('50', '32')),
    ('conv_vae_bn_mish', (28, 28, 1), ('28', '32')),
    ('conv_ae_small', (28, 28, 3), ('26x26', '28x28')),
])
def test_preset_size_it_cannot_divide_is_a_config_error(name, shape, numbers, preset_config):
  with pytest.raises(ConfigError) as e:
    build_model(preset_config(name, 16).model, shape)
  for n in numbers:
    assert n in str(e.value)


def test_conv_stack_too_deep_for_image_names_sizes(tiny):
  cfg = tiny(model__arch='conv', model__conv__channels=(4, 4, 4, 4, 4))
  with pytest.raises(ConfigError, match='image size 8 is too small for 5 conv layers'):
    build_model(cfg.model, (8, 8, 1))


def test_preset_kind_mismatch_is_a_config_error(tiny):
  cfg = tiny(model__preset='mlp_ae_50', model__kind='vae')
  with pytest.raises(ConfigError, match="model.kind='ae'"):
    build_model(cfg.model, (50, 50, 3))


@pytest.mark.slow
@pytest.mark.parametrize('k,s,p,op', [(4, 2, 1, 0), (4, 2, 1, 1), (3, 2, 1, 1), (3, 2, 2, 1),
                                      (5, 1, 2, 0), (2, 2, 0, 0), (5, 3, 1, 2)])
@pytest.mark.parametrize('size', [5, 8])
@pytest.mark.parametrize('impl', [layers.conv_transpose_phases, layers.conv_transpose_subpixel],
                         ids=['phases', 'subpixel'])
def test_fast_conv_transpose_equals_dilated_reference(k, s, p, op, size, impl):
  rng = np.random.default_rng(k * 100 + s * 10 + p)
  x = jnp.asarray(rng.normal(size=(2, size, size + 1, 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, 3, 5)), jnp.float32)
  ref = layers.conv_transpose_dilated(x, w, s, p, op)
  out = impl(x, w, s, p, op)
  assert out.shape == ref.shape == (2, (size - 1) * s - 2 * p + k + op,
                                    size * s - 2 * p + k + op, 5)
  np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)
  # Gradients agree too (the reason for the sub-pixel form is a faster backward pass).
  g = lambda f: jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w, s, p, op))), (0, 1))(x, w)
  for a, b in zip(g(impl), g(layers.conv_transpose_dilated)):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_conv_transpose_matches_lax_conv_transpose():
  # With padding 0, torch's ConvTranspose2d is lax.conv_transpose(transpose_kernel=True)
  # of a kernel read as the forward conv's [H, W, O=Cin, I=Cout].
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(1, 6, 7, 2)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(4, 4, 2, 3)), jnp.float32)
  ref = jax.lax.conv_transpose(x, w, (2, 2), 'VALID', transpose_kernel=True,
                               dimension_numbers=('NHWC', 'HWOI', 'NHWC'))
  np.testing.assert_allclose(layers.conv_transpose_phases(x, w, 2, 0, 0), ref, atol=1e-5)
  np.testing.assert_allclose(layers.conv_transpose_subpixel(x, w, 2, 0, 0), ref, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('kind,patch', [('ae', 1), ('vae', 2)])
def test_resnet_linear_path_starts_as_the_training_splits_pca(kind, patch, tiny):
  """model.resnet.linear='pca': before any step the model reconstructs test images exactly
  as the PCA baseline does, and its codes are whitened (unit spread on the training split)."""
  from ae_jax.metrics import pca
  from ae_jax.training import prepare
  cfg = tiny()
  with cfg.unlocked():
    cfg.data.name, cfg.data.image_size, cfg.data.num_examples = 'photos', 16, 300
    cfg.model.kind, cfg.model.arch, cfg.model.latent_dim = kind, 'resnet', 8
    cfg.model.resnet.channels, cfg.model.resnet.linear = (4, 8), 'pca'
    cfg.model.resnet.patch = patch
    cfg.model.output_activation, cfg.eval.metrics = 'none', ('psnr',)
  setup = prepare(cfg)
  state = setup.init_state()
  train = np.asarray(setup.dataset.train['image'])
  test = np.asarray(setup.dataset.test['image'])
  variables = {'params': state.params}
  mean, _ = setup.model.apply(variables, jnp.asarray(train), method='encode')
  np.testing.assert_allclose(np.std(np.asarray(mean), 0), 1.0, rtol=1e-3)
  out = setup.model.apply(variables, jnp.asarray(test), sample=False)
  np.testing.assert_allclose(np.clip(np.asarray(out.recon), 0, 1),
                             pca.reconstruct(pca.fit(train, 8), test), atol=2e-5)


@pytest.mark.slow
def test_resnet_patch_blocks_round_trip_and_sizes_are_checked():
  from ae_jax.models import build_model, resnet
  from ae_jax.configs import base
  x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
  y = resnet.space_to_depth(x, 2)
  assert y.shape == (2, 2, 3, 12)
  np.testing.assert_array_equal(y[1, 1, 2], x[1, 2:4, 4:6].reshape(-1))  # one 2x2 block
  np.testing.assert_array_equal(resnet.depth_to_space(y, 2), x)
  cfg = base.get_config().model
  cfg.arch, cfg.resnet.channels, cfg.resnet.patch, cfg.latent_dim = 'resnet', (4, 8), 2, 8
  model = build_model(cfg, (16, 16, 3))
  enc, dec = model.encoder, model.decoder
  assert (enc.patch, dec.patch, dec.start_shape) == (2, 2, (4, 4, 8))
  with pytest.raises(ConfigError, match=r'patch=2.*divisible by 4, but the data is 18x18'):
    build_model(cfg, (18, 18, 3))


def test_resnet_linear_path_needs_a_flat_code_and_pixel_outputs():
  from ae_jax.models import build_model
  from ae_jax.configs import base
  cfg = base.get_config().model
  cfg.arch, cfg.resnet.linear, cfg.resnet.channels, cfg.latent_dim = 'resnet', 'pca', (4, 8), 8
  with pytest.raises(ConfigError, match="output_activation='none'"):
    build_model(cfg, (16, 16, 3))
  cfg.output_activation, cfg.resnet.latent = 'none', 'spatial'
  with pytest.raises(ConfigError, match="latent='flat'"):
    build_model(cfg, (16, 16, 3))


def test_abstract_shapes_are_traced_once_per_model_and_image_shape(tiny):
  from ae_jax import models
  cfg = tiny(model__latent_dim=5).model
  shape = (8, 8, 1)
  first = models.abstract_variables(models.build_model(cfg, shape), shape)
  hits = models._abstract_variables.cache_info().hits
  first['params'].clear()  # a caller's edit stays its own
  again = models.abstract_variables(models.build_model(cfg, list(shape)), shape)
  assert models._abstract_variables.cache_info().hits == hits + 1  # an equal model: no trace
  chex.assert_trees_all_equal_shapes_and_dtypes(
      again, jax.eval_shape(lambda: models.init_variables(
          models.build_model(cfg, shape), shape, jax.random.PRNGKey(0))))
  assert models.latent_shape(models.build_model(cfg, shape), shape) == (5,)
