"""PyTorch interop: weights of real torch.nn modules reproduce their outputs."""
import collections
import os
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest
import torch

from ae_jax import interop, torch_models
from ae_jax.errors import ConfigError, DataError
from ae_jax.models import PRESETS, build_model, layers

CASES = [('mlp_ae_50', 128, (50, 50, 3)), ('mlp_vae_50', 256, (50, 50, 3)),
         ('fcn_ae_64', 10, (64, 64, 3)), ('mlp_ae_50_refine', 8, (10, 10, 3)),
         ('conv_ae_small', 64, (26, 26, 3)),
         ('conv_ae_bn_mish', 1024, (64, 64, 3)), ('conv_vae_bn_mish', 128, (64, 64, 3))]


@pytest.fixture
def paired(tiny):
  """paired(name, latent, shape, seed=0) -> (torch module in eval mode, flax model, its
  variables): preset `name` built both ways."""
  def make(name, latent, shape, seed=0):
    torch.manual_seed(seed)
    tm = torch_models.build(name, shape, latent)
    torch_models.randomize_batchnorm(tm, seed)
    tm.eval()
    cfg = tiny(model__preset=name, model__kind=PRESETS[name][0], model__latent_dim=latent)
    model = build_model(cfg.model, shape)
    # jitted: the BN+Mish presets' large kernels drawn op by op take 3x as long
    v = jax.device_get(jax.jit(model.init)(
        {'params': jax.random.PRNGKey(0), 'reparam': jax.random.PRNGKey(0)},
        np.zeros((1, *shape), np.float32)))
    return tm, model, v
  return make


def _torch_forward(tm, name, x):
  xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
  if torch_models.uses_tanh(name):
    xt = xt * 2 - 1
  with torch.no_grad():
    out = tm(xt)
  return out if isinstance(out, tuple) else (out,)


@pytest.mark.slow
@pytest.mark.parametrize('name,latent,shape', CASES, ids=[c[0] for c in CASES])
def test_imported_weights_reproduce_torch_eval_output(name, latent, shape, paired):
  tm, model, v = paired(name, latent, shape)
  scale = 2.0 if name == 'mlp_vae_50' else 1.0  # that VAE's head is log(sigma)
  params, stats = interop.convert(tm.state_dict(), v['params'], v.get('batch_stats', {}), shape,
                                  'chw', scale)
  x = np.random.default_rng(1).random((2, *shape)).astype(np.float32)
  out_t = _torch_forward(tm, name, x)
  # jitted: op by op, the BN+Mish presets take 6x as long
  o = jax.jit(lambda v, x: model.apply(v, x, sample=False))(
      {'params': params, **({'batch_stats': stats} if stats else {})}, x)
  rec = np.asarray(o.recon) * 2 - 1 if torch_models.uses_tanh(name) else np.asarray(o.recon)
  rec_t = out_t[0].numpy().transpose(0, 2, 3, 1)
  assert np.abs(rec - rec_t).max() <= 1e-5 * np.abs(rec_t).max()
  if PRESETS[name][0] == 'vae':
    mean_t, head_t = (t.numpy() for t in out_t[1:])
    if mean_t.ndim == 4:
      mean_t, head_t = mean_t.transpose(0, 2, 3, 1), head_t.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(o.mean, mean_t, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(o.logvar, scale * head_t, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_layers_match_by_order_and_shape_not_names(paired):
  name, latent, shape = 'conv_ae_small', 64, (26, 26, 3)
  tm, model, v = paired(name, latent, shape)
  renamed = collections.OrderedDict(
      (f'{i // 2}.{k.rsplit(".", 1)[1]}', t) for i, (k, t) in enumerate(tm.state_dict().items()))
  assert list(renamed)[:2] == ['0.weight', '0.bias']  # a bare nn.Sequential's names
  a, _ = interop.convert(tm.state_dict(), v['params'], {}, shape)
  b, _ = interop.convert(renamed, v['params'], {}, shape)
  chex.assert_trees_all_equal(a, b)


@pytest.mark.slow
def test_mlp_flatten_order_hwc(paired):
  name, latent, shape = 'mlp_ae_50', 16, (5, 4, 3)
  tm, model, v = paired(name, latent, shape)
  params, _ = interop.convert(tm.state_dict(), v['params'], {}, shape, 'hwc')
  x = np.random.default_rng(0).random((2, *shape)).astype(np.float32)
  with torch.no_grad():  # torch code that flattens NHWC images directly
    rec_t = tm.decoder(tm.encoder(torch.from_numpy(x).reshape(2, -1))).numpy().reshape(x.shape)
  np.testing.assert_allclose(model.apply({'params': params}, x).recon, rec_t, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_mismatch_lists_expected_and_found_layers(paired):
  tm, _, _ = paired('conv_ae_small', 64, (26, 26, 3))
  _, model, v = paired('conv_ae_bn_mish', 1024, (64, 64, 3))
  with pytest.raises(ConfigError) as e:
    interop.convert(tm.state_dict(), v['params'], v['batch_stats'], (64, 64, 3))
  msg = str(e.value)
  assert 'do not fit this model' in msg
  assert 'expected encoder/conv_0 conv (64, 3, 4, 4)' in msg
  assert 'found conv1 conv/tconv (16, 3, 3, 3)' in msg


@pytest.mark.slow
@pytest.mark.parametrize('k,s,p,op', [(4, 2, 1, 0), (3, 2, 1, 1), (3, 2, 2, 1), (5, 1, 2, 0),
                                      (4, 2, 1, 1)])
@pytest.mark.parametrize('size', [7, 8])
def test_conv_transpose_equals_torch(k, s, p, op, size):
  rng = np.random.default_rng(size)
  x = rng.normal(size=(2, size, size + 1, 3)).astype(np.float32)
  w = rng.normal(size=(3, 5, k, k)).astype(np.float32)  # torch [in, out, k, k]
  b = rng.normal(size=(5,)).astype(np.float32)
  ref = torch.nn.functional.conv_transpose2d(
      torch.from_numpy(x.transpose(0, 3, 1, 2)), torch.from_numpy(w), torch.from_numpy(b),
      stride=s, padding=p, output_padding=op).numpy().transpose(0, 2, 3, 1)
  for impl in (layers.conv_transpose_phases, layers.conv_transpose_subpixel):
    out = impl(x, w.transpose(2, 3, 0, 1), s, p, op) + b
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_interop_cli_writes_a_workdir_every_command_can_use(tmp_path, capsys, root, paired,
                                                            hang_s, checkout_env):
  from ae_jax import config_lib, inference, workdir as wd
  from ae_jax.train import train_and_evaluate
  tm, _, _ = paired('conv_ae_small', 64, (26, 26, 3))
  ckpt = str(tmp_path / 'model.pt')
  torch.save({'state_dict': tm.state_dict()}, ckpt)
  workdir = str(tmp_path / 'imported')
  r = subprocess.run([sys.executable, '-m', 'ae_jax.interop', '--torch-checkpoint', ckpt,
                      '--config', 'configs/conv_ae_small.py', '--workdir', workdir,
                      '--config.data.num_examples=100'], cwd=root, env=checkout_env(),
                     capture_output=True, text=True, timeout=hang_s)
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'checkpoint at step 0' in r.stdout
  assert 'activations of conv_ae_small' in r.stdout and 'NONE after conv 3 (the code)' in r.stdout
  m = inference.load(workdir)
  x = np.random.default_rng(0).random((3, 26, 26, 3)).astype(np.float32)
  with torch.no_grad():
    ref = tm(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(m.reconstruct(x), ref, rtol=1e-5, atol=1e-6)
  capsys.readouterr()
  with wd.Workdir(workdir).running():  # while a run holds the folder, no import replaces it
    with pytest.raises(SystemExit) as busy:
      interop.main(['--torch-checkpoint', ckpt, '--config',
                    os.path.join(root, 'configs/conv_ae_small.py'), '--workdir', workdir,
                    '--fresh'])
  assert busy.value.code == 2
  assert f'is in use by another run (process {os.getpid()} on ' in capsys.readouterr().err
  assert inference.load(workdir).epoch == 0 and os.listdir(tmp_path).count('imported') == 1
  assert not [n for n in os.listdir(tmp_path) if n.startswith('imported.old-')]
  config = config_lib.read_config(wd.Workdir(workdir))
  config.train.num_epochs, config.figures.enabled, config.progress = 1, False, False
  summary = train_and_evaluate(config, workdir)  # fine-tunes from the imported weights
  assert summary['members'][0]['eval']['psnr'] > 0
  with pytest.raises(SystemExit) as bad:  # the same entry point, in-process
    interop.main(['--torch-checkpoint', ckpt, '--config', os.path.join(root, 'configs/vae_beta.py'),
                  '--workdir', str(tmp_path / 'x'), '--config.sweep.beta=None'])
  assert bad.value.code == 2 and 'do not fit this model' in capsys.readouterr().err
  # --fresh on the trained workdir moves it aside (it was a TypeError) and imports anew
  interop.main(['--torch-checkpoint', ckpt, '--config',
                os.path.join(root, 'configs/conv_ae_small.py'), '--workdir', workdir,
                '--config.data.num_examples=100', '--fresh'])
  assert 'moved the previous run to' in capsys.readouterr().out
  assert len([n for n in os.listdir(tmp_path) if n.startswith('imported.old-')]) == 1
  assert inference.load(workdir).epoch == 0


USER_MODELS = """
import torch.nn.functional as F
from ae_jax.torch_models import ConvAESmall

class Same(ConvAESmall):
  pass

class CodeReLU(ConvAESmall):  # a ReLU on the code: weights identical, outputs not
  def forward(self, x):
    x = F.relu(self.conv1(x))
    x = F.relu(self.conv2(x))
    x = F.relu(self.conv3(x))
    x = F.relu(self.t_conv1(x))
    x = F.relu(self.t_conv2(x))
    return torch.sigmoid(self.t_conv3(x))
"""


@pytest.mark.slow
def test_check_against_runs_the_users_module_and_catches_a_different_activation(
    tmp_path, capsys, monkeypatch, root, paired):
  tm, _, _ = paired('conv_ae_small', 64, (26, 26, 3))
  ckpt = str(tmp_path / 'model.pt')
  torch.save(tm.state_dict(), ckpt)
  (tmp_path / 'user_models.py').write_text('import torch\n' + USER_MODELS)
  monkeypatch.syspath_prepend(str(tmp_path))  # the CLI's entry point, in-process
  monkeypatch.delitem(sys.modules, 'user_models', raising=False)

  def run(cls, out):
    interop.main(['--torch-checkpoint', ckpt, '--config',
                  os.path.join(root, 'configs/conv_ae_small.py'), '--workdir', str(tmp_path / out),
                  '--config.data.num_examples=100', '--check-against', f'user_models:{cls}'])
    return capsys.readouterr().out

  same = run('Same', 'a')
  assert 'check against user_models:Same: max |difference|' in same
  assert '(match)' in same
  with pytest.raises(SystemExit) as relu:
    run('CodeReLU', 'b')
  assert relu.value.code == 1
  assert 'DIFFER: check the activations above' in capsys.readouterr().out


@pytest.mark.slow
def test_mismatch_arrow_points_at_the_first_differing_layer(paired):
  tm, _, _ = paired('conv_ae_small', 64, (26, 26, 3))
  _, _, v = paired('conv_ae_bn_mish', 1024, (64, 64, 3))
  with pytest.raises(ConfigError) as e:
    interop.convert(tm.state_dict(), v['params'], v['batch_stats'], (64, 64, 3))
  arrow = [line for line in str(e.value).splitlines() if line.strip().startswith('->')]
  assert len(arrow) == 1 and arrow[0].split()[1] == '0', str(e.value)


@pytest.mark.slow
def test_interop_without_a_file_or_torch_is_one_line(tmp_path, root, hang_s, checkout_env):
  r = subprocess.run([sys.executable, '-m', 'ae_jax.interop', '--torch-checkpoint',
                      str(tmp_path / 'missing.pt'), '--config', 'configs/conv_ae_small.py',
                      '--workdir', str(tmp_path / 'w')], cwd=root, env=checkout_env(),
                     capture_output=True, text=True, timeout=hang_s)
  assert r.returncode == 2 and 'missing.pt: no such file' in r.stderr
  assert 'Traceback' not in r.stderr
  # Without torch installed (simulated: `import torch` fails), the extra is named.
  (tmp_path / 'torch.py').write_text('raise ImportError("No module named torch")\n')
  ckpt = tmp_path / 'm.pt'
  ckpt.write_bytes(b'x')
  env = checkout_env()  # the checkout under test first, then the stand-in torch
  env['PYTHONPATH'] = os.pathsep.join([root, str(tmp_path), env['PYTHONPATH']])
  r = subprocess.run([sys.executable, '-m', 'ae_jax.interop', '--torch-checkpoint', str(ckpt),
                      '--config', 'configs/conv_ae_small.py', '--workdir', str(tmp_path / 'w')],
                     cwd=root, capture_output=True, text=True, timeout=hang_s, env=env)
  assert r.returncode == 2 and "pip install -e '.[torch]'" in r.stderr, r.stderr[-1500:]
  assert 'Traceback' not in r.stderr


def test_a_file_that_is_not_pytorch_weights_is_one_clear_error(tmp_path):
  text, array = tmp_path / 'notes.txt', tmp_path / 'codes.npy'
  text.write_text('hello\n')
  np.save(array, np.zeros(3))
  for f in (text, array):  # torch.load raised KeyError / UnpicklingError with its advice
    with pytest.raises(DataError, match=rf'--torch-checkpoint {f} does not load as PyTorch '
                       r'weights \(\w+\); expected a file written by torch.save'):
      interop.load_state_dict(str(f))
