"""The latent-diffusion KL autoencoder (models/ldm.py) and its weight import (interop_ldm.py)
against diffusers' AutoencoderKL: parameter counts, outputs with converted random weights,
the CompVis naming checked by diffusers' own converter, and the errors a user can meet.

Relative error throughout: max|ours - theirs| / max|theirs| over the whole tensor, where
theirs is diffusers' float32 output on the same input.

diffusers comes from the test extra, through the `diffusers` fixture of conftest.py (it
stands in for torchvision, which does not load beside the CPU torch wheel).
"""
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from ae_jax import interop_ldm
from ae_jax.errors import ConfigError, DataError
from ae_jax.models import ldm
from ae_jax.models.base import AutoEncoder

TOL = 1e-4  # relative error, float32
# One level of attention, a width change (conv_shortcut), a non-square image: what kl_f8's
# layout does not exercise.
SMALL_ATTN = ldm.LDMPreset('test: two levels, attention at the bottom one', 32, (1, 2), 1, 4,
                           attn_levels=(1,), norm_groups=8)
SMALL = SMALL_ATTN._replace(description='test: two levels', attn_levels=())


@pytest.fixture(scope='module')
def reference(diffusers, diffusers_config):
  """A seeded diffusers AutoencoderKL with random weights for a preset (built once)."""
  built = {}

  def get(preset):
    if preset not in built:
      torch.manual_seed(0)
      built[preset] = diffusers.AutoencoderKL(**diffusers_config(ldm.get_preset(preset))).eval()
    return built[preset]
  return get


def flax_shapes(preset, image_shape, kind='vae'):
  enc, dec = ldm.build(preset, image_shape, kind)
  model = AutoEncoder(enc, dec, kind=kind, output_activation='none')
  rngs = {'params': jax.random.key(0), 'reparam': jax.random.key(1)}
  variables = jax.eval_shape(lambda: model.init(rngs, jnp.zeros((1, *image_shape))))
  return enc, dec, variables['params']


def numpy_state(module) -> dict:
  return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def rel(ours, theirs) -> float:
  theirs = np.asarray(theirs)
  return float(np.max(np.abs(np.asarray(ours) - theirs)) / np.max(np.abs(theirs)))


def nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['kl_f8', 'kl_f4', 'kl_f4_small', 'kl_f8_small'])
def test_parameter_counts_match_diffusers(diffusers, diffusers_config, name):
  with torch.device('meta'):  # shapes only: no memory, no initialisation
    ref = diffusers.AutoencoderKL(**diffusers_config(ldm.LDM_PRESETS[name]))
  total = sum(p.numel() for p in ref.parameters())
  decoding = sum(p.numel() for k, p in ref.named_parameters()
                 if k.startswith(('decoder.', 'post_quant_conv.')))
  _, _, shapes = flax_shapes(name, (64, 64, 3))
  assert count(shapes) == total
  assert count(shapes['decoder']) == decoding  # post_quant_conv is the decoder's first layer
  if name == 'kl_f8':  # Stable Diffusion's VAE, as published
    assert (total, decoding) == (83_653_863, 49_490_199)


@pytest.mark.slow
@pytest.mark.parametrize('preset,image', [(SMALL_ATTN, (16, 24, 3)), ('kl_f8', (32, 32, 3))],
                         ids=['small_attention', 'kl_f8'])
def test_outputs_match_diffusers(reference, preset, image):
  ref = reference(preset)
  enc, dec, shapes = flax_shapes(preset, image)
  params = interop_ldm.convert(numpy_state(ref), shapes)
  x = np.random.default_rng(0).uniform(-1, 1, (2, *image)).astype(np.float32)
  with torch.no_grad():
    post = ref.encode(torch.from_numpy(x.transpose(0, 3, 1, 2))).latent_dist
    out = ref.decode(post.mean).sample
  moments = enc.apply({'params': params['encoder']}, x)
  h, w, z = ldm.latent_shape(preset, image)
  assert moments.shape == (2, h, w, z, 2)
  assert rel(moments[..., 0], nhwc(post.mean)) < TOL
  assert rel(moments[..., 1], nhwc(post.logvar)) < TOL
  # the decoder on diffusers' own mean, so its error is measured alone
  recon = dec.apply({'params': params['decoder']}, nhwc(post.mean))
  assert rel(recon, nhwc(out)) < TOL


@pytest.mark.slow
def test_safetensors_round_trip_reads_without_torch(reference, tmp_path, monkeypatch):
  from safetensors.torch import save_file
  ref = reference(SMALL_ATTN)
  path = str(tmp_path / 'vae.safetensors')
  save_file(ref.state_dict(), path)
  _, _, shapes = flax_shapes(SMALL_ATTN, (16, 24, 3))
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` would now fail
  state = interop_ldm.read_state_dict(path)
  monkeypatch.undo()
  chex.assert_trees_all_equal(interop_ldm.convert(state, shapes),
                              interop_ldm.convert(numpy_state(ref), shapes))


@pytest.mark.slow
def test_log_variance_is_clamped_like_diffusers(diffusers, diffusers_config):
  torch.manual_seed(0)
  ref = diffusers.AutoencoderKL(**diffusers_config(SMALL)).eval()
  with torch.no_grad():
    ref.quant_conv.bias[SMALL.z_channels:] += 100.0  # every log-variance far above 20
  enc, _, shapes = flax_shapes(SMALL, (16, 16, 3))
  params = interop_ldm.convert(numpy_state(ref), shapes)
  x = np.random.default_rng(1).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
  with torch.no_grad():
    theirs = ref.encode(torch.from_numpy(x.transpose(0, 3, 1, 2))).latent_dist.logvar
  ours = enc.apply({'params': params['encoder']}, x)[..., 1]
  np.testing.assert_array_equal(ours, 20.0)
  np.testing.assert_array_equal(ours, nhwc(theirs))


def to_compvis(state: dict, levels: int) -> dict:
  """diffusers names -> CompVis names, written from ldm/modules/diffusionmodules/model.py
  (independently of interop_ldm), 1x1-conv attention weights included."""
  out = {}
  for key, value in state.items():
    k = key.replace('conv_norm_out', 'norm_out').replace('conv_shortcut', 'nin_shortcut')
    k = k.replace('downsamplers.0.conv', 'downsample.conv')
    k = k.replace('upsamplers.0.conv', 'upsample.conv')
    k = k.replace('mid_block.resnets.0', 'mid.block_1').replace('mid_block.resnets.1',
                                                                  'mid.block_2')
    k = k.replace('mid_block.attentions.0', 'mid.attn_1')
    for old, new in (('group_norm', 'norm'), ('to_q', 'q'), ('to_k', 'k'), ('to_v', 'v'),
                     ('to_out.0', 'proj_out')):
      k = k.replace(f'.{old}.', f'.{new}.')
    k = k.replace('down_blocks.', 'down.').replace('.resnets.', '.block.')
    k = k.replace('.attentions.', '.attn.')
    if k.startswith('decoder.up_blocks.'):
      i, rest = k[len('decoder.up_blocks.'):].split('.', 1)
      k = f'decoder.up.{levels - 1 - int(i)}.{rest}'
    if k.split('.')[-2] in ('q', 'k', 'v', 'proj_out') and value.ndim == 2:
      value = value[:, :, None, None]  # CompVis' AttnBlock uses 1x1 convs
    out[k] = value
  return out


@pytest.mark.slow
@pytest.mark.parametrize('preset', [SMALL, 'kl_f8'], ids=['small', 'kl_f8'])
def test_compvis_naming_is_what_diffusers_converts_from(diffusers, reference, preset):
  ref = reference(preset)
  p = ldm.get_preset(preset)
  state = {k: v.detach() for k, v in ref.state_dict().items()}
  compvis = to_compvis(state, len(p.ch_mult))
  # a CompVis training checkpoint also holds its loss (discriminator, LPIPS, log-variance)
  compvis['loss.logvar'] = torch.zeros(())
  compvis['loss.discriminator.main.0.weight'] = torch.zeros(64, 3, 4, 4)
  back = diffusers.single_file_utils.convert_ldm_vae_checkpoint(compvis, ref.config)
  assert sorted(back) == sorted(state)
  for k, v in state.items():
    assert torch.equal(back[k], v), k

  _, _, shapes = flax_shapes(preset, (32, 32, 3))
  assert interop_ldm.naming(compvis) == 'compvis'
  expected = interop_ldm.convert(numpy_state(ref), shapes)
  compvis_np = {k: v.numpy() for k, v in compvis.items()}
  chex.assert_trees_all_equal(interop_ldm.convert(compvis_np, shapes), expected)
  # a whole Stable Diffusion checkpoint: the VAE under first_stage_model., beside the rest
  whole = {f'first_stage_model.{k}': v for k, v in compvis_np.items()}
  whole['model.diffusion_model.input_blocks.0.0.weight'] = np.zeros((320, 4, 3, 3), np.float32)
  chex.assert_trees_all_equal(interop_ldm.convert(whole, shapes), expected)


@pytest.mark.slow
def test_level_attention_in_both_namings_and_the_old_diffusers_names(reference):
  ref = reference(SMALL_ATTN)
  _, _, shapes = flax_shapes(SMALL_ATTN, (16, 24, 3))
  state = numpy_state(ref)
  expected = interop_ldm.convert(state, shapes)
  # diffusers' single-file converter does not place level attention (down.{i}.attn), so
  # this CompVis dict is checked against our diffusers conversion only
  compvis = {k: v.numpy() for k, v in to_compvis(
      {k: torch.from_numpy(v) for k, v in state.items()}, 2).items()}
  assert any('.down.1.attn.0.q.' in k for k in compvis)
  chex.assert_trees_all_equal(interop_ldm.convert(compvis, shapes), expected)
  # files from before diffusers 0.14: query/key/value/proj_attn, which diffusers still reads
  old = {}
  for k, v in state.items():
    for new, was in (('to_q', 'query'), ('to_k', 'key'), ('to_v', 'value'),
                     ('to_out.0', 'proj_attn')):
      k = k.replace(f'.{new}.', f'.{was}.')
    old[k] = v
  assert sorted(ref._fix_state_dict_keys_on_load(dict(old))) == sorted(state)
  chex.assert_trees_all_equal(interop_ldm.convert(old, shapes), expected)


def test_another_models_state_dict_names_the_first_tensor_it_cannot_place():
  net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.GroupNorm(4, 8))
  _, _, shapes = flax_shapes(SMALL, (16, 16, 3))
  with pytest.raises(ConfigError, match=r'^0\.weight: no parameter of this model takes it'):
    interop_ldm.convert(numpy_state(net), shapes)


@pytest.mark.slow
def test_missing_and_doubled_tensors_are_named(reference):
  ref = reference(SMALL_ATTN)
  _, _, shapes = flax_shapes(SMALL_ATTN, (16, 24, 3))
  state = numpy_state(ref)
  missing = {k: v for k, v in state.items() if k != 'decoder.up_blocks.1.resnets.0.conv2.bias'}
  with pytest.raises(ConfigError, match=r'fills decoder/up_1_res_0/conv2/bias \(the diffusers '
                     r'tensor decoder\.up_blocks\.1\.resnets\.0\.conv2\.bias\)'):
    interop_ldm.convert(missing, shapes)
  doubled = dict(state)
  doubled['encoder.mid_block.attentions.0.query.weight'] = \
      state['encoder.mid_block.attentions.0.to_q.weight']
  with pytest.raises(ConfigError, match='both fill encoder/mid_attn/to_q/kernel'):
    interop_ldm.convert(doubled, shapes)


@pytest.mark.slow
def test_a_kl_f4_checkpoint_into_kl_f8_names_the_tensor_and_both_shapes(reference):
  _, _, shapes = flax_shapes('kl_f8', (32, 32, 3))
  with pytest.raises(ConfigError) as info:
    interop_ldm.convert(numpy_state(reference('kl_f4')), shapes)
  message = str(info.value)
  assert '\n' not in message
  # the first tensor that differs: kl-f4 has 2 x 3 latent channels, kl-f8 2 x 4
  assert message.startswith('encoder.conv_out.weight has shape (6, 512, 3, 3), but this '
                            'model expects (8, 512, 3, 3)')


def test_image_sizes_must_divide_by_the_factor():
  for shape in ((36, 32, 3), (32, 36, 3)):
    with pytest.raises(ConfigError, match=r"'kl_f8' downsamples by 8: image size \d+x\d+ is "
                       'not divisible by 8'):
      ldm.build('kl_f8', shape)
  ldm.build('kl_f4', (36, 36, 3))
  with pytest.raises(ConfigError, match='unknown LDM preset'):
    ldm.build('kl_f5', (32, 32, 3))


def test_read_state_dict_files(tmp_path, monkeypatch):
  weights = {'encoder.conv_in.weight': torch.ones(2, 3, 3, 3, dtype=torch.bfloat16)}
  path = str(tmp_path / 'last.ckpt')
  torch.save({'state_dict': weights, 'global_step': 5}, path)  # a CompVis/Lightning layout
  got = interop_ldm.read_state_dict(path)
  assert list(got) == ['encoder.conv_in.weight'] and got['encoder.conv_in.weight'].dtype == \
      np.float32
  from safetensors.torch import save_file
  save_file(weights, str(tmp_path / 'bf16.safetensors'))
  np.testing.assert_array_equal(
      interop_ldm.read_state_dict(str(tmp_path / 'bf16.safetensors'))['encoder.conv_in.weight'],
      np.ones((2, 3, 3, 3), np.float32))
  with pytest.raises(ConfigError, match='no such file'):
    interop_ldm.read_state_dict(str(tmp_path / 'nope.safetensors'))
  import argparse
  unsafe = str(tmp_path / 'objects.ckpt')  # an object whose unpickling could run code
  torch.save({'state_dict': weights, 'callbacks': argparse.Namespace(every=1)}, unsafe)
  with pytest.raises(DataError, match=r'weights_only=True\) \(UnpicklingError\); if you trust'):
    interop_ldm.read_state_dict(unsafe)
  monkeypatch.setitem(sys.modules, 'torch', None)
  with pytest.raises(ConfigError, match='pip install torch'):
    interop_ldm.read_state_dict(path)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['kl_f4_small', 'kl_f8_small'])
def test_small_presets_in_the_autoencoder(name):
  image = (32, 32, 3)
  h, w, z = ldm.latent_shape(name, image)
  x = jnp.asarray(np.random.default_rng(0).random((2, *image)), jnp.float32)
  rngs = {'params': jax.random.key(0), 'reparam': jax.random.key(1)}
  for kind in ('ae', 'vae'):  # the VAE last: its params are compared below
    model = AutoEncoder(*ldm.build(name, image, kind), kind=kind, output_activation='none')
    params = model.init(rngs, x)['params']
    out = model.apply({'params': params}, x, rngs={'reparam': jax.random.key(2)})
    assert out.mean.shape == out.z.shape == (2, h, w, z) and out.recon.shape == x.shape
    assert (out.logvar is None) == (kind == 'ae')
  # the canonical-gradient convolutions compute the same function
  enc, dec = ldm.build(name, image, conv_impl='canonical')
  model_c = AutoEncoder(enc, dec, kind='vae', output_activation='none')
  chex.assert_trees_all_close(model_c.apply({'params': params}, x, sample=False),
                              model.apply({'params': params}, x, sample=False),
                              rtol=1e-5, atol=1e-5)
