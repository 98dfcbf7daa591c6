"""Latent tools: the pure operations, each CLI tool on trained wafer models (files and their
contents), and the bad inputs (one clear line, nothing written)."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import compile as compile_lib
from ae_jax.errors import ConfigError
from ae_jax.inference import load
from ae_jax.latent import ops, tools
from ae_jax.latent.__main__ import main as latent_main


# ---- pure operations ---------------------------------------------------------------------


@pytest.mark.slow
def test_interpolation_hits_both_ends_and_slerp_keeps_the_radius():
  z0, z1 = jnp.array([3.0, 0.0, 0.0]), jnp.array([0.0, 3.0, 0.0])
  for mode in ('linear', 'spherical'):
    path = ops.interpolate(z0, z1, 5, mode)
    assert path.shape == (5, 3)
    np.testing.assert_allclose(path[0], z0, atol=1e-6)
    np.testing.assert_allclose(path[-1], z1, atol=1e-6)
  np.testing.assert_allclose(jnp.linalg.norm(ops.slerp(z0, z1, jnp.linspace(0, 1, 7)), axis=1),
                             3.0, rtol=1e-5)
  mid = ops.lerp(z0, z1, jnp.array([0.5]))[0]
  np.testing.assert_allclose(mid, [1.5, 1.5, 0.0])
  # parallel codes fall back to the straight line instead of dividing by sin(0)
  np.testing.assert_allclose(ops.slerp(z0, 2 * z0, jnp.array([0.5]))[0], [4.5, 0, 0], rtol=1e-5)


@pytest.mark.slow
def test_interpolation_takes_the_common_names_of_its_modes():
  z0, z1 = np.array([3.0, 0.0, 0.0]), np.array([0.0, 3.0, 0.0])
  for alias, mode in (('lerp', 'linear'), ('slerp', 'spherical')):
    np.testing.assert_array_equal(ops.interpolate(z0, z1, 3, alias),
                                  ops.interpolate(z0, z1, 3, mode))
  with pytest.raises(ConfigError, match=r"interpolation mode 'cubic': expected one of linear, "
                     r"lerp, spherical, slerp"):
    ops.interpolate(z0, z1, 3, 'cubic')


@pytest.mark.slow
def test_edit_and_traverse_touch_only_their_dimension():
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
  np.testing.assert_array_equal(ops.edit(z, 2, 1.0, 0.0), z)
  e = ops.edit(z, 2, 2.0, 5.0)
  np.testing.assert_allclose(e[:, 2], 2 * z[:, 2] + 5, rtol=1e-6)
  np.testing.assert_array_equal(np.delete(np.asarray(e), 2, 1), np.delete(np.asarray(z), 2, 1))
  spatial = jnp.ones((1, 2, 2, 3))
  np.testing.assert_array_equal(ops.edit(spatial, 1, 3.0)[..., 1], 3.0)  # a channel
  t = ops.traverse(z[0], 4, jnp.array([-1.0, 0.0, 1.0]))
  np.testing.assert_array_equal(t[:, 4], [-1, 0, 1])
  np.testing.assert_array_equal(t[:, :4], np.repeat(np.asarray(z[:1, :4]), 3, 0))


@pytest.mark.slow
def test_add_noise_layout_schedule_and_fitted_gaussian():
  codes = jnp.arange(6.0).reshape(2, 3)
  same = ops.add_noise(jax.random.PRNGKey(0), codes, 4, 0.0)
  np.testing.assert_array_equal(same, np.repeat(np.asarray(codes), 4, 0))
  np.testing.assert_allclose(ops.sigma_schedule(5), [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)
  noisy = ops.add_noise(jax.random.PRNGKey(1), jnp.zeros((1, 20000)), 3, ops.sigma_schedule(3))
  np.testing.assert_allclose(np.std(np.asarray(noisy), axis=1), [0.1, 0.2, 0.3], rtol=0.03)
  cov = np.array([[2.0, 0.6], [0.6, 0.5]])
  x = np.random.default_rng(0).multivariate_normal([1.0, -2.0], cov, 20000)
  mean, tril = ops.fit_gaussian(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(mean, [1.0, -2.0], atol=0.03)
  np.testing.assert_allclose(tril @ tril.T, cov, atol=0.05)
  draws = ops.sample_gaussian(jax.random.PRNGKey(2), mean, tril, 20000, (2,))
  np.testing.assert_allclose(np.cov(np.asarray(draws).T), cov, atol=0.06)


@pytest.mark.slow
def test_dimension_order_and_nearest_distance():
  mean = jnp.stack([jnp.zeros(500), 3 * jax.random.normal(jax.random.PRNGKey(0), (500,)),
                    0.5 * jnp.ones(500)], axis=1)
  order, _ = ops.order_dims(mean)  # AE: by variance
  assert list(np.asarray(order))[0] == 1
  logvar = jnp.zeros_like(mean)  # VAE: KL = mean^2 / 2 here
  order, kl = ops.order_dims(mean, logvar)
  assert list(np.asarray(order)) == [1, 2, 0]
  np.testing.assert_allclose(kl[2], 0.125, rtol=1e-5)
  data = np.random.default_rng(0).random((50, 4, 4, 1)).astype(np.float32)
  np.testing.assert_allclose(ops.nearest_distance(data[:5], data, chunk=7), 0.0, atol=1e-3)
  assert np.all(ops.nearest_distance(data[:5] + 0.1, data) > 0.05)


def test_id_and_edit_parsing():
  assert tools.parse_ids('1-3,10') == [1, 2, 3, 10]
  assert tools.parse_edits('0*2,2+5,1-1') == [(0, 2.0, 0.0, 'dim 0 ×2'), (2, 1.0, 5.0, 'dim 2 +5'),
                                             (1, 1.0, -1.0, 'dim 1 -1')]
  for bad in ('a', '5-2', '1,,2'):
    with pytest.raises(ConfigError, match='--ids'):
      tools.parse_ids(bad)
  with pytest.raises(ConfigError, match='--edits'):
    tools.parse_edits('0/2')


# ---- the tools on trained models ---------------------------------------------------------


def _run(capsys, *argv):
  latent_main(list(argv))
  return capsys.readouterr().out


def _error(capsys, *argv) -> str:
  with pytest.raises(SystemExit) as e:
    latent_main(list(argv))
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith('error: ') and '\n' not in err and 'Traceback' not in err
  return err


@pytest.mark.slow
def test_interpolate_ends_at_the_endpoints_reconstructions(wafer_runs, tmp_path, capsys):
  out = tmp_path / 'interp'
  printed = _run(capsys, 'interpolate', '--workdir', wafer_runs['vae'], '--ids', '3,227',
                 '--steps', '6', '--out', str(out))
  assert f'wrote {out}/interpolate.png' in printed
  arrays = np.load(out / 'interpolate.npz')
  model = load(wafer_runs['vae'])
  recon = model.reconstruct(arrays['endpoints'])
  for mode in ('linear', 'spherical'):
    assert arrays[mode].shape == (6, 26, 26, 3)
    np.testing.assert_allclose(arrays[mode][0], recon[0], atol=1e-5)
    np.testing.assert_allclose(arrays[mode][-1], recon[1], atol=1e-5)
  assert not np.allclose(arrays['linear'][3], arrays['linear'][0])


@pytest.mark.slow
def test_edit_identity_is_the_reconstruction_and_edits_change_it(wafer_runs, tmp_path, capsys):
  _run(capsys, 'edit', '--workdir', wafer_runs['ae'], '--ids', '0-3', '--edits', '0*1,1+0,0*2,2+5',
       '--out', str(tmp_path))
  a = np.load(tmp_path / 'edit.npz')
  np.testing.assert_allclose(a['dim0_scale1_shift0'], a['reconstruction'], atol=1e-6)
  np.testing.assert_allclose(a['dim1_scale1_shift0'], a['reconstruction'], atol=1e-6)
  assert np.abs(a['dim2_scale1_shift5'] - a['reconstruction']).max() > 1e-3
  assert a['original'].shape == (4, 26, 26, 3)
  assert os.path.getsize(tmp_path / 'edit.png') > 1000


@pytest.mark.slow
def test_generate_writes_labelled_samples_in_the_datasets_layout(wafer_runs, tmp_path, capsys):
  args = ('generate', '--workdir', wafer_runs['vae'], '--ids', '1-3,200', '--per-id', '4',
          '--sigma', 'schedule', '--seed', '3')
  _run(capsys, *args, '--out', str(tmp_path / 'a'))
  _run(capsys, *args, '--out', str(tmp_path / 'b'))
  data = np.load(tmp_path / 'a' / 'gen_data.npy')
  labels = np.load(tmp_path / 'a' / 'gen_label.npy')
  assert data.shape == (16, 26, 26) and data.dtype == np.uint8  # WM-811K maps: 0, 1, 2
  assert set(np.unique(data)) <= {0, 1, 2}
  assert len(labels) == len(data)
  source = tools.Source(load(wafer_runs['vae']), wafer_runs['vae'])
  _, source_labels = source.images([1, 2, 3, 200])
  np.testing.assert_array_equal(labels, np.repeat(source_labels, 4))
  np.testing.assert_array_equal(np.load(tmp_path / 'a' / 'gen_ids.npy'),
                                np.repeat([1, 2, 3, 200], 4))
  np.testing.assert_allclose(np.load(tmp_path / 'a' / 'gen_sigma.npy')[:4], [0.1, 0.2, 0.3, 0.4])
  np.testing.assert_array_equal(data, np.load(tmp_path / 'b' / 'gen_data.npy'))  # seeded
  # per-class mode: 2 examples of each named class, 3 samples each
  _run(capsys, 'generate', '--workdir', wafer_runs['vae'], '--per-class', '2', '--classes',
       'Center,Edge-Loc,none', '--per-id', '3', '--out', str(tmp_path / 'c'))
  names = load(wafer_runs['vae']).class_names
  got = [names[i] for i in np.load(tmp_path / 'c' / 'gen_label.npy')]
  assert got == ['Center'] * 6 + ['Edge-Loc'] * 6 + ['none'] * 6


@pytest.mark.slow
def test_sample_reconstruct_encode_and_same_noise(wafer_runs, tmp_path, capsys):
  err = _error(capsys, 'sample', '--workdir', wafer_runs['ae'], '--out', str(tmp_path / 's'))
  assert 'is an AE' in err and 'python -m ae_jax.latent fit' in err
  assert not (tmp_path / 's').exists()
  _run(capsys, 'fit', '--workdir', wafer_runs['ae'])
  _run(capsys, 'sample', '--workdir', wafer_runs['ae'], '--num', '6', '--out', str(tmp_path / 's'))
  assert np.load(tmp_path / 's' / 'samples.npy').shape == (6, 26, 26, 3)
  _run(capsys, 'sample', '--workdir', wafer_runs['vae'], '--temperature', '0.5', '--out',
       str(tmp_path / 'v'))
  z = np.load(tmp_path / 'v' / 'codes.npy')
  assert z.shape == (16, 6) and 0.3 < z.std() < 0.7

  # epochs 1 and 2 of one run, then AE and VAE side by side
  _run(capsys, 'reconstruct', '--workdir', wafer_runs['vae'], '--epochs', '1,2', '--num', '5',
       '--out', str(tmp_path / 'r'))
  r = np.load(tmp_path / 'r' / 'reconstruct.npz')
  assert r['originals'].shape == (5, 26, 26, 3) and list(r['models']) == ['epoch 1', 'epoch 2']
  assert not np.allclose(r['recon_0'], r['recon_1'])
  _run(capsys, 'reconstruct', '--workdir', wafer_runs['ae'], '--with', wafer_runs['vae'], '--ids',
       '5,6', '--out', str(tmp_path / 'r2'))
  np.testing.assert_allclose(np.load(tmp_path / 'r2' / 'reconstruct.npz')['recon_0'],
                             load(wafer_runs['ae']).reconstruct(
                                 np.load(tmp_path / 'r2' / 'reconstruct.npz')['originals']),
                             atol=1e-6)

  _run(capsys, 'encode', '--workdir', wafer_runs['vae'], '--out', str(tmp_path / 'e'))
  codes = np.load(tmp_path / 'e' / 'codes.npz')
  assert codes['mean'].shape == codes['logvar'].shape == (len(codes['ids']), 6)
  assert len(codes['labels']) == len(codes['ids']) > 0

  _run(capsys, 'same-noise', '--workdir', wafer_runs['ae'], '--with', wafer_runs['vae'], '--num',
       '4', '--sets', '2', '--out', str(tmp_path / 'n'))
  n = np.load(tmp_path / 'n' / 'same_noise.npz')
  assert n['noise'].shape == (2, 4, 6)
  assert n['decoded_0'].shape == n['decoded_1'].shape == (2, 4, 26, 26, 3)
  np.testing.assert_allclose(n['decoded_1'][0], load(wafer_runs['vae']).decode(n['noise'][0]),
                             atol=1e-6)


@pytest.mark.slow
def test_traverse_orders_dimensions_by_kl(wafer_runs, tmp_path, capsys):
  _run(capsys, 'traverse', '--workdir', wafer_runs['vae'], '--ids', '7', '--points', '5',
       '--out', str(tmp_path))
  t = np.load(tmp_path / 'traverse.npz')
  assert t['grid'].shape == (6, 5, 26, 26, 3)
  assert list(t['dims']) == list(t['order'])
  assert np.all(np.diff(t['score'][t['order']]) <= 1e-7)  # most informative first
  # each row sweeps around the image's own code: its +0.0σ column is the reconstruction
  model = load(wafer_runs['vae'])
  image, _ = tools.Source(model, wafer_runs['vae']).images([7])
  recon = model.reconstruct(image)[0]
  for row in t['grid']:
    np.testing.assert_allclose(row[2], recon, atol=1e-5)
  assert not np.allclose(t['grid'][0, 0], recon, atol=1e-3)  # the ends move away from it


@pytest.mark.slow
def test_bad_inputs_are_one_line_and_write_nothing(wafer_runs, tmp_path, capsys):
  out = str(tmp_path / 'nothing')
  err = _error(capsys, 'interpolate', '--workdir', wafer_runs['vae'], '--ids', '3,99999',
               '--out', out)
  assert '99999' in err and 'from 0 to 239' in err
  err = _error(capsys, 'edit', '--workdir', wafer_runs['vae'], '--edits', '9*2', '--out', out)
  assert 'dimension(s) [9]' in err and '0..5' in err
  err = _error(capsys, 'same-noise', '--workdir', wafer_runs['vae'], '--with',
               wafer_runs['vae4'], '--out', out)
  assert 'one latent size' in err
  err = _error(capsys, 'sample', '--workdir', str(tmp_path / 'absent'))
  assert 'not a trained workdir' in err
  err = _error(capsys, 'reconstruct', '--workdir', wafer_runs['vae'], '--epochs', '7',
               '--out', out)
  assert 'no checkpoint at epoch 7' in err
  assert not os.path.exists(out)


@pytest.mark.slow
def test_cli_end_to_end_in_a_subprocess(wafer_runs, tmp_path, root, hang_s, checkout_env):
  r = subprocess.run([sys.executable, '-m', 'ae_jax.latent', 'reconstruct', '--workdir',
                      wafer_runs['vae'], '--num', '3', '--out', str(tmp_path)], cwd=root,
                     env=checkout_env(), capture_output=True, text=True, timeout=hang_s)
  assert r.returncode == 0, r.stderr
  assert r.stdout.splitlines()[0] == f'wrote {tmp_path}/reconstruct.png'
  assert os.path.getsize(tmp_path / 'reconstruct.png') > 1000


@pytest.mark.slow
def test_loading_needs_no_data_and_compiles_no_model_program(tmp_path, tiny):
  """A model trained on the user's .npy loads (and reconstructs) after the file is gone;
  loading itself compiles nothing of the model (what made it quick): the model's programs
  compile on first use."""
  from jax import monitoring
  from ae_jax.train import train_and_evaluate
  images = np.random.default_rng(0).random((60, 8, 8, 1)).astype(np.float32)
  path = tmp_path / 'mine.npy'
  np.save(path, images)
  workdir = str(tmp_path / 'run')
  train_and_evaluate(tiny(data__name='npy', data__path=str(path), train__num_epochs=1,
                          train__batch_size=16), workdir)
  expected = load(workdir).reconstruct(images[:3])
  os.remove(path)
  lowered = []  # the name of every program JAX lowers to XLA from here on

  def listen(event, _, fun_name='', **kw):
    if event == '/jax/core/compile/jaxpr_to_mlir_module_duration':
      lowered.append(fun_name)

  monitoring.register_event_duration_secs_listener(listen)
  try:
    with compile_lib.shared():  # not the first load's compilations
      model = load(workdir)
      at_load = list(lowered)
      np.testing.assert_allclose(model.reconstruct(images[:3]), expected, atol=1e-6)
  finally:
    monitoring.unregister_event_duration_listener(listen)
  assert model.image_shape == (8, 8, 1)
  # loading compiles at most single array operations (Orbax's), none of the model's programs,
  # which reconstruct() then compiles
  model_programs = set(lowered) - set(at_load)
  assert model_programs and not model_programs & set(at_load), (at_load, lowered)
  assert all(name.count('(') == 1 and name.startswith('jit(') and '<lambda>' not in name
             and not any(w in name for w in ('encode', 'decode', 'step', 'apply', 'init'))
             for name in at_load), at_load
