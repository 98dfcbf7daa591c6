"""The cluster scripts (scripts/tpu_pod.sh, scripts/slurm_gpu.sbatch), run here against
stand-in `gcloud`, `srun`, `scontrol` and `python` commands that record what they are given:
every argument reaches Python exactly as typed (an override with parentheses, a workdir with
a space or a quote), the SLURM job gives every task all of its node's GPUs, and a run stopped
before the time limit is requeued."""
import json
import os
import stat
import subprocess

import pytest

pytestmark = pytest.mark.slow  # each test runs bash

OVERRIDES = ['--config.sweep.beta=(1.,4.)', "--config.data.path=it's here/x y",
             '--config.a=$HOME;*']
WORKDIR = '/mnt/shared/my runs/x'

# A stand-in that appends {"argv": [...], "cwd": ..., "env": {...}} to $RECORD and exits with
# $<NAME>_RC (0 if unset); `srun` then runs its command (what follows its own --options).
RECORDER = '''#!/usr/bin/env python3
import json, os, subprocess, sys
name = os.path.basename(sys.argv[0])
with open(os.environ['RECORD'], 'a') as f:
  f.write(json.dumps({'name': name, 'argv': sys.argv[1:], 'cwd': os.getcwd(),
                      'env': dict(os.environ)}) + '\\n')
if name == 'srun':
  command = [a for a in sys.argv[1:] if not a.startswith('--')][:1]
  rest = sys.argv[1 + sys.argv[1:].index(command[0]):]
  sys.exit(subprocess.run(rest).returncode)
sys.exit(int(os.environ.get(name.upper() + '_RC', '0')))
'''


@pytest.fixture
def stand_ins(tmp_path):
  """(env with the stand-ins first on PATH, records()) -> what each was called with."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for name in ('gcloud', 'srun', 'scontrol', 'python'):
    (bin_dir / name).write_text(RECORDER)
    (bin_dir / name).chmod(stat.S_IRWXU)
  record = tmp_path / 'record.jsonl'
  env = {**os.environ, 'PATH': f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
         'RECORD': str(record)}

  def records():
    if not record.exists():
      return []
    return [json.loads(line) for line in record.read_text().splitlines()]
  return env, records


def _sbatch_options(root) -> dict:
  lines = open(os.path.join(root, 'scripts', 'slurm_gpu.sbatch')).read().splitlines()
  pairs = [line.split(None, 1)[1].split('=', 1) for line in lines if line.startswith('#SBATCH')]
  return {p[0]: (p[1] if len(p) > 1 else True) for p in pairs}


@pytest.mark.parametrize('script', ['tpu_pod.sh', 'slurm_gpu.sbatch'])
def test_the_scripts_parse(root, script):
  r = subprocess.run(['bash', '-n', os.path.join(root, 'scripts', script)],
                     capture_output=True, text=True)
  assert r.returncode == 0, r.stderr


def test_tpu_pod_quotes_every_argument_for_the_workers_shell(root, tmp_path, stand_ins):
  env, records = stand_ins
  r = subprocess.run(['bash', os.path.join(root, 'scripts', 'tpu_pod.sh'), 'my-tpu',
                      'us-central2-b', 'configs/vae_beta.py', WORKDIR, *OVERRIDES],
                     env=env, capture_output=True, text=True)
  assert r.returncode == 0, r.stderr
  [gcloud] = records()
  argv = gcloud['argv']
  assert argv[:9] == ['compute', 'tpus', 'tpu-vm', 'ssh', 'my-tpu', '--zone', 'us-central2-b',
                      '--worker=all', '--command']
  # What a worker does with the command: its login shell (bash) runs it in its home.
  home = tmp_path / 'worker'
  (home / 'ae_jax').mkdir(parents=True)
  w = subprocess.run(['bash', '-c', argv[9]], env={**env, 'HOME': str(home)},
                     capture_output=True, text=True)
  assert w.returncode == 0, w.stderr
  python = records()[-1]
  assert python['name'] == 'python' and python['cwd'] == str(home / 'ae_jax')
  assert python['argv'] == ['-m', 'ae_jax.main', '--distributed', '--config',
                            'configs/vae_beta.py', '--workdir', WORKDIR, *OVERRIDES]


def test_slurm_gives_every_task_all_of_its_nodes_gpus(root):
  options = _sbatch_options(root)
  assert '--gpus-per-task' not in options
  assert options['--gpus-per-node'] == options['--ntasks-per-node']  # one task per GPU


@pytest.mark.parametrize('python_rc,requeued,script_rc', [(0, False, 0), (143, True, 0),
                                                          (2, False, 2), (1, False, 1)])
def test_slurm_passes_arguments_and_requeues_a_run_stopped_before_the_time_limit(
    root, stand_ins, python_rc, requeued, script_rc):
  env, records = stand_ins
  env = {**env, 'SLURM_JOB_ID': '4242', 'PYTHON_RC': str(python_rc)}
  r = subprocess.run(['bash', os.path.join(root, 'scripts', 'slurm_gpu.sbatch'),
                      'configs/vae_beta.py', WORKDIR, *OVERRIDES], env=env,
                     capture_output=True, text=True)
  assert r.returncode == script_rc, r.stderr
  calls = records()
  srun, python = calls[0], calls[1]
  assert srun['name'] == 'srun' and '--gpu-bind=none' in srun['argv']
  assert python['argv'] == ['-m', 'ae_jax.main', '--distributed', '--config',
                            'configs/vae_beta.py', '--workdir', WORKDIR, *OVERRIDES]
  # the script leaves device selection to SLURM and JAX (task i of a node drives GPU i)
  assert not {'CUDA_VISIBLE_DEVICES', 'JAX_LOCAL_DEVICE_IDS'} & (
      set(python['env']) - set(os.environ))
  scontrol = [c['argv'] for c in calls if c['name'] == 'scontrol']
  assert scontrol == ([['requeue', '4242']] if requeued else [])
  assert ('requeueing job 4242' in r.stdout) == requeued
  # the stop comes early enough to finish a chunk and write a checkpoint
  signal_name, lead = _sbatch_options(root)['--signal'].split('@')
  assert signal_name == 'TERM' and int(lead) >= 300
