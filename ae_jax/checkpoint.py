"""Orbax checkpoints of the (member-stacked) train state, robust to kills and damage.

`checkpoints/` keeps the latest `max_to_keep` checkpoints plus the ones asked for by
epoch (`checkpoint.keep_epochs`, `sweep.eval_epochs`), and is what a rerun resumes from;
`checkpoints_best/` (optional) keeps the best one by an eval metric. Checkpoint numbers
are optimizer steps (format 2; epoch e ends at step e * steps_per_epoch); workdirs of
format 1 numbered them by epoch. Each checkpoint holds the member-stacked `state`, the
member grid (`members`, JSON) and `progress` (JSON: epoch, the current epoch's training
metrics so far when saved mid-epoch, frozen members).

Faults: Orbax writes `<step>.orbax-checkpoint-tmp-*` and renames it when complete, so a
kill mid-save leaves a tmp folder, removed here with a warning. A checkpoint that fails
to restore (truncated or missing files) is moved to `checkpoints_damaged/` with a
warning and the next older one is tried; a failed write raises CheckpointError and
leaves the earlier checkpoints as they were.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as cm

from ae_jax.errors import CheckpointError

log = logging.getLogger('ae_jax')
_TMP = 'orbax-checkpoint-tmp'


def _abstract(state_like):
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state_like)


def saved_fields(state_dir: str) -> set[str] | None:
  """The top-level names of a saved state (its TrainState fields), or None if unreadable."""
  absl = logging.getLogger('absl')
  level = absl.level
  absl.setLevel(logging.ERROR)  # Orbax warns of an optional step-metadata file it lacks
  try:
    return set(ocp.StandardCheckpointer().metadata(state_dir).item_metadata.keys())
  except Exception:  # noqa: BLE001 - a damaged checkpoint is reported by the restore itself
    return None
  finally:
    absl.setLevel(level)


def _target(state_like, state_dir: str):
  """(the restore target, a function completing what the restore returns).

  A checkpoint written before TrainState gained a field (model_state, critic: empty for
  every model of that time) holds no such entry, and Orbax refuses a target whose tree
  differs from the saved one: restore the fields that are there, and give the others the
  template's (empty) values."""
  abstract = _abstract(state_like)
  if not dataclasses.is_dataclass(abstract):
    return abstract, lambda restored: restored
  saved = saved_fields(state_dir)
  names = [f.name for f in dataclasses.fields(abstract)]
  absent = [n for n in names if saved is not None and n not in saved]
  if not absent or any(jax.tree_util.tree_leaves(getattr(abstract, n)) for n in absent):
    return abstract, lambda restored: restored  # a real mismatch: let Orbax say what
  target = {n: getattr(abstract, n) for n in names if n not in absent}
  return target, lambda restored: state_like.replace(**restored)


def _reason(e: BaseException, limit: int = 200) -> str:
  """`Type: first line` of a restore error, without TensorStore's dump of the spec."""
  text = (str(e).splitlines() or [''])[0].split('. See full TensorStore details')[0]
  return f'{type(e).__name__}: {text[:limit]}'


def shape_mismatch(state_dir: str, expected) -> str | None:
  """Where an intact checkpoint's arrays differ in shape from `expected` (a tree of what
  the workdir's records or the config build): 'path: saved S, expected E', or None (the
  same shapes, or metadata that cannot be read: then the checkpoint itself is at fault)."""
  absl = logging.getLogger('absl')
  level = absl.level
  absl.setLevel(logging.ERROR)
  try:
    saved = ocp.PyTreeCheckpointer().metadata(state_dir)
    saved = getattr(saved, 'item_metadata', saved)
    flat = {_name(k): getattr(v, 'shape', None)
            for k, v in jax.tree_util.tree_leaves_with_path(dict(saved))}
  except Exception:  # noqa: BLE001 - unreadable metadata: a damaged checkpoint
    return None
  finally:
    absl.setLevel(level)
  for k, v in jax.tree_util.tree_leaves_with_path(expected):
    name = _name(k)
    if name in flat and flat[name] is not None and tuple(flat[name]) != tuple(v.shape):
      return f'{name}: saved {tuple(flat[name])}, expected {tuple(v.shape)}'
  return None


def _name(path) -> str:
  """'params/decoder/out/bias' of a tree path (dict keys and dataclass fields alike)."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k))))
                  for k in path)


def remove_unfinished(directory: str, writer: bool) -> list[str]:
  """Delete the tmp folders of interrupted saves (never a finished checkpoint)."""
  if not os.path.isdir(directory):
    return []
  found = sorted(n for n in os.listdir(directory) if _TMP in n)
  for name in found:
    log.warning('%s: removing %s, an unfinished checkpoint write (the run was stopped while '
                'saving)', directory, name)
    if writer:
      shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
  return found


def saved_steps(directory: str) -> list[int]:
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


class Checkpoints:

  def __init__(self, directory: str, *, max_to_keep: int = 1, keep_steps=(),
               best_dir: str = '', best_metric: str = '', best_mode: str = 'min',
               writer: bool = True):
    self.directory = directory
    self.writer = writer
    remove_unfinished(directory, writer)
    policy = cm.AnyPreservationPolicy([cm.LatestN(max_to_keep),
                                       cm.CustomSteps(sorted(set(keep_steps)))])
    try:
      self.latest = ocp.CheckpointManager(
          directory, options=ocp.CheckpointManagerOptions(preservation_policy=policy,
                                                          create=True))
    except OSError as e:
      raise CheckpointError(f'{directory}: cannot create the checkpoint folder ({e})') from e
    self.best = None
    if best_metric:
      self.best = ocp.CheckpointManager(
          best_dir, options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, best_fn=lambda m: m[best_metric],
              best_mode=best_mode))

  def steps(self) -> list[int]:
    return saved_steps(self.directory)

  def save(self, step: int, state, members: list, progress: dict,
           eval_metrics: dict | None = None) -> None:
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              members=ocp.args.JsonSave(members),
                              progress=ocp.args.JsonSave(progress))
    try:
      self.latest.save(step, args=args, force=True)
      if self.best is not None and eval_metrics is not None:
        self.best.save(step, args=args, metrics=eval_metrics, force=True)
    except (OSError, ValueError) as e:  # a full disk, a vanished folder
      raise CheckpointError(f'{self.directory}: writing the checkpoint of step {step} failed '
                            f'({type(e).__name__}: {e}); the earlier checkpoints are intact') from e

  def restore_latest(self, state_like):
    """(state, step, progress) of the newest checkpoint that restores, or None if there
    is none; damaged ones are moved aside with a warning."""
    steps = self.steps()
    errors = []
    for step in reversed(steps):
      try:
        state, progress = self.restore(state_like, step)
        return state, step, progress
      except Exception as e:  # noqa: BLE001 - any failure to read means "damaged" ...
        mismatch = shape_mismatch(os.path.join(self.directory, str(step), 'state'),
                                  _abstract(state_like))
        if mismatch:  # ... unless it is intact and the model built here is another
          raise CheckpointError(
              f'{self.directory}/{step} holds a model of other shapes than this config '
              f'builds ({mismatch}); the config differs from the one it was trained with: '
              'restore config.json from a copy, or train in another --workdir') from e
        errors.append(f'step {step}: {_reason(e)}')
        self._move_damaged(step, e)
    if errors:
      raise CheckpointError(f'{self.directory}: no checkpoint could be restored ('
                            + '; '.join(errors) + ')')
    return None

  def restore(self, state_like, step: int):
    """(state, progress) of checkpoint `step`, into the shapes and shardings of `state_like`."""
    path = os.path.join(self.directory, str(step))
    target, complete = _target(state_like, os.path.join(path, 'state'))
    args = {'state': ocp.args.StandardRestore(target)}
    has_progress = os.path.isdir(os.path.join(path, 'progress'))
    if has_progress:
      args['progress'] = ocp.args.JsonRestore()
    out = self.latest.restore(step, args=ocp.args.Composite(**args))
    return complete(out.state), (out.progress if has_progress else {})

  def _move_damaged(self, step: int, error) -> None:
    target = os.path.join(os.path.dirname(self.directory), 'checkpoints_damaged', str(step))
    log.warning('%s: checkpoint %d does not restore (%s); moved it to %s and trying an '
                'older one', self.directory, step, _reason(error, 160), target)
    if self.writer:
      os.makedirs(os.path.dirname(target), exist_ok=True)
      if os.path.exists(target):
        shutil.rmtree(target)  # an older copy of the same damaged step
      shutil.move(os.path.join(self.directory, str(step)), target)
    self.latest.reload()

  def close(self):
    for m in (self.latest, self.best):
      if m is not None:
        try:
          m.wait_until_finished()
        except (OSError, ValueError) as e:
          raise CheckpointError(f'{self.directory}: the last checkpoint write failed '
                                f'({type(e).__name__}: {e}); the earlier checkpoints are '
                                'intact') from e
        finally:
          m.close()


def restore_params(directory: str, params_like, step: int | None = None):
  """Only `params`, `batch_stats` and `model_state` of a checkpoint (inference: no
  optimizer state, one read for every member of a sweep) -> (tree, step). `params_like` is
  {'params': ..., 'batch_stats': ..., 'model_state': ...} of the [K, ...] form."""
  steps = saved_steps(directory)
  if not steps:
    raise CheckpointError(f'{directory}: no checkpoint found (train first)')
  step = steps[-1] if step is None else step
  if step not in steps:
    raise CheckpointError(f'{directory}: no checkpoint at {step}; saved: {steps}')
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = {k: jax.tree_util.tree_map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), v)
              for k, v in params_like.items() if v}  # {} batch_stats: nothing to read
  restore_args = jax.tree_util.tree_map(
      lambda s: ocp.ArrayRestoreArgs(sharding=s.sharding), abstract)
  try:
    out = ocp.PyTreeCheckpointer().restore(
        os.path.join(directory, str(step), 'state'),
        args=ocp.args.PyTreeRestore(item=abstract, restore_args=restore_args,
                                    partial_restore=True))
  except Exception as e:  # noqa: BLE001
    mismatch = shape_mismatch(os.path.join(directory, str(step), 'state'), abstract)
    if mismatch:  # intact: the records that describe it were changed
      raise CheckpointError(
          f'{directory}/{step} holds a model of other shapes than the workdir\'s config.json, '
          f'members.json and model.json describe ({mismatch}); one of them was changed: '
          'restore it from a copy') from e
    raise CheckpointError(f'{directory}/{step} does not restore ({_reason(e)})') from e
  out.setdefault('batch_stats', {})
  out.setdefault('model_state', {})
  return out, step


def restore_state(directory: str, state_like, step: int | None = None):
  """(state, step) of checkpoint `step` (default: the newest) of a checkpoint folder,
  without a trainer (tests, tools that need the optimizer state too)."""
  ckpts = Checkpoints(directory, writer=False)
  try:
    steps = ckpts.steps()
    if not steps:
      raise CheckpointError(f'{directory}: no checkpoint found')
    step = steps[-1] if step is None else step
    return ckpts.restore(state_like, step)[0], step
  finally:
    ckpts.close()
