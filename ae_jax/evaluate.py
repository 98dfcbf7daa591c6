"""Evaluation of a program's members on the test split, shared by training (every
`train.eval_every` epochs), `--mode=evaluate` and the studies.

Batch metrics (registry kind 'step'/'batch') run in one compiled scan over the split
for all members together; pass metrics (kind 'pass') run on the host on the final
evaluation, each over the whole split with per-member model handles.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import config_lib, data, mesh, steps
from ae_jax.compile import Runtime
from ae_jax.errors import WorkdirError
from ae_jax.inference import Trained, open_workdir
from ae_jax.metrics import registry
from ae_jax.spec import RunSpec
from ae_jax.workdir import CONFIG, EVAL, Workdir, config_to_dict


class PassContext:
  """What a pass metric may use: the members as `inference.Trained` handles, the test
  split (at most eval.max_images images), and lazily the training images and factors."""

  def __init__(self, spec: RunSpec, variables, epoch, test: dict, info, train_images=None,
               factors=None, wanted=()):
    self.config = spec.config
    self.image_shape = spec.image_shape
    limit = spec.config.eval.max_images or len(test['image'])
    self.images = np.asarray(test['image'][:limit])
    self.labels = np.asarray(test['label'][:limit]) if 'label' in test else None
    self.ids = np.asarray(test['id'][:limit]) if 'id' in test else None
    self.info = info
    self._train_images = train_images
    self.factors = factors
    self.wanted = set(wanted)
    self.members = [Trained(spec, variables, k, epoch) for k in range(spec.num_members)]
    self._recons: dict[int, np.ndarray] = {}

  @property
  def train_images(self):
    x = self._train_images() if callable(self._train_images) else self._train_images
    return np.asarray(x)

  def recon(self, k: int) -> np.ndarray:
    """Member k's deterministic reconstructions of the images, clipped to [0, 1] (computed
    once per context: several pass metrics use them)."""
    if k not in self._recons:
      self._recons[k] = np.clip(self.members[k].reconstruct(self.images), 0.0, 1.0)
    return self._recons[k]

  def key(self, salt: int = 0):
    return jax.random.PRNGKey(self.config.train.seed + 7_000_003 + salt)


PCA_FIT_MAX = 10_000  # training images the PCA baseline is fitted on, at most


def train_sample(dataset, limit: int = PCA_FIT_MAX) -> np.ndarray:
  """Up to `limit` training images of `dataset` (the first ones; streamed or resident)."""
  x = dataset.train['image']
  if isinstance(x, data.StreamSource):
    return x.read(np.arange(min(len(x), limit)))
  return np.asarray(x[:limit])


def test_factors(dataset):
  """The test split's ground-truth factors (dsprites), or None."""
  factors = dataset.info.factors
  return None if factors is None else factors[dataset.test['id']]


class Evaluator:
  """A run's metrics on a test split: the batch metrics in one compiled scan over the split
  for every member, the pass metrics on the host (final evaluations)."""

  @classmethod
  def of_dataset(cls, runtime: Runtime, dataset, metrics=None) -> 'Evaluator':
    """The evaluator of a run's members on `dataset`'s test split (training images and
    factors read only when a metric needs them)."""
    return cls(runtime, dataset.test, dataset.info, lambda: train_sample(dataset),
               test_factors(dataset), metrics)

  def __init__(self, runtime: Runtime, test: dict, info=None, train_images=None, factors=None,
               metrics=None):
    """metrics: the registry's metrics to compute (default: the run spec's)."""
    self.runtime, self.spec = runtime, runtime.spec
    self.test, self.info = test, info
    self.metrics = self.spec.metrics if metrics is None else tuple(metrics)
    self.train_images, self.factors = train_images, factors
    self._inputs = None

  def _batch_names(self, final: bool) -> tuple[str, ...]:
    return tuple(m.name for m in self.metrics
                 if m.kind in ('step', 'batch') and m.batch and (final or m.when == 'every'))

  def batch_metrics(self, state, final: bool = False) -> dict:
    """{name: [K] or [K, units]} of the compiled metrics, state in the functions' form."""
    names = self._batch_names(final)
    if not names:
      return {}
    plan, cfg = self.runtime.plan, self.spec.config
    if self._inputs is None:  # built once, kept on the device
      images, valid = steps.batch_for_eval(np.asarray(self.test['image']),
                                           cfg.train.eval_batch_size, plan.data)
      self._inputs = (plan.put(images), plan.put(valid),
                      jax.random.PRNGKey(cfg.train.seed + 1_000_003))
    images, valid, key = self._inputs
    fn = self.runtime.evaluate(names)
    return mesh.host(fn(state, images, valid, self.runtime.inputs, key))

  def pass_metrics(self, variables, epoch, names=None) -> dict:
    """The pass metrics among `names` (default: the run's), for [K, ...] variables."""
    wanted = [m for m in self.metrics if m.kind == 'pass'] if names is None else \
        [registry.get(n) for n in names if registry.get(n).kind == 'pass']
    if not wanted:
      return {}
    ctx = PassContext(self.spec, variables, epoch, self.test, self.info, self.train_images,
                      self.factors, [m.name for m in wanted])
    out = {}
    for run in dict.fromkeys(m.run for m in wanted):
      out.update(run(ctx))
    return {m.name: np.asarray(out[m.name]) for m in wanted if m.name in out}

  def __call__(self, state, epoch, final: bool = False) -> dict:
    out = self.batch_metrics(state, final)
    passes = [m.name for m in self.metrics
              if m.kind == 'pass' and (final or m.when == 'every')]
    if passes:
      stacked = self.runtime.functions.stack(state)
      variables = {'params': stacked.params, 'batch_stats': stacked.batch_stats,
                   'model_state': stacked.model_state}
      out.update(self.pass_metrics(variables, epoch, passes))
    return out


def rows(members, values: dict, **fields) -> list[dict]:
  """metrics.jsonl rows, one per member, from {name: [K] or [K, units]}."""
  out = []
  for i, mem in enumerate(members):
    row = {**fields, 'split': 'eval', 'member': mem['name']}
    for k, v in values.items():
      v = np.asarray(v[i])
      row[k] = v.tolist() if v.ndim else float(v)
    out.append(row)
  return out


def evaluate_workdir(workdir: str, metrics=None, config=None, epoch: int | None = None,
                     overrides=(), out: str | None = None, write: bool = True) -> dict:
  """Evaluate a trained workdir's latest checkpoint (or `epoch`) on its test split, for
  the config's eval.metrics or `metrics` (names; 'default' allowed). Writes eval.json
  into the workdir, or the folder `out` (`write_result`), unless `write` is False.

  The workdir's own config is used, with `overrides` (`--config.a.b=v`) of keys that are
  free on a trained workdir. `config` (optional) must describe the same model
  (config_lib.check_compatible); its free settings then apply instead of the workdir's.
  """
  wd = Workdir(workdir)
  members = wd.read_members() if wd.is_trained() else None
  if members and 'program' in members[0]:
    programs = list(dict.fromkeys(m['program'] for m in members))
    results = [evaluate_workdir(wd.program(p).path, metrics, None, epoch, overrides,
                                write=False) for p in programs]
    result = {'workdir': workdir, 'programs': results,
              'members': [m for r in results for m in r['members']]}
    if write:
      write_result(result, out)
    return result
  if config is not None:
    config_lib.check_compatible(
        wd.read_json(CONFIG), config_to_dict(config_lib.resolve(config)), workdir, None,
        way_out='Leave out --config to evaluate it with its own (--metrics picks the metrics)')
  base = config if config is not None else (config_lib.read_config(wd) if wd.is_trained()
                                             else None)
  if base is not None:
    base = config_lib.resolve(config_lib.apply_overrides(base, overrides, only_free=True))
  loaded = open_workdir(workdir, epoch, config=base)
  spec = loaded.spec
  names = tuple(metrics) if metrics else tuple(spec.config.eval.metrics)
  wanted = registry.resolve(names, spec.model.kind, image_shape=spec.image_shape,
                            objective=spec.config.loss.objective,
                            latent_shape=spec.latent_shape)
  dataset = data.load(spec.config.data)
  runtime = Runtime(spec)
  ev = Evaluator.of_dataset(runtime, dataset, wanted)
  stacked = _stacked_state(spec, loaded.variables, loaded.step)
  values = ev.batch_metrics(_unstack(stacked, spec.num_members), final=True)
  values.update(ev.pass_metrics(loaded.variables, loaded.epoch))
  result = {'workdir': workdir, 'epoch': loaded.epoch, 'step': loaded.step,
            'num_test_images': int(len(dataset.test['image'])),
            'members': [{'name': m['name'],
                         'eval': {k: (np.asarray(v[i]).tolist()) for k, v in values.items()}}
                        for i, m in enumerate(spec.members)]}
  if write:
    write_result(result, out)
  return result


def write_result(result: dict, out: str | None = None) -> str | None:
  """eval.json of `result` into its workdir (and each program's into the program's), or
  into the folder `out`; -> its path (None off the writer process). A failed write is a
  WriteError naming the file."""
  if out is not None and os.path.exists(out) and not os.path.isdir(out):
    raise WorkdirError(f'--out {out} is a file; give a folder for eval.json')
  if out is None:
    for program in result.get('programs', ()):
      Workdir(program['workdir']).write_json(EVAL, program)
  wd = Workdir(out if out is not None else result['workdir'])
  wd.write_json(EVAL, result)
  return wd.file(EVAL) if wd.writer else None


def _stacked_state(spec: RunSpec, variables, step):
  """A [K, ...] TrainState around restored variables (evaluation needs no optimizer state:
  its slots are zeros of the right shapes)."""
  like = spec.abstract_state()
  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), like)
  return zeros.replace(params=variables['params'], batch_stats=variables['batch_stats'],
                       model_state=variables.get('model_state', {}),
                       step=jnp.full(like.step.shape, step, like.step.dtype))


def _unstack(state, num_members: int):
  """The compiled functions' form of a [K, ...] state: no member axis for one member."""
  if num_members > 1:
    return state
  return jax.tree_util.tree_map(lambda x: x[0], state)


def format_result(result: dict) -> str:
  """The CLI's tables: one per member, metric | value | better."""
  lines = []
  for r in ([result] if 'programs' not in result else result['programs']):
    lines.append(f'evaluated {r["workdir"]} at epoch {r["epoch"]} (step {r["step"]}) on '
                 f'{r["num_test_images"]} test images')
    for m in r['members']:
      lines += ['', f'member {m["name"]}', '| metric | value | better |', '|---|---|---|']
      for metric in registry.columns(m['eval'].keys()):
        arrow = {'higher': 'higher', 'lower': 'lower'}.get(metric.better, '')
        lines.append(f'| {metric.label} | {metric.format(m["eval"][metric.name])} | {arrow} |')
    lines.append('')
  return '\n'.join(lines)
