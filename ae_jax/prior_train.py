"""train_prior(config, workdir): a prior over a trained workdir's codes, as a second
training run inside it (<workdir>/priors/<name>/, prior_run.py), resumable and preemptible
as training is.

The codes are computed once from the workdir's latest checkpoint (every member's, from its
own encoder) and kept in the prior's folder, so a resumed run trains on the same codes; a
second prior of the same checkpoint, code mode, seed and data takes them from the first's
folder (encoding both splits again cost the generation study half a minute per prior of
its KL autoencoder). A
trained kind (flow, autoregressive, two_stage) trains every member's prior together: one
compiled program, vmapped over the members, one lax.scan per epoch; a checkpoint at every
epoch's end, the held-out number on the test codes every prior.eval_every epochs,
metrics.jsonl and TensorBoard events as training writes them. A fitted kind (gaussian,
gmm, categorical) is fitted per member in one pass. Both end with the prior's grading
(prior_grade.py) in summary.json.
"""
from __future__ import annotations

import functools
import signal
import time
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import (checkpoint, codes as codes_lib, config_lib, data, mesh as mesh_lib,
                    preempt, prior_grade, prior_steps, progress as progress_lib, tracking)
from ae_jax.errors import ConfigError, NonFiniteLossError, Preempted, WorkdirError
from ae_jax.inference import Loaded, open_workdir
from ae_jax.prior_run import CODES, FITTED, RECORD, PriorSpec, fitted_arrays, folder, names
from ae_jax.priors import registry, stats as stats_lib
from ae_jax.workdir import CONFIG, SUMMARY, Workdir, config_to_dict

# prior settings that may change when a prior resumes (the rest change what it is)
FREE = ('num_epochs', 'eval_every', 'checkpoint_every', 'num_samples')


def prior_name(config) -> str:
  return config.prior.name or config.prior.kind


def _discrete(kind: registry.PriorKind, loaded: Loaded) -> bool:
  """Whether the model's codes are discrete; a kind that does not model them is one line."""
  model = loaded.member(0)
  discrete = model.kind_info.quantized
  latent = 'discrete' if discrete else 'continuous'
  if latent not in kind.latent_kinds:
    other = [k.name for k in registry.PRIORS.values() if latent in k.latent_kinds]
    raise ConfigError(f'config.prior.kind={kind.name!r} models '
                      f'{" or ".join(kind.latent_kinds)} codes; {loaded.wd.path} holds a '
                      f'{model.kind.upper()}, whose codes are {latent}: use one of '
                      f'{", ".join(other)}')
  return discrete


def compute_codes(config, loaded: Loaded, discrete: bool) -> dict:
  """{'train': [K, N, ...], 'test': [K, Nt, ...]}: every member's codes (or indices)."""
  dataset = data.load(config.data)
  out = {}
  for split in ('train', 'test'):
    images = codes_lib.split_images(dataset, split)
    c = codes_lib.codes(loaded, images, config.prior.codes, seed=config.prior.seed)
    out[split] = codes_lib.indices(loaded, c) if discrete else c
  return out


def shared_codes(config, loaded: Loaded, discrete: bool) -> tuple[dict, str] | None:
  """({'train', 'test'}, the prior's name) of a prior of `loaded`'s workdir whose codes are
  the ones compute_codes would make (the same checkpoint, members, code mode, seed and
  data settings, and both continuous or both indices), else None. A folder that cannot be
  read is passed over: the codes are then computed."""
  data_settings = config_to_dict(config)['data']
  members = tuple(m['name'] for m in loaded.members)
  for name in names(loaded.wd.path):
    wd = folder(loaded.wd.path, name)
    try:
      if not (wd.exists(CODES) and wd.exists(CONFIG)):
        continue
      theirs, their_config = PriorSpec.read(wd), wd.read_json(CONFIG)
      if (theirs.source_step == int(loaded.step) and theirs.discrete == discrete
          and theirs.members == members and theirs.codes == config.prior.codes
          and their_config.get('prior', {}).get('seed') == int(config.prior.seed)
          and their_config.get('data') == data_settings):
        with np.load(wd.file(CODES), allow_pickle=False) as f:
          return {'train': f['train'], 'test': f['test']}, name
    except (OSError, ValueError, KeyError, TypeError, WorkdirError, zipfile.BadZipFile):
      continue
  return None


def make_spec(config, loaded: Loaded, codes: dict, discrete: bool) -> PriorSpec:
  kind = registry.get(config.prior.kind)
  derived = {'num_codes': loaded.member(0).num_codes} if kind.derived else {}
  settings = kind.settings_from(config, **derived)
  num_train = codes['train'].shape[1]
  batch = min(int(config.prior.batch_size), num_train)
  stats = None
  if not discrete:  # recorded for every continuous prior; the normalized kinds train on them
    stats = tuple({'mean': np.asarray(s.mean).tolist(), 'std': np.asarray(s.std).tolist()}
                  for s in codes_lib.statistics(codes['train']))
  return PriorSpec(
      name=prior_name(config), kind=kind.name,
      settings={f: getattr(settings, f) for f in settings.__dataclass_fields__},
      members=tuple(m['name'] for m in loaded.members),
      code_shape=tuple(codes['train'].shape[2:]), discrete=discrete, num_train=num_train,
      num_test=codes['test'].shape[1], batch_size=batch,
      steps_per_epoch=max(1, num_train // batch),
      learning_rate=float(config.prior.learning_rate),
      grad_clip_norm=float(config.prior.grad_clip_norm), codes=config.prior.codes,
      source_step=int(loaded.step), source_epoch=loaded.epoch, stats=stats)


def _resumes(wd: Workdir, config, fresh: bool) -> bool:
  """Ready the prior's folder; -> whether a prior there continues. A folder holding a
  prior that `config` would not continue (another kind or settings) is refused."""
  wd.prepare()
  if fresh and not wd.is_empty():
    print(f'moved the previous prior to {wd.move_aside()}', flush=True)
    wd.prepare()
    return False
  if not wd.exists(RECORD):
    return False
  old, new = wd.read_json(CONFIG).get('prior', {}), config_to_dict(config)['prior']
  changed = [line for line in config_lib.changes({'prior': old}, {'prior': new})
             if line.split(':')[0].split('.')[1] not in FREE]
  if changed:
    raise WorkdirError(f'{wd.path} holds a prior trained with other settings '
                       f'({"; ".join(changed)}); give it another name '
                       '(--config.prior.name=...), or --fresh to move it aside (nothing is '
                       'deleted)')
  return True


def train_prior(config, workdir: str, fresh: bool = False, epoch: int | None = None) -> dict:
  """Train (or fit) the prior config.prior describes on `workdir`'s codes (of its latest
  checkpoint, or of `epoch`); resumes one there. -> summary.json's content."""
  config = config_lib.resolve(config)
  wd = folder(workdir, prior_name(config))
  with wd.running():
    if _resumes(wd, config, fresh):
      spec = PriorSpec.read(wd)
      with np.load(wd.file(CODES), allow_pickle=False) as f:
        codes = {'train': f['train'], 'test': f['test']}
      loaded = open_workdir(workdir, config=config)
      if loaded.step != spec.source_step:
        print(f'note: {workdir} is now at epoch {loaded.epoch}; prior {spec.name!r} '
              f'continues on the codes of epoch {spec.source_epoch} it began with (--fresh '
              'starts over on the new codes)', flush=True)
        loaded = open_workdir(workdir, spec.source_epoch, config=config)
    else:
      loaded = open_workdir(workdir, epoch, config=config)
      discrete = _discrete(registry.get(config.prior.kind), loaded)
      shared = shared_codes(config, loaded, discrete)
      if shared is None:
        codes = compute_codes(config, loaded, discrete)
      else:
        codes, source = shared
        print(f'codes: those prior {source!r} computed (the same checkpoint, code mode, seed '
              'and data)', flush=True)
      spec = make_spec(config, loaded, codes, discrete)
      wd.write_config(config)
      wd.write_arrays(CODES, **codes)
      wd.write_json(RECORD, spec.to_json())
    print(f'prior {spec.name!r} ({spec.kind}) of {workdir} at epoch {spec.source_epoch}: '
          f'{spec.num_train} training / {spec.num_test} test '
          f'{"code indices" if spec.discrete else "codes"} of shape {spec.code_shape}, '
          f'{len(spec.members)} member(s)', flush=True)
    t0 = time.perf_counter()
    if spec.prior_kind.fitted:
      summary = _fit(config, wd, spec, codes)
    else:
      summary = _Run(config, wd, spec, codes).train()
    summary['prior_s'] = round(time.perf_counter() - t0, 3)
    if config.prior.num_samples:
      summary['grades'] = prior_grade.grade(config, loaded, spec.name)
    wd.write_json(SUMMARY, summary)
    return summary


def _fit(config, wd: Workdir, spec: PriorSpec, codes: dict) -> dict:
  kind, settings = spec.prior_kind, spec.make_settings()
  params, members = [], []
  for k, name in enumerate(spec.members):
    p = kind.fit(codes['train'][k], settings, int(config.prior.seed))
    params.append(p)
    held = float(np.mean(kind.held_out_fitted(p, codes['test'][k])))
    members.append({'name': name, 'held_out': {kind.held_out_name: held}})
  wd.write_arrays(FITTED, **fitted_arrays(params))
  wd.write_metrics([{'epoch': 0, 'step': 0, 'split': 'eval', 'member': m['name'],
                     **m['held_out']} for m in members])
  return {'kind': spec.kind, 'members': members}


def _normalized(spec: PriorSpec, codes):
  """A continuous normalized kind's codes [K, N, ...] in its training scale."""
  if spec.discrete or not spec.prior_kind.normalize:
    return codes
  return np.stack([np.asarray(stats_lib.normalize(jnp.asarray(c), spec.latent_stats(k)))
                   for k, c in enumerate(codes)])


class _Run:
  """A trained kind's epochs: every member together, checkpointed at each epoch's end."""

  def __init__(self, config, wd: Workdir, spec: PriorSpec, codes: dict):
    self.config, self.wd, self.spec = config, wd, spec
    self.step_spec = step = spec.step_spec()
    k = len(spec.members)
    self.train_codes = jnp.asarray(_normalized(spec, codes['train']))
    self.test_codes = jnp.asarray(_normalized(spec, codes['test']))
    # every member's prior starts from the same seed: a member's prior is the one its
    # codes alone would train
    seeds = jnp.full((k,), int(config.prior.seed), jnp.int32)
    shape = (1, *spec.code_shape)
    self.init = jax.jit(jax.vmap(lambda s: prior_steps.init_state(step, s, shape)))
    self.epoch_fn = jax.jit(jax.vmap(functools.partial(prior_steps.epoch, step),
                                     in_axes=(0, 0, None)), donate_argnums=0)
    self.held_fn = jax.jit(jax.vmap(
        lambda st, c, key: prior_steps.held_out(step, prior_steps.sampling_params(step, st),
                                                c, key), in_axes=(0, 0, None)))
    self.members = [{'name': n} for n in spec.members]
    self.ckpts = checkpoint.Checkpoints(wd.checkpoints, max_to_keep=2, writer=wd.writer)
    state = self.init(seeds)
    restored = self.ckpts.restore_latest(state)
    self.step = 0
    if restored is not None:
      state, self.step, _ = restored
      print(f'resumed prior {spec.name!r} from epoch {spec.epoch_of(self.step)}', flush=True)
    self.state = state

  def _check(self, metrics: dict, first_step: int) -> None:
    for term, values in metrics.items():
      bad = np.argwhere(~np.isfinite(np.asarray(values)))  # [k, s]
      if len(bad):
        k, s = min(bad, key=lambda ks: (ks[1], ks[0]))
        raise NonFiniteLossError(
            f'prior {self.spec.name!r}: non-finite {term} at step {first_step + s + 1} '
            f'(member {self.spec.members[k]!r}); the last good checkpoint is kept. Lower '
            'prior.learning_rate or set prior.grad_clip_norm')

  def train(self) -> dict:
    cfg, spec = self.config.prior, self.spec
    spe, total = spec.steps_per_epoch, int(cfg.num_epochs) * spec.steps_per_epoch
    log = self.wd.metrics_log(self.step, self.step > 0)
    tracker = tracking.Tracker(self.wd, self.config, self.members, self.step)
    bar = progress_lib.Progress(total, f'prior {spec.name}', unit='steps',
                                enabled=self.config.progress, initial=min(self.step, total),
                                leave=True)
    key = jax.random.PRNGKey(int(cfg.seed) + 9_000_011)
    held = {}
    timing, compiled = {'train_s': 0.0, 'steps': 0}, False
    try:
      with preempt.Watcher() as watcher:
        while self.step < total:
          t0 = time.perf_counter()
          self.state, metrics = self.epoch_fn(self.state, self.train_codes, self.step // spe)
          metrics = mesh_lib.host(metrics)  # {name: [K, spe]}
          if compiled:  # (this process's first epoch compiles)
            timing['train_s'] += time.perf_counter() - t0
            timing['steps'] += spe
          compiled = True
          self._check(metrics, self.step)
          self.step += spe
          epoch = self.step // spe
          rows = [{'epoch': epoch, 'step': self.step, 'split': 'train', 'member': m['name'],
                   **{t: float(np.mean(v[i])) for t, v in metrics.items()}}
                  for i, m in enumerate(self.members)]
          if epoch % int(cfg.eval_every) == 0 or self.step >= total:
            values = np.asarray(self.held_fn(self.state, self.test_codes, key))
            held = {m['name']: float(v) for m, v in zip(self.members, values)}
            name = spec.prior_kind.held_out_name
            rows += [{'epoch': epoch, 'step': self.step, 'split': 'eval', 'member': n,
                      name: v} for n, v in held.items()]
          log.write(rows)
          tracker.rows(rows)
          stop = watcher.should_stop(self.step)
          if epoch % int(cfg.checkpoint_every) == 0 or self.step >= total or stop:
            self.ckpts.save(self.step, self.state, self.members,
                            {'epoch': epoch, 'step': self.step})
          bar.update(spe)
          if stop:
            self.ckpts.close()
            raise Preempted(f'stopped by {signal.Signals(watcher.signum).name} at prior '
                            f'epoch {epoch} (step '
                            f'{self.step}) with a checkpoint saved in {self.wd.checkpoints}; '
                            'run the same command again to resume', watcher.signum)
    finally:
      bar.close()
      tracker.close()
      self.ckpts.close()
    train_rows = {r['member']: r for r in log.rows if r['split'] == 'train'}
    name = spec.prior_kind.held_out_name
    if not held:  # nothing left to train: the held-out number of the restored state
      values = np.asarray(self.held_fn(self.state, self.test_codes, key))
      held = {m['name']: float(v) for m, v in zip(self.members, values)}
    out = {'kind': spec.kind, 'num_epochs': int(cfg.num_epochs), 'steps_per_epoch': spe,
           'members': [{'name': n, 'train_loss': train_rows.get(n, {}).get('loss'),
                        'held_out': {name: held[n]}} for n in spec.members]}
    if timing['steps']:
      out['epoch_s'] = timing['train_s'] / timing['steps'] * spe
    return out
