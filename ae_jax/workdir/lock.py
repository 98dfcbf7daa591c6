"""Holding a folder for one writer: `take_lock` flocks a lock file that names its holder."""
from __future__ import annotations

import io
import os
import socket

try:
  import fcntl
except ImportError:  # not POSIX: runs are not locked
  fcntl = None

from ae_jax.errors import WorkdirError

HAS_FLOCK = fcntl is not None


def take_lock(path: str, busy) -> 'io.TextIOWrapper | None':
  """`path` opened, flock-ed and naming this process; None where there is no flock (runs
  are then unlocked). Another holder: WorkdirError(busy(its name)). The OS drops the lock
  when the process ends, however it ends. A lock file that its holder removed on release
  while we waited for it is opened again (the inode check), so removing one is safe."""
  if fcntl is None:
    return None
  while True:
    f = open(path, 'a+')
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or 'another process'
      f.close()
      raise WorkdirError(busy(holder)) from None
    except OSError:  # a file system without flock: run unlocked
      f.close()
      return None
    try:
      same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
      same = False
    if same:
      break
    f.close()
  try:
    f.seek(0)
    f.truncate()
    f.write(f'process {os.getpid()} on {socket.gethostname()}\n')
    f.flush()
  except OSError:  # a full disk: held all the same, without the holder's name
    pass
  return f
