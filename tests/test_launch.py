"""A multi-process launch with a piece missing or out of range is one line naming it, with
docs/scale_out.md's launch command, and exit code 2, at every entry point that takes the
flags (python -m ae_jax.main, ae-jax train, ae-jax evaluate). Every case fails before
jax.distributed starts anything, so these run in-process."""
import pytest

from ae_jax import launch
from ae_jax.main import evaluate_main, main, train_main

DOCS_LAUNCH = ('python -m ae_jax.main --config CONFIG --workdir WORKDIR '
               '--coordinator_address=127.0.0.1:12355 --num_processes=2 --process_id=0')


@pytest.fixture
def no_cluster(monkeypatch):
  """An environment where JAX detects no cluster (as on a laptop), seen as at a process's
  start: JAX refuses to initialize once this process's backend is up (as it is after other
  tests), and the no-cluster cases fail in its cluster detection, before it starts anything."""
  from jax._src import xla_bridge
  monkeypatch.setattr(xla_bridge, 'backends_are_initialized', lambda: False)
  for name in ('SLURM_JOB_ID', 'OMPI_MCA_orte_hnp_uri', 'PMIX_SERVER_URI',
               'JAX_COORDINATOR_ADDRESS', 'KUBERNETES_SERVICE_HOST', 'TPU_SKIP_MDS_QUERY'):
    monkeypatch.delenv(name, raising=False)


def _one_line_exit_2(capsys, entry, argv) -> str:
  with pytest.raises(SystemExit) as e:
    entry(argv)
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and err.startswith('error: '), err
  assert 'Traceback' not in err
  assert DOCS_LAUNCH in err and 'docs/scale_out.md' in err
  return err


ENTRIES = [pytest.param(main, ['--config', 'vae_beta', '--workdir', 'w'], id='main'),
           pytest.param(train_main, ['--config', 'vae_beta', '--workdir', 'w'], id='train'),
           pytest.param(main, ['--mode=evaluate', '--workdir', 'w'], id='main-evaluate'),
           pytest.param(evaluate_main, ['--workdir', 'w'], id='evaluate')]

ADDRESS, COUNT, ID = ('--coordinator_address=127.0.0.1:12355', '--num_processes=2',
                      '--process_id=1')


@pytest.mark.parametrize('entry,base', ENTRIES)
@pytest.mark.parametrize('flags,expected', [
    ([COUNT, ID], 'needs the coordinator address (--coordinator_address=HOST:PORT'),
    ([ADDRESS, ID], 'needs the process count (--num_processes=N) too'),
    ([ADDRESS, COUNT], "needs this process's id (--process_id=I, 0 to N-1) too"),
    ([ID], 'needs the coordinator address (--coordinator_address=HOST:PORT of process 0) '
           'and the process count (--num_processes=N) too'),
    (['--distributed'], '--distributed needs the coordinator address '
                        '(--coordinator_address=HOST:PORT of process 0): found no cluster '
                        'environment'),
    (['--coordinator_address=127.0.0.1', COUNT, ID], '--coordinator_address=127.0.0.1: '
                                                    'expected HOST:PORT'),
    ([ADDRESS, COUNT, '--process_id=2'], '--process_id=2: expected 0 to 1'),
    ([ADDRESS, '--num_processes=0', '--process_id=0'], '--num_processes=0: expected 1 or more'),
], ids=['no-address', 'no-count', 'no-id', 'id-only', 'distributed-no-cluster', 'no-port',
        'id-too-big', 'zero-processes'])
def test_missing_or_invalid_piece(capsys, no_cluster, entry, base, flags, expected):
  assert expected in _one_line_exit_2(capsys, entry, base + flags)


def test_one_process_starts_nothing():
  assert launch.initialize(None, None, None, from_environment=False) is False
