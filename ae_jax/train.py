"""train_and_evaluate(config, workdir): checks -> data -> model -> chunked training -> workdir.

Training is one loop over compiled chunks of S steps (a whole epoch by default for
device-resident data, `data.stream_chunk_steps` for streamed data, one step with
`train.loop='python'`). Every path has the same events at chunk boundaries: the
SIGTERM/SIGINT check and, at epoch ends, metrics, evaluation and checkpoints.
"""
from __future__ import annotations

import logging
import sys
import time

import jax
import numpy as np
import tqdm

from ae_jax import (checkpoint, compat, config_lib, data, evaluate, figures, mesh as mesh_lib,
                    preempt, progress as progress_lib, report, sweep, tracking,
                    workdir as wd_lib)
from ae_jax.errors import (USER_ERRORS, CheckpointError, ConfigError, NonFiniteLossError,
                           Preempted, TrainingFailed, WorkdirError)
from ae_jax.metrics import registry
from ae_jax.program import ModelSetup
from ae_jax.workdir import CONFIG, MEMBERS, MODEL, SUMMARY, Workdir

log = logging.getLogger('ae_jax')


class Setup(ModelSetup):
  """A ModelSetup with its dataset: what training and dataset evaluation need."""

  def __init__(self, config, members=None, dataset=None, plan=None):
    config = config_lib.resolve(config)  # checked before the data loads
    dataset = dataset if dataset is not None else data.load(config.data)
    super().__init__(config, dataset.info.image_shape, len(dataset.train['image']), members,
                     plan)
    self.dataset = dataset
    self.eval_epochs = _eval_epochs(self.config)
    self.evaluator = evaluate.Evaluator.of_dataset(self, dataset)

  def init_state(self, from_data: bool = True):
    """Fresh state. from_data=False leaves out what is computed from the training split
    (init_from_data): a resume restores those parameters from its checkpoint instead."""
    state = super().init_state()
    return self.init_from_data(state) if from_data else state

  def init_from_data(self, state):
    """A model with a PCA-initialised linear path (model.resnet.linear='pca') gets it from
    the training split here; other models are returned unchanged."""
    cfg = self.config.model
    if cfg.arch == 'resnet' and not cfg.preset and cfg.resnet.linear == 'pca':
      from ae_jax.models.resnet import init_linear_from_pca
      state = state.replace(params=init_linear_from_pca(
          state.params, self.train_sample(), self.latent_shape[-1]))
    return state

  def train_sample(self) -> np.ndarray:
    """Up to evaluate.PCA_FIT_MAX training images (all of them when resident)."""
    return evaluate.train_sample(self.dataset)

  def evaluate(self, state, final: bool = False) -> dict:
    """Test-split metrics of `state` (the functions' form): {name: [K] numpy}."""
    epoch = self.epoch_of(int(mesh_lib.host(self.fns.stack(state).step)[0]))
    return self.evaluator(state, epoch, final)

  def is_eval_epoch(self, epoch: int) -> bool:
    """epoch is 1-based."""
    return (epoch % self.config.train.eval_every == 0 or epoch == self.config.train.num_epochs
            or epoch in self.eval_epochs)

  def keep_epochs(self) -> tuple[int, ...]:
    return tuple(sorted(set(self.eval_epochs) | set(self.config.checkpoint.keep_epochs or ())))


def _eval_epochs(config) -> tuple[int, ...]:
  values = sweep.eval_epochs(config)
  if values is None:
    return ()
  for e in values:
    if isinstance(e, bool) or not isinstance(e, int) or not 0 < e <= config.train.num_epochs:
      raise ConfigError(f'config.sweep.eval_epochs={tuple(values)!r}: {e!r} is not an epoch in '
                        f'1..train.num_epochs={config.train.num_epochs}')
  return tuple(values)


# ---- the workdir: refuse what would silently reuse another experiment's weights ----------


def claim(wd: Workdir, config, progs, fresh: bool = False) -> None:
  """Make `wd` ready for `config` (its programs `progs`), before any data loads or
  anything compiles: refuse a workdir holding a model that `config` would not continue, or
  (fresh) move it aside."""
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
  programs = [wd] + [wd.program(p.name) for p in progs if p.name]
  trained = max((e for e in map(compat.trained_epochs, programs) if e is not None),
                default=None)
  config_lib.check_compatible(old, wd_lib.config_to_dict(config), wd.path, trained)


def train_and_evaluate(config, workdir: str, fresh: bool = False) -> dict:
  """Train every member of `config` in `workdir`, resuming from its checkpoints.

  One program trains in `workdir` itself; a sweep with outer axes or chunks trains each
  program in `workdir/programs/<name>/` and gathers metrics, summary, tables and figures
  at the top. `fresh` moves an existing workdir aside first (never deletes it).
  """
  config = config_lib.resolve(config)
  wd = Workdir(workdir)
  with wd.running():
    return _train_and_evaluate(config, wd, fresh)


def _train_and_evaluate(config, wd: Workdir, fresh: bool) -> dict:
  progs = config_lib.programs(config)
  claim(wd, config, progs, fresh)
  if len(progs) == 1:
    summary, recon = train_program(progs[0].config, wd, progs[0].members)
    rows = wd.read_metrics()
    recon_parts = [recon]
  else:
    summary, rows, recon_parts = {'programs': [], 'members': []}, [], []
    for prog in progs:
      sub = wd.program(prog.name)
      print(f'== program {prog.name}: {len(prog.members)} member(s)', flush=True)
      s, recon = train_program(prog.config, sub, prog.members)
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


def _write_records(wd: Workdir, setup: Setup, resumed: bool) -> None:
  """config.json, members.json and model.json: written for a new run, and on resume only
  with the changes claim() allowed (they still describe the weights)."""
  if resumed and wd.exists(CONFIG):
    diff = config_lib.changes(wd.read_json(CONFIG), wd_lib.config_to_dict(setup.config))
    if diff:  # keys a newer version added are not changes
      print(f'resuming {wd.path} with changed settings: {"; ".join(diff)}', flush=True)
  wd.write_config(setup.config)
  wd.write_json(MEMBERS, setup.members)
  wd.write_json(MODEL, setup.model_info(setup.dataset.info))


def _progress_bar(config, total, initial):
  return progress_lib.Progress(total, 'training', unit='steps', enabled=config.progress,
                               initial=initial, leave=True)


class _Chunks:
  """Where the next chunk's batches come from: device-resident images gathered by index,
  or streamed batches read ahead on a thread."""

  def __init__(self, setup: Setup, state, start_step: int):
    self.setup = setup
    fns, cfg, spe = setup.fns, setup.config, setup.steps_per_epoch
    source = setup.dataset.train['image']
    self.streaming = isinstance(source, data.StreamSource)
    self.size = size = _chunk_size(setup, self.streaming)
    self.feed = None
    if self.streaming:
      from ae_jax.data import stream
      key = mesh_lib.host(fns.stack(state.data_key))[0]  # member 0's order, for every member
      from ae_jax import steps
      order = jax.jit(lambda e: steps.epoch_batches(setup.spec, key, len(source), e))
      self.feed = stream.batches(
          source, stream.blocks(lambda e: np.asarray(order(e)), start_step, spe,
                                cfg.train.num_epochs * spe, size),
          cfg.data.prefetch, setup.plan)
    else:
      self.images = setup.plan.put(source)
      self._order = (None, None)

  def run(self, state, active, step: int, n: int):
    setup = self.setup
    if self.streaming:
      return setup.fns.chunk_batches(state, active, next(self.feed), setup.hparams,
                                     setup.fns.pretrained)
    epoch, pos = divmod(step, setup.steps_per_epoch)
    if self._order[0] != epoch:
      self._order = (epoch, setup.fns.order(state, self.images.shape[0], epoch))  # [K, spe, B]
    idx = self._order[1][:, pos:pos + n]
    return setup.fns.chunk(state, active, self.images, idx, setup.hparams, setup.fns.pretrained)

  def close(self):
    if self.feed is not None:
      self.feed.close()  # stops the reader thread


def _chunk_size(setup: Setup, streaming: bool) -> int:
  cfg, spe = setup.config, setup.steps_per_epoch
  if setup.fns.loop == 'python':
    return 1
  if streaming:
    return min(cfg.data.stream_chunk_steps, spe)
  return min(cfg.train.chunk_steps or spe, spe)


def _first_nonfinite(metrics: dict, members, first_step: int, skip=()):
  """The first non-finite training loss among the members not in `skip`, described."""
  loss = np.asarray(metrics['loss'])  # [K, steps]
  bad = [(s, k) for k, s in np.argwhere(~np.isfinite(loss)) if k not in skip]
  if 'finite' in metrics:
    bad += [(s, k) for k, s in np.argwhere(~np.asarray(metrics['finite'])) if k not in skip]
  if not bad:
    return None
  s, k = min(bad)
  term = next((t for t in ('recon', 'kl') if t in metrics
               and not np.isfinite(metrics[t][k, s])), 'loss' if not np.isfinite(loss[k, s])
              else 'gradients')
  return int(k), first_step + int(s) + 1, term, float(loss[k, s]) if term != 'gradients' \
      else float('nan')


def train_program(config, wd: Workdir, members: list[dict]):
  """Train one compiled program's members in `wd` (resuming), evaluate them, draw.

  The loop runs compiled chunks and, at each chunk's end, asks in turn whether each event
  is due: a stop (a signal), the end of an epoch (its metrics), an evaluation, a
  checkpoint. -> (summary, (originals, reconstructions, labels) for the recon figure)
  """
  wd.prepare()
  setup = Setup(config, members)
  print(setup.dataset.info.describe(), flush=True)
  compat.migrate_epoch_checkpoints(wd, setup.steps_per_epoch)
  run = _Run(setup, wd)
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
          raise Preempted(_stop_message(watcher.signum, setup, run.step, wd), watcher.signum)
        run.log_epoch()
        if setup.is_eval_epoch(run.epoch):
          run.evaluate()
          # a signal during the evaluation (the final one can take minutes) stops here too;
          # processes of a multi-process job agree on stops only at should_stop's steps
          stop = stop or watcher.signalled_here()
        if stop or run.checkpoint_due():
          run.save()
        if stop:
          raise Preempted(_stop_message(watcher.signum, setup, run.step, wd), watcher.signum)
  except Exception as e:  # noqa: BLE001 - anything unexpected: keep what was trained
    if isinstance(e, (Preempted, NonFiniteLossError, CheckpointError)):
      raise  # already saved, or nothing good to save
    raise run.rescue(e) from e
  finally:
    run.close()
  return run.finish()


class _Run:
  """One program's training in progress: its state and step, this epoch's chunk metrics,
  the logs and checkpoints, and what each event of train_program's loop does."""

  def __init__(self, setup: Setup, wd: Workdir):
    self.setup, self.wd = setup, wd
    cfg, fns, spe = setup.config, setup.fns, setup.steps_per_epoch
    self.cfg, self.fns, self.spe = cfg, fns, spe
    self.ckpts = checkpoint.Checkpoints(
        wd.checkpoints, cfg.checkpoint.max_to_keep, [e * spe for e in setup.keep_epochs()],
        wd.best_checkpoints, cfg.checkpoint.best_metric, cfg.checkpoint.best_mode, wd.writer)
    state = setup.init_state(from_data=False)  # the template a checkpoint restores into
    restored = self.ckpts.restore_latest(fns.stack(state))
    self.step, progress = 0, {}
    if restored is not None:
      stacked, self.step, progress = restored
      state = fns.unstack(stacked)
      print(f'resumed {wd.path} from epoch {setup.epoch_of(self.step)} (step {self.step})',
            flush=True)
    else:
      state = setup.init_from_data(state)
    self.state = state
    self.saved = self.step if restored is not None else None  # the newest checkpoint's step
    _write_records(wd, setup, restored is not None)
    self.metrics_log = wd.metrics_log(self.step, restored is not None)
    # TensorBoard / W&B: the same rows, from the same step on (tracking.py)
    self.tracker = tracking.Tracker(wd, cfg, setup.members, self.step)
    self.total = cfg.train.num_epochs * spe
    self.frozen = dict(progress.get('frozen', {}))  # member name -> why
    self.names = [m['name'] for m in setup.members]
    self.active = fns.active([n not in self.frozen for n in self.names])
    partial = {k: np.asarray(v['values'], v['dtype'])
               for k, v in progress.get('epoch_metrics', {}).items()}
    self.pending = [partial] if partial else []  # this epoch's chunk metrics so far
    self.host = None  # the epoch's metrics on the host, once checked
    self.last_eval, self.chunks = None, None
    self.bar = _progress_bar(cfg, self.total, min(self.step, self.total))
    self.timing = {'compile_s': None, 'train_s': 0.0, 'timed_steps': 0}
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
    self.chunks = _Chunks(self.setup, self.state, self.step)

  def train_chunk(self):
    """One compiled chunk: up to the chunk size or the epoch's end."""
    n = min(self.chunks.size, self.spe - self.step % self.spe)
    self.t0 = time.perf_counter()
    self.state, self.active, m = self.chunks.run(self.state, self.active, self.step, n)
    self.pending.append(m)
    self.step += n
    self.n = n

  def check_finite(self):
    """Wait for the chunks, time them, and stop on (or freeze a member at) a non-finite
    loss."""
    jax.block_until_ready(self.state)
    dt, timing = time.perf_counter() - self.t0, self.timing
    if timing['compile_s'] is None:
      timing['compile_s'] = dt
    else:
      timing['train_s'] += dt
      timing['timed_steps'] += self.n
    self.host = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=1),
                                       *mesh_lib.host(self.pending))
    first_step = self.step - self.host['loss'].shape[1]
    _check_finite(self.setup, self.host, first_step, self.frozen, self.names, self.cfg,
                  self.ckpts)
    self.bar.update(self.n)

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
         **{k: float(np.mean(host[k][i])) for k in host if k not in ('finite', 'lr', 'beta')},
         'lr': float(host['lr'][i, -1]), 'beta': float(host['beta'][i, -1])}
        for i, name in enumerate(self.names)]
    self._rows(rows)
    self.bar.set_postfix(loss=f'{np.mean(host["loss"][:, -1]):.4g}')

  def evaluate(self):
    final = self.epoch == self.cfg.train.num_epochs
    rows = evaluate.rows(self.setup.members, self.setup.evaluator(self.state, self.epoch, final),
                         epoch=self.epoch, step=self.step)
    self._rows(rows)
    self.last_eval = rows
    if tracking.wants_images(self.cfg):
      self.tracker.images(self.step, _recon_rows(self.setup, self.state))
    for r in rows:
      who = f' [{r["member"]}]' if len(self.names) > 1 else ''
      tqdm.tqdm.write(f'epoch {self.epoch}/{self.cfg.train.num_epochs}{who} eval: '
                      f'{registry.console_line(r)}', file=sys.stdout)

  def checkpoint_due(self) -> bool:
    epoch = self.epoch
    return (epoch % self.cfg.checkpoint.every_epochs == 0
            or epoch == self.cfg.train.num_epochs or epoch in self.setup.keep_epochs())

  def save(self, partial: bool = False):
    """Checkpoint the state; `partial`: mid-epoch, with the epoch's metrics so far."""
    best = None
    evaluated = self.last_eval and self.last_eval[0]['step'] == self.step
    if evaluated and self.cfg.checkpoint.best_metric and not partial:
      key = self.cfg.checkpoint.best_metric
      best = {key: float(np.mean([r[key] for r in self.last_eval]))}
    self.saved = _save(self.ckpts, self.setup, self.state, self.step, self.frozen,
                       self.host if partial else None, best)

  def rescue(self, error):
    """After an unexpected error: the one-line error to raise (see _rescue)."""
    return _rescue(error, self.setup, self.wd, self.ckpts, self.state, self.step, self.saved,
                   self.pending, self.frozen)

  def close(self):
    if self.chunks is not None:
      self.chunks.close()
    self.bar.close()
    self.tracker.close()
    self.ckpts.close()

  def finish(self):
    """The final evaluation (if training ended without one), summary.json, the figures."""
    setup, members = self.setup, self.setup.members
    last_eval = self.last_eval
    if last_eval is None or last_eval[0]['epoch'] != self.cfg.train.num_epochs:
      # nothing was left to train: the final evaluation of the restored state
      epoch = setup.epoch_of(self.step)
      last_eval = evaluate.rows(members, setup.evaluator(self.state, epoch, final=True),
                                epoch=epoch, step=self.step)
    summary = _summary(setup, self.metrics_log.rows, last_eval, self.timing, self.frozen)
    self.wd.write_json(SUMMARY, summary)
    recon = _recon_rows(setup, self.state)
    if self.cfg.figures.enabled:
      draw_figures(setup, self.wd, self.metrics_log.rows, last_eval, recon)
    return summary, recon


def _check_finite(setup, host, first_step, frozen, names, cfg, ckpts):
  """Stop on a non-finite loss, or freeze the member (train.skip_nonfinite_members)."""
  skip = {names.index(n) for n in frozen}
  while True:
    bad = _first_nonfinite(host, setup.members, first_step, skip)
    if bad is None:
      return
    k, step, term, value = bad
    epoch = (step - 1) // setup.steps_per_epoch + 1
    what = (f'non-finite training loss at step {step} (epoch {epoch}, '
            f'member {names[k]!r}): term {term!r} = {value}')
    if not cfg.train.skip_nonfinite_members:
      saved = ('the last good checkpoint is kept' if ckpts.steps()
               else 'no checkpoint had been saved yet')
      raise NonFiniteLossError(
          f'{what}; {saved}. Lower train.learning_rate, set '
          'optim.grad_clip_norm, check the data, or (sweeps) set '
          'train.skip_nonfinite_members=True to freeze just that member')
    frozen[names[k]] = {'step': step, 'term': term}
    skip.add(k)
    print(f'{what}: member frozen at its last finite state (train.skip_nonfinite_members); '
          'the others train on', flush=True)


def _save(ckpts, setup, state, step, frozen, epoch_metrics, best) -> int:
  """Checkpoint `state` at `step` (epoch_metrics: the unfinished epoch's chunk metrics so
  far); -> step."""
  progress = {'epoch': setup.epoch_of(step), 'step': step, 'frozen': frozen}
  if epoch_metrics is not None:
    # exact: a float32 written as a JSON float reads back as the same float32
    progress['epoch_metrics'] = {k: {'values': np.asarray(v).tolist(), 'dtype': str(v.dtype)}
                                 for k, v in epoch_metrics.items()}
  ckpts.save(step, setup.fns.stack(state), setup.members, progress, best)
  return step


CRASH_LOG = 'crash.log'


def _rescue(error, setup, wd, ckpts, state, step, saved, pending, frozen):
  """After an unexpected error in training: checkpoint the last good state where that is
  safe, write the traceback to <workdir>/crash.log, and return the one-line error to raise.

  Safe means: steps were taken since the newest checkpoint, the state's buffers are intact
  (an error inside a compiled chunk may have consumed the donated state), the steps' losses
  are finite, and this is the only process (every process of a multi-process job takes
  part in a save, and the others may not have failed)."""
  import traceback
  where = f'epoch {setup.epoch_of(step)} (step {step})'
  note = ''
  if saved != step and step > (saved or 0) and jax.process_count() == 1:
    try:
      if any(getattr(x, 'is_deleted', lambda: False)() for x in jax.tree_util.tree_leaves(state)):
        raise ValueError('the state was consumed by the failed computation')
      host = (jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=1),
                                     *mesh_lib.host(pending)) if pending else None)
      if host is not None and not all(np.isfinite(np.asarray(v, np.float64)).all()
                                      for k, v in host.items() if k != 'finite'):
        raise ValueError('its losses are not finite')
      saved = _save(ckpts, setup, state, step, frozen, host, None)
      ckpts.latest.wait_until_finished()
    except Exception as e:  # noqa: BLE001 - saving is a courtesy here; report why not
      note = f' (the state at step {step} could not be saved: {type(e).__name__}: {e})'
      saved = checkpoint.saved_steps(wd.checkpoints)[-1] if ckpts.steps() else None
  if saved is None:
    kept = f'no checkpoint had been saved yet{note}'
  elif saved == step:
    kept = (f'the state at step {step} is saved in {wd.checkpoints}: run the same command '
            'again to resume')
  else:
    kept = (f'the newest checkpoint, step {saved} ({wd.checkpoints}), is kept{note}: run the '
            'same command again to resume from it')
  log_file = wd.file(CRASH_LOG)
  try:
    wd.write_text(CRASH_LOG, ''.join(traceback.format_exception(error)))
  except OSError:
    log_file = None
  first = (str(error).splitlines() or [''])[0][:300]
  message = (f'training stopped at {where} by {type(error).__name__}: {first}; {kept}'
             + (f'; the full traceback is in {log_file}' if log_file else ''))
  if isinstance(error, USER_ERRORS):  # the user's to fix: the same kind of error, one line
    return type(error)(message)
  return TrainingFailed(message)


def _stop_message(signum, setup, step, wd):
  import signal as signal_lib
  name = signal_lib.Signals(signum).name
  return (f'stopped by {name} at epoch {setup.epoch_of(step)} (step {step}) with a checkpoint '
          f'saved in {wd.checkpoints}; run the same command again to resume')


def _recon_rows(setup, state):
  cfg = setup.config
  n = min(cfg.figures.num_images, setup.dataset.test['image'].shape[0])
  originals = np.asarray(setup.dataset.test['image'][:n])
  recon = np.clip(mesh_lib.host(setup.fns.reconstruct(state, setup.plan.put(originals),
                                                      setup.hparams)), 0.0, 1.0)
  labels = [('recon' if len(setup.members) == 1 else m['name']) for m in setup.members]
  return {'originals': originals, 'recon': recon, 'labels': labels,
          'ids': setup.dataset.test['id'][:n].tolist(),
          'color_key': setup.dataset.info.color_key}


def _summary(setup, rows, last_eval, timing, frozen):
  cfg = setup.config
  out = {'num_epochs': cfg.train.num_epochs, 'steps_per_epoch': setup.steps_per_epoch,
         'image_shape': list(setup.image_shape), 'members': []}
  for mem, ev in zip(setup.members, last_eval):
    train = [r for r in rows if r['member'] == mem['name'] and r['split'] == 'train']
    entry = {
        'name': mem['name'],
        'hparams': {k: v for k, v in mem.items() if k != 'name'},
        'train_loss': train[-1]['loss'] if train else None,
        'eval': {k: v for k, v in ev.items() if k in registry.REGISTRY},
    }
    if mem['name'] in frozen:
      entry['frozen'] = frozen[mem['name']]
    out['members'].append(entry)
  if timing['timed_steps']:
    per_step = timing['train_s'] / timing['timed_steps']
    out['epoch_s'] = per_step * setup.steps_per_epoch
    out['images_per_sec'] = cfg.train.batch_size * len(setup.members) / per_step
  out['first_chunk_s'] = timing['compile_s']
  return out


def draw_figures(setup, wd: Workdir, rows, last_eval, recon):
  cfg = setup.config
  wd.save_figure(figures.loss_curves(rows, 'loss', cfg.figures.log_scale,
                                     'training loss (train: epoch mean; eval: test split)'),
                 'loss.png')
  if cfg.model.kind == 'vae':
    wd.save_figure(figures.loss_curves(rows, 'neg_elbo', cfg.figures.log_scale,
                                       'negative ELBO (nats per image)'), 'neg_elbo.png')
    if last_eval and 'kl_per_dim' in last_eval[0]:
      wd.save_figure(figures.kl_per_dim(last_eval), 'kl_per_dim.png')
  wd.save_figure(figures.recon_grid([recon]), 'recon.png')
