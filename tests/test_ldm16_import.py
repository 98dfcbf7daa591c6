"""The 16-channel KL autoencoders (sd3_vae, flux1_vae): their presets against the published
diffusers configs, parameter counts at full size, the import command against diffusers'
outputs (no quant convs, the latent factors recorded), and the mapping of every parameter
an LDM model can hold.

The command test runs each preset's layout (levels, blocks, 16 latent channels, 32 norm
groups, no quant convs) at a quarter of its widths, 32-64-128-128 instead of
128-256-512-512, so that two models compile in seconds; the counts are at full size.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from ae_jax import config_lib, interop, interop_ldm
from ae_jax.errors import ConfigError
from ae_jax.inference import load
from ae_jax.models import ldm
from ae_jax.models.base import AutoEncoder

NAMES = ('sd3_vae', 'flux1_vae')
FULL = {name: ldm.LDM_PRESETS[name] for name in NAMES}  # the `imported` fixture shrinks them
# vae/config.json of stabilityai/stable-diffusion-3-medium-diffusers and
# black-forest-labs/FLUX.1-dev (docs/interop.md says where they were read)
PUBLISHED = {
    name: dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16,
               norm_num_groups=32, mid_block_add_attention=True, use_quant_conv=False,
               use_post_quant_conv=False, scaling_factor=scale, shift_factor=shift)
    for name, scale, shift in (('sd3_vae', 1.5305, 0.0609), ('flux1_vae', 0.3611, 0.1159))}
FLAGS = ['--config.data.name=photos', '--config.data.num_examples=40',
         '--config.data.image_size=16', '--config.train.batch_size=8',
         '--config.train.num_epochs=1', '--config.progress=False',
         '--config.figures.enabled=False', "--config.eval.metrics=('loss','recon','psnr')",
         '--config.loss.reconstruction=l1', '--config.loss.beta=1e-6']


def param_shapes(preset, image_shape=(64, 64, 3), learned_logvar=False):
  enc, dec = ldm.build(preset, image_shape)
  model = AutoEncoder(enc, dec, kind='vae', output_activation='none', model_range='pm1',
                      learned_logvar=learned_logvar)
  rngs = {'params': jax.random.key(0), 'reparam': jax.random.key(1)}
  return jax.eval_shape(lambda: model.init(rngs, jnp.zeros((1, *image_shape))))['params']


def count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('name', NAMES)
def test_the_presets_are_the_published_configs(name, diffusers_config):
  config = diffusers_config(FULL[name])
  assert {k: config[k] for k in PUBLISHED[name]} == PUBLISHED[name]
  published = PUBLISHED[name]
  assert ldm.latent_normalization(FULL[name]) == {'scaling_factor': published['scaling_factor'],
                                            'shift_factor': published['shift_factor']}


@pytest.mark.slow  # builds full-size models or draws figures: seconds
@pytest.mark.parametrize('name', NAMES)
def test_parameter_counts_at_full_size_match_diffusers(diffusers, diffusers_config, name):
  with torch.device('meta'):  # shapes only: no memory, no initialisation
    ref = diffusers.AutoencoderKL(**diffusers_config(FULL[name]))
  assert ref.quant_conv is None and ref.post_quant_conv is None
  shapes = param_shapes(FULL[name])
  assert 'quant_conv' not in shapes['encoder'] and 'post_quant_conv' not in shapes['decoder']
  total = sum(p.numel() for p in ref.parameters())
  assert count(shapes) == total
  # 167.6 MB in float16: the published vae/diffusion_pytorch_model.safetensors has 168 MB
  assert total == 83_819_683


@pytest.fixture(scope='module')
def imported(tmp_path_factory, diffusers, diffusers_config):
  """Each preset at a quarter of its widths, in the registry while this module's tests run
  (the workdir's config names the preset): a seeded diffusers AutoencoderKL with its
  config, through the import command -> {name: (diffusers model, workdir)}."""
  from safetensors.torch import save_file
  out = {}
  with pytest.MonkeyPatch.context() as mp:
    for name in NAMES:
      reduced = ldm.LDM_PRESETS[name]._replace(ch=32)
      mp.setitem(ldm.LDM_PRESETS, name, reduced)  # the registry models/__init__ reads
      torch.manual_seed(0)
      ref = diffusers.AutoencoderKL(**diffusers_config(reduced)).eval()
      root = tmp_path_factory.mktemp(name)
      path = str(root / 'vae.safetensors')
      save_file(ref.state_dict(), path)
      workdir = str(root / 'w')
      interop.main(['--torch-checkpoint', path, '--config', 'base', '--workdir', workdir,
                    f'--config.model.preset={name}', *FLAGS])
      out[name] = ref, workdir
    yield out


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_the_import_command_computes_what_diffusers_does(imported, name,
                                                         computes_what_diffusers_does):
  ref, workdir = imported[name]
  m = load(workdir)
  assert m.epoch == 0 and m.latent_shape == (2, 2, 16)
  assert 'quant_conv' not in m.params['encoder'] and 'post_quant_conv' not in m.params['decoder']
  computes_what_diffusers_does(m, ref)
  # the factors a latent prior normalizes these codes by, beside the model
  record = json.load(open(os.path.join(workdir, 'model.json')))['latent_normalization']
  assert record == {'scaling_factor': ref.config.scaling_factor,
                    'shift_factor': ref.config.shift_factor, 'preset': name}


def _state(diffusers, diffusers_config, preset, seed=0) -> dict:
  torch.manual_seed(seed)
  ref = diffusers.AutoencoderKL(**diffusers_config(preset))
  return {k: v.detach().numpy() for k, v in ref.state_dict().items()}


SMALL16 = FULL['sd3_vae']._replace(ch=8, ch_mult=(1, 2), num_res_blocks=1,
                                               norm_groups=4)


def test_quant_convs_on_one_side_only_are_named(diffusers, diffusers_config):
  with_quant = SMALL16._replace(quant_conv=True, post_quant_conv=True)
  # a file with quant convs (an SD 1.x-style layout) into a model without them ...
  with pytest.raises(ConfigError, match=r'^quant_conv\.weight: no parameter of this model'):
    interop_ldm.convert(_state(diffusers, diffusers_config, with_quant),
                        param_shapes(SMALL16, (16, 16, 3)))
  # ... and the reverse
  with pytest.raises(ConfigError, match=r'nothing in the state dict fills '
                     r'(encoder/quant_conv|decoder/post_quant_conv)/(kernel|bias)'):
    interop_ldm.convert(_state(diffusers, diffusers_config, SMALL16),
                        param_shapes(with_quant, (16, 16, 3)))


def test_a_learned_log_variance_keeps_its_value_and_the_rest_is_filled(diffusers, diffusers_config):
  state = _state(diffusers, diffusers_config, SMALL16)
  shapes = param_shapes(SMALL16, (16, 16, 3), learned_logvar=True)
  params = interop_ldm.convert(state, shapes)
  assert float(params['output_logvar']) == 0.0  # AutoEncoder's init, from an abstract tree
  concrete = jax.tree.map(lambda s: np.full(s.shape, -1.5, np.float32), shapes)
  params = interop_ldm.convert(state, concrete)
  assert float(params['output_logvar']) == -1.5  # kept as given
  plain = interop_ldm.convert(state, param_shapes(SMALL16, (16, 16, 3)))
  for part in ('encoder', 'decoder'):
    jax.tree.map(np.testing.assert_array_equal, params[part], plain[part])


def test_a_parameter_no_autoencoder_kl_has_is_one_config_error(diffusers, diffusers_config):
  shapes = dict(param_shapes(SMALL16, (16, 16, 3)))
  shapes['quantizer'] = {'codebook': jax.ShapeDtypeStruct((512, 16), jnp.float32)}
  with pytest.raises(ConfigError, match=r"^quantizer/codebook: an AutoencoderKL state dict "
                     r"has nothing for this parameter; import into a VAE \(model.kind='vae'\)$"):
    interop_ldm.convert(_state(diffusers, diffusers_config, SMALL16), shapes)


@pytest.mark.parametrize('name', NAMES)
def test_their_latent_size_cannot_be_swept_by_masking(name, tiny):
  with pytest.raises(ConfigError, match='cannot be swept by masking'):
    config_lib.resolve(tiny(model__preset=name, model__latent_dim=0,
                                   sweep__latent_dim=(8, 16)))
