"""jax.distributed from the command line's flags, or from the cluster's environment.

A multi-process launch needs three things: the coordinator's HOST:PORT, the number of
processes and this process's id. Given by hand, all three must be there; with
--distributed, JAX reads what is not given from SLURM, Open MPI or a Cloud TPU pod. What is
missing or out of range is one ConfigError line that names it and shows the launch of
docs/scale_out.md, never JAX's bare ValueError from inside `initialize`.
"""
from __future__ import annotations

import jax

from ae_jax.errors import ConfigError

# The by-hand launch of docs/scale_out.md (two processes on one machine).
LAUNCH = ('start every process as: python -m ae_jax.main --config CONFIG --workdir WORKDIR '
          '--coordinator_address=127.0.0.1:12355 --num_processes=2 --process_id=0 (then 1, '
          '...; on several hosts, the first host\'s address)')
OR_CLUSTER = ', or give --distributed alone under SLURM, Open MPI or on a Cloud TPU pod'
DOCS = ' (docs/scale_out.md)'

# What each flag is, in the words of the error line.
_WHAT = {'coordinator_address': 'the coordinator address (--coordinator_address=HOST:PORT '
                                'of process 0)',
         'num_processes': 'the process count (--num_processes=N)',
         'process_id': "this process's id (--process_id=I, 0 to N-1)"}

# JAX's own messages for what its cluster detection left unset (jax/_src/distributed.py).
_JAX_MISSING = {'coordinator_address should be defined': 'coordinator_address',
                'Number of processes must be defined': 'num_processes',
                'The process id of the current process must be defined': 'process_id'}


def check(coordinator_address: str | None, num_processes: int | None,
          process_id: int | None) -> None:
  """Raises ConfigError unless the given values can be a launch: a HOST:PORT address with
  a port in 1..65535, N >= 1, 0 <= I < N. None is 'not given' and passes."""
  if coordinator_address is not None:
    host, _, port = coordinator_address.rpartition(':')
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
      raise ConfigError(f'--coordinator_address={coordinator_address}: expected HOST:PORT '
                        f'(a port 1 to 65535) of process 0; {LAUNCH}{DOCS}')
  if num_processes is not None and num_processes < 1:
    raise ConfigError(f'--num_processes={num_processes}: expected 1 or more; {LAUNCH}{DOCS}')
  if process_id is not None and (process_id < 0 or (num_processes is not None
                                                    and process_id >= num_processes)):
    top = f'{num_processes - 1}' if num_processes else 'N-1'
    raise ConfigError(f'--process_id={process_id}: expected 0 to {top} '
                      f'(--num_processes={num_processes}); {LAUNCH}{DOCS}')


def _missing(names) -> str:
  return ' and '.join(_WHAT[n] for n in names)


def initialize(coordinator_address: str | None, num_processes: int | None,
               process_id: int | None, from_environment: bool) -> bool:
  """jax.distributed.initialize from the flags (all three, or none: a one-process run) or,
  `from_environment` (--distributed), from the cluster's environment for what is not given.
  -> whether it initialized. Raises ConfigError for a missing or invalid piece."""
  given = {'coordinator_address': coordinator_address, 'num_processes': num_processes,
           'process_id': process_id}
  check(coordinator_address, num_processes, process_id)
  missing = [k for k, v in given.items() if v is None]
  if not from_environment:
    if len(missing) == len(given):
      return False  # one process
    if missing:
      raise ConfigError(f'a multi-process run needs {_missing(missing)} too; '
                        f'{LAUNCH}{OR_CLUSTER}{DOCS}')
  kwargs = {}
  host = (coordinator_address or '').rpartition(':')[0]
  if host in ('127.0.0.1', 'localhost'):  # loopback: listen there only, not on every address
    kwargs['coordinator_bind_address'] = coordinator_address.replace('localhost', '127.0.0.1')
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
  except ValueError as e:
    unset = [name for text, name in _JAX_MISSING.items() if text in str(e)]
    if not unset:
      raise ConfigError(f'--distributed: {e}; without a cluster, {LAUNCH}{DOCS}') from None
    found = ('found no cluster environment (SLURM, Open MPI, a Cloud TPU pod) to read it from'
             if unset == ['coordinator_address'] else 'the cluster environment does not give it')
    raise ConfigError(f'--distributed needs {_missing(unset)}: {found}; without a cluster, '
                      f'{LAUNCH}{DOCS}') from None
  return True
