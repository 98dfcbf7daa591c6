"""train_and_evaluate(config, workdir): data -> model -> compiled epochs -> workdir."""
from __future__ import annotations

import copy
import logging
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from ae_jax import checkpoint, config_lib, data, figures, report, steps, sweep, workdir as wd
from ae_jax.errors import ConfigError, NonFiniteLossError
from ae_jax.models import build_model, latent_is_sweepable, latent_shape
from ae_jax.optim import spec_from_config

log = logging.getLogger('ae_jax')
TRAIN_KEYS = ('loss', 'recon', 'kl', 'neg_elbo')
EVAL_KEYS = ('loss', 'recon', 'kl', 'neg_elbo', 'psnr', 'ssim', 'active_units')


class Setup:
  """Everything derived from a config that training, evaluation and inference share.

  `members` defaults to the config's own vmapped sweep; a sweep with outer axes or
  chunks passes each program's members explicitly.
  """

  def __init__(self, config, members=None, dataset=None):
    config_lib.validate(config)
    self.members = members if members is not None else sweep.expand(config)
    if sweep.swept_latent(config):
      config = copy.deepcopy(config)
      with config.unlocked():
        config.model.latent_dim = max(m['latent_dim'] for m in self.members)
    self.config = config
    self.dataset = dataset if dataset is not None else data.load(config.data)
    self.image_shape = self.dataset.info.image_shape
    self.model = build_model(config.model, self.image_shape)
    n_train = self.dataset.train['image'].shape[0]
    batch = config.train.batch_size
    if batch > n_train:
      raise ConfigError(f'config.train.batch_size={batch} is larger than the {n_train} '
                        f'training examples of data.name={config.data.name!r}')
    self.eval_epochs = _eval_epochs(config)
    self.steps_per_epoch = n_train // batch
    self.spec = steps.StepSpec(
        model=self.model,
        loss=steps.LossSpec(config.loss.reconstruction, config.loss.reduction,
                            float(config.loss.nll_sigma)),
        optim=spec_from_config(config, self.steps_per_epoch),
        batch_size=batch, steps_per_epoch=self.steps_per_epoch,
        eval_batch_size=config.train.eval_batch_size, dtype=config.dtype)
    self.fns = steps.make_functions(self.spec, tuple(self.image_shape), len(self.members),
                                    config.train.loop, config.sweep.vectorize)
    hp = sweep.hparams(self.members)
    if sweep.swept_latent(config):
      if not latent_is_sweepable(self.model):
        raise ConfigError(f'config.sweep.latent_dim: preset {config.model.preset!r} has no '
                          'latent head (its code is the last conv layer), so its latent size '
                          'cannot be swept')
      hp['latent_mask'] = sweep.latent_masks(self.members,
                                             latent_shape(self.model, self.image_shape))
    self.hparams = {k: jnp.asarray(v) for k, v in hp.items()}
    self.seeds = jnp.asarray([m['seed'] for m in self.members], jnp.int32)
    self._eval_inputs = None

  def evaluate(self, state) -> dict:
    """Test-split metrics of `state` (the functions' form): {name: [K] numpy}."""
    if self._eval_inputs is None:  # built once, kept on the device
      images, valid = steps.batch_for_eval(self.dataset.test['image'],
                                           self.config.train.eval_batch_size)
      self._eval_inputs = (jax.device_put(images), jax.device_put(valid),
                           jax.random.PRNGKey(self.config.train.seed + 1_000_003))
    images, valid, key = self._eval_inputs
    return jax.device_get(self.fns.evaluate(state, images, valid, self.hparams, key))

  def init_state(self):
    """Initial state in the compiled functions' form (fns.stack gives the [K, ...] form)."""
    return self.fns.init(self.seeds)

  def is_eval_epoch(self, epoch: int) -> bool:
    """epoch is 1-based."""
    return (epoch % self.config.train.eval_every == 0 or epoch == self.config.train.num_epochs
            or epoch in self.eval_epochs)


def _eval_epochs(config) -> tuple[int, ...]:
  values = sweep.eval_epochs(config)
  if values is None:
    return ()
  for e in values:
    if isinstance(e, bool) or not isinstance(e, int) or not 0 < e <= config.train.num_epochs:
      raise ConfigError(f'config.sweep.eval_epochs={tuple(values)!r}: {e!r} is not an epoch in '
                        f'1..train.num_epochs={config.train.num_epochs}')
  return tuple(values)


def _first_nonfinite(metrics: dict, members, epoch: int, steps_per_epoch: int):
  loss = metrics['loss']  # [K, steps]
  bad = np.argwhere(~np.isfinite(loss))
  if bad.size == 0:
    return None
  k, s = bad[np.argsort(bad[:, 1], kind='stable')[0]]
  term = next((t for t in ('recon', 'kl') if not np.isfinite(metrics[t][k, s])), 'loss')
  value = metrics[term][k, s]
  step = epoch * steps_per_epoch + int(s) + 1
  return (f'non-finite training loss at step {step} (epoch {epoch + 1}, member '
          f'{members[k]["name"]!r}): term {term!r} = {value}; the last good checkpoint is '
          'kept. Lower train.learning_rate, set optim.grad_clip_norm, or check the data.')


def _progress(config, total, initial):
  enabled = config.progress and sys.stderr.isatty()
  return tqdm.tqdm(total=total, initial=initial, unit='step', disable=not enabled,
                   dynamic_ncols=True, file=sys.stderr)


def train_and_evaluate(config, workdir: str) -> dict:
  """Train every member of `config` in `workdir`, resuming from the latest checkpoints.

  One program trains in `workdir` itself; a sweep with outer axes or chunks trains each
  program in `workdir/programs/<name>/` and gathers metrics, summary, tables and figures
  at the top.
  """
  config_lib.validate(config)
  progs = sweep.programs(config)
  if len(progs) == 1:
    summary = train_program(progs[0].config, workdir, progs[0].members)
    rows = wd.read_metrics(os.path.join(workdir, 'metrics.jsonl'))
  else:
    summary, rows = {'programs': [], 'members': []}, []
    for prog in progs:
      sub = os.path.join(workdir, 'programs', prog.name)
      print(f'== program {prog.name}: {len(prog.members)} member(s)', flush=True)
      s = train_program(prog.config, sub, prog.members)
      summary['programs'].append({'name': prog.name, 'workdir': sub,
                                  **{k: v for k, v in s.items() if k != 'members'}})
      summary['members'] += s['members']
      rows += wd.read_metrics(os.path.join(sub, 'metrics.jsonl'))
    os.makedirs(os.path.join(workdir, 'figures'), exist_ok=True)
    wd.write_json(os.path.join(workdir, 'config.json'), wd.config_to_dict(config))
    wd.write_json(os.path.join(workdir, 'members.json'),
                  [{**m, 'program': p.name} for p in progs for m in p.members])
    wd.write_metrics(os.path.join(workdir, 'metrics.jsonl'), rows)
    if config.figures.enabled:
      figures.loss_curves(rows, os.path.join(workdir, 'figures', 'loss.png'), 'loss',
                          config.figures.log_scale, 'training loss')
  members = [m for p in progs for m in p.members]
  if len(members) > 1:
    summary['table'] = report.write_sweep(workdir, config, members, rows,
                                          draw=config.figures.enabled)
  wd.write_json(os.path.join(workdir, 'summary.json'), summary)
  return summary


def train_program(config, workdir: str, members: list[dict]) -> dict:
  """Train one compiled program's members in `workdir` (resuming) and evaluate them."""
  setup = Setup(config, members)
  cfg, fns = setup.config, setup.fns
  os.makedirs(os.path.join(workdir, 'figures'), exist_ok=True)
  ds = setup.dataset
  streaming = isinstance(ds.train['image'], data.StreamSource)
  train_images = ds.train['image'] if streaming else jax.device_put(ds.train['image'])

  ckpts = checkpoint.Checkpoints(workdir, cfg.checkpoint.max_to_keep,
                                 cfg.checkpoint.best_metric, cfg.checkpoint.best_mode)
  state = setup.init_state()
  latest = ckpts.latest_step()
  start_epoch = latest or 0
  if latest is not None:  # epoch 0 is an imported or exported starting point
    state = fns.unstack(ckpts.restore(fns.stack(state), latest))
    log.info('resumed %s from epoch %d', workdir, start_epoch)
  _write_config(cfg, members, workdir, start_epoch)
  metrics_log = wd.MetricsLog(os.path.join(workdir, 'metrics.jsonl'), start_epoch)

  num_epochs, spe = cfg.train.num_epochs, setup.steps_per_epoch
  bar = _progress(cfg, num_epochs * spe, min(start_epoch, num_epochs) * spe)
  timing = {'compile_s': None, 'train_s': 0.0, 'timed_epochs': 0}
  last_eval, epoch = None, start_epoch
  feed = stream_feed(setup, state, train_images, start_epoch) if streaming else None
  try:
    for epoch in range(start_epoch, num_epochs):
      t0 = time.perf_counter()
      if streaming:
        state, m = stream_epoch(setup, state, feed)
      else:
        state, m = fns.epoch(state, train_images, setup.hparams, epoch)
      m = jax.device_get(m)  # the one host sync per epoch
      dt = time.perf_counter() - t0
      if timing['compile_s'] is None:
        timing['compile_s'] = dt
      else:
        timing['train_s'] += dt
        timing['timed_epochs'] += 1
      problem = _first_nonfinite(m, members, epoch, spe)
      if problem:
        raise NonFiniteLossError(problem)
      step = (epoch + 1) * spe
      rows = [{'epoch': epoch + 1, 'step': step, 'split': 'train', 'member': mem['name'],
               **{k: float(np.mean(m[k][i])) for k in TRAIN_KEYS},
               'lr': float(m['lr'][i, -1]), 'beta': float(m['beta'][i, -1])}
              for i, mem in enumerate(members)]
      eval_rows = None
      if setup.is_eval_epoch(epoch + 1):
        eval_rows = _eval_rows(members, setup.evaluate(state), epoch=epoch + 1, step=step)
        rows += eval_rows
        last_eval = eval_rows
      metrics_log.write(rows)
      bar.update(spe)
      bar.set_postfix(loss=f'{np.mean(m["loss"][:, -1]):.4g}',
                      img_s=f'{spe * cfg.train.batch_size * len(members) / dt:.0f}')
      if eval_rows:
        for r in eval_rows:
          tqdm.tqdm.write(_eval_line(r, num_epochs, len(members) > 1), file=sys.stdout)
      if ((epoch + 1) % cfg.checkpoint.every_epochs == 0 or epoch + 1 == num_epochs
          or epoch + 1 in setup.eval_epochs):
        best = None
        if eval_rows and cfg.checkpoint.best_metric:
          best = {cfg.checkpoint.best_metric: float(np.mean(
              [r[cfg.checkpoint.best_metric] for r in eval_rows]))}
        ckpts.save(epoch + 1, fns.stack(state), members, best)
  finally:
    if feed is not None:
      feed.close()  # stops the reader thread
    bar.close()
    ckpts.close()

  if last_eval is None:  # nothing left to train: evaluate the restored state
    last_eval = _eval_rows(members, setup.evaluate(state), epoch=num_epochs)
  summary = _summary(setup, metrics_log.rows, last_eval, timing)
  wd.write_json(os.path.join(workdir, 'summary.json'), summary)
  if cfg.figures.enabled:
    draw_figures(setup, state, metrics_log.rows, workdir)
  return summary


def _eval_rows(members, ev, **fields) -> list[dict]:
  """metrics.jsonl rows, one per member, from evaluate's {name: [K]} values."""
  return [{**fields, 'split': 'eval', 'member': mem['name'],
           **{k: float(v[i]) for k, v in ev.items()}} for i, mem in enumerate(members)]


def stream_feed(setup, state, source, first_epoch: int):
  """Device batches for every remaining epoch, read ahead on a thread across epochs.

  The order is the one the device tier would use (member 0's permutation per epoch,
  computed on the host from its data key, so reading never waits for training), hence a
  streamed run sees the same batches as a resident one, and a resumed run the same
  batches as an uninterrupted one. All members of a program share it.
  """
  from ae_jax.data import stream
  fns, cfg, spec = setup.fns, setup.config, setup.spec
  key = np.asarray(fns.stack(state.data_key))[0]  # member 0's; stack only the key
  order = jax.jit(lambda e: steps.epoch_batches(spec, key, len(source), e))
  chunk = cfg.data.stream_chunk_steps if fns.loop == 'scan' else 1
  epochs = range(first_epoch, cfg.train.num_epochs)
  return stream.batches(source, stream.blocks(lambda e: np.asarray(order(e)), epochs, chunk),
                        cfg.data.prefetch, squeeze=fns.loop != 'scan')


def stream_epoch(setup, state, feed):
  """One epoch from `feed`: each chunk one lax.scan (or each batch one compiled step)."""
  fns = setup.fns
  metrics = []
  if fns.loop == 'scan':
    chunk = setup.config.data.stream_chunk_steps
    for _ in range(-(-setup.steps_per_epoch // chunk)):
      state, m = fns.scan_batches(state, next(feed), setup.hparams)
      metrics.append(m)
    return state, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=1), *metrics)
  for _ in range(setup.steps_per_epoch):
    state, m = fns.step_batch(state, next(feed), setup.hparams)
    metrics.append(m)
  return state, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs, axis=1), *metrics)


def _eval_line(r, num_epochs, named):
  who = f' [{r["member"]}]' if named else ''
  return (f'epoch {r["epoch"]}/{num_epochs}{who} eval: loss {r["loss"]:.4g}  recon '
          f'{r["recon"]:.4g}  kl {r["kl"]:.4g}  -elbo {r["neg_elbo"]:.4g}  '
          f'psnr {r["psnr"]:.2f}  ssim {r["ssim"]:.3f}')


def _write_config(cfg, members, workdir, start_epoch):
  path = os.path.join(workdir, 'config.json')
  new = wd.config_to_dict(cfg)
  if start_epoch and os.path.exists(path):
    old = wd.read_json(path)
    changed = _diff(old, new)
    if changed:
      log.warning('resuming %s with changed config keys: %s', workdir, ', '.join(changed))
  wd.write_json(path, new)
  wd.write_json(os.path.join(workdir, 'members.json'), members)


def _diff(a, b, prefix=''):
  out = []
  for k in sorted(set(a) | set(b)):
    va, vb = a.get(k), b.get(k)
    if isinstance(va, dict) and isinstance(vb, dict):
      out += _diff(va, vb, prefix + k + '.')
    elif va != vb:
      out.append(f'{prefix}{k}: {va!r} -> {vb!r}')
  return out


def _summary(setup, rows, last_eval, timing):
  cfg = setup.config
  out = {'num_epochs': cfg.train.num_epochs, 'steps_per_epoch': setup.steps_per_epoch,
         'image_shape': list(setup.image_shape), 'members': []}
  for mem, ev in zip(setup.members, last_eval):
    train = [r for r in rows if r['member'] == mem['name'] and r['split'] == 'train']
    out['members'].append({
        'name': mem['name'],
        'hparams': {k: v for k, v in mem.items() if k != 'name'},
        'train_loss': train[-1]['loss'] if train else None,
        'eval': {k: ev[k] for k in EVAL_KEYS},
    })
  if timing['timed_epochs']:
    per_epoch = timing['train_s'] / timing['timed_epochs']
    out['epoch_s'] = per_epoch
    out['images_per_sec'] = (setup.steps_per_epoch * cfg.train.batch_size * len(setup.members)
                             / per_epoch)
  out['first_epoch_s'] = timing['compile_s']
  return out


def draw_figures(setup, state, rows, workdir):
  cfg = setup.config
  fig_dir = os.path.join(workdir, 'figures')
  figures.loss_curves(rows, os.path.join(fig_dir, 'loss.png'), 'loss', cfg.figures.log_scale,
                      'training loss (train: epoch mean; eval: test split)')
  if cfg.model.kind == 'vae':
    figures.loss_curves(rows, os.path.join(fig_dir, 'neg_elbo.png'), 'neg_elbo',
                        cfg.figures.log_scale, 'negative ELBO')
  n = min(cfg.figures.num_images, setup.dataset.test['image'].shape[0])
  originals = setup.dataset.test['image'][:n]
  recon = np.asarray(setup.fns.reconstruct(state, jnp.asarray(originals), setup.hparams))
  labels = ['original'] + [('recon' if len(setup.members) == 1 else m['name'])
                           for m in setup.members]
  ids = ', '.join(str(i) for i in setup.dataset.test['id'][:n])
  figures.image_rows([originals] + list(recon), labels, os.path.join(fig_dir, 'recon.png'),
                     f'test images (ids {ids}) and reconstructions')
