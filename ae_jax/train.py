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

from ae_jax import (checkpoint, config_lib, data, evaluate, figures, mesh as mesh_lib, preempt,
                    report, sweep, workdir as wd_lib)
from ae_jax.errors import (USER_ERRORS, CheckpointError, ConfigError, NonFiniteLossError,
                           Preempted, TrainingFailed, WorkdirError)
from ae_jax.metrics import registry
from ae_jax.program import ModelSetup
from ae_jax.workdir import CONFIG, MEMBERS, MODEL, SUMMARY, Workdir

log = logging.getLogger('ae_jax')
PCA_FIT_MAX = 10_000  # training images the PCA baseline is fitted on, at most


class Setup(ModelSetup):
  """A ModelSetup with its dataset: what training and dataset evaluation need."""

  def __init__(self, config, members=None, dataset=None, plan=None):
    config_lib.validate(config)  # before the data loads
    dataset = dataset if dataset is not None else data.load(config.data)
    super().__init__(config, dataset.info.image_shape, len(dataset.train['image']), members,
                     plan)
    self.dataset = dataset
    self.eval_epochs = _eval_epochs(self.config)
    factors = dataset.info.factors
    if factors is not None:
      factors = factors[dataset.test['id']]
    self.evaluator = evaluate.Evaluator(self, dataset.test, dataset.info, self.train_sample,
                                        factors)

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
    """Up to PCA_FIT_MAX training images (all of them when resident)."""
    x = self.dataset.train['image']
    if isinstance(x, data.StreamSource):
      return x.read(np.arange(min(len(x), PCA_FIT_MAX)))
    return np.asarray(x[:PCA_FIT_MAX])

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


def _trained_epochs(wd: Workdir) -> int | None:
  """Epochs of the newest checkpoint (without restoring it), or None."""
  steps = checkpoint.saved_steps(wd.checkpoints)
  if not steps:
    return None
  info = wd.read_model()
  if info is None:  # format 1: numbered by epoch
    return steps[-1]
  return steps[-1] // max(1, info['steps_per_epoch'])


def claim(wd: Workdir, config, fresh: bool = False) -> None:
  """Make `wd` ready for `config`, before any data loads or anything compiles: refuse a
  workdir holding a model that `config` would not continue, or (fresh) move it aside."""
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
  old = wd.read_json(CONFIG)
  new = wd_lib.config_to_dict(config)
  sizes = sweep._axis_values(config, 'latent_dim')
  if sizes:  # a latent-size sweep's model is built, and recorded, at its largest size
    new['model']['latent_dim'] = max(int(v) for v in sizes)
  programs = [wd] + [wd.program(p.name) for p in sweep.programs(config) if p.name]
  trained = max((e for e in map(_trained_epochs, programs) if e is not None), default=None)
  config_lib.check_compatible(old, new, wd.path, trained)


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
  progs = sweep.programs(config)
  claim(wd, config, fresh)
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
  enabled = config.progress and sys.stderr.isatty()
  return tqdm.tqdm(total=total, initial=initial, unit='step', disable=not enabled,
                   dynamic_ncols=True, file=sys.stderr)


def _migrate_epoch_checkpoints(wd: Workdir, spe: int) -> None:
  """Renumber a format-1 workdir's epoch-numbered checkpoints by step, once."""
  if wd.read_model() is not None or not wd.is_trained() or spe == 1:
    return
  import os
  for epoch in reversed(checkpoint.saved_steps(wd.checkpoints)):
    if wd.writer:
      os.rename(os.path.join(wd.checkpoints, str(epoch)),
                os.path.join(wd.checkpoints, str(epoch * spe)))
  log.warning('%s: renumbered its checkpoints by optimizer step (format 2)', wd.checkpoints)


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

  -> (summary, (originals, reconstructions, labels) for the recon figure)
  """
  wd.prepare()
  setup = Setup(config, members)
  cfg, fns, spe = setup.config, setup.fns, setup.steps_per_epoch
  print(setup.dataset.info.describe(), flush=True)
  _migrate_epoch_checkpoints(wd, spe)
  keep = [e * spe for e in setup.keep_epochs()]
  ckpts = checkpoint.Checkpoints(wd.checkpoints, cfg.checkpoint.max_to_keep, keep,
                                 wd.best_checkpoints, cfg.checkpoint.best_metric,
                                 cfg.checkpoint.best_mode, wd.writer)
  state = setup.init_state(from_data=False)  # the template a checkpoint restores into
  restored = ckpts.restore_latest(fns.stack(state))
  step, progress = 0, {}
  if restored is not None:
    stacked, step, progress = restored
    state = fns.unstack(stacked)
    print(f'resumed {wd.path} from epoch {setup.epoch_of(step)} (step {step})', flush=True)
  else:
    state = setup.init_from_data(state)
  _write_records(wd, setup, restored is not None)
  metrics_log = wd.metrics_log(step, restored is not None)
  total = cfg.train.num_epochs * spe
  frozen = dict(progress.get('frozen', {}))  # member name -> why
  names = [m['name'] for m in members]
  active = fns.active([m['name'] not in frozen for m in members])
  partial = {k: np.asarray(v['values'], v['dtype'])
             for k, v in progress.get('epoch_metrics', {}).items()}
  pending = [partial] if partial else []  # this epoch's chunk metrics so far

  chunks = None
  bar = _progress_bar(cfg, total, min(step, total))
  timing = {'compile_s': None, 'train_s': 0.0, 'timed_steps': 0}
  last_eval = None
  logged, train_rows = step, None
  # wall-clock seconds of this run so far (compiling, training, evaluating), carried over
  # resumes from the last row kept: PSNR-against-time curves
  wall0 = time.perf_counter() - max((r.get('wall_s', 0.0) for r in metrics_log.rows),
                                    default=0.0)
  saved = step if restored is not None else None  # the newest checkpoint's step
  try:
    with preempt.Watcher() as watcher:
      chunks = _Chunks(setup, state, step)
      size = chunks.size
      while step < total:
        pos = step % spe
        n = min(size, spe - pos)
        t0 = time.perf_counter()
        state, active, m = chunks.run(state, active, step, n)
        pending.append(m)
        step += n
        epoch_end = step % spe == 0
        stop = watcher.should_stop(step)
        if not (epoch_end or stop):
          continue
        jax.block_until_ready(state)
        dt = time.perf_counter() - t0
        if timing['compile_s'] is None:
          timing['compile_s'] = dt
        else:
          timing['train_s'] += dt
          timing['timed_steps'] += n
        host = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=1),
                                      *mesh_lib.host(pending))
        epoch_first_step = step - host['loss'].shape[1]
        _check_finite(setup, host, epoch_first_step, frozen, names, cfg, ckpts)
        bar.update(n)
        if not epoch_end:  # stopped mid-epoch: keep the epoch's metrics in the checkpoint
          saved = _save(ckpts, setup, state, step, frozen, host, None)
          raise Preempted(_stop_message(watcher.signum, setup, step, wd), watcher.signum)
        pending = []
        epoch = step // spe
        train_rows = [{'epoch': epoch, 'step': step, 'split': 'train', 'member': mem['name'],
                       **{k: float(np.mean(host[k][i])) for k in host if k not in ('finite',)
                          and k not in ('lr', 'beta')},
                       'lr': float(host['lr'][i, -1]), 'beta': float(host['beta'][i, -1])}
                      for i, mem in enumerate(members)]
        for r in train_rows:
          r['wall_s'] = time.perf_counter() - wall0
        rows = list(train_rows)
        eval_rows = None
        if setup.is_eval_epoch(epoch):
          final = epoch == cfg.train.num_epochs
          eval_rows = evaluate.rows(members, setup.evaluator(state, epoch, final), epoch=epoch,
                                    step=step)
          for r in eval_rows:
            r['wall_s'] = time.perf_counter() - wall0
          rows += eval_rows
          last_eval = eval_rows
        metrics_log.write(rows)
        logged = step  # this epoch's rows are in metrics.jsonl
        bar.set_postfix(loss=f'{np.mean(host["loss"][:, -1]):.4g}')
        for r in eval_rows or ():
          who = f' [{r["member"]}]' if len(members) > 1 else ''
          tqdm.tqdm.write(f'epoch {epoch}/{cfg.train.num_epochs}{who} eval: '
                          f'{registry.console_line(r)}', file=sys.stdout)
        if eval_rows and not stop:
          # a signal during the evaluation (the final one can take minutes) stops here too;
          # processes of a multi-process job agree on stops only at should_stop's steps
          stop = watcher.signalled_here()
        due = (epoch % cfg.checkpoint.every_epochs == 0 or epoch == cfg.train.num_epochs
               or epoch in setup.keep_epochs() or stop)
        if due:
          best = None
          if eval_rows and cfg.checkpoint.best_metric:
            best = {cfg.checkpoint.best_metric: float(np.mean(
                [r[cfg.checkpoint.best_metric] for r in eval_rows]))}
          saved = _save(ckpts, setup, state, step, frozen, None, best)
        if stop:
          raise Preempted(_stop_message(watcher.signum, setup, step, wd), watcher.signum)
  except Exception as e:  # noqa: BLE001 - anything unexpected: keep what was trained
    if isinstance(e, (Preempted, NonFiniteLossError, CheckpointError)):
      raise  # already saved, or nothing good to save
    unlogged = train_rows if step % spe == 0 and logged != step else None
    raise _rescue(e, setup, wd, ckpts, state, step, saved, pending, frozen, metrics_log,
                  unlogged) from e
  finally:
    if chunks is not None:
      chunks.close()
    bar.close()
    ckpts.close()

  if last_eval is None or last_eval[0]['epoch'] != cfg.train.num_epochs:
    # nothing was left to train: the final evaluation of the restored state
    epoch = setup.epoch_of(step)
    last_eval = evaluate.rows(members, setup.evaluator(state, epoch, final=True), epoch=epoch,
                              step=step)
  summary = _summary(setup, metrics_log.rows, last_eval, timing, frozen)
  wd.write_json(SUMMARY, summary)
  recon = _recon_rows(setup, state)
  if cfg.figures.enabled:
    draw_figures(setup, wd, metrics_log.rows, last_eval, recon)
  return summary, recon


def _check_finite(setup, host, first_step, frozen, names, cfg, ckpts):
  """Stop on a non-finite loss, or freeze the member (train.skip_nonfinite_members)."""
  skip = {names.index(n) for n in frozen}
  while True:
    bad = _first_nonfinite(host, setup.members, first_step, skip)
    if bad is None:
      return
    k, step, term, value = bad
    what = (f'non-finite training loss at step {step} (epoch {(step - 1) // setup.steps_per_epoch + 1}, '
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


def _rescue(error, setup, wd, ckpts, state, step, saved, pending, frozen, metrics_log,
            unlogged):
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
      if unlogged:  # the epoch's training rows, computed before the failure
        metrics_log.write(unlogged)
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
