"""What ends a training run before its last step: a non-finite loss (a stop, or a member
frozen), an unexpected error (the last good state saved where that is safe, the traceback
in crash.log, one line), a signal (a checkpoint first). And the checkpoint save itself."""
from __future__ import annotations

import signal as signal_lib
import traceback

import jax
import numpy as np

from ae_jax import checkpoint, mesh as mesh_lib
from ae_jax.errors import USER_ERRORS, NonFiniteLossError, TrainingFailed
from ae_jax.training import Training
from ae_jax.workdir import CRASH_LOG

def first_nonfinite(metrics: dict, members, first_step: int, skip=()):
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



def check_finite(training: Training, host, first_step, frozen, names, cfg, ckpts):
  """Stop on a non-finite loss, or freeze the member (train.skip_nonfinite_members)."""
  skip = {names.index(n) for n in frozen}
  while True:
    bad = first_nonfinite(host, training.members, first_step, skip)
    if bad is None:
      return
    k, step, term, value = bad
    epoch = (step - 1) // training.steps_per_epoch + 1
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


def save(ckpts, training: Training, state, step, frozen, epoch_metrics, best) -> int:
  """Checkpoint `state` at `step` (epoch_metrics: the unfinished epoch's chunk metrics so
  far); -> step."""
  progress = {'epoch': training.epoch_of(step), 'step': step, 'frozen': frozen}
  if epoch_metrics is not None:
    # exact: a float32 written as a JSON float reads back as the same float32
    progress['epoch_metrics'] = {k: {'values': np.asarray(v).tolist(), 'dtype': str(v.dtype)}
                                 for k, v in epoch_metrics.items()}
  ckpts.save(step, training.functions.stack(state), training.members, progress, best)
  return step




def rescue(error, training: Training, wd, ckpts, state, step, saved, pending, frozen):
  """After an unexpected error in training: checkpoint the last good state where that is
  safe, write the traceback to <workdir>/crash.log, and return the one-line error to raise.

  Safe means: steps were taken since the newest checkpoint, the state's buffers are intact
  (an error inside a compiled chunk may have consumed the donated state), the steps' losses
  are finite, and this is the only process (every process of a multi-process job takes
  part in a save, and the others may not have failed)."""
  where = f'epoch {training.epoch_of(step)} (step {step})'
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
      saved = save(ckpts, training, state, step, frozen, host, None)
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


def stop_message(signum, training: Training, step, wd):
  name = signal_lib.Signals(signum).name
  return (f'stopped by {name} at epoch {training.epoch_of(step)} (step {step}) with a checkpoint '
          f'saved in {wd.checkpoints}; run the same command again to resume')

