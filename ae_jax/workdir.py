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

Every write goes through a `Workdir` (or `Outputs`), and only a writer writes: in a
multi-process job that is process 0 (`jax.process_index() == 0`), decided here and nowhere
else. Every file is written by one function, `write_bytes`: into a temporary name in the
same folder, synced, then renamed over the old version, so a full disk or a kill leaves
the previous version intact and no temporary behind; a failure is one `WriteError` line
naming the file and the OS reason. Readers turn damaged files into one-line
`WorkdirError`s that name the file, and check the records against their declared shapes
(`RECORDS`): the key at fault and the way to fix it. A training run holds its workdir
(`Workdir.running()`), so a second run started in the same folder stops with an error
instead of writing checkpoints and metrics beside the first; a latent tool holds its
output folder the same way, and replaces it as a whole when it finishes (`Outputs`).
"""
from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import math
import os
import secrets
import shutil
import socket

import ml_collections

try:
  import fcntl
except ImportError:  # not POSIX: runs are not locked
  fcntl = None

from ae_jax.errors import WorkdirError, WriteError

log = logging.getLogger('ae_jax')

CONFIG, MEMBERS, MODEL, METRICS = 'config.json', 'members.json', 'model.json', 'metrics.jsonl'
SUMMARY, EVAL, LOCK = 'summary.json', 'eval.json', '.lock'
CHECKPOINTS, BEST, FIGURES, PROGRAMS, LATENT = ('checkpoints', 'checkpoints_best', 'figures',
                                                'programs', 'latent')
TENSORBOARD = 'tensorboard'
# what `prepare` and a start that went no further leave: nothing of a run while empty
_SCAFFOLD = (FIGURES, CHECKPOINTS)
# what a run writes before its first epoch (from the config and the data: rewritten alike)
_START = (CONFIG, MEMBERS, MODEL)

# ---- what each record must hold ---------------------------------------------------------
# file -> {key: kind}; a '!' marks a required key, a dotted key a nested one. MEMBERS is a
# non-empty list of such objects (each vmapped sweep axis typed as sweep.AXES says). What
# is not listed is not checked here (merge_config checks config.json's values by key).
RECORDS = {
    CONFIG: {'model': 'object!', 'model.kind': 'text!', 'model.latent_dim': 'count!',
             'data': 'object!', 'data.name': 'text!', 'train': 'object!',
             'train.batch_size': 'count!', 'train.num_epochs': 'count!'},
    MODEL: {'image_shape': 'shape!', 'steps_per_epoch': 'count!', 'format': 'count',
            'checkpoint_unit': 'unit', 'kind': 'text', 'num_train': 'count',
            'class_names': 'texts', 'color_key': 'list', 'storage': 'object',
            'latent_shape': 'counts', 'members': 'list'},
    MEMBERS: [{'name': 'text!', 'program': 'text'}],
    SUMMARY: {'members': 'list', 'image_shape': 'shape', 'steps_per_epoch': 'count'},
}
_REWRITE = ("restore it from a copy, or run this workdir's training command again (it resumes, "
            'trains nothing new and rewrites it)')
_FIX = {CONFIG: 'restore it from a copy, or start again with --fresh (moves this workdir aside)',
        MODEL: _REWRITE, MEMBERS: _REWRITE, SUMMARY: _REWRITE}


def _count(v):
  return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _number(v):
  return isinstance(v, (int, float)) and not isinstance(v, bool)


KINDS = {  # kind -> (test, what a user reads)
    'object': (lambda v: isinstance(v, dict), 'a JSON object'),
    'list': (lambda v: isinstance(v, list), 'a list'),
    'text': (lambda v: isinstance(v, str), 'a string'),
    'texts': (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
              'a list of strings'),
    'count': (_count, 'a positive integer'),
    'counts': (lambda v: isinstance(v, list) and all(map(_count, v)),
               'a list of positive integers'),
    'int': (lambda v: isinstance(v, int) and not isinstance(v, bool), 'an integer'),
    'number': (_number, 'a number'),
    'shape': (lambda v: isinstance(v, list) and len(v) == 3 and all(map(_count, v)),
              'a list of 3 positive integers [H, W, C]'),
    'unit': (lambda v: v in ('step', 'epoch'), '"step" or "epoch"'),
}


def _what(v) -> str:
  kind = {dict: 'an object', list: 'a list', str: 'a string', bool: 'a boolean',
          type(None): 'null'}.get(type(v), 'a number')
  text = json.dumps(v)
  return f'{text} ({kind})' if len(text) <= 40 else kind


def check_record(path: str, value, shape, fix: str) -> None:
  """Raise one WorkdirError line naming `path`, the key and `fix` where `value` (a JSON
  record) lacks a required key of `shape` or holds a key of the wrong kind."""
  if isinstance(shape, list):  # a non-empty list of records
    if not isinstance(value, list) or not value:
      raise WorkdirError(f'{path} holds {_what(value)}; expected a non-empty list of objects '
                         f'(one per trained model); {fix}')
    from ae_jax import sweep  # the vmapped axes' types, declared once in the schema
    axes = {a: 'int' if t is int else 'number' for a, (_, t) in sweep.AXES.items()}
    for i, item in enumerate(value):
      check_record(f'{path}: entry {i}', item, {**axes, **shape[0]}, fix)
    return
  if not isinstance(value, dict):
    raise WorkdirError(f'{path} holds {_what(value)}; expected a JSON object; {fix}')
  for key, kind in shape.items():
    required, kind = kind.endswith('!'), kind.rstrip('!')
    node, found = value, True
    for part in key.split('.'):
      if not isinstance(node, dict) or part not in node:
        found = False
        break
      node = node[part]
    test, what = KINDS[kind]
    if not found:  # (a parent comes first in `shape`: it is named when it is at fault)
      if required:
        raise WorkdirError(f'{path} has no {key!r} ({what}); {fix}')
      continue
    if not test(node):
      raise WorkdirError(f'{path}: {key!r} is {_what(node)}; expected {what}; {fix}')


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
    self._lock = take_lock(self.file(LOCK), lambda holder: (
        f'workdir {self.path} is in use by another run ({holder}); wait for it to end, or '
        'choose another --workdir'))
    return created

  def _release(self) -> None:
    if self._lock is not None:
      self._lock.close()  # closing the file drops the flock
      self._lock = None

  # ---- readers ------------------------------------------------------------------------

  def read_json(self, name: str, default=None):
    """A JSON file of the workdir; the records (`RECORDS`) checked against their shapes."""
    path = self.file(name)
    if not os.path.exists(path):
      if default is not None:
        return default
      raise WorkdirError(f'{path} not found: {self.path!r} is not a trained workdir')
    try:
      with open(path) as f:
        value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise WorkdirError(f'{path} is damaged ({e}); {_FIX.get(name, _FIX[CONFIG])}') from e
    if name in RECORDS:
      check_record(path, value, RECORDS[name], _FIX[name])
    return value

  def read_config(self) -> ml_collections.ConfigDict:
    """The config the workdir was trained with: config.json over the base config (keys of
    older versions mapped, compat.merge_config)."""
    from ae_jax import compat, schema
    cfg = schema.base_config()
    compat.merge_config(cfg, self.read_json(CONFIG), self.file(CONFIG), _FIX[CONFIG])
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
    if self.writer:
      write_text_file(self.file(name), text)

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
    """Save a matplotlib figure as figures/<name> (atomically) and close it."""
    data = figure_bytes(fig, name)  # closes it, on every process
    if not self.writer:
      return None
    return write_bytes(self.figure(name), data)

  def metrics_log(self, keep_through_step: int, resumed: bool) -> 'MetricsLog':
    return MetricsLog(self, keep_through_step, resumed)


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


OUTPUTS_MARK = '.outputs.json'  # in a tool's output folder: the tool and the files of its run


class Outputs:
  """A folder of one run's outputs of a tool (figures, arrays, JSON), written by the
  writer only.

  Inside `with outputs:` a run writes into a fresh hidden sibling, `.<name>.partial-*`,
  which replaces the folder as a whole when the `with` ends without an error: the old
  run's files never mix with the new ones (a rerun with fewer ids leaves no stale figure),
  and a failure or a kill midway leaves the previous folder as it was. Meanwhile the
  folder is held (a flock on the sibling `.<name>.lock`, as `Workdir.running()` holds a
  workdir): a second writer is refused with one line naming the holder. Only a folder a
  tool wrote (it holds OUTPUTS_MARK), an empty one, or the workdir's own latent/<tool>/
  (`owned`) is replaced; a `--out` holding other files is refused. `with` may nest (the
  command line holds the folder around a tool that holds it too); writes outside any
  `with` go straight into the folder, each file atomically."""

  def __init__(self, path: str, writer: bool = True, owned: bool = False, tool: str = ''):
    self.path, self.writer, self.owned = str(path), writer, owned
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

  def _open(self) -> None:
    folder, name = self._names()
    if os.path.exists(self.path) and not os.path.isdir(self.path):
      raise WorkdirError(f'{self.path} is a file; --out must be a folder')
    if not self.owned and os.path.isdir(self.path) and os.listdir(self.path) and \
        not os.path.exists(self.file(OUTPUTS_MARK)):
      raise WorkdirError(f'--out {self.path} holds files no ae_jax tool wrote; give a new or '
                         "empty folder (a tool's next run replaces its folder as a whole)")
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
    except OSError as e:
      raise WriteError(f'{self.path} cannot be written ({e.strerror or e}); a tool\'s results '
                       'are its files: give --out DIR, a folder you can write',
                       self.path, e.strerror or str(e)) from e

  def _recover(self, folder: str, name: str) -> None:
    """What a run killed before it finished left (we hold the lock: no run is live): its
    partial folder goes; a previous folder set aside by a swap cut short comes back."""
    left = sorted(n for n in os.listdir(folder) if n.startswith(f'.{name}.'))
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
        write_bytes(self.file(name), data)
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


# ---- the one write ---------------------------------------------------------------------

_os_write = os.write  # the lowest-level write, one name (tests make it fail part-way)
_CHUNK = 1 << 20


def _temporary(path: str) -> str:
  """A free hidden name beside `path` (same folder: the rename stays on one file system)."""
  folder, name = os.path.split(path)
  return os.path.join(folder, f'.{name}.{secrets.token_hex(4)}.tmp')


def write_bytes(path: str, data: bytes) -> str:
  """Write `data` to `path` atomically: into a temporary name in the same folder, synced,
  then renamed over `path`. Readers see the old file or the new one, never a part; on any
  failure the temporary is removed and the old version stays. An OSError (a full disk, a
  read-only folder) is one WriteError line naming the file and the OS reason."""
  existed = os.path.exists(path)
  tmp = None
  try:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = _temporary(path)
    # O_EXCL: never another's file; 0o666 under the umask, as open() would make it
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0), 0o666)
    try:
      view = memoryview(data).cast('B')
      while view:
        view = view[_os_write(fd, view[:_CHUNK]):]
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


def append_text(path: str, text: str) -> None:
  """Append to a log (metrics.jsonl). Not atomic, by design: its reader drops a torn last
  line. A failure is one WriteError line."""
  try:
    with open(path, 'a') as f:
      f.write(text)
  except OSError as e:
    reason = e.strerror or str(e)
    raise WriteError(f'{path} could not be appended to ({reason}); its earlier lines are '
                     'intact', path, reason) from e


def write_text_file(path: str, text: str) -> None:
  """Write `text` to `path` (atomically, `write_bytes`)."""
  write_bytes(path, text.encode('utf-8'))


def write_json(path: str, obj) -> None:
  write_bytes(path, json.dumps(obj, indent=2, sort_keys=False, default=str).encode('utf-8'))


def _write_lines(path: str, rows: list[dict]) -> None:
  write_bytes(path, ''.join(json.dumps(r) + '\n' for r in rows).encode('utf-8'))


def figure_bytes(fig, name: str) -> bytes:
  """A matplotlib figure encoded as `name`'s extension says (png by default), and closed."""
  import matplotlib.pyplot as plt
  buf = io.BytesIO()
  try:
    fig.savefig(buf, format=os.path.splitext(name)[1][1:] or 'png')
  finally:
    plt.close(fig)
  return buf.getvalue()


def npy_bytes(arr) -> bytes:
  import numpy as np
  buf = io.BytesIO()
  np.save(buf, np.asarray(arr))
  return buf.getvalue()


def npz_bytes(**arrs) -> bytes:
  import numpy as np
  buf = io.BytesIO()
  np.savez(buf, **{k: np.asarray(v) for k, v in arrs.items()})
  return buf.getvalue()


def save_figure(fig, path: str) -> str:
  """A figure written outside a workdir (scripts, experiments), atomically."""
  return write_bytes(path, figure_bytes(fig, path))


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())
