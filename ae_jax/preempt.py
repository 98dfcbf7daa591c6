"""Stopping on SIGTERM / SIGINT (what a scheduler or Ctrl-C sends) without losing work.

The first signal only sets a flag; the trainer checks it at every chunk boundary (and,
in a single-process run, again after an evaluation),
finishes the chunk, writes a checkpoint and stops with `Preempted`. A second signal
raises KeyboardInterrupt at once: Orbax only renames a checkpoint into place when it is
complete, so even that loses nothing but the unfinished chunk.

Several processes (jax.distributed) must stop at the same step: SIGTERM is left to JAX's
preemption service (`multihost_utils.reached_preemption_sync_point`, which all processes
call at the same steps and which agrees on the step), and a SIGINT seen by any process
is shared with a small all-gather at each check.
"""
from __future__ import annotations

import signal
import sys

import jax


class Watcher:
  """Installs the handlers for its lifetime (a context manager); `should_stop(step)` is
  collective in multi-process jobs: every process calls it at the same steps."""

  def __init__(self):
    self.signum = None
    self._saved = {}
    self.multi = jax.process_count() > 1

  def _handle(self, signum, frame):
    if self.signum is not None:
      raise KeyboardInterrupt  # the second signal: stop now
    self.signum = signum
    name = signal.Signals(signum).name
    print(f'\n{name} received: finishing the current chunk, then saving a checkpoint '
          f'(send it again to stop at once)', file=sys.stderr, flush=True)

  def __enter__(self):
    import threading
    if threading.current_thread() is not threading.main_thread():
      return self  # signal handlers can only be installed from the main thread
    signums = [signal.SIGINT] + ([] if self.multi else [signal.SIGTERM])
    for s in signums:
      self._saved[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._saved.items():
      signal.signal(s, handler)
    self._saved = {}
    return False

  def signalled_here(self) -> bool:
    """A signal seen by this process since the last check, in a single-process run (a
    multi-process job stops only where `should_stop` agrees on a step: False there)."""
    return not self.multi and self.signum is not None

  def should_stop(self, step: int) -> bool:
    if not self.multi:
      return self.signum is not None
    from jax.experimental import multihost_utils
    import numpy as np
    if multihost_utils.reached_preemption_sync_point(step):
      self.signum = self.signum or signal.SIGTERM
    flags = multihost_utils.process_allgather(np.asarray(self.signum or 0, np.int32))
    if self.signum is None and np.any(flags):
      self.signum = int(np.max(flags))
    return self.signum is not None
