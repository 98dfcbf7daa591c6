"""Multi-device and multi-process runs end with the parameters of a single-device run.

8 simulated CPU devices (--xla_force_host_platform_device_count=8) and 2 real processes on
127.0.0.1 (jax.distributed, gloo) each run in subprocesses. A data-parallel step sums the
batch in another order than one device does, so parameters agree to float tolerance
(rtol 1e-4, atol 1e-5 after two epochs), not bit for bit.
"""
import os
import pickle
import socket
import subprocess
import sys
import textwrap

import chex
import pytest

from ae_jax import inference

pytestmark = pytest.mark.slow

RTOL, ATOL = 1e-4, 1e-5
EIGHT_DEVICES = {'XLA_FLAGS': f"{os.environ.get('XLA_FLAGS', '')} "
                              '--xla_force_host_platform_device_count=8'}
CASES = {  # name -> tiny_config overrides (besides the mesh)
    'single': dict(),
    'beta_sweep': dict(sweep__beta=(1.0, 4.0)),
    'streamed': dict(data__tier='stream', data__stream_chunk_steps=4),
}

SCRIPT = textwrap.dedent('''
    import os
    import pickle
    import jax
    {init}
    from ae_jax.train import train_and_evaluate
    with open({configs!r}, 'rb') as f:
      configs = pickle.load(f)
    for name, cfg in configs.items():
      train_and_evaluate(cfg, os.path.join({out!r}, name))
    print('devices', jax.device_count(), 'processes', jax.process_count(), flush=True)
''')


def _configs(tiny, meshes, path) -> str:
  """Pickles {'<case>-<mesh tag>': config} for SCRIPT (the tests' tiny configs, built
  here) to `path`."""
  configs = {}
  for name, overrides in CASES.items():
    for mesh in meshes:
      if mesh.get('mesh__members', 1) > 1 and 'sweep__beta' not in overrides:
        continue  # members split over devices: sweeps only
      tag = '-'.join(f'{k.split("__")[1]}{v}' for k, v in mesh.items())
      configs[f'{name}-{tag}'] = tiny(train__num_epochs=2, **overrides, **mesh)
  with open(path, 'wb') as f:
    pickle.dump(configs, f)
  return str(path)


def _run(root, env, script, env_extra=None):
  """`python -c script` in the checkout; `env`: the checkout_env fixture."""
  env = env(JAX_PLATFORMS='cpu', **(env_extra or {}))
  return subprocess.Popen([sys.executable, '-c', script], cwd=root, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _params(workdir, member=0):
  return inference.load(workdir, member=member).params


def _close(a_dir, b_dir, members=1):
  for k in range(members):
    chex.assert_trees_all_close(_params(a_dir, k), _params(b_dir, k), rtol=RTOL, atol=ATOL)


@pytest.fixture(scope='module')
def eight_devices(tmp_path_factory, tiny, root, hang_s, checkout_env):
  out = tmp_path_factory.mktemp('eight')
  meshes = [dict(mesh__data=1, mesh__members=1), dict(mesh__data=-1, mesh__members=1),
            dict(mesh__data=4, mesh__members=2)]
  configs = _configs(tiny, meshes, out / 'configs.pkl')
  script = SCRIPT.format(init='', configs=configs, out=str(out))
  proc = _run(root, checkout_env, script, EIGHT_DEVICES)
  stdout, stderr = proc.communicate(timeout=hang_s)
  assert proc.returncode == 0, stderr[-3000:]
  assert 'devices 8 processes 1' in stdout
  return str(out)


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory, tiny, root, hang_s, checkout_env):
  out = tmp_path_factory.mktemp('two')
  configs = _configs(tiny, [dict(mesh__data=-1)], out / 'configs.pkl')
  port = _free_port()
  procs = []
  for pid in range(2):
    init = (f"jax.distributed.initialize('127.0.0.1:{port}', 2, {pid}, "
            f"coordinator_bind_address='127.0.0.1:{port}')")
    script = SCRIPT.format(init=init, configs=configs, out=str(out))
    procs.append(_run(root, checkout_env, script))
  results = [p.communicate(timeout=hang_s) for p in procs]
  for p, (_, stderr) in zip(procs, results):
    assert p.returncode == 0, stderr[-3000:]
  assert 'devices 2 processes 2' in results[0][0]
  return str(out)


@pytest.mark.parametrize('case', list(CASES))
def test_eight_devices_match_one(eight_devices, case):
  members = 2 if case == 'beta_sweep' else 1
  one = os.path.join(eight_devices, f'{case}-data1-members1')
  _close(one, os.path.join(eight_devices, f'{case}-data-1-members1'), members)
  if members > 1:  # members split over 2 devices, batches over 4
    _close(one, os.path.join(eight_devices, f'{case}-data4-members2'), members)


@pytest.mark.parametrize('case', list(CASES))
def test_two_processes_match_one_device(eight_devices, two_processes, case):
  members = 2 if case == 'beta_sweep' else 1
  _close(os.path.join(eight_devices, f'{case}-data1-members1'),
         os.path.join(two_processes, f'{case}-data-1'), members)
  # Only process 0 wrote the workdir's files (one metrics line per epoch and split).
  rows = open(os.path.join(two_processes, f'{case}-data-1', 'metrics.jsonl')).read().splitlines()
  assert len(rows) == 2 * 2 * members


def test_a_checkpoint_of_two_processes_restores_on_one_and_on_eight_devices(
    two_processes, tmp_path, tiny, root, hang_s, checkout_env):
  import shutil
  src = os.path.join(two_processes, 'single-data-1')
  one = inference.load(src)  # this process: one device
  assert one.epoch == 2
  work = str(tmp_path / 'w')
  shutil.copytree(src, work)
  with open(tmp_path / 'config.pkl', 'wb') as f:
    pickle.dump(tiny(train__num_epochs=3), f)
  script = textwrap.dedent(f'''
      import pickle
      from ae_jax.train import train_and_evaluate
      with open({str(tmp_path / 'config.pkl')!r}, 'rb') as f:
        train_and_evaluate(pickle.load(f), {work!r})
  ''')
  proc = _run(root, checkout_env, script, EIGHT_DEVICES)
  stdout, stderr = proc.communicate(timeout=hang_s)
  assert proc.returncode == 0, stderr[-3000:]
  assert 'resumed' in stdout and 'from epoch 2' in stdout
  assert inference.load(work).epoch == 3
