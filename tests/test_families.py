"""The autoencoder families trained end to end: each trains as a member of a vmapped sweep
exactly as on its own, resumes bit for bit, loads, and runs the latent tools that apply
(refusing the others in one line). The families' math is tested against its defining
properties in test_families_math.py and test_adversarial.py; IWAE's objective here."""
import json
import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import checkpoint
from ae_jax.errors import ConfigError
from ae_jax.inference import load
from ae_jax.latent import fitted, tools
from ae_jax.latent.__main__ import main as latent_main
from ae_jax.models import fsq
from ae_jax.train import train_and_evaluate
from ae_jax.training import prepare
from ae_jax.workdir import Outputs

FAMILIES = {
    'vae': dict(),
    'ae': dict(model__kind='ae'),
    'vqvae': dict(model__kind='vqvae', model__vq__codes=16,
                  eval__metrics=('loss', 'recon', 'psnr', 'perplexity', 'code_usage',
                                 'commitment', 'codebook')),
    # FSQ's code width is len(levels): 4 channels, as BASE's latent_dim
    'fsq': dict(model__kind='fsq', model__fsq__levels=(8, 5, 5, 5),
                eval__metrics=('loss', 'recon', 'psnr', 'perplexity', 'code_usage',
                               'bits_per_code')),
    # a spatial FSQ code: 2x2 positions of 3 channels (the 2^8 levels (8, 6, 5) by name;
    # latent_dim 0: the width the levels fix)
    'fsq_conv': dict(model__kind='fsq', model__fsq__codebook='2^8', model__latent_dim=0,
                     model__arch='conv', model__conv__latent='spatial',
                     model__conv__channels=(8, 16),
                     eval__metrics=('loss', 'recon', 'psnr', 'perplexity', 'code_usage',
                                    'bits_per_code', 'bits_per_pixel', 'latent_per_pixel')),
    'iwae': dict(loss__objective='iwae', loss__iwae_samples=3),
    'tcvae': dict(loss__objective='tcvae', loss__beta=4.0),
    'factorvae': dict(loss__objective='factorvae', loss__critic_hidden=(32, 32)),
    'wae_mmd': dict(model__kind='ae', loss__objective='wae_mmd', loss__beta=10.0),
    'rae': dict(model__kind='ae', loss__objective='rae', loss__beta=1e-3),
}
# 8x8 digits in batches of 128: 11 steps an epoch
BASE = dict(data__image_size=8, train__batch_size=128, model__latent_dim=4)


@pytest.fixture(scope='module')
def family_config(tiny):
  """family_config(name, **overrides): FAMILIES[name] on 8x8 digits."""
  return lambda name, **overrides: tiny(**{**BASE, **FAMILIES[name], **overrides})


def _member(tree, k):
  return jax.tree_util.tree_map(lambda x: np.asarray(x)[k], tree)


@pytest.mark.slow
@pytest.mark.parametrize('name', list(FAMILIES))
def test_a_two_member_sweep_trains_each_member_as_on_its_own(name, family_config):
  rates = (1e-3, 3e-3)
  sweep = prepare(family_config(name, sweep__learning_rate=rates))
  images = jnp.asarray(sweep.dataset.train['image'])
  state, metrics = sweep.functions.epoch(sweep.init_state(), images, sweep.inputs, 0)
  assert np.all(np.isfinite(np.asarray(metrics['loss'])))
  for k, rate in enumerate(rates):
    one = prepare(family_config(name, train__learning_rate=rate))
    alone, _ = one.functions.epoch(one.init_state(), images, one.inputs, 0)
    alone = one.functions.stack(alone)
    chex.assert_trees_all_close(_member(state.params, k), _member(alone.params, 0),
                                rtol=1e-4, atol=1e-5)
    # the parts beside the parameters: a VQ-VAE's EMA codebook, FactorVAE's critic
    chex.assert_trees_all_close(_member(state.model_state, k), _member(alone.model_state, 0),
                                rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(_member(state.critic, k), _member(alone.critic, 0),
                                rtol=1e-4, atol=1e-5)
  if name in ('vqvae', 'factorvae'):  # those parts exist and trained
    part = state.model_state if name == 'vqvae' else state.critic['params']
    start = sweep.functions.stack(sweep.init_state())
    before = start.model_state if name == 'vqvae' else start.critic['params']
    assert jax.tree_util.tree_leaves(part)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(part),
                                                     jax.tree_util.tree_leaves(before)))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, family_config):
  """Each family trained two epochs in one go, and one epoch then resumed to two."""
  root = tmp_path_factory.mktemp('families')
  runs = {}
  for name in FAMILIES:
    full, part = str(root / f'{name}_full'), str(root / f'{name}_part')
    train_and_evaluate(family_config(name), full)
    train_and_evaluate(family_config(name, train__num_epochs=1), part)
    train_and_evaluate(family_config(name), part)
    runs[name] = (full, part)
  return runs


@pytest.mark.slow
@pytest.mark.parametrize('name', list(FAMILIES))
def test_each_family_resumes_bit_for_bit(trained, name, family_config):
  full, part = trained[name]
  setup = prepare(family_config(name))
  template = setup.functions.stack(setup.init_state(from_data=False))
  a, step_a = checkpoint.restore_state(os.path.join(full, 'checkpoints'), template)
  b, step_b = checkpoint.restore_state(os.path.join(part, 'checkpoints'), template)
  assert step_a == step_b == 2 * setup.steps_per_epoch
  chex.assert_trees_all_equal(a, b)  # parameters, optimizer, codebook and critic states


@pytest.mark.slow
@pytest.mark.parametrize('name', list(FAMILIES))
def test_each_family_loads_and_runs_the_latent_tools_that_apply(trained, name, tmp_path,
                                                                capsys):
  workdir = trained[name][0]
  m = load(workdir)
  assert m.kind == FAMILIES[name].get('model__kind', 'vae')
  x = np.asarray(m.reconstruct(np.zeros((2, *m.image_shape), np.float32)))
  assert x.shape == (2, *m.image_shape) and np.isfinite(x).all()
  src = tools.Source(m, workdir)
  out = lambda tool: Outputs(str(tmp_path / tool))
  assert tools.interpolate(src, [3, 227], 4, out('i'))['linear'].shape[0] == 4
  assert tools.traverse(src, 3, [0, 1], 2.0, 3, out('t'))['grid'].shape[:2] == (2, 3)
  gen = tools.generate(src, [3, 4], 2, 0.5, 0, out('g'))
  assert gen['gen_data'].shape[0] == 4 and list(gen['gen_ids']) == [3, 3, 4, 4]
  assert tools.encode(src, 'test', out('e'), limit=50)['mean'].shape == (50, *m.latent_shape)
  assert tools.edit(src, [3], [(0, 2.0, 0.0, 'dim 0 x2')], out('d'))['original'].shape[0] == 1
  sample = ['sample', '--workdir', workdir, '--num', '4', '--out', str(tmp_path / 's')]
  if m.kind == 'vae' or name == 'wae_mmd':  # a WAE matched its codes to the N(0, I) prior
    latent_main(sample)
    title = fitted.sample(src, 4, 0, 1.0, out('s2'))['title']
    assert 'prior samples z ~ N(0, 1² I)' in title
    assert ('the prior a WAE matches its codes to' in title) == (name == 'wae_mmd')
    if m.kind == 'vae':
      return
  else:  # another AE or a VQ-VAE has no prior: one line, then a fitted density works
    with pytest.raises(SystemExit) as e:
      latent_main(sample)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert 'Fit a density to its training codes first: python -m ae_jax.latent fit' in err
  quantized = m.kind in ('vqvae', 'fsq')
  density = ['--density', 'categorical'] if quantized else ['--density', 'gmm',
                                                            '--components', '3']
  fit_dir = os.path.join(workdir, 'latent', 'fit')
  latent_main(['fit', '--workdir', workdir, *density])
  latent_main(sample)
  params = fitted.read_density(os.path.join(fit_dir, fitted.DENSITY))
  title = fitted.sample(src, 4, 0, 1.0, out('s3'), params)['title']
  if quantized:
    assert params['probs'].shape == (*m.latent_shape[:-1], m.num_codes)
    assert 'categorical distribution of code indices' in title and 'needs such a prior' in title
  else:
    assert 'Gaussian mixture (3 components, full covariance)' in title
  assert np.load(os.path.join(tmp_path, 's', 'samples.npy')).shape == (4, *m.image_shape)


@pytest.mark.slow
def test_a_vq_vaes_decoder_sees_codebook_vectors_and_its_metrics_are_logged(trained):
  m = load(trained['vqvae'][0])
  mean, logvar = m.encode(np.zeros((3, *m.image_shape), np.float32))
  assert logvar is None and m.codebook().shape == (16, 4)
  idx = m.code_indices(mean)
  # decoding a code or its nearest codebook vector is the same image: decode quantises
  np.testing.assert_allclose(m.decode(mean), m.decode(m.codebook()[idx]), atol=1e-6)
  np.testing.assert_allclose(m.index_latents(idx), m.codebook()[idx])  # its entries
  summary = json.load(open(os.path.join(trained['vqvae'][0], 'summary.json')))
  ev = summary['members'][0]['eval']
  assert 1.0 <= ev['perplexity'] <= 16.0 and 0.0 < ev['code_usage'] <= 1.0
  assert {'commitment', 'codebook'} <= set(ev)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['fsq', 'fsq_conv'])
def test_an_fsq_models_decoder_sees_codes_on_its_grids_and_its_metrics_are_fsqs(trained,
                                                                                name):
  """What the decoder of a trained FSQ autoencoder sees is on the per-channel grids (the
  paper's definition), decoding a code or the codebook entry it rounds to is one image,
  and the logged usage and perplexity are fsq.usage / fsq.perplexity of the test codes."""
  workdir = trained[name][0]
  m = load(workdir)
  levels = m.model.quantizer.levels
  assert levels == ((8, 5, 5, 5) if name == 'fsq' else (8, 6, 5))
  assert m.latent_shape[-1] == len(levels) and m.num_codes == math.prod(levels)
  images, _, _ = tools.Source(m, workdir).split('test')
  mean, logvar = m.encode(images)
  assert logvar is None
  q = m.model.apply(m.variables, mean, method=m.model.quantize).quantized  # [N, ..., D]
  steps = np.asarray(q) * np.asarray([n // 2 for n in levels])
  np.testing.assert_allclose(steps, np.round(steps), atol=1e-5)
  for d, n in enumerate(levels):
    assert steps[..., d].min() >= -(n // 2) - 1e-5 and steps[..., d].max() <= (n - 1) // 2 + 1e-5
  # decode quantises: the code itself, its grid point without quantising again, and the
  # codebook entry of its index (through fsq.preimage) decode to the same images
  recon = m.decode(mean)
  on_grid = np.asarray(m.model.apply(m.variables, q, quantize=False, method=m.model.decode)[0])
  np.testing.assert_allclose(recon, on_grid, atol=1e-6)
  idx = m.code_indices(mean)
  np.testing.assert_array_equal(idx, np.asarray(fsq.codes_to_indices(q, levels)))
  np.testing.assert_allclose(m.codebook()[idx], q, atol=1e-6)
  np.testing.assert_allclose(m.decode(m.index_latents(idx)), recon, atol=1e-6)
  ev = json.load(open(os.path.join(workdir, 'summary.json')))['members'][0]['eval']
  k = math.prod(levels)
  # the compiled evaluation and this float path may round a boundary code apart: 1 code
  assert abs(ev['code_usage'] - float(fsq.usage(idx, levels))) <= 1.0 / k + 1e-6
  assert ev['perplexity'] == pytest.approx(float(fsq.perplexity(idx, levels)), rel=1e-2)
  assert ev['bits_per_code'] == pytest.approx(math.log2(k), rel=1e-6)
  assert {'commitment', 'codebook'}.isdisjoint(ev)  # no codebook terms: FSQ has none
  if name == 'fsq_conv':  # 2x2 positions of 3 channels on 8x8x1 digits
    assert ev['latent_per_pixel'] == pytest.approx(12 / 64)
    assert ev['bits_per_pixel'] == pytest.approx(4 * math.log2(240) / 64, rel=1e-6)
  with pytest.raises(ConfigError, match='FSQ autoencoder: it needs a prior over its codes'):
    m.sample_prior(2)


@pytest.mark.slow
def test_iwae_with_one_sample_is_the_elbo_objective_bit_for_bit(tiny):
  runs = {}
  for name, overrides in (('elbo', {}), ('iwae', dict(loss__objective='iwae',
                                                      loss__iwae_samples=1))):
    s = prepare(tiny(**BASE, **overrides))
    images = jnp.asarray(s.dataset.train['image'])
    runs[name] = s.functions.stack(s.functions.epoch(s.init_state(), images, s.inputs, 0)[0])
  chex.assert_trees_all_equal(runs['elbo'].params, runs['iwae'].params)


@pytest.mark.slow
def test_the_k_sample_bound_is_above_the_elbo_on_a_trained_model(trained, family_config):
  """On the trained VAE's test images: L_64 >= the ELBO objective's bound (-loss), in
  the reconstruction term's units, as Burda et al.'s L_K >= L_1 says."""
  m = load(trained['vae'][0])
  values = {}
  for k in (1, 64):
    s = prepare(family_config('vae', loss__objective='iwae', loss__iwae_samples=k,
                            eval__metrics=('loss', 'iwae_bound')))
    state = s.functions.stack(s.init_state())
    state = state.replace(params=jax.tree_util.tree_map(lambda v: jnp.asarray(v)[None],
                                                        m.params))
    values[k] = s.evaluator.batch_metrics(s.functions.unstack(state), final=True)['iwae_bound'][0]
  assert values[64] > values[1] + 0.05, values  # nats of margin on 8x8 digits


def test_an_objective_needs_its_model_kind(tiny):
  from ae_jax import config_lib
  with pytest.raises(ConfigError, match=r"loss.objective='wae_mmd' trains models of kind ae, "
                                        r"not model.kind='vae'"):
    config_lib.resolve(tiny(loss__objective='wae_mmd'))
  with pytest.raises(ConfigError, match='cannot be swept by masking'):
    config_lib.resolve(tiny(model__kind='vqvae', sweep__latent_dim=(2, 4)))
  assert tiny().loss.objective == 'elbo'  # the default objective
