"""Orbax checkpoints of the (member-stacked) train state.

`checkpoints/` keeps the latest `max_to_keep` epochs and is what a rerun resumes from;
`checkpoints_best/` (optional) keeps the single best epoch by an eval metric.
Checkpoint step numbers are epochs.
"""
from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


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

  def save(self, epoch: int, state, eval_metrics: dict | None = None):
    self.latest.save(epoch, args=ocp.args.StandardSave(state))
    if self.best is not None and eval_metrics is not None:
      self.best.save(epoch, args=ocp.args.StandardSave(state), metrics=eval_metrics)

  def restore(self, state_like, epoch: int | None = None):
    """Restore into the structure, shapes and shardings of `state_like`."""
    epoch = self.latest.latest_step() if epoch is None else epoch
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state_like)
    return self.latest.restore(epoch, args=ocp.args.StandardRestore(abstract))

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
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state_like)
    return mngr.restore(epoch, args=ocp.args.StandardRestore(abstract)), epoch
  finally:
    mngr.close()
