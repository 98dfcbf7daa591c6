"""Orbax checkpoints of the (member-stacked) train state.

`checkpoints/` keeps the latest `max_to_keep` epochs and is what a rerun resumes from;
`checkpoints_best/` (optional) keeps the single best epoch by an eval metric.
Checkpoint step numbers are epochs. Each checkpoint holds the member-stacked state
(`state`) and the member grid as JSON (`members`), so a sweep's checkpoint says which
slice is which model.
"""
from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


def _save_args(state, members):
  return ocp.args.Composite(state=ocp.args.StandardSave(state),
                            members=ocp.args.JsonSave(members))


def _restore_args(state_like):
  abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state_like)
  return ocp.args.Composite(state=ocp.args.StandardRestore(abstract))


class Checkpoints:

  def __init__(self, workdir: str, max_to_keep: int, best_metric: str = '',
               best_mode: str = 'min'):
    self.latest = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, 'checkpoints')),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))
    self.best = None
    if best_metric:
      self.best = ocp.CheckpointManager(
          os.path.abspath(os.path.join(workdir, 'checkpoints_best')),
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, best_fn=lambda m: m[best_metric],
              best_mode=best_mode))

  def latest_step(self):
    return self.latest.latest_step()

  def save(self, epoch: int, state, members: list, eval_metrics: dict | None = None):
    self.latest.save(epoch, args=_save_args(state, members))
    if self.best is not None and eval_metrics is not None:
      self.best.save(epoch, args=_save_args(state, members), metrics=eval_metrics)

  def restore(self, state_like, epoch: int | None = None):
    """Restore into the structure, shapes and shardings of `state_like`."""
    epoch = self.latest.latest_step() if epoch is None else epoch
    return self.latest.restore(epoch, args=_restore_args(state_like)).state

  def close(self):
    for m in (self.latest, self.best):
      if m is not None:
        m.wait_until_finished()
        m.close()


def restore_state(directory: str, state_like, epoch: int | None = None):
  """Read a state from a checkpoint folder without a trainer (inference, tools)."""
  mngr = ocp.CheckpointManager(os.path.abspath(directory))
  try:
    epoch = mngr.latest_step() if epoch is None else epoch
    if epoch is None:
      raise FileNotFoundError(f'{directory}: no checkpoint found')
    return mngr.restore(epoch, args=_restore_args(state_like)).state, epoch
  finally:
    mngr.close()
