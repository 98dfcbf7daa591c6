"""The pythae presets are pythae's networks: parameter counts, outputs on copied weights,
torch's default initialisation, and pythae's one-dimensional VQ codes.

The chain of proof runs without pythae: each preset against `torch_models.PythaeNet` (our
PyTorch rewrite, on weights copied by `interop.convert`). Where pythae is installed
(`pip install pythae==0.1.2` beside the pinned torch; it is not a test dependency), the
rewrite and the written counts are checked against pythae's own modules too.
"""
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from ae_jax import interop, torch_models
from ae_jax.errors import ConfigError
from ae_jax.models import build_model, pythae_nets
from ae_jax.configs import base

SHAPE = (28, 28, 1)
LATENT = 16
CASES = [(p, k) for p in ('pythae_mlp', 'pythae_conv') for k in ('ae', 'vae', 'vqvae')]
HAVE_PYTHAE = importlib.util.find_spec('pythae') is not None
needs_pythae = pytest.mark.skipif(not HAVE_PYTHAE, reason='pythae is not installed (optional)')


def _model(preset, kind, shape=SHAPE):
  cfg = base.get_config().model
  cfg.preset, cfg.kind, cfg.latent_dim, cfg.vq.learning = (preset, kind, LATENT,
                                                           'codebook_loss')
  return build_model(cfg, shape)


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _init(model, shape=SHAPE, jit=False):
  init = jax.jit(model.init) if jit else model.init
  return init({'params': jax.random.PRNGKey(0), 'reparam': jax.random.PRNGKey(1)},
              jnp.zeros((1, *shape)))


@pytest.mark.parametrize('preset,kind', CASES)
def test_parameter_count_is_the_written_one(preset, kind):
  v = jax.eval_shape(lambda: _init(_model(preset, kind)))
  assert _count(v['params']) == pythae_nets.PARAM_COUNTS[(preset, kind)]


def _pythae_model(preset, kind):
  """pythae's own model: VAE / RAE_L2 / VQVAE with its default MLPs or MNIST conv nets."""
  from pythae import models
  from pythae.models.nn.benchmarks import mnist
  cls, config_cls = {'ae': (models.RAE_L2, models.RAE_L2_Config),
                     'vae': (models.VAE, models.VAEConfig),
                     'vqvae': (models.VQVAE, models.VQVAEConfig)}[kind]
  config = config_cls(input_dim=(1, 28, 28), latent_dim=LATENT)
  if preset == 'pythae_mlp':
    return cls(config)
  enc = (mnist.Encoder_Conv_VAE_MNIST if kind == 'vae' else mnist.Encoder_Conv_AE_MNIST)(config)
  return cls(config, encoder=enc, decoder=mnist.Decoder_Conv_AE_MNIST(config))


@needs_pythae
@pytest.mark.slow
def test_written_counts_are_pythaes():
  for preset, kind in CASES:
    theirs = sum(p.numel() for p in _pythae_model(preset, kind).parameters())
    assert pythae_nets.PARAM_COUNTS[(preset, kind)] == theirs, (preset, kind)


def _reference(preset, kind, seed=0):
  torch.manual_seed(seed)
  net = torch_models.PythaeNet(preset.split('_')[1], kind, LATENT)
  torch_models.randomize_batchnorm(net, seed)
  return net.eval()


def _x(n=3, seed=1):
  return np.random.default_rng(seed).random((n, *SHAPE)).astype(np.float32)


def _nchw(x):
  return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


@needs_pythae
@pytest.mark.slow
@pytest.mark.parametrize('preset,kind', CASES)
def test_the_torch_rewrite_is_pythaes_network(preset, kind):
  """pythae's modules, given the rewrite's weights by position, compute the same heads and
  images in eval mode."""
  ref = _reference(preset, kind)
  theirs = _pythae_model(preset, kind).eval()
  torch_models.load_by_order(theirs.encoder, {k: v for k, v in ref.state_dict().items()
                                              if k.startswith(('body.', 'heads.'))})
  torch_models.load_by_order(theirs.decoder, {k: v for k, v in ref.state_dict().items()
                                              if k.startswith(('project.', 'decoder.'))})
  x = _nchw(_x())
  with torch.no_grad():
    heads, enc = ref.encode(x), theirs.encoder(x)
    np.testing.assert_array_equal(heads[0].numpy(), enc.embedding.numpy())
    if kind == 'vae':
      np.testing.assert_array_equal(heads[1].numpy(), enc.log_covariance.numpy())
    np.testing.assert_array_equal(ref.decode(heads[0]).numpy(),
                                  theirs.decoder(heads[0]).reconstruction.numpy())


def _ours_with(ref, model, jit):
  v = jax.device_get(_init(model, jit=jit))
  params = {k: v['params'][k] for k in ('encoder', 'decoder')}
  params, stats = interop.convert(ref.state_dict(), params, v.get('batch_stats', {}), SHAPE)
  if 'quantizer' in v['params']:
    params['quantizer'] = v['params']['quantizer']
  return {'params': params, **({'batch_stats': stats} if stats else {})}


def _check_forward(preset, kind, jit):
  ref, model = _reference(preset, kind), _model(preset, kind)
  variables = _ours_with(ref, model, jit)
  x = _x()
  enc = jax.jit(lambda v, x: model.apply(v, x, method=model.encode)) if jit else (
      lambda v, x: model.apply(v, x, method=model.encode))
  mean, logvar = enc(variables, x)
  with torch.no_grad():
    heads = [h.numpy() for h in ref.encode(_nchw(x))]
  np.testing.assert_allclose(np.asarray(mean).reshape(3, LATENT), heads[0], rtol=1e-5, atol=1e-5)
  if kind == 'vae':
    np.testing.assert_allclose(logvar, heads[1], rtol=1e-5, atol=1e-5)
  z = np.random.default_rng(2).normal(size=(3, LATENT)).astype(np.float32)
  dec = lambda v, z: model.apply(v, z, quantize=False, method=model.decode)[0]
  recon = (jax.jit(dec) if jit else dec)(variables, z.reshape(np.shape(mean)))
  with torch.no_grad():
    ref_recon = ref.decode(torch.from_numpy(z)).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(recon, ref_recon, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['ae', 'vae', 'vqvae'])
def test_mlp_preset_reproduces_the_torch_network(kind):
  _check_forward('pythae_mlp', kind, jit=False)


@pytest.mark.slow
def test_conv_preset_reproduces_the_torch_network():
  # the vae's heads; the ae and vqvae code heads are the same Linear (the MLP tests cover
  # their shapes), and the conv body and decoder are shared by all three kinds
  _check_forward('pythae_conv', 'vae', jit=True)


@pytest.mark.slow
def test_vq_codes_are_one_dimensional_and_each_unit_is_quantised_alone():
  """pythae's VQVAE quantises a flat code unit by unit against K scalars: the preset's code is
  [B, L, 1], its codebook [K, 1], and each unit lands on its nearest scalar."""
  model = _model('pythae_mlp', 'vqvae')
  v = _init(model)
  codebook = np.linspace(-2, 2, 512, dtype=np.float32)[:, None]  # [K, 1]
  v = {'params': {**v['params'], 'quantizer': {'codebook': codebook}}}
  out = model.apply(v, _x(), train=False, rngs={'reparam': jax.random.PRNGKey(0)})
  assert out.mean.shape == (3, LATENT, 1) and out.aux['indices'].shape == (3, LATENT)
  nearest = np.abs(np.asarray(out.mean) - codebook[:, 0]).argmin(-1)  # [B, L]
  np.testing.assert_array_equal(out.aux['indices'], nearest)
  np.testing.assert_array_equal(np.asarray(out.z)[..., 0], codebook[nearest, 0])


@needs_pythae
@pytest.mark.slow
def test_vq_indices_match_pythaes_quantizer():
  from pythae.models.vq_vae.vq_vae_utils import Quantizer
  from pythae.models import VQVAEConfig
  config = VQVAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT)
  config.embedding_dim = 1  # what pythae's VQVAE sets for a flat code
  quantizer = Quantizer(config)
  z = np.random.default_rng(3).normal(scale=0.01, size=(4, LATENT)).astype(np.float32)
  with torch.no_grad():  # pythae's VQVAE.forward: [B, L] -> [B, 1, 1, L] -> [B, 1, L, 1]
    theirs = quantizer(torch.from_numpy(z).reshape(4, 1, 1, LATENT).permute(0, 2, 3, 1))
  model = _model('pythae_mlp', 'vqvae')
  codebook = quantizer.embeddings.weight.detach().numpy()
  vq = model.apply({'params': {'quantizer': {'codebook': codebook}}}, z[..., None],
                   method=lambda m, z: m.quantize(z))
  np.testing.assert_array_equal(vq.indices, theirs.quantized_indices.numpy().reshape(4, LATENT))
  np.testing.assert_allclose(vq.commitment.mean(), float(theirs.loss) / 1.25, rtol=1e-5)


@pytest.mark.slow  # model.init draws op by op
def test_initialisation_is_torchs_default():
  """Weights and biases uniform in +-1/sqrt(fan_in), fan_in of a transposed conv its output
  channels x kernel area; the codebook uniform in +-1/K (pythae's)."""
  v = jax.device_get(_init(_model('pythae_mlp', 'vqvae')))['params']
  fans = {('encoder', 'dense_0'): 784, ('encoder', 'code'): 512, ('decoder', 'project'): 16,
          ('decoder', 'out'): 512}
  for (part, name), fan in fans.items():
    for leaf in ('kernel', 'bias'):
      w = np.asarray(v[part][name][leaf])
      bound = 1 / np.sqrt(fan)
      assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound, (name, leaf)
      assert abs(w.std() - bound / np.sqrt(3)) < 0.2 * bound, (name, leaf)
  cb = np.asarray(v['quantizer']['codebook'])
  assert cb.shape == (512, 1) and np.abs(cb).max() <= 1 / 512 and np.abs(cb).max() > 0.9 / 512


@pytest.mark.slow
def test_transposed_conv_initialisation_uses_torchs_fan_in():
  from ae_jax.models.layers import ConvTranspose
  layer = ConvTranspose(4, 3, 2, 1, 1, kernel_init=pythae_nets.torch_uniform(4 * 9),
                        bias_init=pythae_nets.torch_uniform(4 * 9))
  p = layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 256)))['params']
  bound = 1 / np.sqrt(4 * 9)  # not 1/sqrt(256 * 9): torch's fan_in of [in, out, k, k]
  assert np.abs(p['kernel']).max() <= bound and np.abs(p['kernel']).max() > 0.9 * bound
  assert np.abs(p['bias']).max() <= bound and np.abs(p['bias']).min() > 0


def test_conv_preset_needs_28_pixel_images():
  with pytest.raises(ConfigError, match=r"MNIST network, which takes 28x28 images, but the "
                     r'data is 32x32; set data.image_size=28'):
    _model('pythae_conv', 'vae', (32, 32, 1))


def test_mlp_preset_builds_at_any_shape_and_channels():
  v = jax.eval_shape(lambda: _init(_model('pythae_mlp', 'ae', (8, 8, 3)), (8, 8, 3)))
  assert _count(v['params']) == (192 * 512 + 512) + (512 * 16 + 16) + (16 * 512 + 512) + (
      512 * 192 + 192)
