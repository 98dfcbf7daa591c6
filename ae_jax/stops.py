"""What ends a training run before its last step: a non-finite loss (a stop, or a member
frozen), an unexpected error (the last good state saved where that is safe, the traceback
in crash.log, one line), a signal (a checkpoint first). And the checkpoint save itself."""
from __future__ import annotations

import signal as signal_lib
import traceback

import jax
import numpy as np

from ae_jax import checkpoint, mesh as mesh_lib, steps as steps_lib
from ae_jax.errors import USER_ERRORS, ConfigError, NonFiniteLossError, TrainingFailed
from ae_jax.metrics import registry
from ae_jax.training import Training, memory_note
from ae_jax.workdir import CRASH_LOG

# what to turn, by whose term went non-finite first (a metric's `part`, or its own `knob`)
ADVICE = {
    'model': 'lower train.learning_rate, set optim.grad_clip_norm, check the data',
    'critic': 'the discriminator diverged: lower optim.disc_learning_rate (or '
              'loss.gan_weight, or raise loss.gan_start_step)',
    'adversarial': 'lower loss.gan_weight (or raise loss.gan_start_step)',
}
WHOSE = {'model': 'the model\'s', 'critic': 'the discriminator\'s',
         'adversarial': 'the model\'s adversarial', 'prior': 'the prior\'s'}
_FORWARD = ('recon', 'kl')  # the model's own forward pass: everything else reads it


def _rank(name: str) -> tuple[int, int]:
  """Which non-finite term of one step is the cause: the model's forward pass (the critic
  reads its reconstructions), then the discriminator's own loss (the model's adversarial
  terms read the discriminator), then the objective's other terms, the adversarial ones,
  and the total loss last (it sums the others)."""
  order = list(registry.REGISTRY)
  at = order.index(name) if name in order else len(order)
  if name in _FORWARD:
    return 0, at
  part = registry.REGISTRY[name].part if name in registry.REGISTRY else 'model'
  if name == 'loss':
    return 4, at
  return {'critic': 1, 'model': 2, 'adversarial': 3}.get(part, 2), at


def first_nonfinite(metrics: dict, members, first_step: int, skip=()):
  """The first non-finite term of a training chunk's metrics ({name: [K, steps]}) among
  the members not in `skip`: the earliest step of any term (the model's, a
  discriminator's) or step flag, and at that step the term that caused the others
  (`_rank`). -> (member, step, term, value, part), or None."""
  terms = [n for n in metrics if n not in steps_lib.FLAGS + ('lr', 'beta')]
  bad = np.zeros(np.asarray(metrics['loss']).shape, bool)  # [K, steps]
  for n in terms:
    bad |= ~np.isfinite(np.asarray(metrics[n], np.float64))
  for flag in steps_lib.FLAGS:
    if flag in metrics:
      bad |= ~np.asarray(metrics[flag], bool)
  found = [(s, k) for k, s in np.argwhere(bad) if k not in skip]
  if not found:
    return None
  s, k = min(found)
  culprits = sorted((n for n in terms if not np.isfinite(metrics[n][k, s])), key=_rank)
  if culprits:
    term = culprits[0]
    part = registry.REGISTRY[term].part if term in registry.REGISTRY else 'model'
    value = float(metrics[term][k, s])
  else:  # finite terms, non-finite gradients or state (train.skip_nonfinite_members)
    critic = 'critic_finite' in metrics and not bool(metrics['critic_finite'][k, s])
    term, part, value = ('discriminator', 'critic', float('nan')) if critic else \
        ('gradients', 'model', float('nan'))
  return int(k), first_step + int(s) + 1, term, value, part


def advice(term: str, part: str) -> str:
  knob = registry.REGISTRY[term].knob if term in registry.REGISTRY else ''
  return f'lower {knob}' if knob else ADVICE.get(part, ADVICE['model'])


def check_finite(training: Training, host, first_step, frozen, names, cfg, ckpts):
  """Stop on a non-finite term (the first, naming whose it is and the keys that govern
  it), or freeze the member (train.skip_nonfinite_members)."""
  skip = {names.index(n) for n in frozen}
  while True:
    bad = first_nonfinite(host, training.members, first_step, skip)
    if bad is None:
      return
    k, step, term, value, part = bad
    epoch = (step - 1) // training.steps_per_epoch + 1
    what = (f'non-finite training loss at step {step} (epoch {epoch}, member {names[k]!r}): '
            + (f'{WHOSE.get(part, "the")} term {term!r} = {value}' if part != 'model'
               else f'term {term!r} = {value}'))
    if not cfg.train.skip_nonfinite_members:
      saved = ('the last good checkpoint is kept' if ckpts.steps()
               else 'no checkpoint had been saved yet')
      fix = advice(term, part)
      raise NonFiniteLossError(
          f'{what}; {saved}. {fix[0].upper()}{fix[1:]}, or (sweeps) set '
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




def rescue(error, training: Training, wd, ckpts, state, step, saved, pending, frozen,
           checked=None):
  """After an unexpected error in training: checkpoint the last good state where that is
  safe, write the traceback to <workdir>/crash.log, and return the one-line error to raise.

  `step`: the step the dispatched chunks reach; `checked`: the last step known complete
  (the chunks after it ran ahead of the host and may be what failed): the message names
  that one. Safe means: the state is the checked one (not a failed chunk's), steps were
  taken since the newest checkpoint, the state's buffers are intact, the steps' losses are
  finite, and this is the only process (every process of a multi-process job takes part
  in a save, and the others may not have failed). A run out of memory is the user's to
  fix: a ConfigError with the estimate and the keys to turn (memory_note)."""
  checked = step if checked is None else checked
  where = (f'at epoch {training.epoch_of(checked)} (step {checked})' if checked else
           'before its first step')
  if checked < step:
    where += (f', in steps {checked + 1}-{step}' if checked else
              f' (in steps 1-{step}, none completed)')
  note = ''
  if checked == step and saved != step and step > (saved or 0) and jax.process_count() == 1:
    try:
      if any(getattr(x, 'is_deleted', lambda: False)() for x in jax.tree_util.tree_leaves(state)):
        raise ValueError('the state was consumed by the failed computation')
      host = (jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=1),
                                     *mesh_lib.host(pending)) if pending else None)
      if host is not None and not all(np.isfinite(np.asarray(v, np.float64)).all()
                                      for k, v in host.items() if k not in steps_lib.FLAGS):
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
  message = (f'training stopped {where} by {type(error).__name__}: {first}; {kept}'
             + (f'; the full traceback is in {log_file}' if log_file else ''))
  if out_of_memory(error):  # the config is too big for the machine: the user's to fix
    return ConfigError(f'{message}. {memory_note(training)}')
  if isinstance(error, USER_ERRORS):  # the user's to fix: the same kind of error, one line
    return type(error)(message)
  return TrainingFailed(message)


def out_of_memory(error) -> bool:
  """An allocation that failed: a MemoryError, or XLA's RESOURCE_EXHAUSTED."""
  return isinstance(error, MemoryError) or 'RESOURCE_EXHAUSTED' in str(error)


def stop_message(signum, training: Training, step, wd):
  name = signal_lib.Signals(signum).name
  return (f'stopped by {name} at epoch {training.epoch_of(step)} (step {step}) with a checkpoint '
          f'saved in {wd.checkpoints}; run the same command again to resume')

