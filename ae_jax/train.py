"""train_and_evaluate(config, workdir): checks -> data -> model -> chunked training -> workdir.

Training is one loop over compiled chunks of S steps (a whole epoch by default for
device-resident data, `data.stream_chunk_steps` for streamed data, one step with
`train.loop='python'`). Every path has the same events at chunk boundaries: the
SIGTERM/SIGINT check and, at epoch ends, metrics, evaluation and checkpoints. Each distinct
`config.data` of a run is loaded once (training.Datasets), and every program of a sweep
compiles through one `compile.Compiler`, so equal programs share their compilations.
"""
from __future__ import annotations

import json
import os
import sys
import time

import jax
import numpy as np
import tqdm

from ae_jax import (checkpoint, config_lib, data, evaluate, figures, init_from, mesh as mesh_lib,
                    preempt, progress as progress_lib, record as record_lib, report, results,
                    steps, stops, tracking)
from ae_jax.compile import Compiler, run_compiler
from ae_jax.errors import CheckpointError, NonFiniteLossError, Preempted, WorkdirError
from ae_jax.metrics import registry
from ae_jax.record import ModelRecord
from ae_jax.training import Chunks, Datasets, Training
from ae_jax.workdir import (CONFIG, MEMBERS, MODEL, PROGRAMS, SUMMARY, Workdir, config_to_dict,
                           refuse_unless)

CRASH_LOG = stops.CRASH_LOG


# ---- the workdir: refuse what would silently reuse another experiment's weights ----------


def claim(wd: Workdir, config, fresh: bool = False) -> None:
  """Make `wd` ready for `config`, before any data loads or anything compiles: refuse a
  workdir holding a model that `config` would not continue, or (fresh) move it aside.
  Another command's folder (a study's, a tool's outputs) is refused, and `fresh` moves
  aside only a previous run."""
  check_owner(wd.path, fresh)
  wd.prepare()
  if fresh and not wd.is_empty():
    moved = wd.move_aside()
    print(f'moved the previous run to {moved}', flush=True)
    wd.prepare()
    return
  if not wd.is_trained():
    if wd.has_checkpoints():
      raise WorkdirError(f'{wd.path} has checkpoints but no config.json; use another '
                         '--workdir, or --fresh to move it aside')
    return
  if not wd.has_checkpoints(programs=True) and wd.holds_records():
    # a run's metrics, summary and figures without its weights: starting over here
    # would overwrite them
    moved = wd.move_aside()
    print(f'no checkpoint found in {wd.path}: moved the previous run\'s records to {moved}; '
          'training starts from epoch 0', flush=True)
    wd.prepare()
    return
  old = wd.read_json(CONFIG)
  folder = wd.file(PROGRAMS)
  programs = [wd] + ([wd.program(p) for p in sorted(os.listdir(folder))]
                     if os.path.isdir(folder) else [])
  trained = max((e for e in map(record_lib.trained_epochs, programs) if e is not None),
                default=None)
  config_lib.check_compatible(old, config_to_dict(config), wd.path, trained)


def check_owner(workdir: str, fresh: bool = False) -> None:
  """Refuse a folder another command owns (a study's, a tool's outputs; with `fresh`, any
  folder but a previous run's, which it would move aside), naming the owner."""
  refuse_unless(workdir, ('run', 'export') if fresh else ('run', 'export', 'files'),
                '--workdir', 'a run trains only in a new or empty folder or a trained '
                'workdir' + (' (--fresh moves aside only a previous run)' if fresh else '')
                + '; use another --workdir')


def train_and_evaluate(config, workdir: str, fresh: bool = False) -> dict:
  """Train every member of `config` in `workdir`, resuming from its checkpoints.

  One program trains in `workdir` itself; a sweep with outer axes or chunks trains each
  program in `workdir/programs/<name>/` and gathers metrics, summary, tables and figures
  at the top. `fresh` moves an existing workdir aside first (never deletes it).
  """
  config = config_lib.resolve(config)
  check_owner(workdir, fresh)  # before running() makes its lock there
  wd = Workdir(workdir)
  with wd.running():
    return _train_and_evaluate(config, wd, fresh)


def _train_and_evaluate(config, wd: Workdir, fresh: bool) -> dict:
  claim(wd, config, fresh)
  datasets, compiler = Datasets(), run_compiler()
  progs = config_lib.programs(
      config, image_shape_of=lambda cfg: datasets.get(cfg.data).info.image_shape)
  train = lambda prog, where: train_program(prog.config, where, prog.members,
                                            datasets.get(prog.config.data), compiler)
  if len(progs) == 1:
    summary, recon = train(progs[0], wd)
    rows = wd.read_metrics()
    recon_parts = [recon]
  else:
    summary, rows, recon_parts = {'programs': [], 'members': []}, [], []
    for prog in progs:
      sub = wd.program(prog.name)
      print(f'== program {prog.name}: {len(prog.members)} member(s)', flush=True)
      s, recon = train(prog, sub)
      summary['programs'].append({'name': prog.name, 'workdir': sub.path,
                                  **{k: v for k, v in s.items() if k != 'members'}})
      summary['members'] += s['members']
      rows += sub.read_metrics()
      recon_parts.append(recon)
    wd.write_config(config)
    wd.write_json(MEMBERS, [{**m, 'program': p.name} for p in progs for m in p.members])
    wd.write_metrics(rows)
    if config.figures.enabled:
      wd.save_figure(figures.loss_curves(rows, 'loss', config.figures.log_scale,
                                         'training loss (train: epoch mean; eval: test split)'),
                     'loss.png')
      wd.save_figure(figures.recon_grid(recon_parts), 'recon.png')
  members = [m for p in progs for m in p.members]
  if len(members) > 1:
    frozen = {m['name']: m['frozen'] for m in summary['members'] if 'frozen' in m}
    summary['table'] = report.write_sweep(wd, config, members, rows,
                                          draw=config.figures.enabled, frozen=frozen)
    tracking.write_hparams(wd, config, members, summary)
  wd.write_json(SUMMARY, summary)
  return summary


# ---- one program ------------------------------------------------------------------------


def _write_records(wd: Workdir, training: Training, record: ModelRecord,
                   resumed: bool) -> None:
  """config.json, members.json and model.json: written for a new run, and on resume only
  with the changes claim() allowed (they still describe the weights)."""
  if resumed and wd.exists(CONFIG):
    diff = config_lib.changes(wd.read_json(CONFIG), config_to_dict(training.config))
    if diff:  # keys a newer version added are not changes
      print(f'resuming {wd.path} with changed settings: {"; ".join(diff)}', flush=True)
  record_lib.write_run(wd, training.config, training.members, record)


def _console(line: str) -> None:
  """A line on stdout that leaves a progress bar on the terminal intact."""
  tqdm.tqdm.write(line, file=sys.stdout)


def _progress_bar(config, total, initial):
  return progress_lib.Progress(total, 'training', unit='steps', enabled=config.progress,
                               initial=initial, leave=True)


def train_program(config, wd: Workdir, members: list[dict], dataset=None,
                  compiler: Compiler | None = None):
  """Train one compiled program's members in `wd` (resuming), evaluate them, draw.

  The loop runs compiled chunks and, at each chunk's end, asks in turn whether each event
  is due: a stop (a signal), the end of an epoch (its metrics), an evaluation, a
  checkpoint. -> (summary, (originals, reconstructions, labels) for the recon figure)
  """
  wd.prepare()
  training = Training.create(config, members, dataset, compiler=compiler)
  print(training.dataset.info.describe(), flush=True)
  spec = training.spec
  note = registry.photographs_note(tuple(config.eval.metrics), spec.model.kind,
                                   spec.image_shape, config.loss.objective,
                                   data.photographic(config.data, spec.image_shape),
                                   config.data.name)
  if note:
    print(f'note: {note}', flush=True)
  record_lib.migrate_epoch_checkpoints(wd, training.steps_per_epoch)
  run = _Run(training, wd)
  try:
    with preempt.Watcher() as watcher:
      run.start()
      while run.step < run.total:
        run.train_chunk()
        stop = watcher.should_stop(run.step)
        if not (run.epoch_end or stop):
          continue
        run.check_finite()
        if not run.epoch_end:  # stopped mid-epoch: keep the epoch's metrics so far
          run.save(partial=True)
          raise Preempted(stops.stop_message(watcher.signum, training, run.step, wd),
                          watcher.signum)
        run.log_epoch()
        if run.step == run.total:  # training is done: its bar ends before the final passes
          run.bar.close()
        if training.is_eval_epoch(run.epoch):
          run.evaluate()
          # a signal during the evaluation (the final one can take minutes) stops here too;
          # processes of a multi-process job agree on stops only at should_stop's steps
          stop = stop or watcher.signalled_here()
        if stop or run.checkpoint_due():
          run.save()
        if stop:
          raise Preempted(stops.stop_message(watcher.signum, training, run.step, wd),
                          watcher.signum)
  except Exception as e:  # noqa: BLE001 - anything unexpected: keep what was trained
    if isinstance(e, (Preempted, NonFiniteLossError, CheckpointError)):
      raise  # already saved, or nothing good to save
    raise run.rescue(e) from e
  finally:
    run.close()
  return run.finish()


def _started_from(wd: Workdir):
  """model.json's init_from (where a fine-tune started), read even from a record damaged
  elsewhere (a resume rewrites the rest from the data and the config)."""
  try:
    return ModelRecord.read(wd).init_from
  except WorkdirError:
    try:
      with open(wd.file(MODEL)) as f:
        value = json.load(f)
    except (OSError, ValueError):
      return None
    return value.get('init_from') if isinstance(value, dict) else None


class _Run:
  """One program's training in progress: its state and step, this epoch's chunk metrics,
  the logs and checkpoints, and what each event of train_program's loop does."""

  def __init__(self, training: Training, wd: Workdir):
    self.training, self.wd = training, wd
    cfg, fns, spe = training.config, training.functions, training.steps_per_epoch
    self.cfg, self.fns, self.spe = cfg, fns, spe
    self.ckpts = checkpoint.Checkpoints(
        wd.checkpoints, max_to_keep=cfg.checkpoint.max_to_keep,
        keep_steps=[e * spe for e in training.keep_epochs()], best_dir=wd.best_checkpoints,
        best_metric=cfg.checkpoint.best_metric, best_mode=cfg.checkpoint.best_mode,
        writer=wd.writer)
    state = training.init_state(from_data=False)  # the template a checkpoint restores into
    restored = self.ckpts.restore_latest(fns.stack(state))
    self.step, progress = 0, {}
    if restored is not None:
      stacked, self.step, progress = restored
      state = fns.unstack(stacked)
      print(f'resumed {wd.path} from epoch {training.epoch_of(self.step)} (step {self.step})',
            flush=True)
    else:
      state = training.init_from_data(state)
    record = training.spec.record
    if restored is None and cfg.train.init_from:  # a fine-tune: its model from another run
      stacked, source, note = init_from.start(fns.stack(state), cfg.train.init_from,
                                              [m['name'] for m in training.members])
      state = fns.unstack(stacked)
      record = record.replace(init_from=source)
      print(note, flush=True)
    elif restored is not None and wd.has_model_record():  # keeps where it started
      record = record.replace(init_from=_started_from(wd))
    self.state = state
    self.saved = self.step if restored is not None else None  # the newest checkpoint's step
    self.checked = self.step  # the last step known complete (a chunk's result waited for)
    self.unchecked = 0  # steps dispatched since then (chunks run ahead of the host)
    _write_records(wd, training, record, restored is not None)
    self.metrics_log = wd.metrics_log(self.step, restored is not None)
    # TensorBoard / W&B: the same rows, from the same step on (tracking.py)
    self.tracker = tracking.Tracker(wd, cfg, training.members, self.step)
    self.total = cfg.train.num_epochs * spe
    self.frozen = dict(progress.get('frozen', {}))  # member name -> why
    self.names = [m['name'] for m in training.members]
    self.active = fns.active([n not in self.frozen for n in self.names])
    partial = {k: np.asarray(v['values'], v['dtype'])
               for k, v in progress.get('epoch_metrics', {}).items()}
    self.pending = [partial] if partial else []  # this epoch's chunk metrics so far
    self.host = None  # the epoch's metrics on the host, once checked
    self.last_eval, self.chunks = None, None
    self.bar = _progress_bar(cfg, self.total, min(self.step, self.total))
    self.timing = {'compile_s': None, 'train_s': 0.0, 'timed_steps': 0}
    # where this run's time went (summary.json's `seconds`): compiled chunks, evaluations
    # (the batch metrics), checkpoints, figures; each end-of-run pass by itself
    self.seconds = {'training': 0.0, 'evaluation': 0.0, 'checkpoints': 0.0, 'figures': 0.0}
    training.evaluator.say = _console
    # wall-clock seconds of this run so far (compiling, training, evaluating), carried over
    # resumes from the last row kept: PSNR-against-time curves
    self.wall0 = time.perf_counter() - max(
        (r.get('wall_s', 0.0) for r in self.metrics_log.rows), default=0.0)

  @property
  def epoch(self) -> int:
    return self.step // self.spe

  @property
  def epoch_end(self) -> bool:
    return self.step % self.spe == 0

  def start(self):
    self.chunks = Chunks(self.training, self.state, self.step)

  def train_chunk(self):
    """One compiled chunk: up to the chunk size or the epoch's end."""
    n = min(self.chunks.size, self.spe - self.step % self.spe)
    if not self.unchecked:  # the first chunk since the host last waited: time from here
      self.t0 = time.perf_counter()
    self.state, self.active, m = self.chunks.run(self.state, self.active, self.step, n)
    self.pending.append(m)
    self.step += n
    self.unchecked += n

  def check_finite(self):
    """Wait for the chunks dispatched since the last check (an epoch's, several when
    train.chunk_steps splits it), time them, count them on the progress bar, and stop on
    (or freeze a member at) a non-finite term."""
    jax.block_until_ready(self.state)
    dt, timing, done = time.perf_counter() - self.t0, self.timing, self.unchecked
    self.seconds['training'] += dt
    if timing['compile_s'] is None:
      timing['compile_s'] = dt  # the first wait: compiling and the first chunks
    else:
      timing['train_s'] += dt
      timing['timed_steps'] += done
    self.checked, self.unchecked = self.step, 0
    self.host = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=1),
                                       *mesh_lib.host(self.pending))
    first_step = self.step - self.host['loss'].shape[1]
    self.bar.update(done)
    stops.check_finite(self.training, self.host, first_step, self.frozen, self.names,
                       self.cfg, self.ckpts)

  def _rows(self, rows):
    for r in rows:
      r['wall_s'] = time.perf_counter() - self.wall0
    self.metrics_log.write(rows)
    self.tracker.rows(rows)

  def log_epoch(self):
    """The epoch's training rows (mean of each metric over its steps)."""
    host, self.pending = self.host, []
    rows = [
        {'epoch': self.epoch, 'step': self.step, 'split': 'train', 'member': name,
         **{k: float(np.mean(host[k][i])) for k in host
            if k not in steps.FLAGS + ('lr', 'beta')},
         'lr': float(host['lr'][i, -1]), 'beta': float(host['beta'][i, -1])}
        for i, name in enumerate(self.names)]
    self._rows(rows)
    self.bar.set_postfix(loss=f'{np.mean(host["loss"][:, -1]):.4g}')

  def _evaluate(self, epoch: int, final: bool) -> dict:
    """The evaluator's metrics, its time counted (the passes apart)."""
    evaluator = self.training.evaluator
    t0, passes = time.perf_counter(), sum(evaluator.pass_seconds.values())
    values = evaluator(self.state, epoch, final)
    self.seconds['evaluation'] += (time.perf_counter() - t0
                                   - (sum(evaluator.pass_seconds.values()) - passes))
    return values

  def evaluate(self):
    final = self.epoch == self.cfg.train.num_epochs
    values = self._evaluate(self.epoch, final)
    rows = evaluate.rows(self.training.members, values, epoch=self.epoch, step=self.step)
    self._rows(rows)
    self.last_eval = rows
    if tracking.wants_images(self.cfg):
      self.tracker.images(self.step, results.recon_rows(self.training, self.state))
    for r in rows:
      who = f' [{r["member"]}]' if len(self.names) > 1 else ''
      _console(f'epoch {self.epoch}/{self.cfg.train.num_epochs}{who} eval: '
               f'{registry.console_line(r)}')

  def checkpoint_due(self) -> bool:
    epoch = self.epoch
    return (epoch % self.cfg.checkpoint.every_epochs == 0
            or epoch == self.cfg.train.num_epochs or epoch in self.training.keep_epochs())

  def save(self, partial: bool = False):
    """Checkpoint the state; `partial`: mid-epoch, with the epoch's metrics so far."""
    best = None
    evaluated = self.last_eval and self.last_eval[0]['step'] == self.step
    if evaluated and self.cfg.checkpoint.best_metric and not partial:
      key = self.cfg.checkpoint.best_metric
      best = {key: float(np.mean([r[key] for r in self.last_eval]))}
    t0 = time.perf_counter()
    self.saved = stops.save(self.ckpts, self.training, self.state, self.step, self.frozen,
                            self.host if partial else None, best)
    self.seconds['checkpoints'] += time.perf_counter() - t0

  def rescue(self, error):
    """After an unexpected error: the one-line error to raise (see _rescue)."""
    return stops.rescue(error, self.training, self.wd, self.ckpts, self.state, self.step,
                        self.saved, self.pending, self.frozen, self.checked)

  def close(self):
    if self.chunks is not None:
      self.chunks.close()
    self.bar.close()
    self.tracker.close()
    self.ckpts.close()

  def finish(self):
    """The final evaluation (if training ended without one), summary.json, the figures."""
    training, members = self.training, self.training.members
    last_eval = self.last_eval
    if last_eval is None or last_eval[0]['epoch'] != self.cfg.train.num_epochs:
      # nothing was left to train: the final evaluation of the restored state
      epoch = training.epoch_of(self.step)
      last_eval = evaluate.rows(members, self._evaluate(epoch, final=True), epoch=epoch,
                                step=self.step)
    t0 = time.perf_counter()
    stats = results.latent_statistics(training, self.state, self.wd,
                                      training.epoch_of(self.step))
    self.seconds['evaluation'] += time.perf_counter() - t0
    t0 = time.perf_counter()
    recon = results.recon_rows(training, self.state)
    if self.cfg.figures.enabled:
      results.draw_figures(training, self.wd, self.metrics_log.rows, last_eval, recon)
    self.seconds['figures'] += time.perf_counter() - t0
    seconds = {**self.seconds, 'passes': dict(training.evaluator.pass_seconds)}
    _console(results.time_line(seconds))
    summary = results.summary(training, self.metrics_log.rows, last_eval, self.timing,
                              self.frozen, seconds)
    for entry in summary['members']:
      entry['latent_stats'] = stats[entry['name']]
    self.wd.write_json(SUMMARY, summary)
    return summary, recon

