"""A prior over a trained workdir's codes, as it lives in the workdir: its folder
`<workdir>/priors/<name>/`, its record (`PriorSpec`, prior.json: the kind and settings, the
members, the code shape, the codes' source checkpoint and their normalization statistics),
and a trained or fitted prior opened for sampling (`TrainedPrior`), which needs neither the
data nor the training machinery.

  <workdir>/priors/<name>/
    config.json      the workdir's config with the prior settings it was trained with
    prior.json       PriorSpec (read and written here only)
    codes.npz        the training and test codes it was fitted on (computed once, kept)
    metrics.jsonl, summary.json, tensorboard/<member>/, figures/
    checkpoints/     a trained kind's Orbax checkpoints (every member's state stacked)
    fitted.npz       a fitted kind's parameters, one set per member (m<k>.<array>)
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import checkpoint, prior_steps
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.priors import registry, stats as stats_lib
from ae_jax.workdir import PRIORS, Workdir

RECORD, CODES, FITTED = 'prior.json', 'codes.npz', 'fitted.npz'
FORMAT = 1


def folder(workdir: str, name: str) -> Workdir:
  return Workdir(os.path.join(workdir, PRIORS, name))


def names(workdir: str) -> list[str]:
  """The priors a workdir holds (folders with a prior.json)."""
  root = os.path.join(workdir, PRIORS)
  if not os.path.isdir(root):
    return []
  return sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, RECORD)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class PriorSpec:
  name: str
  kind: str
  settings: dict                # the kind's settings, by name (derived ones included)
  members: tuple[str, ...]      # the workdir's members, one prior each
  code_shape: tuple[int, ...]   # one example's codes (continuous) or positions (discrete)
  discrete: bool                # over code indices
  num_train: int
  num_test: int
  batch_size: int
  steps_per_epoch: int
  learning_rate: float
  grad_clip_norm: float
  codes: str                    # 'mean' | 'sample'
  source_step: int              # the autoencoder checkpoint the codes are of
  source_epoch: float
  stats: tuple | None = None    # per member {'mean': [C], 'std': [C]} (normalized kinds)
  format: int = FORMAT

  @property
  def prior_kind(self) -> registry.PriorKind:
    return registry.get(self.kind)

  def make_settings(self):
    return self.prior_kind.make_settings(**self.settings)

  def step_spec(self) -> prior_steps.PriorStepSpec:
    settings = self.make_settings()
    return prior_steps.PriorStepSpec(
        kind=self.prior_kind, settings=settings, batch_size=self.batch_size,
        steps_per_epoch=self.steps_per_epoch, learning_rate=self.learning_rate,
        grad_clip_norm=self.grad_clip_norm,
        ema_decay=float(getattr(settings, 'ema_decay', 0.0)))  # (a flow's setting)

  def latent_stats(self, k: int) -> stats_lib.LatentStats | None:
    if self.stats is None:
      return None
    s = self.stats[k]
    return stats_lib.LatentStats(mean=jnp.asarray(s['mean'], jnp.float32),
                                 std=jnp.asarray(s['std'], jnp.float32))

  def epoch_of(self, step: int):
    e = step / self.steps_per_epoch
    return int(e) if e.is_integer() else round(e, 3)

  def to_json(self) -> dict:
    out = dataclasses.asdict(self)
    out['members'], out['code_shape'] = list(self.members), list(self.code_shape)
    out['stats'] = None if self.stats is None else list(self.stats)
    return out

  @classmethod
  def from_json(cls, value: dict, where: str) -> 'PriorSpec':
    fields = {f.name for f in dataclasses.fields(cls)}
    missing = sorted(f.name for f in dataclasses.fields(cls) if f.name not in value
                     and f.default is dataclasses.MISSING)
    if missing:
      raise WorkdirError(f'{where} lacks {missing}; train the prior again (python -m '
                         'ae_jax.prior --fresh ...)')
    known = {k: v for k, v in value.items() if k in fields}
    known['members'] = tuple(known['members'])
    known['code_shape'] = tuple(known['code_shape'])
    if known.get('stats') is not None:
      known['stats'] = tuple(known['stats'])
    return cls(**known)

  @classmethod
  def read(cls, wd: Workdir) -> 'PriorSpec':
    return cls.from_json(wd.read_json(RECORD), wd.file(RECORD))


def abstract_state(spec: PriorSpec) -> prior_steps.PriorState:
  """The members' stacked [K, ...] prior state, shapes and dtypes only."""
  step = spec.step_spec()
  init = jax.vmap(lambda seed: prior_steps.init_state(step, seed, (1, *spec.code_shape)))
  return jax.eval_shape(init, jnp.zeros(len(spec.members), jnp.int32))


def read_fitted(wd: Workdir, spec: PriorSpec) -> list[dict]:
  """A fitted kind's parameters, one dict of arrays per member."""
  path = wd.file(FITTED)
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError) as e:
    raise WorkdirError(f'{path} is not a fitted prior ({type(e).__name__}); fit it again '
                       '(python -m ae_jax.prior --fresh ...)') from None
  out = []
  for k in range(len(spec.members)):
    prefix = f'm{k}.'
    out.append({name[len(prefix):]: v for name, v in arrays.items() if name.startswith(prefix)})
  return out


def fitted_arrays(params: list[dict]) -> dict:
  """fitted.npz's arrays of every member's parameters (m<k>.<name>)."""
  return {f'm{k}.{name}': v for k, p in enumerate(params) for name, v in p.items()}


@dataclasses.dataclass
class TrainedPrior:
  """Every member's prior of a workdir, opened for sampling."""
  spec: PriorSpec
  wd: Workdir
  params: Any      # trained kinds: [K, ...] stacked sampling weights; fitted: [dict] per member
  step: int = 0

  @classmethod
  def open(cls, workdir: str, name: str) -> 'TrainedPrior':
    wd = folder(workdir, name)
    if not wd.exists(RECORD):
      have = names(workdir)
      hint = (f'; it has {", ".join(have)}' if have else '; it has none')
      raise WorkdirError(f'{workdir} has no prior {name!r}{hint}: train one with python -m '
                         f'ae_jax.prior --workdir {workdir} --config.prior.kind=...')
    spec = PriorSpec.read(wd)
    if spec.prior_kind.fitted:
      return cls(spec, wd, read_fitted(wd, spec))
    step_spec = spec.step_spec()
    like = abstract_state(spec)
    target = {'params': like.params, **({'ema': like.ema} if step_spec.ema_decay > 0 else {})}
    try:
      restored, step = checkpoint.restore_params(wd.checkpoints, target)
    except checkpoint.CheckpointError as e:
      raise WorkdirError(f'prior {name!r} of {workdir} has no checkpoint to sample from '
                         f'({e}); train it (python -m ae_jax.prior ...)') from None
    weights = restored['ema'] if step_spec.ema_decay > 0 else restored['params']
    return cls(spec, wd, weights, step)

  def sample(self, member: int, num: int, seed: int = 0, temperature: float | None = None):
    """`num` codes [num, *code_shape] of member `member` (in the autoencoder's scale), or
    code indices for a discrete prior. `temperature` (fitted kinds and the autoregressive
    prior's own setting otherwise): None keeps the prior's."""
    spec, kind = self.spec, self.spec.prior_kind
    if kind.fitted:
      t = 1.0 if temperature is None else float(temperature)
      out = kind.sample_fitted(self.params[member], num, seed, t)
    else:
      settings = spec.make_settings()
      if temperature is not None:
        if not hasattr(settings, 'temperature'):
          raise ConfigError(f'a {kind.name} prior has no sampling temperature')
        settings = dataclasses.replace(settings, temperature=float(temperature))
      params = jax.tree_util.tree_map(lambda x: x[member], self.params)
      out = jax.jit(lambda p, k: kind.sample(p, k, num, settings))(
          params, jax.random.PRNGKey(seed))
      out = np.asarray(out)
    stats = spec.latent_stats(member)
    if stats is not None and kind.normalize:
      out = np.asarray(stats_lib.unnormalize(jnp.asarray(out), stats))
    return np.asarray(out, np.int32 if spec.discrete else np.float32)
