"""The workdir: the one module that knows its file names, and its only writer.

  runs/x/
    config.json     the config the weights were trained with
    members.json    the models trained (one per sweep point; 'run' when not sweeping)
    model.json      what loading a model needs without its data (image shape, classes, ...)
    metrics.jsonl   one JSON object per epoch and split
    summary.json    final metrics per member, training speed
    eval.json       the last --mode=evaluate result
    sweep.csv, sweep.md, report.md, report.html
    checkpoints/, checkpoints_best/   Orbax
    figures/*.png   latent/<tool>/    programs/<name>/ (a workdir per program of a sweep)
    tensorboard/<member>/   TensorBoard event files (tracking.py), one run per member, at
                    the top workdir for every program of a sweep
    .lock           held (flock) by the process training here; names it

Every write goes through a `Workdir`, and only a writer writes: in a multi-process job
that is process 0 (`jax.process_index() == 0`), decided here and nowhere else. Readers
turn damaged files into one-line `WorkdirError`s that name the file. A training run holds
its workdir (`Workdir.running()`), so a second run started in the same folder stops with
an error instead of writing checkpoints and metrics beside the first.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import shutil
import socket

import ml_collections

try:
  import fcntl
except ImportError:  # not POSIX: runs are not locked
  fcntl = None

from ae_jax.errors import WorkdirError

log = logging.getLogger('ae_jax')

CONFIG, MEMBERS, MODEL, METRICS = 'config.json', 'members.json', 'model.json', 'metrics.jsonl'
SUMMARY, EVAL, LOCK = 'summary.json', 'eval.json', '.lock'
CHECKPOINTS, BEST, FIGURES, PROGRAMS, LATENT = ('checkpoints', 'checkpoints_best', 'figures',
                                                'programs', 'latent')
TENSORBOARD = 'tensorboard'
# what `prepare` and a start that went no further leave: nothing of a run while empty
_SCAFFOLD = (FIGURES, CHECKPOINTS)


def _clean(v):
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)
  return v


def _is_writer() -> bool:
  import jax
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
    """Where latent tool `tool` writes: <workdir>/latent/<tool>/, or `out`."""
    return Outputs(self.latent_dir(tool, out), self.writer)

  # ---- state of the folder ------------------------------------------------------------

  def exists(self, name: str) -> bool:
    return os.path.exists(self.file(name))

  def is_trained(self) -> bool:
    return self.exists(CONFIG)

  def has_checkpoints(self) -> bool:
    d = self.file(CHECKPOINTS)
    return os.path.isdir(d) and any(n.isdigit() for n in os.listdir(d))

  def is_empty(self) -> bool:
    """Nothing of a run here: no folder, or only what `prepare`, `running` and a start that
    went no further make (the lock, empty figures/ and checkpoints/ folders)."""
    if not os.path.exists(self.path):
      return True
    return all(n == LOCK or (n in _SCAFFOLD and os.path.isdir(self.file(n))
                             and not os.listdir(self.file(n)))
               for n in os.listdir(self.path))

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
    try:
      os.makedirs(self.file(FIGURES), exist_ok=True)
      probe = self.file('.write-test')
      with open(probe, 'w') as f:
        f.write('ok')
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
    if not self.writer or fcntl is None or self._lock is not None:
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
    f = open(self.file(LOCK), 'a+')
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or 'another process'
      f.close()
      raise WorkdirError(f'workdir {self.path} is in use by another run ({holder}); wait for '
                         'it to end, or choose another --workdir') from None
    except OSError:  # a file system without flock: run unlocked
      f.close()
      return created
    f.seek(0)
    f.truncate()
    f.write(f'process {os.getpid()} on {socket.gethostname()}\n')
    f.flush()
    self._lock = f
    return created

  def _release(self) -> None:
    if self._lock is not None:
      self._lock.close()  # closing the file drops the flock
      self._lock = None

  # ---- readers ------------------------------------------------------------------------

  def read_json(self, name: str, default=None):
    path = self.file(name)
    if not os.path.exists(path):
      if default is not None:
        return default
      raise WorkdirError(f'{path} not found: {self.path!r} is not a trained workdir')
    try:
      with open(path) as f:
        return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise WorkdirError(f'{path} is damaged ({e}); restore it from a copy, or start '
                         'again with --fresh (moves this workdir aside)') from e

  def read_config(self) -> ml_collections.ConfigDict:
    """The config the workdir was trained with: config.json over the base config (keys of
    older versions mapped, compat.merge_config)."""
    from ae_jax import compat, schema
    cfg = schema.base_config()
    values = self.read_json(CONFIG)
    if not isinstance(values, dict):
      raise WorkdirError(f'{self.file(CONFIG)} is damaged (not a JSON object)')
    compat.merge_config(cfg, values, self.file(CONFIG))
    return cfg

  def read_members(self) -> list[dict] | None:
    return self.read_json(MEMBERS) if self.exists(MEMBERS) else None

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
    if not self.writer:
      return
    tmp = self.file(name) + '.tmp'
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    with open(tmp, 'w') as f:
      f.write(text)
    os.replace(tmp, self.file(name))

  def rename(self, src: str, dst: str) -> None:
    """Rename a file or folder of the workdir (the writer process only)."""
    if self.writer:
      os.rename(src, dst)

  def write_config(self, config) -> None:
    self.write_json(CONFIG, config_to_dict(config))

  def write_metrics(self, rows: list[dict]) -> None:
    """Replace metrics.jsonl with `rows` (atomically)."""
    if self.writer:
      _write_lines(self.file(METRICS), rows)

  def save_figure(self, fig, name: str) -> str | None:
    """Save a matplotlib figure as figures/<name> and close it."""
    import matplotlib.pyplot as plt
    path = self.figure(name)
    if self.writer:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      fig.savefig(path)
    plt.close(fig)
    return path if self.writer else None

  def metrics_log(self, keep_through_step: int, resumed: bool) -> 'MetricsLog':
    return MetricsLog(self, keep_through_step, resumed)


class Outputs:
  """A folder of a tool's outputs (figures, arrays, JSON), written by the writer only."""

  def __init__(self, path: str, writer: bool = True):
    self.path, self.writer = str(path), writer
    self.written: list[str] = []

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  def _target(self, name: str) -> str | None:
    if not self.writer:
      return None
    if os.path.exists(self.path) and not os.path.isdir(self.path):
      raise WorkdirError(f'{self.path} is a file; --out must be a folder')
    os.makedirs(self.path, exist_ok=True)
    self.written.append(self.file(name))
    return self.file(name)

  def array(self, name: str, arr) -> str:
    import numpy as np
    path = self._target(name)
    if path:
      np.save(path + '.tmp.npy', np.asarray(arr))
      os.replace(path + '.tmp.npy', path)
    return self.file(name)

  def arrays(self, name: str, **arrs) -> str:
    import numpy as np
    path = self._target(name)
    if path:
      np.savez(path + '.tmp.npz', **{k: np.asarray(v) for k, v in arrs.items()})
      os.replace(path + '.tmp.npz', path)
    return self.file(name)

  def json(self, name: str, obj) -> str:
    path = self._target(name)
    if path:
      write_json(path, obj)
    return self.file(name)

  def figure(self, fig, name: str) -> str:
    import matplotlib.pyplot as plt
    path = self._target(name)
    if path:
      fig.savefig(path)
    plt.close(fig)
    return self.file(name)


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
      with open(self.wd.file(METRICS), 'a') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in rows))
    self.rows.extend(rows)


# ---- plain helpers ----------------------------------------------------------------------


def write_text_file(path: str, text: str) -> None:
  """Write `text` to `path` through a temporary name (never a half-written file)."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(text)
  os.replace(tmp, path)


def write_json(path: str, obj) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=False, default=str)
  os.replace(tmp, path)  # never leave a half-written file behind


def _write_lines(path: str, rows: list[dict]) -> None:
  with open(path + '.tmp', 'w') as f:
    for r in rows:
      f.write(json.dumps(r) + '\n')
  os.replace(path + '.tmp', path)


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())
