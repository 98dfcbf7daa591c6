"""Evaluation of a program's members on the test split, shared by training (every
`train.eval_every` epochs), `--mode=evaluate` and the studies.

Batch metrics (registry kind 'step'/'batch') run in one compiled scan over the split
for all members together; pass metrics (kind 'pass') run on the host on the final
evaluation, each over the whole split with per-member model handles. Each pass is timed
(`Evaluator.pass_seconds`), so a run can say which phase its time went to.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import config_lib, data, mesh, objectives, steps
from ae_jax.compile import Runtime
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.inference import Trained, open_workdir
from ae_jax.metrics import registry
from ae_jax.metrics import sample_quality
from ae_jax.metrics.sample_quality import PR_NEIGHBOURS
from ae_jax.progress import duration
from ae_jax.spec import RunSpec
from ae_jax.workdir import (CONFIG, EVAL, PROGRAMS, Outputs, Workdir, config_to_dict,
                           refuse_links)


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


SAMPLE_METRICS = ('fd_classifier', 'precision', 'recall')


def check_counts(config, metrics, num_test: int, info=None) -> None:
  """Refuse, before any training or evaluation, what would fail only at the end: a test
  split too small for what evaluates it (an objective whose terms compare pairs within a
  batch needs two images, the sample-quality metrics more than their k nearest
  neighbours), and a metric whose data is missing (`Metric.needs`: ground-truth factors,
  a dataset with a sample-quality classifier; `info`: the dataset's DatasetInfo)."""
  objective = objectives.get(config.loss.objective)
  if objective.pairs and num_test < 2:
    raise ConfigError(f'config.loss.objective={objective.name!r} {objective.pairs}, so its '
                      f'evaluation needs two test images or more; the test split has {num_test}: '
                      'raise data.test_fraction')
  metrics = [registry.get(m) if isinstance(m, str) else m for m in metrics]
  used = min(num_test, config.eval.max_images or num_test)
  wanted = sorted({m.name for m in metrics} & set(SAMPLE_METRICS))
  if wanted and used <= PR_NEIGHBOURS:
    raise ConfigError(f'the metrics {wanted} need more than {PR_NEIGHBOURS} test images; this '
                      f'run evaluates {used}: raise data.test_fraction (or eval.max_images)')
  if info is None:
    return
  for m in metrics:
    if 'factors' in m.needs and info.factors is None:
      raise ConfigError(f'metric {m.name!r} needs ground-truth factors: data.name=\'dsprites\' '
                        f'(not {info.name!r}); leave it out of eval.metrics')
    if 'labelled_dataset' in m.needs:
      sample_quality.check_dataset(info, config.data)


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
               metrics=None, say: Callable[[str], None] | None = None):
    """metrics: the registry's metrics to compute (default: the run spec's); say: where a
    line per finished pass goes (with its time), or None for silence."""
    self.runtime, self.spec = runtime, runtime.spec
    self.test, self.info = test, info
    self.metrics = self.spec.metrics if metrics is None else tuple(metrics)
    check_counts(self.spec.config, self.metrics, len(test['image']), info)
    self.train_images, self.factors = train_images, factors
    self.say = say
    self.pass_seconds: dict[str, float] = {}  # each pass's label -> seconds, summed
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
      label = ' / '.join(m.label for m in wanted if m.run is run)
      t0 = time.perf_counter()
      out.update(run(ctx))
      seconds = time.perf_counter() - t0
      self.pass_seconds[label] = self.pass_seconds.get(label, 0.0) + seconds
      if self.say is not None:
        models = len(ctx.members)
        self.say(f'final evaluation: {label} took {duration(seconds)} ({len(ctx.images)} '
                 f'test images, {models} model{"s" if models > 1 else ""})')
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
                            photographs=data.photographic(spec.config.data, spec.image_shape),
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


def result_outputs(workdir: str, out: str | None) -> Outputs | None:
  """Where `--mode=evaluate --out` writes eval.json, checked before anything is computed:
  None for the workdir itself (no --out, or --out naming it), else the folder `out` as
  an evaluation's outputs (`Outputs`): new or empty, or an earlier evaluation's; another
  command's folder (another workdir, a tool's outputs, a study) is refused naming it."""
  if out is None or (os.path.isdir(out) and os.path.isdir(workdir)
                     and os.path.samefile(out, workdir)):
    wd = Workdir(workdir)  # its own eval.json (and its programs'): never through a link
    refuse_links(wd.root, wd.file(EVAL))
    programs = wd.file(PROGRAMS)
    for name in sorted(os.listdir(programs)) if os.path.isdir(programs) else ():
      refuse_links(wd.root, wd.program(name).file(EVAL))
    return None
  if os.path.exists(out) and not os.path.isdir(out):
    raise WorkdirError(f'--out {out} is a file; give a folder for eval.json')
  outputs = Outputs(out, Workdir(workdir).writer, tool='evaluate', reads=(workdir,))
  outputs.check()
  return outputs


def write_result(result: dict, out: str | None = None) -> str | None:
  """eval.json of `result` into its workdir (and each program's into the program's), or
  into the folder `out` (as a whole: `result_outputs`); -> its path (None off the writer
  process). A failed write is a WriteError naming the file."""
  outputs = result_outputs(result['workdir'], out)
  if outputs is not None:
    with outputs:
      path = outputs.json(EVAL, result)
    return path if outputs.writer else None
  for program in result.get('programs', ()):
    Workdir(program['workdir']).write_json(EVAL, program)
  wd = Workdir(result['workdir'])
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
