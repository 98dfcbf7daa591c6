"""The one write: every file ae_jax creates goes through `write_bytes` (atomic: a temporary
name in the same folder, synced, then renamed), or `append_text` for the metrics log.
Neither writes through a symbolic link below the folder the user named (`root`; links.py).
Encoders of the file kinds (figures, arrays, JSON) live here too."""
from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import sys

import numpy as np

from ae_jax.errors import WriteError
from ae_jax.workdir.links import NOFOLLOW, refuse_links

# ---- the one write ---------------------------------------------------------------------

_os_write = os.write  # the lowest-level write, one name (tests make it fail part-way)
_CHUNK = 1 << 20


def _temporary(path: str) -> str:
  """A free hidden name beside `path` (same folder: the rename stays on one file system)."""
  folder, name = os.path.split(path)
  return os.path.join(folder, f'.{name}.{secrets.token_hex(4)}.tmp')


def write_bytes(path: str, data: bytes, root: str | None = None) -> str:
  """Write `data` to `path` atomically: into a temporary name in the same folder, synced,
  then renamed over `path`. Readers see the old file or the new one, never a part; on any
  failure the temporary is removed and the old version stays. An OSError (a full disk, a
  read-only folder) is one WriteError line naming the file and the OS reason.

  `root`: the folder the user named (a workdir, an --out; default: the file's own folder).
  A symbolic link at `path` or at a folder between `root` and it is refused (a WriteError
  naming the link): the rename would replace the link, the folders would lead elsewhere."""
  existed = os.path.exists(path)
  tmp = None
  folder = os.path.dirname(os.path.abspath(path))
  refuse_links(folder if root is None else root, path)
  try:
    os.makedirs(folder, exist_ok=True)
    tmp = _temporary(path)
    # O_EXCL: never another's file; 0o666 under the umask, as open() would make it
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0), 0o666)
    try:
      write_all(fd, data)
      os.fsync(fd)  # the bytes are on disk before the name points at them
    finally:
      os.close(fd)
    os.replace(tmp, path)
    tmp = None
    _sync_folder(folder)
  except OSError as e:
    reason = e.strerror or str(e)
    kept = 'its previous version is intact' if existed else 'nothing was written'
    raise WriteError(f'{path} could not be written ({reason}); {kept}', path, reason) from e
  finally:
    if tmp is not None:
      with contextlib.suppress(OSError):
        os.remove(tmp)
  return path


def write_all(fd: int, data: bytes) -> None:
  """All of `data` to the open file `fd` (through `_os_write`, the one low-level write)."""
  view = memoryview(data).cast('B')
  while view:
    view = view[_os_write(fd, view[:_CHUNK]):]


def _sync_folder(folder: str) -> None:
  """Make the rename durable (cheap; not every OS or file system can open a folder)."""
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def append_text(path: str, text: str, root: str | None = None) -> None:
  """Append to a log (metrics.jsonl). Not atomic, by design: its reader drops a torn last
  line. A failure is one WriteError line; a link at `path` (or below `root`) is refused."""
  refuse_links(os.path.dirname(os.path.abspath(path)) if root is None else root, path)
  try:
    with open(path, 'a', opener=_no_follow) as f:
      f.write(text)
  except OSError as e:
    reason = e.strerror or str(e)
    raise WriteError(f'{path} could not be appended to ({reason}); its earlier lines are '
                     'intact', path, reason) from e


def _no_follow(path, flags):
  """open()'s opener that never follows a link at the file itself."""
  return os.open(path, flags | NOFOLLOW, 0o666)


def write_text_file(path: str, text: str, root: str | None = None) -> None:
  """Write `text` to `path` (atomically, `write_bytes`)."""
  write_bytes(path, text.encode('utf-8'), root)


def write_json(path: str, obj, root: str | None = None) -> None:
  write_bytes(path, json.dumps(obj, indent=2, sort_keys=False, default=str).encode('utf-8'),
              root)


def write_lines(path: str, rows: list[dict], root: str | None = None) -> None:
  write_bytes(path, ''.join(json.dumps(r) + '\n' for r in rows).encode('utf-8'), root)


def figure_bytes(fig, name: str) -> bytes:
  """A matplotlib figure encoded as `name`'s extension says (png by default), and closed
  (in pyplot's registry, if the caller's pyplot made it)."""
  buf = io.BytesIO()
  try:
    fig.savefig(buf, format=os.path.splitext(name)[1][1:] or 'png')
  finally:
    pyplot = sys.modules.get('matplotlib.pyplot')  # never imported here: it picks a backend
    if pyplot is not None:
      pyplot.close(fig)
  return buf.getvalue()


def npy_bytes(arr) -> bytes:
  buf = io.BytesIO()
  np.save(buf, np.asarray(arr))
  return buf.getvalue()


def npz_bytes(**arrs) -> bytes:
  buf = io.BytesIO()
  np.savez(buf, **{k: np.asarray(v) for k, v in arrs.items()})
  return buf.getvalue()


def save_figure(fig, path: str) -> str:
  """A figure written outside a workdir (scripts, experiments), atomically."""
  return write_bytes(path, figure_bytes(fig, path))


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())
