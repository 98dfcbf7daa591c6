"""What a trained workdir records about its model (`ModelRecord`, model.json), read and
written here only, with the workdirs older versions of ae_jax wrote.

model.json holds what using the model needs without its data: the image shape, the
classes, how the source stores images, the training split's size and the steps per epoch
(which fix the optimizer's schedule), the latent shape, the kind and the members. A run's
three start records (config.json, members.json, model.json) are written by one function,
`write_run`, whichever command makes the workdir (training, weight import, export).

Older workdirs:
- Format 1 (before model.json): checkpoints numbered by epoch, the image shape and steps
  per epoch only in summary.json. It loads as it is (`ModelRecord.read`, `checkpoint_step`)
  and its checkpoints are renumbered by step the first time training resumes it
  (`migrate_epoch_checkpoints`).
- members.json of a run recorded before a sweep axis existed: each member takes the
  config's value of the axes it lacks (`complete_members`).
"""
from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from ae_jax import checkpoint, data, schema, sweep
from ae_jax.errors import WorkdirError
from ae_jax.workdir import MEMBERS, MODEL, SUMMARY, Workdir
from ae_jax.workdir.records import RECORDS

log = logging.getLogger('ae_jax')
MODEL_FORMAT = 2  # model.json's format; workdirs without one are format 1
DEFAULT_STORAGE = {'layout': 'NHWC', 'dtype': 'float32'}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelRecord:
  """model.json as a value. Keys a newer ae_jax wrote that this one does not read are
  kept in `extra` and written back as they were."""
  image_shape: tuple[int, int, int]
  steps_per_epoch: int
  format: int = MODEL_FORMAT
  dataset: str = ''
  value_range: tuple[float, float] = (0.0, 1.0)
  class_names: tuple[str, ...] = ()
  class_values: tuple | None = None  # the labels' own values, as JSON holds them
  label_dtype: str | None = None
  color_key: tuple = ()
  storage: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_STORAGE))
  num_train: int = 0
  latent_shape: tuple[int, ...] = ()
  kind: str = ''
  members: tuple = ()
  checkpoint_unit: str = 'step'
  # the published factors a preset's latents are normalized by, (z - shift) * scale, with
  # the preset's name ({'scaling_factor', 'shift_factor', 'preset'}); None without them
  latent_normalization: dict | None = None
  # where a fine-tune started (train.init_from): {'workdir', 'members', 'epoch', 'step',
  # 'digest'}; None for a run from its own initialisation
  init_from: dict | None = None
  extra: dict = dataclasses.field(default_factory=dict)

  # ---- JSON ---------------------------------------------------------------------------

  @classmethod
  def from_json(cls, value: dict) -> 'ModelRecord':
    names = {f.name for f in dataclasses.fields(cls)} - {'extra'}
    known = {k: v for k, v in value.items() if k in names}
    tuples = ('image_shape', 'value_range', 'class_names', 'latent_shape', 'members')
    for k in tuples:
      if k in known and known[k] is not None:
        known[k] = tuple(known[k])
    if known.get('class_values') is not None:
      known['class_values'] = tuple(known['class_values'])
    if 'color_key' in known:
      known['color_key'] = tuple(tuple(c) for c in known['color_key'] or ())
    known['storage'] = dict(known.get('storage') or DEFAULT_STORAGE)
    return cls(**known, extra={k: v for k, v in value.items() if k not in names})

  def to_json(self) -> dict:
    out = {'format': self.format, 'dataset': self.dataset,
           'image_shape': list(self.image_shape), 'value_range': list(self.value_range),
           'class_names': list(self.class_names)}
    if self.class_values is not None:
      out['class_values'] = list(self.class_values)
      out['label_dtype'] = self.label_dtype
    out.update({'color_key': [list(c) for c in self.color_key],
                'storage': dict(self.storage), 'num_train': self.num_train,
                'steps_per_epoch': self.steps_per_epoch,
                'latent_shape': list(self.latent_shape), 'kind': self.kind,
                'members': list(self.members), 'checkpoint_unit': self.checkpoint_unit})
    if self.latent_normalization is not None:
      out['latent_normalization'] = dict(self.latent_normalization)
    if self.init_from is not None:
      out['init_from'] = dict(self.init_from)
    return {**out, **self.extra}

  def replace(self, **changes) -> 'ModelRecord':
    return dataclasses.replace(self, **changes)

  # ---- reading ------------------------------------------------------------------------

  @classmethod
  def read(cls, wd: Workdir) -> 'ModelRecord':
    """The workdir's model.json, or for a format-1 workdir what it implies (from
    summary.json)."""
    value = wd.read_model()
    if value is not None:
      return cls.from_json(value)
    summary = wd.read_json(SUMMARY, default={})
    if 'image_shape' not in summary or 'steps_per_epoch' not in summary:
      raise WorkdirError(
          f'{wd.path} was written by an older ae_jax and lacks model.json and the image shape '
          'in summary.json; run its training command once more on this workdir (it resumes, '
          'trains nothing new and records model.json)')
    return cls(format=1, image_shape=tuple(summary['image_shape']),
               steps_per_epoch=summary['steps_per_epoch'], checkpoint_unit='epoch')

  @classmethod
  def of_data(cls, info, num_train: int, batch_size: int) -> 'ModelRecord':
    """What training records of its data (data.DatasetInfo): the model-side entries
    (latent shape, kind, members) are the run spec's to fill."""
    labels = info.label_record()
    return cls(dataset=info.name, image_shape=tuple(int(s) for s in info.image_shape),
               class_names=tuple(info.class_names),
               class_values=(tuple(labels['class_values']) if labels else None),
               label_dtype=labels.get('label_dtype'),
               color_key=tuple(tuple(c) for c in info.color_key),
               storage=dict(info.storage or DEFAULT_STORAGE), num_train=int(num_train),
               steps_per_epoch=max(1, int(num_train) // int(batch_size)))

  @classmethod
  def of_shape(cls, image_shape, num_train: int, batch_size: int,
               dataset: str = '') -> 'ModelRecord':
    """A record made without data (imported weights): the image shape and the training
    split's size the optimizer's schedule is built for."""
    return cls(dataset=dataset, image_shape=tuple(int(s) for s in image_shape),
               num_train=int(num_train), steps_per_epoch=max(1, int(num_train) // batch_size))

  # ---- what it says -------------------------------------------------------------------

  @property
  def by_step(self) -> bool:
    """Whether the workdir's checkpoints are numbered by optimizer step (format 2)."""
    return self.checkpoint_unit == 'step'

  def checkpoint_step(self, epoch: int) -> int:
    """The checkpoint number of the end of `epoch`."""
    return epoch * self.steps_per_epoch if self.by_step else epoch

  def epoch_of(self, step: int):
    """The epoch a checkpoint number stands for (a fraction mid-epoch)."""
    if not self.by_step:
      return step
    e = step / self.steps_per_epoch
    return int(e) if e.is_integer() else round(e, 3)

  def labels(self) -> np.ndarray | None:
    """The labels' own values in their stored dtype (None: written before they were)."""
    return data.class_values_from(self.to_json())


def members_shape() -> list[dict]:
  """members.json's entry shape: a name, the program, and every vmapped axis typed."""
  axes = {a: 'int' if t is int else 'number' for a, (_, t) in sweep.AXES.items()}
  return [{**axes, **RECORDS[MEMBERS][0]}]


def read_members(wd: Workdir) -> list[dict] | None:
  """members.json, each member's vmapped axes checked against their types."""
  return wd.read_members(shape=members_shape())


def complete_members(members: list[dict], config) -> list[dict]:
  """members.json of a run recorded before a sweep axis existed: each member takes the
  config's value of the axes it lacks (the value it was trained with)."""
  base = {axis: typ(schema.get(config, key)) for axis, (key, typ) in sweep.AXES.items()}
  return [{**base, **m} for m in members]


def write_run(wd: Workdir, config, members: list[dict], record: ModelRecord) -> None:
  """A run's start records: config.json, members.json and model.json."""
  wd.write_config(config)
  wd.write_json(MEMBERS, list(members))
  wd.write_json(MODEL, record.to_json())


def trained_epochs(wd: Workdir) -> int | None:
  """Epochs of the newest checkpoint (without restoring it), or None."""
  steps = checkpoint.saved_steps(wd.checkpoints)
  if not steps:
    return None
  try:
    value = wd.read_model()
  except WorkdirError:  # damaged: training rewrites it; the epochs are not known till then
    return None
  if value is None:  # format 1: numbered by epoch
    return steps[-1]
  return steps[-1] // max(1, value['steps_per_epoch'])


def migrate_epoch_checkpoints(wd: Workdir, steps_per_epoch: int) -> None:
  """Renumber a format-1 workdir's epoch-numbered checkpoints by step, once."""
  # a model.json, even a damaged one (training rewrites it), means format 2: by step
  if wd.has_model_record() or not wd.is_trained() or steps_per_epoch == 1:
    return
  for epoch in reversed(checkpoint.saved_steps(wd.checkpoints)):
    wd.rename(os.path.join(wd.checkpoints, str(epoch)),
              os.path.join(wd.checkpoints, str(epoch * steps_per_epoch)))
  log.warning('%s: renumbered its checkpoints by optimizer step (format 2)', wd.checkpoints)

