"""The workdir folder (`Workdir`): its paths, state, lock, readers and writers, and the
append-only metrics log (`MetricsLog`)."""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import shutil

import jax

from ae_jax.errors import WorkdirError
from ae_jax.workdir.files import (append_text, config_to_dict, figure_bytes, npz_bytes,
                                  write_bytes, write_json, write_lines, write_text_file)
from ae_jax.workdir.lock import HAS_FLOCK, take_lock
from ae_jax.workdir.outputs import Outputs
from ae_jax.workdir.records import (FIX, _SCAFFOLD, _START, CHECKPOINTS, BEST, CONFIG, FIGURES,
                                    LATENT, LOCK, METRICS, MEMBERS, MODEL, PROGRAMS, RECORDS,
                                    TENSORBOARD, check_record)

log = logging.getLogger('ae_jax')


def _clean(v):
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)
  return v


def _is_writer() -> bool:
  return jax.process_index() == 0


class Workdir:
  """A workdir's paths, readers and (for the writer process) writers."""

  def __init__(self, path: str, writer: bool | None = None, top: 'Workdir | None' = None):
    self.path = str(path)
    self.writer = _is_writer() if writer is None else writer
    self._lock = None  # the open, flock-ed LOCK file while this process trains here
    self.top = top or self  # the workdir a program's workdir belongs to (itself at the top)

  def __repr__(self):
    return f'Workdir({self.path!r})'

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  @property
  def checkpoints(self) -> str:
    return os.path.abspath(self.file(CHECKPOINTS))

  @property
  def best_checkpoints(self) -> str:
    return os.path.abspath(self.file(BEST))

  def program(self, name: str) -> 'Workdir':
    return Workdir(os.path.join(self.path, PROGRAMS, name), self.writer, self.top)

  def tensorboard_dir(self, member: str) -> str:
    """<top workdir>/tensorboard/<member>/: one TensorBoard run per member, every program
    of a sweep side by side, so `tensorboard --logdir` overlays them."""
    return os.path.join(self.top.path, TENSORBOARD, member.replace(os.sep, '_'))

  def figure(self, name: str) -> str:
    return os.path.join(self.path, FIGURES, name)

  def latent_dir(self, tool: str, out: str | None = None) -> str:
    return out or os.path.join(self.path, LATENT, tool)

  def outputs(self, tool: str, out: str | None = None) -> 'Outputs':
    """Where latent tool `tool` writes: <workdir>/latent/<tool>/, or `out` (`Outputs`)."""
    return Outputs(self.latent_dir(tool, out), self.writer, owned=out is None, tool=tool)

  # ---- state of the folder ------------------------------------------------------------

  def exists(self, name: str) -> bool:
    return os.path.exists(self.file(name))

  def is_trained(self) -> bool:
    return self.exists(CONFIG)

  def has_model_record(self) -> bool:
    """model.json is here (format 2), even a damaged one (training rewrites it)."""
    return self.exists(MODEL)

  def require_trained(self) -> None:
    if not self.is_trained():
      raise WorkdirError(f'{self.file(CONFIG)} not found: {self.path!r} is not a trained '
                         'workdir')

  def has_checkpoints(self, programs: bool = False) -> bool:
    """Whether a checkpoint is here (`programs`: or in any program's folder)."""
    d = self.file(CHECKPOINTS)
    if os.path.isdir(d) and any(n.isdigit() for n in os.listdir(d)):
      return True
    d = self.file(PROGRAMS)
    return programs and os.path.isdir(d) and any(self.program(q).has_checkpoints()
                                                 for q in os.listdir(d))

  def is_empty(self) -> bool:
    """Nothing of a run here: no folder, or only what `prepare`, `running` and a start that
    went no further make (the lock, empty figures/ and checkpoints/ folders)."""
    if not os.path.exists(self.path):
      return True
    return all(n == LOCK or (n in _SCAFFOLD and os.path.isdir(self.file(n))
                             and not os.listdir(self.file(n)))
               for n in os.listdir(self.path))

  def holds_records(self) -> bool:
    """Whether anything of a run is here beyond what its start writes (config.json,
    members.json, model.json, an empty metrics.jsonl, the lock, empty folders) and its
    checkpoints: metrics, a summary, figures, reports, crash logs, tool outputs, or such
    records in a program's folder. TensorBoard events mirror metrics.jsonl and a new start
    hides the old ones (purge_step), so they alone are not a run's records."""
    if not os.path.isdir(self.path):
      return False
    for n in os.listdir(self.path):
      p = self.file(n)
      if n in _START or n in (LOCK, CHECKPOINTS, TENSORBOARD):
        continue
      if n == METRICS and os.path.isfile(p) and not os.path.getsize(p):
        continue
      if os.path.isdir(p) and n == PROGRAMS:
        if any(Workdir(os.path.join(p, q), self.writer).holds_records() for q in os.listdir(p)):
          return True
        continue
      if os.path.isdir(p) and not os.listdir(p):
        continue
      return True
    return False

  def _tidy(self, created: list[str]) -> None:
    """After a run refused or failed before it wrote anything: take away what `prepare`
    and `running` made (never a file of a run: only empty folders and the lock).
    `created`: the folders, innermost first, that did not exist before."""
    if not self.writer or not self.is_empty() or not os.path.isdir(self.path):
      return
    for name in _SCAFFOLD + (LOCK,):
      try:
        (os.remove if name == LOCK else os.rmdir)(self.file(name))
      except OSError:
        pass
    for folder in created:
      try:
        os.rmdir(folder)
      except OSError:
        return

  def prepare(self) -> list[str]:
    """Create the folder and check it can be written, before any data loads or compiles;
    -> the folders it created, innermost first."""
    if not self.writer:
      return []
    created, parent = [], self.path.rstrip(os.sep)
    while parent and not os.path.exists(parent):
      created.append(parent)
      parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
      raise WorkdirError(f'workdir {self.path}: {parent} is a file, not a folder; choose '
                         'another --workdir')
    probe = self.file('.write-test')
    try:
      os.makedirs(self.file(FIGURES), exist_ok=True)
      try:
        with open(probe, 'w') as f:
          f.write('ok')
      finally:  # a probe that could be made but not filled (a full disk) goes too
        with contextlib.suppress(FileNotFoundError):
          os.remove(probe)
    except OSError as e:
      raise WorkdirError(f'workdir {self.path} cannot be written ({e.strerror or e}); choose '
                         'another --workdir') from e
    return created

  def move_aside(self) -> str:
    """Rename the workdir to a free `<path>.old-<UTC time>` sibling; never deletes. A held
    lock moves with it and is taken again on the new, empty folder."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%d-%H%M%S')
    target, i = f'{self.path.rstrip(os.sep)}.old-{stamp}', 1
    while os.path.exists(target):
      i += 1
      target = f'{self.path.rstrip(os.sep)}.old-{stamp}-{i}'
    if self.writer:
      held, self._lock = self._lock, None
      shutil.move(self.path, target)  # a held lock goes with it, still held
      if held is not None:
        try:
          self._acquire()
        finally:
          held.close()
    return target

  @contextlib.contextmanager
  def running(self):
    """Hold the workdir for one training run. Another process that tries to train here
    meanwhile gets a one-line WorkdirError naming the holder, instead of both writing
    checkpoints and metrics. The OS drops the lock when the process ends, however it
    ends (a kill too), so a crashed run never leaves the folder blocked."""
    if not self.writer or not HAS_FLOCK or self._lock is not None:
      yield
      return
    created = self._acquire()
    try:
      yield
    except BaseException:
      self._tidy(created)  # a refused start leaves no half-made folder behind
      raise
    finally:
      self._release()

  def _acquire(self) -> list[str]:
    """Take the lock (prepare()-ing the folder first); -> the folders prepare() created."""
    created = self.prepare()
    self._lock = take_lock(self.file(LOCK), lambda holder: (
        f'workdir {self.path} is in use by another run ({holder}); wait for it to end, or '
        'choose another --workdir'))
    return created

  def _release(self) -> None:
    if self._lock is not None:
      self._lock.close()  # closing the file drops the flock
      self._lock = None

  # ---- readers ------------------------------------------------------------------------

  def read_json(self, name: str, default=None, shape=None):
    """A JSON file of the workdir; the records (`RECORDS`, or `shape`) checked against their
    shapes."""
    path = self.file(name)
    if not os.path.exists(path):
      if default is not None:
        return default
      raise WorkdirError(f'{path} not found: {self.path!r} is not a trained workdir')
    try:
      with open(path) as f:
        value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise WorkdirError(f'{path} is damaged ({e}); {FIX.get(name, FIX[CONFIG])}') from e
    shape = shape if shape is not None else RECORDS.get(name)
    if shape is not None:
      check_record(path, value, shape, FIX[name])
    return value

  def read_members(self, shape=None) -> list[dict] | None:
    """members.json (None before a run wrote one); `shape`: the record layer's entry shape
    with the sweep axes' types (record.members_shape)."""
    return self.read_json(MEMBERS, shape=shape) if self.exists(MEMBERS) else None

  def read_model(self) -> dict | None:
    return self.read_json(MODEL) if self.exists(MODEL) else None

  def read_metrics(self) -> list[dict]:
    """metrics.jsonl's rows; a torn last line (a kill mid-write) is dropped with a warning."""
    return self._read_metrics()[0]

  def _read_metrics(self) -> tuple[list[dict], bool]:
    path = self.file(METRICS)
    torn = False
    if not os.path.exists(path):
      return [], torn
    with open(path, 'rb') as f:
      lines = f.read().split(b'\n')
    rows = []
    for i, line in enumerate(lines):
      if not line.strip():
        continue
      try:
        rows.append(json.loads(line))
      except (json.JSONDecodeError, UnicodeDecodeError) as e:
        if any(rest.strip() for rest in lines[i + 1:]):
          raise WorkdirError(f'{path}: line {i + 1} is not JSON ({e}); fix or delete that '
                             'line') from e
        log.warning('%s: dropped a torn last line (the run was stopped while writing it)',
                    path)
        torn = True
    return rows, torn

  # ---- writers (no-ops off the writer process) ---------------------------------------

  def write_json(self, name: str, obj) -> None:
    if self.writer:
      write_json(self.file(name), obj)

  def write_text(self, name: str, text: str) -> None:
    if self.writer:
      write_text_file(self.file(name), text)

  def write_arrays(self, name: str, **arrays) -> None:
    """An .npz of named arrays (atomically)."""
    if self.writer:
      write_bytes(self.file(name), npz_bytes(**arrays))

  def rename(self, src: str, dst: str) -> None:
    """Rename a file or folder of the workdir (the writer process only)."""
    if self.writer:
      os.rename(src, dst)

  def write_config(self, config) -> None:
    self.write_json(CONFIG, config_to_dict(config))

  def write_metrics(self, rows: list[dict]) -> None:
    """Replace metrics.jsonl with `rows` (atomically)."""
    if self.writer:
      write_lines(self.file(METRICS), rows)

  def save_figure(self, fig, name: str) -> str | None:
    """Save a matplotlib figure as figures/<name> (atomically) and close it."""
    data = figure_bytes(fig, name)  # closes it, on every process
    if not self.writer:
      return None
    return write_bytes(self.figure(name), data)

  def metrics_log(self, keep_through_step: int, resumed: bool) -> 'MetricsLog':
    return MetricsLog(self, keep_through_step, resumed)


class MetricsLog:
  """Append-only metrics.jsonl. On resume, rows logged after the restored step are dropped
  (they were logged after the last checkpoint and will be logged again)."""

  def __init__(self, wd: Workdir, keep_through_step: int, resumed: bool):
    self.wd = wd
    rows, torn = wd._read_metrics()
    if resumed and not rows and keep_through_step > 0:
      log.warning('%s is missing: the history of the first %d steps is lost; new epochs are '
                  'logged from here on', wd.file(METRICS), keep_through_step)
    self.rows = [r for r in rows if r.get('step', 0) <= keep_through_step]
    if len(self.rows) != len(rows) or torn or (rows and not resumed):
      wd.write_metrics(self.rows if resumed else [])
      if not resumed:
        self.rows = []

  def write(self, rows: list[dict]) -> None:
    rows = [{k: _clean(v) for k, v in r.items()} for r in rows]
    if self.wd.writer:
      append_text(self.wd.file(METRICS), ''.join(json.dumps(r) + '\n' for r in rows))
    self.rows.extend(rows)
