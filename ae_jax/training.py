"""One program's training setup (`Training`): its run spec, its dataset, its runtime (the
compiled functions and the inputs on the devices) and its evaluator; and where each
compiled chunk's batches come from (`Chunks`). Only training (and the benchmark, which
times training steps) uses it: loading a model needs the run spec alone.
"""
from __future__ import annotations

import functools

import jax
import numpy as np

from ae_jax import config_lib, data, evaluate, mesh as mesh_lib, steps, sweep
from ae_jax.compile import Compiler, Runtime
from ae_jax.data import stream
from ae_jax.errors import ConfigError
from ae_jax.memory import device_available, size
from ae_jax.models import resnet
from ae_jax.record import ModelRecord
from ae_jax.spec import RunSpec


class Datasets:
  """The datasets of one training run, each loaded once: the programs of a sweep whose
  `config.data` is the same share it."""

  def __init__(self):
    self._loaded: dict[str, data.Dataset] = {}

  def get(self, data_config) -> data.Dataset:
    key = data_config.to_json_best_effort(sort_keys=True)
    if key not in self._loaded:
      self._loaded[key] = data.load(data_config)
    return self._loaded[key]


class Training:
  """What training one program needs: the run spec, the data, the runtime, the evaluator."""

  def __init__(self, spec: RunSpec, dataset: data.Dataset, runtime: Runtime):
    self.spec, self.dataset, self.runtime = spec, dataset, runtime
    self.eval_epochs = _eval_epochs(spec.config)

  @classmethod
  def create(cls, config, members=None, dataset=None, plan=None,
             compiler: Compiler | None = None) -> 'Training':
    """The training of `config`'s members (default: its vmapped sweep) on `dataset`
    (default: loaded from config.data)."""
    config = config_lib.resolve(config)  # checked before the data loads
    dataset = dataset if dataset is not None else data.load(config.data)
    record = ModelRecord.of_data(dataset.info, len(dataset.train['image']),
                                 config.train.batch_size)
    spec = RunSpec.build(config, record, members)
    # what would fail only at the end (too few test images, a metric's missing data): now
    evaluate.check_counts(config, spec.metrics, len(dataset.test['image']), dataset.info)
    check_memory(spec, dataset)  # before anything is placed on the device or compiled
    plan = plan or mesh_lib.plan(config, spec.num_members)
    return cls(spec, dataset, Runtime(spec, plan, compiler))

  # ---- the spec's and runtime's parts, by name -----------------------------------------

  @property
  def config(self):
    return self.spec.config

  @property
  def members(self) -> tuple[dict, ...]:
    return self.spec.members

  @property
  def model(self):
    return self.spec.model

  @property
  def steps_per_epoch(self) -> int:
    return self.spec.steps_per_epoch

  @property
  def functions(self):
    return self.runtime.functions

  @property
  def inputs(self) -> steps.StepInputs:
    return self.runtime.inputs

  @property
  def plan(self):
    return self.runtime.plan

  @functools.cached_property
  def evaluator(self) -> evaluate.Evaluator:
    return evaluate.Evaluator.of_dataset(self.runtime, self.dataset)

  def epoch_of(self, step: int):
    return self.spec.epoch_of(step)

  # ---- states -------------------------------------------------------------------------

  def init_state(self, from_data: bool = True):
    """Fresh state in the compiled functions' form. from_data=False leaves out what is
    computed from the training split (init_from_data): a resume restores those parameters
    from its checkpoint instead."""
    state = self.functions.init(self.spec.seeds)
    return self.init_from_data(state) if from_data else state

  def init_from_data(self, state):
    """A model with a PCA-initialised linear path (model.resnet.linear='pca') gets it from
    the training split here; other models are returned unchanged."""
    cfg = self.config.model
    if cfg.arch == 'resnet' and not cfg.preset and cfg.resnet.linear == 'pca':
      state = state.replace(params=resnet.init_linear_from_pca(
          state.params, self.train_sample(), self.spec.latent_shape[-1]))
    return state

  def train_sample(self) -> np.ndarray:
    """Up to evaluate.PCA_FIT_MAX training images (all of them when resident)."""
    return evaluate.train_sample(self.dataset)

  def evaluate(self, state, final: bool = False) -> dict:
    """Test-split metrics of `state` (the functions' form): {name: [K] numpy}."""
    epoch = self.epoch_of(int(mesh_lib.host(self.functions.stack(state).step)[0]))
    return self.evaluator(state, epoch, final)

  def is_eval_epoch(self, epoch: int) -> bool:
    """epoch is 1-based."""
    return (epoch % self.config.train.eval_every == 0 or epoch == self.config.train.num_epochs
            or epoch in self.eval_epochs)

  def keep_epochs(self) -> tuple[int, ...]:
    return tuple(sorted(set(self.eval_epochs) | set(self.config.checkpoint.keep_epochs or ())))


def _bytes(tree) -> int:
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
             for x in jax.tree_util.tree_leaves(tree))


def memory_need(spec: RunSpec, dataset) -> dict:
  """What a run holds on its device, in bytes, from shapes alone (nothing allocated): the
  train state of every member (parameters, optimizer state, statistics, a discriminator)
  and its gradients; the images placed there (the training split on the device tier, a
  stream's batches read ahead; the test split for evaluation). A step's activations come
  on top (they scale with train.batch_size); they are not estimated here."""
  state = _bytes(spec.abstract_state())
  grads = _bytes(spec.abstract_variables()['params'])
  one = 4 * int(np.prod(spec.image_shape))
  cfg = spec.config
  train = dataset.train['image']
  if isinstance(train, data.StreamSource):
    steps_ahead = min(cfg.data.stream_chunk_steps, spec.steps_per_epoch)
    images = (cfg.data.prefetch + 2) * steps_ahead * cfg.train.batch_size * one
  else:
    images = len(train) * one
  images += len(dataset.test['image']) * one
  return {'state': state, 'grads': grads, 'images': images}


def _knobs(spec: RunSpec, dataset) -> str:
  cfg, lower = spec.config, ['train.batch_size', 'data.image_size']
  if spec.num_members > 1:
    lower.append('the members per program (sweep.max_members_per_program)')
  stream = ('' if isinstance(dataset.train['image'], data.StreamSource) else
            ", or set data.tier='stream'")
  return f'lower {", ".join(lower)} or the model\'s size{stream}' if cfg else ''


def check_memory(spec: RunSpec, dataset, available: int | None = None, where: str = ''):
  """Refuse a run whose train state and images (memory_need) do not fit on its device,
  with the estimate and the keys to turn (one ConfigError line)."""
  if available is None:
    available, where = device_available()
  if available is None:
    return
  need = memory_need(spec, dataset)
  total = sum(need.values())
  if total <= available:
    return
  params = _bytes(spec.abstract_variables()['params']) // 4 // max(1, spec.num_members)
  raise ConfigError(
      f'this run needs about {size(total)} before its activations: {size(need["state"])} '
      f'for the train state ({params:,} parameters x {spec.num_members} member(s), with the '
      f'optimizer state), {size(need["grads"])} for the gradients, {size(need["images"])} '
      f'for the images on the device; {where or "the device"} has {size(available)} '
      f'available: {_knobs(spec, dataset)}')


def memory_note(training: Training) -> str:
  """What an out-of-memory stop adds: the estimate, and the keys to turn."""
  need = memory_need(training.spec, training.dataset)
  available, where = device_available()
  have = f'; {where} has {size(available)} available' if available is not None else ''
  return (f'The run needs about {size(sum(need.values()))} before its activations (train '
          f'state {size(need["state"])}, gradients {size(need["grads"])}, images '
          f'{size(need["images"])}) and its activations grow with train.batch_size{have}: '
          f'{_knobs(training.spec, training.dataset)}')


def prepare(config, members=None, dataset=None, plan=None) -> Training:
  """`Training.create` (tests, notebooks, the benchmark)."""
  return Training.create(config, members, dataset, plan)


def _eval_epochs(config) -> tuple[int, ...]:
  values = sweep.eval_epochs(config)
  if values is None:
    return ()
  for e in values:
    if isinstance(e, bool) or not isinstance(e, int) or not 0 < e <= config.train.num_epochs:
      raise ConfigError(f'config.sweep.eval_epochs={tuple(values)!r}: {e!r} is not an epoch in '
                        f'1..train.num_epochs={config.train.num_epochs}')
  return tuple(values)


class Chunks:
  """Where the next chunk's batches come from: device-resident images gathered by index,
  or streamed batches read ahead on a thread."""

  def __init__(self, training: Training, state, start_step: int):
    self.training = training
    fns, cfg, spe = training.functions, training.config, training.steps_per_epoch
    source = training.dataset.train['image']
    self.streaming = isinstance(source, data.StreamSource)
    self.size = chunk_size(training, self.streaming)
    self.feed = None
    if self.streaming:
      key = mesh_lib.host(fns.stack(state.data_key))[0]  # member 0's order, for every member
      order = jax.jit(lambda e: steps.epoch_batches(training.spec.step, key, len(source), e))
      self.feed = stream.batches(
          source, stream.blocks(lambda e: np.asarray(order(e)), start_step, spe,
                                cfg.train.num_epochs * spe, self.size),
          cfg.data.prefetch, training.plan)
    else:
      self.images = training.plan.put(source)
      self._order = (None, None)

  def run(self, state, active, step: int, n: int):
    t = self.training
    if self.streaming:
      return t.functions.chunk_batches(state, active, next(self.feed), t.inputs)
    epoch, pos = divmod(step, t.steps_per_epoch)
    if self._order[0] != epoch:
      self._order = (epoch, t.functions.order(state, self.images.shape[0], epoch))  # [K, spe, B]
    idx = self._order[1][:, pos:pos + n]
    return t.functions.chunk(state, active, self.images, idx, t.inputs)

  def close(self):
    if self.feed is not None:
      self.feed.close()  # stops the reader thread


def chunk_size(training: Training, streaming: bool) -> int:
  cfg, spe = training.config, training.steps_per_epoch
  if training.functions.loop == 'python':
    return 1
  if streaming:
    return min(cfg.data.stream_chunk_steps, spe)
  return min(cfg.train.chunk_steps or spe, spe)
