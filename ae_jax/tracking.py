"""Experiment tracking beside metrics.jsonl: TensorBoard event files and, optionally, W&B.

The trainer hands a `Tracker` the same rows it appends to metrics.jsonl, at the same
moments (epoch ends and evaluations, outside the compiled chunks), and the test images'
reconstructions at each evaluation. `log.tensorboard` (on by default) writes one
TensorBoard run per sweep member, `<workdir>/tensorboard/<member name>/`, so
`tensorboard --logdir runs/` overlays a sweep's members: a `<split>/<metric>` scalar for
every number of every row (x: the optimizer step), an `eval/reconstructions` image, and
for sweeps the HParams table (`write_hparams`: member values against final metrics).
`log.wandb` sends the same to Weights & Biases (offline unless `log.wandb_project`).

A resumed run continues the same curves: its writers start with tensorboardX's
`purge_step` at the restored step + 1, so TensorBoard drops what the stopped run logged
after its checkpoint (metrics.jsonl drops those rows too) and each step is shown once.
Only the workdir's writer process writes; workdir.py names the folders.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import time

import numpy as np

from ae_jax import report

# row fields that are coordinates or bookkeeping, not metrics
_NOT_SCALARS = ('epoch', 'step', 'split', 'member', 'wall_s')
RECON_TAG = 'eval/reconstructions'
MIN_IMAGE_PX = 64  # small images (8x8 digits) are enlarged to about this height


def scalars(row: dict) -> dict[str, float]:
  """{'<split>/<name>': value} of every number in a metrics.jsonl row (vectors such as
  kl_per_dim and bookkeeping fields left out)."""
  return {f'{row["split"]}/{k}': float(v) for k, v in row.items()
          if k not in _NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def recon_strip(originals: np.ndarray, recon: np.ndarray) -> np.ndarray:
  """Originals [N, H, W, C] above their reconstructions, one float [2H', N W', C] image in
  [0, 1], enlarged by an integer factor (nearest) so small images stay visible."""
  k = max(1, math.ceil(MIN_IMAGE_PX / originals.shape[1]))
  # a frozen (diverged) member's NaNs show as black rather than as garbage pixels
  pixels = lambda x: np.clip(np.nan_to_num(np.asarray(x, np.float32), nan=0.0), 0.0, 1.0)
  row = lambda x: np.concatenate(list(pixels(x)), axis=1)
  strip = np.concatenate([row(originals), row(recon)], axis=0)  # [2H, N W, C]
  return strip.repeat(k, axis=0).repeat(k, axis=1)


def _unique_suffix() -> str:
  """An event file name's end. tensorboardX names files by the second they open in: a
  resumed run (or the hparams writer) opening within the same second would overwrite the
  earlier file, and TensorBoard reads a folder's files in name order, so nanoseconds."""
  return f'.{time.time_ns()}'


def _tensorboardx():
  """tensorboardX's (SummaryWriter, hparams). Where torch is installed but not yet loaded,
  it is imported with torch hidden: tensorboardX imports torch only to accept torch
  tensors, which ae_jax never passes, and that import took 2.3 s of every training
  process (a tiny `python -m ae_jax.main` run took 18.8 s against 13.5 s with this and
  the digits read without importing scikit-learn)."""
  hide = 'torch' not in sys.modules
  if hide:
    sys.modules['torch'] = None  # `import torch` raises ImportError, as without torch
  try:
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams
  finally:
    if hide:
      del sys.modules['torch']
  return SummaryWriter, hparams


def wants_images(config) -> bool:
  """Whether evaluations should reconstruct images for the trackers. A config question,
  not a writer one: every process of a multi-process job must take part in computing them."""
  return bool(config.log.tensorboard or config.log.wandb)


class Tracker:
  """The TensorBoard writers (and W&B runs) of one program's members, opened lazily."""

  def __init__(self, wd, config, members: list[dict], start_step: int):
    """`start_step`: the step training starts from (0, or the restored checkpoint's)."""
    self.wd, self.members = wd, {m['name']: m for m in members}
    self.tensorboard = bool(config.log.tensorboard) and wd.writer
    # on the first write: drop events after the checkpoint this run restarts from
    self.purge_step = start_step + 1
    self.writers: dict = {}
    self.wandb = _Wandb(wd, config) if config.log.wandb and wd.writer else None

  def _writer(self, member: str):
    if member not in self.writers:
      SummaryWriter, _ = _tensorboardx()
      # flush_secs: a killed run loses at most this much of its events (rows() flushes too)
      self.writers[member] = SummaryWriter(self.wd.folder(self.wd.tensorboard_dir(member)),
                                           purge_step=self.purge_step, flush_secs=10,
                                           filename_suffix=_unique_suffix())
    return self.writers[member]

  def rows(self, rows: list[dict]) -> None:
    """metrics.jsonl rows (one per member) as scalars at each row's step."""
    for r in rows:
      values = scalars(r)
      if self.tensorboard:
        w = self._writer(r['member'])
        for tag, v in values.items():
          w.add_scalar(tag, v, r['step'])
      if self.wandb is not None:
        self.wandb.log(self.members.get(r['member'], {'name': r['member']}), values, r['step'])
    self.flush()

  def images(self, step: int, recon: dict) -> None:
    """Each member's reconstructions of the test images (train._recon_rows's dict)."""
    for name, rec in zip(self.members, recon['recon']):
      strip = recon_strip(recon['originals'], rec)
      if self.tensorboard:
        self._writer(name).add_image(RECON_TAG, strip, step, dataformats='HWC')
      if self.wandb is not None:
        self.wandb.image(self.members[name], strip, step)
    self.flush()

  def flush(self) -> None:
    for w in self.writers.values():
      w.flush()

  def close(self) -> None:
    for w in self.writers.values():
      w.close()
    self.writers = {}
    if self.wandb is not None:
      self.wandb.close()


def hparam_values(member: dict, axes) -> dict:
  """A member's values of the swept `axes`, as the HParams plugin takes them."""
  out = {}
  for a in axes:
    v = member.get(a)
    out[a] = v if isinstance(v, (bool, int, float, str)) else str(v)
  return out


def write_hparams(wd, config, members: list[dict], summary: dict) -> None:
  """The sweep's HParams table: each member's run gets its values of the swept axes and
  names its final metrics by their scalar tags, whose last values the table shows."""
  if not (config.log.tensorboard and wd.writer):
    return
  SummaryWriter, hparams = _tensorboardx()
  axes = report.swept_axes(members)
  final = {m['name']: m for m in summary.get('members', [])}
  for m in members:
    done = final.get(m['name'], {})
    metrics = scalars({**done.get('eval', {}), 'split': 'eval'})  # tags the rows got
    if isinstance(done.get('train_loss'), (int, float)):
      metrics['train/loss'] = done['train_loss']
    with SummaryWriter(wd.folder(wd.tensorboard_dir(m['name'])),
                       filename_suffix=_unique_suffix()) as w:
      # the summaries alone: add_hparams would also write the metrics again as scalars in
      # a sub-run of their own; these tags already hold them
      for s in hparams(hparam_values(m, axes), metrics):
        w._get_file_writer().add_summary(s)


def _run_id(wd, member: str) -> str:
  """The same W&B run id for the same workdir and member: a rerun resumes that run."""
  key = f'{os.path.abspath(wd.top.path)}\0{member}'
  return hashlib.sha1(key.encode()).hexdigest()[:16]


class _Wandb:
  """One W&B run per member (wandb >= 0.19.10: several live runs in one process)."""

  def __init__(self, wd, config):
    import wandb  # an optional extra; config_lib refused log.wandb without it
    self.lib, self.wd, self.runs = wandb, wd, {}
    self.project = config.log.wandb_project

  def _run(self, member: dict):
    name = member['name']
    if name not in self.runs:
      self.runs[name] = self.lib.init(
          project=self.project or 'ae_jax', mode='online' if self.project else 'offline',
          dir=self.wd.top.path, name=name, group=os.path.basename(self.wd.top.path.rstrip('/')),
          id=_run_id(self.wd, name), resume='allow', reinit='create_new',
          config={k: v for k, v in member.items() if k != 'name'})
    return self.runs[name]

  def log(self, member: dict, values: dict, step: int) -> None:
    # W&B keeps steps increasing: after a resume it drops the steps it already holds
    # (the same values: a resumed run replays exactly)
    self._run(member).log(values, step=step)

  def image(self, member: dict, strip: np.ndarray, step: int) -> None:
    pixels = np.round(strip * 255.0).astype(np.uint8)  # exact, whatever W&B guesses of floats
    pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    self._run(member).log({RECON_TAG: self.lib.Image(pixels)}, step=step)

  def close(self) -> None:
    for run in self.runs.values():
      run.finish()
    self.runs = {}
