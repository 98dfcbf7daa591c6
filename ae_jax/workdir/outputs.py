"""A tool's output folder, written as a whole (`Outputs`)."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil

from ae_jax.errors import WorkdirError, WriteError
from ae_jax.workdir.files import figure_bytes, npy_bytes, npz_bytes, write_bytes
from ae_jax.workdir.links import refuse_links
from ae_jax.workdir.lock import take_lock
from ae_jax.workdir.owners import refuse_reading, refuse_unless, tool_name
from ae_jax.workdir.records import OUTPUTS_MARK

# an --out ending so names a file (`--out samples.png`), not the folder a tool writes in
FILE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.gif', '.pdf', '.svg', '.npy', '.npz', '.json',
                 '.html', '.md', '.csv', '.txt')


class Outputs:
  """A folder of one run's outputs of a tool (figures, arrays, JSON), written by the
  writer only.

  Inside `with outputs:` a run writes into a fresh hidden sibling, `.<name>.partial-*`,
  which replaces the folder as a whole when the `with` ends without an error: the old
  run's files never mix with the new ones (a rerun with fewer ids leaves no stale figure),
  and a failure or a kill midway leaves the previous folder as it was. Meanwhile the
  folder is held (a flock on the sibling `.<name>.lock`, as `Workdir.running()` holds a
  workdir): a second writer is refused with one line naming the holder. Only a new or
  empty folder, or this same tool's previous output (OUTPUTS_MARK names the tool) is
  replaced; a folder holding anything else (another tool's outputs, a workdir, a study,
  files no ae_jax command wrote) is refused naming its owner, and so is a folder holding
  what the command reads (`reads`). `with` may nest (the command line holds the folder
  around a tool that holds it too); writes outside any `with` go straight into the
  folder, each file atomically.

  `owned`: the workdir's own latent/<tool>/, below `root` (the workdir): nothing on the way
  may be a symbolic link. A `--out` the user gave may itself be a link to a folder (then
  the folder it points at is the one replaced); nothing inside it is followed."""

  def __init__(self, path: str, writer: bool = True, owned: bool = False, tool: str = '',
               root: str | None = None, reads=()):
    path = str(path)
    if not owned and os.path.islink(path) and os.path.isdir(path):
      path = os.path.realpath(path)  # the user's link to a folder: replace what it points at
    self.path, self.writer, self.owned = path, writer, owned
    self.root = root if root is not None else os.path.dirname(os.path.abspath(path))
    self.reads = tuple(reads)
    self.tool = tool or os.path.basename(os.path.normpath(self.path))
    self.written: list[str] = []
    self._depth, self._stage, self._created = 0, None, []
    self._lock, self._lock_path = None, None  # the lock file (open while flock-ed) and its name

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  # ---- one run, as a whole --------------------------------------------------------------

  def __enter__(self) -> 'Outputs':
    self._depth += 1
    if self._depth == 1 and self.writer:
      try:
        self._open()
      except BaseException:
        self._depth = 0
        self._close(commit=False)
        raise
    return self

  def __exit__(self, kind, error, tb) -> None:
    self._depth -= 1
    if self._depth == 0 and self.writer:
      self._close(commit=kind is None)

  def _names(self):
    folder, name = os.path.split(os.path.abspath(self.path))
    return folder, name

  def check(self) -> None:
    """Refuse, before any work, a folder this run may not replace (see the class)."""
    refuse_links(self.root, self.path)
    if os.path.exists(self.path) and not os.path.isdir(self.path):
      raise WorkdirError(f'{self.path} is a file; --out must be a folder')
    if not self.owned and not os.path.exists(self.path) and \
        os.path.splitext(self.path)[1].lower() in FILE_SUFFIXES:
      raise WorkdirError(f'--out {self.path}: expected a folder (the tool writes its files in '
                         'it); this names a file')
    flag = 'the folder' if self.owned else '--out'
    refuse_reading(self.path, self.reads, flag)
    # the workdir's own latent/<tool>/ is that tool's even without a mark (older versions)
    refuse_unless(self.path, ('tool', 'files') if self.owned else ('tool',), flag,
                  f'give a new or empty folder (`{tool_name(self.tool)}` replaces only its own '
                  'previous outputs, as a whole)', self.tool)

  def _open(self) -> None:
    folder, name = self._names()
    self.check()
    parent = folder
    while parent and not os.path.exists(parent):
      self._created.append(parent)
      parent = os.path.dirname(parent)
    try:
      os.makedirs(folder, exist_ok=True)
      lock = os.path.join(folder, f'.{name}.lock')
      self._lock = take_lock(lock, lambda holder: (
          f'{self.path} is being written by another run ({holder}); wait for it to end, or '
          'give another --out'))
      self._lock_path = lock  # ours to remove (not before: a refusal leaves the holder's)
      self._recover(folder, name)
      self._stage = os.path.join(folder, f'.{name}.partial-{secrets.token_hex(4)}')
      os.mkdir(self._stage)
    except WriteError:
      raise  # already one line (a link where the lock goes)
    except OSError as e:
      raise WriteError(f'{self.path} cannot be written ({e.strerror or e}); a tool\'s results '
                       'are its files: give --out DIR, a folder you can write',
                       self.path, e.strerror or str(e)) from e

  def _recover(self, folder: str, name: str) -> None:
    """What a run killed before it finished left (we hold the lock: no run is live): its
    partial folder goes; a previous folder set aside by a swap cut short comes back."""
    left = sorted(n for n in os.listdir(folder) if n.startswith(f'.{name}.')
                  and not os.path.islink(os.path.join(folder, n)))  # never a planted link
    olds = [n for n in left if n.startswith(f'.{name}.old-')]
    if olds and not os.path.exists(self.path):
      os.rename(os.path.join(folder, olds.pop()), self.path)
    for n in left:
      if n.startswith(f'.{name}.partial-') or n in olds:
        shutil.rmtree(os.path.join(folder, n), ignore_errors=True)

  def _close(self, commit: bool) -> None:
    folder, name = self._names()
    stage, self._stage = self._stage, None
    try:
      if commit and stage is not None:
        self._commit(stage, folder, name)
    finally:
      if stage is not None and os.path.exists(stage):
        shutil.rmtree(stage, ignore_errors=True)
      if self._lock_path is not None:  # removed while held: take_lock's inode check
        with contextlib.suppress(OSError):
          os.remove(self._lock_path)
      if self._lock is not None:
        self._lock.close()
      self._lock, self._lock_path = None, None
      if not commit:
        for d in self._created:  # innermost first; only folders this run made, if empty
          try:
            os.rmdir(d)
          except OSError:
            break
      self._created = []

  def _commit(self, stage: str, folder: str, name: str) -> None:
    """Put the run's folder in place of the previous one (two renames; a kill between
    them is mended by the next run's _recover)."""
    files = sorted(os.listdir(stage))
    self._staged(stage, OUTPUTS_MARK, json.dumps({'tool': self.tool, 'files': files}).encode())
    old = None
    try:
      if os.path.lexists(self.path):
        old = os.path.join(folder, f'.{name}.old-{secrets.token_hex(4)}')
        os.rename(self.path, old)
      os.rename(stage, self.path)
    except OSError as e:
      if old is not None and not os.path.exists(self.path):
        with contextlib.suppress(OSError):
          os.rename(old, self.path)
          old = None
      reason = e.strerror or str(e)
      raise WriteError(f'{self.path} could not be replaced ({reason}); its previous '
                       'contents are intact', self.path, reason) from e
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)

  # ---- the files ------------------------------------------------------------------------

  def _write(self, name: str, data: bytes) -> str:
    if self.writer:
      if self._stage is None:  # outside `with`: straight into the folder
        if os.path.exists(self.path) and not os.path.isdir(self.path):
          raise WorkdirError(f'{self.path} is a file; --out must be a folder')
        write_bytes(self.file(name), data, self.root)
      else:
        self._staged(self._stage, name, data)
      self.written.append(self.file(name))
    return self.file(name)

  def _staged(self, stage: str, name: str, data: bytes) -> None:
    """`name` into the run's hidden folder; a failure names the file the user asked for."""
    try:
      write_bytes(os.path.join(stage, name), data)
    except WriteError as e:
      raise WriteError(f'{self.file(name)} could not be written ({e.reason}); the folder\'s '
                       'previous run is intact', self.file(name), e.reason) from e

  def array(self, name: str, arr) -> str:
    return self._write(name, npy_bytes(arr) if self.writer else b'')

  def arrays(self, name: str, **arrs) -> str:
    return self._write(name, npz_bytes(**arrs) if self.writer else b'')

  def json(self, name: str, obj) -> str:
    return self._write(name, json.dumps(obj, indent=2, default=str).encode('utf-8'))

  def figure(self, fig, name: str) -> str:
    return self._write(name, figure_bytes(fig, name))  # closed on every process
