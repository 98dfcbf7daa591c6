"""Stopping on SIGTERM / SIGINT (what a scheduler or Ctrl-C sends) without losing work.

The first signal only sets a flag; the trainer checks it at every chunk boundary (and,
in a single-process run, again after an evaluation),
finishes the chunk, writes a checkpoint and stops with `Preempted`. A second signal stops
at once: in a command line (`at_second_signal`, set by `cli.run`) the handler itself prints
the one line and ends the process. No cleanup runs: closing the TensorBoard and Orbax
writers waits on their threads, and a KeyboardInterrupt raised at an arbitrary line inside
them can leave a lock held or a save never marked done, so that the wait never ends (a
command once hung so for 30 minutes). Called as a library, it raises KeyboardInterrupt.
Orbax only renames a checkpoint into place when it is complete, so either way nothing is
lost but the unfinished chunk.

Several processes (jax.distributed) must stop at the same step: SIGTERM is left to JAX's
preemption service (`multihost_utils.reached_preemption_sync_point`, which all processes
call at the same steps and which agrees on the step), and a SIGINT seen by any process
is shared with a small all-gather at each check.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

import jax

_at_once = None  # what a second signal does in a command line (at_second_signal)


@contextlib.contextmanager
def at_second_signal(action):
  """Within: a second signal calls `action()` in the signal handler, which must end the
  process (a command line's one line and exit), instead of raising KeyboardInterrupt."""
  global _at_once
  previous, _at_once = _at_once, action
  try:
    yield
  finally:
    _at_once = previous


def write_now(text: str) -> None:
  """Write to stderr from a signal handler. The main thread may have been stopped inside a
  write to stderr itself, where `print` raises 'reentrant call'; os.write takes no lock of
  the stream's."""
  try:
    fd = sys.stderr.fileno()
  except (AttributeError, OSError, ValueError):  # a stream without a file (a test's capture)
    print(text, end='', file=sys.stderr, flush=True)
    return
  try:
    sys.stderr.flush()
  except (RuntimeError, OSError, ValueError):
    pass
  os.write(fd, text.encode())


class Watcher:
  """Installs the handlers for its lifetime (a context manager); `should_stop(step)` is
  collective in multi-process jobs: every process calls it at the same steps."""

  def __init__(self):
    self.signum = None
    self._saved = {}
    self.multi = jax.process_count() > 1

  def _handle(self, signum, frame):
    if self.signum is not None:  # the second signal: stop now
      if _at_once is not None:
        _at_once()
      raise KeyboardInterrupt
    self.signum = signum
    name = signal.Signals(signum).name
    write_now(f'\n{name} received: finishing the current chunk, then saving a checkpoint '
              f'(send it again to stop at once)\n')

  def __enter__(self):
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
