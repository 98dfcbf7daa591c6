"""Holding a folder for one writer: `take_lock` flocks a lock file that names its holder."""
from __future__ import annotations

import io
import os
import socket
import stat

try:
  import fcntl
except ImportError:  # not POSIX: runs are not locked
  fcntl = None

from ae_jax.errors import WorkdirError
from ae_jax.workdir.links import NOFOLLOW, link_error

HAS_FLOCK = fcntl is not None


def take_lock(path: str, busy) -> 'io.TextIOWrapper | None':
  """`path` opened, flock-ed and naming this process; None where there is no flock (runs
  are then unlocked). Another holder: WorkdirError(busy(its name)). The OS drops the lock
  when the process ends, however it ends. A lock file that its holder removed on release
  while we waited for it is opened again (the inode check), so removing one is safe. A
  link (or anything but a file) at `path` is refused, never opened: it is truncated."""
  if fcntl is None:
    return None
  while True:
    f = _open(path)
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


def _open(path: str):
  """`path` opened for reading and writing, created if missing, never through a link."""
  if os.path.islink(path):
    raise link_error(path)
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o666)
  except OSError as e:
    if os.path.islink(path):  # (planted meanwhile: O_NOFOLLOW refused it)
      raise link_error(path) from e
    raise
  if not stat.S_ISREG(os.fstat(fd).st_mode):
    os.close(fd)
    raise WorkdirError(f'{path} is not a file; remove it (ae_jax keeps its lock there)')
  return os.fdopen(fd, 'r+')
