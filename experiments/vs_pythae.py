"""ae_jax beside pythae: the same models on pythae's own networks, data and budget.

  python experiments/vs_pythae.py --tiny                       # a smoke of every run (minutes)
  python experiments/vs_pythae.py --out                        # the full budget -> a benchmark file
  python -m ae_jax.docs                                        # docs/vs_pythae.md from that file

Needs the `pythae` extra (pip install -e '.[pythae]': torch==2.13.0 and pythae==0.1.2) and
Fashion-MNIST's IDX files (apt-get install dataset-fashion-mnist; --data FOLDER elsewhere).

What runs, alternating the two libraries model by model (and which goes first) in one
process: pythae's VAE, RAE_L2 (sampled by its 10-component GaussianMixtureSampler), IWAE (10
samples) and VQVAE on its default MLPs and on its MNIST benchmark conv nets, and ae_jax's
same models on the presets that rebuild those networks (pythae_mlp, pythae_conv), with
pythae's benchmark budget: latent 16, batch 100, Adam at 1e-3, --epochs epochs (100). Then
a beta-VAE sweep of 8 betas on the MLP: one ae_jax program (config.sweep.beta, vmapped)
against 8 pythae BetaVAE runs. The losses are set so that both libraries minimise the same
function (ae_jax/pythae_compare.py: SETTINGS, and LOSSES in words).

Measured: training images/s after the first epoch (which holds ae_jax's compile) and the
ratio, the first epoch's seconds, and with one evaluation code for both: test
reconstruction squared error per image (from the code or posterior mean), the -ELBO (VAE,
IWAE: one posterior sample, N(x_hat, I) likelihood with its constant), the Frechet
distance of samples in one feature space (`fd`; samples written as uint8 arrays under the
run folder so they can be scored again), and the VQ-VAE's codebook use. Both libraries get
the same images (loaded once by ae_jax's loader) and the same CPU threads: this process is
pinned to the first --threads CPUs, NPROC sizes XLA:CPU's intra-op pool (the only knob that
does in jaxlib 0.10.2; XLA_FLAGS --xla_cpu_multi_thread_eigen leaves the pool's size alone)
and torch.set_num_threads sizes torch's.

--tiny: 100 training and 100 test images, 2 epochs of one batch (the second is the timed
one), 100 samples, XLA optimisations off; it writes nothing under docs/ unless --out is
given, and a tiny file says so in its title. --train-images N trains both libraries on N
images: the conv nets cost about 1.1 GFLOP per training image (IWAE's ten decodings about
8), so their full budget (100 epochs of 60,000) is many hours per model on a CPU.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import os
import shlex
import sys
import time

import numpy as np

import pythae_side

# jax and ae_jax are imported inside the functions: the CPU threads (NPROC) and --tiny's
# XLA switch must be in the environment before JAX reads it

BETAS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
MODELS = ('vae', 'rae_l2', 'iwae', 'vqvae')
NETS = ('mlp', 'conv')
KIND = {'vae': 'vae', 'iwae': 'vae', 'beta_vae': 'vae', 'rae_l2': 'ae', 'vqvae': 'vqvae'}
SAMPLER = {'vae': 'prior', 'iwae': 'prior', 'beta_vae': 'prior', 'rae_l2': 'gmm',
           'vqvae': 'vq_gmm'}
LATENT, BATCH, LR, SEED = 16, 100, 1e-3, 0
FASHION = '/usr/share/datasets/fashion-mnist'


# ---- threads and data -------------------------------------------------------------------

def set_threads(n: int) -> dict:
  """Give both libraries the same n CPUs; call before JAX or torch computes anything."""
  cpus = sorted(os.sched_getaffinity(0))[:n]
  os.sched_setaffinity(0, cpus)
  os.environ['NPROC'] = str(n)  # XLA:CPU's intra-op pool ("XLAEigen") size
  import torch
  torch.set_num_threads(n)
  return {'threads': n, 'cpus': cpus, 'how': 'sched_setaffinity + NPROC (XLA:CPU intra-op '
          'pool) + torch.set_num_threads'}


def read_idx(path: str) -> np.ndarray:
  """A gzipped IDX file (big-endian header: 0, 0, type 0x08 = uint8, ndim, sizes)."""
  with gzip.open(path, 'rb') as f:
    raw = f.read()
  if raw[:3] != b'\x00\x00\x08':
    raise ValueError(f'{path}: not a uint8 IDX file')
  ndim = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_npz(folder: str, out: str, num_train: int, num_test: int) -> tuple[str, float]:
  """The first num_train + num_test of the 70,000 images (train file first) in one .npz for
  data.name='npy'; -> (path, the test fraction that holds num_test out)."""
  x = np.concatenate([read_idx(os.path.join(folder, f'{s}-images-idx3-ubyte.gz'))
                      for s in ('train', 't10k')])
  y = np.concatenate([read_idx(os.path.join(folder, f'{s}-labels-idx1-ubyte.gz'))
                      for s in ('train', 't10k')])
  n = num_train + num_test
  if n > len(x):
    raise SystemExit(f'{num_train} + {num_test} images asked; Fashion-MNIST has {len(x)}')
  os.makedirs(os.path.dirname(out), exist_ok=True)
  np.savez(out, images=x[:n], labels=y[:n])
  return out, num_test / n


def base_config(npz: str, test_fraction: float, epochs: int):
  from ae_jax.configs import base
  c = base.get_config()
  c.data.name, c.data.path = 'npy', npz
  c.data.test_fraction, c.data.split_seed = test_fraction, 0  # a seeded 60,000 / 10,000 split
  c.model.latent_dim = LATENT
  c.train.batch_size, c.train.learning_rate, c.train.seed = BATCH, LR, SEED
  c.train.num_epochs = c.train.eval_every = c.checkpoint.every_epochs = epochs
  c.eval.metrics = ('loss', 'recon')  # the experiment evaluates both libraries itself
  c.figures.enabled, c.progress, c.log.tensorboard = False, False, False
  return c


def ae_jax_config(model: str, net: str, npz, test_fraction, epochs, betas=None):
  """pythae's model in ae_jax: the same network, loss, optimizer and budget."""
  from ae_jax import config_lib, pythae_compare
  c = base_config(npz, test_fraction, epochs)
  c.model.preset = f'pythae_{net}'
  for key, value in pythae_compare.SETTINGS[model].items():
    config_lib.set_value(c, key, value)
  if betas:
    c.sweep.beta = tuple(betas)
  return c


# ---- the two libraries behind one evaluation -------------------------------------------

class JaxSide:
  """A trained ae_jax member behind the evaluation's array interface."""
  library = 'ae_jax'

  def __init__(self, trained):
    self.m, self.kind = trained, trained.kind

  def encode(self, images):
    mean, logvar = self.m.encode(images)
    return mean.reshape(len(mean), -1), logvar  # a VQ-VAE's [N, L, 1] codes as [N, L]

  def _shaped(self, z):
    return np.asarray(z, np.float32).reshape(len(z), *self.m.latent_shape)

  def decode(self, z):
    return self.m.decode(self._shaped(z))  # a VQ-VAE quantises first

  def code_indices(self, z):
    return self.m.code_indices(self._shaped(z))

  def codebook(self):
    return self.m.codebook()

  def count_parameters(self) -> int:
    import jax
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(self.m.params)))

  def gmm_samples(self, train_images, num: int) -> np.ndarray:
    """ae_jax's own ex-post density (latent fit --density gmm: 10 full components)."""
    from ae_jax.priors import density
    params = density.fit(self.encode(train_images)[0], 'gmm', 10, 'full', seed=SEED)
    return self.decode(density.sample(params, num, seed=SEED))


def vq_gmm_samples(side, train_images, num: int) -> np.ndarray:
  """One protocol for both libraries' VQ-VAEs: a 10-component GMM (ae_jax's density fit)
  on the quantised training codes, its draws decoded (quantised again)."""
  from ae_jax.priors import density
  z = side.encode(train_images)[0]
  codes = side.codebook()[side.code_indices(z)].reshape(len(z), -1)  # [N, L]
  return side.decode(density.sample(density.fit(codes, 'gmm', 10, 'full', seed=SEED), num,
                                    seed=SEED))


def fd(feature_fn, real, fake) -> float:
  """The one scoring call: Frechet distance between two image sets in `feature_fn`'s space
  (images NHWC in [0, 1] -> features [N, D])."""
  from ae_jax.metrics.sample_quality import frechet_distance
  return frechet_distance(feature_fn(real), feature_fn(fake))


def feature_space(folder: str):
  """(feature function, its name): ae_jax's Fashion-MNIST classifier (trained once on the
  IDX files in `folder`, then cached); every score of a run, of both libraries, uses it."""
  from ae_jax.metrics import sample_quality
  clf = sample_quality.classifier('fashion_mnist', (28, 28, 1), source=folder)
  return clf.features, clf.feature_space


def evaluate(side, model: str, data: dict, noise: dict, feature_fn, num_samples: int):
  """The same metrics for either library -> (metrics, samples uint8 [N, H, W, C])."""
  test, pixels = data['test'], int(np.prod(data['test'].shape[1:]))
  mean, logvar = side.encode(test)
  sse = lambda r: ((r - test) ** 2).reshape(len(test), -1).sum(1)
  out = {'recon_mse': float(sse(side.decode(mean)).mean())}
  if logvar is not None:  # one posterior sample, the same noise for both libraries
    z = mean + np.exp(0.5 * logvar) * noise['eps'][:len(test)]
    kl = 0.5 * (np.exp(logvar) + mean ** 2 - 1.0 - logvar).sum(1)
    nll = 0.5 * sse(side.decode(z)) + 0.5 * pixels * np.log(2 * np.pi)
    out['neg_elbo'], out['kl'] = float((nll + kl).mean()), float(kl.mean())
  if model == 'vqvae':
    counts = np.bincount(side.code_indices(mean).ravel(), minlength=len(side.codebook()))
    p = counts[counts > 0] / counts.sum()
    out['codebook_usage'] = float((counts > 0).mean())
    out['perplexity'] = float(np.exp(-(p * np.log(p)).sum()))
  how = SAMPLER[model]
  if how == 'prior':
    x = side.decode(noise['prior'][:num_samples])
  elif how == 'gmm':
    x = side.gmm_samples(data['train'], num_samples)
  else:
    x = vq_gmm_samples(side, data['train'], num_samples)
  samples = np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)  # what an image writer keeps
  out['fd'] = fd(feature_fn, test, samples.astype(np.float32) / 255)
  return out, samples


# ---- runs -------------------------------------------------------------------------------

def run_ae_jax(config, workdir: str):
  """Train with ae_jax's own loop; -> (timing, a JaxSide per member)."""
  from ae_jax import inference
  from ae_jax.train import train_and_evaluate
  t0 = time.perf_counter()
  summary = train_and_evaluate(config, workdir)
  loaded = inference.open_workdir(workdir)
  sides = [JaxSide(loaded.member(i)) for i in range(len(loaded.members))]
  return {'images_per_sec': summary.get('images_per_sec'), 'epoch_s': summary.get('epoch_s'),
          'first_epoch_s': summary.get('first_chunk_s'),
          'wall_s': time.perf_counter() - t0}, sides


def run_pythae(model: str, net: str, data: dict, epochs: int, out_dir: str, **settings):
  import torch
  torch.manual_seed(SEED)
  m = pythae_side.build(model, net, LATENT, data['train'].shape[1:], **settings)
  t0 = time.perf_counter()
  times = pythae_side.train(m, data['train'], BATCH, LR, epochs, SEED, out_dir)['epoch_s']
  timing = pythae_side.timing(times, len(data['train']), BATCH, time.perf_counter() - t0)
  return timing, pythae_side.Side(m, KIND[model])


def _row(model, net, library, timing, metrics, params=None):
  row = {'name': f'{model} {net}', 'model': model, 'net': net, 'library': library,
         **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in timing.items()},
         **{k: round(v, 4) for k, v in metrics.items()}}
  if row.get('images_per_sec'):
    row['images_per_sec'] = float(f'{row["images_per_sec"]:.3g}')
  if params is not None:
    row['parameters'] = params
  return row


def pair(model, net, i, ctx) -> list[dict]:
  """pythae's and ae_jax's run of one model, the order alternating with i."""
  rows = {}
  for lib in (('pythae', 'ae_jax') if i % 2 == 0 else ('ae_jax', 'pythae')):
    where = os.path.join(ctx['root'], lib, f'{model}_{net}')
    if lib == 'pythae':
      timing, side = run_pythae(model, net, ctx['data'], ctx['epochs'], where)
      params = pythae_side.count_parameters(side.model)
    else:
      config = ae_jax_config(model, net, ctx['npz'], ctx['test_fraction'], ctx['epochs'])
      timing, (side,) = run_ae_jax(config, where)
      params = side.count_parameters()
    metrics, samples = evaluate(side, model, ctx['data'], ctx['noise'], ctx['features'],
                                ctx['num_samples'])
    save_samples(ctx, f'{lib}_{model}_{net}', samples)
    rows[lib] = _row(model, net, lib, timing, metrics, params)
    print(f'{model:7s} {net:4s} {lib:6s} {rows[lib]}', flush=True)
  ours, theirs = rows['ae_jax'], rows['pythae']
  if ours.get('images_per_sec') and theirs.get('images_per_sec'):
    ours['speedup'] = round(ours['images_per_sec'] / theirs['images_per_sec'], 3)
  return [theirs, ours]


def sweep(ctx, i: int, net='mlp') -> list[dict]:
  """8 betas: one vmapped ae_jax program against 8 pythae BetaVAE runs (the order
  alternating with i, as the pairs' does)."""
  per_beta, timings = {}, {}
  for lib in (('pythae', 'ae_jax') if i % 2 == 0 else ('ae_jax', 'pythae')):
    rows, times, walls, firsts = [], [], 0.0, 0.0
    if lib == 'ae_jax':
      config = ae_jax_config('beta_vae', net, ctx['npz'], ctx['test_fraction'], ctx['epochs'],
                             BETAS)
      timing, sides = run_ae_jax(config, os.path.join(ctx['root'], lib, f'beta_sweep_{net}'))
    else:
      sides = []
      for beta in BETAS:
        t, side = run_pythae('beta_vae', net, ctx['data'], ctx['epochs'],
                             os.path.join(ctx['root'], lib, f'beta_{beta:g}'), beta=beta)
        sides.append(side)
        times.append(t['epoch_s'] or 0.0)
        walls, firsts = walls + t['wall_s'], firsts + t['first_epoch_s']
      n = (len(ctx['data']['train']) // BATCH) * BATCH
      later = sum(times) * (ctx['epochs'] - 1)
      timing = {'images_per_sec': len(BETAS) * n * (ctx['epochs'] - 1) / later if later else None,
                'first_epoch_s': firsts, 'wall_s': walls}
    for beta, side in zip(BETAS, sides):
      metrics, samples = evaluate(side, 'beta_vae', ctx['data'], ctx['noise'], ctx['features'],
                                  ctx['num_samples'])
      save_samples(ctx, f'{lib}_beta_{beta:g}_{net}', samples)
      rows.append({'beta': beta, **{k: round(v, 4) for k, v in metrics.items()}})
    per_beta[lib], timings[lib] = rows, timing
  out = []
  for lib in ('pythae', 'ae_jax'):
    row = _row('beta_vae sweep', net, lib, timings[lib], {})
    row.update(members=len(BETAS), per_beta=per_beta[lib])
    out.append(row)
  if out[0].get('images_per_sec') and out[1].get('images_per_sec'):
    out[1]['speedup'] = round(out[1]['images_per_sec'] / out[0]['images_per_sec'], 3)
  return out


def save_samples(ctx, name: str, samples: np.ndarray) -> None:
  folder = os.path.join(ctx['root'], 'samples')
  os.makedirs(folder, exist_ok=True)
  np.save(os.path.join(folder, f'{name}.npy'), samples)  # uint8 [N, H, W, C]


# ---- the command ------------------------------------------------------------------------

def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--tiny', action='store_true', help='a smoke of every run on 200 images')
  p.add_argument('--out', nargs='?', const='docs/benchmarks', default=None, metavar='FOLDER',
                 help='write <date>-<backend>-vs-pythae.json there (default docs/benchmarks)')
  p.add_argument('--epochs', type=int, default=None, help='default 100 (--tiny: 2)')
  p.add_argument('--threads', type=int, default=len(os.sched_getaffinity(0)))
  p.add_argument('--nets', default=','.join(NETS))
  p.add_argument('--models', default=','.join(MODELS))
  p.add_argument('--no-sweep', action='store_true')
  p.add_argument('--samples', type=int, default=None, help='default 10000 (--tiny: 100)')
  p.add_argument('--train-images', type=int, default=None,
                 help='train both on this many images (default 60000; --tiny: 100)')
  p.add_argument('--data', default=FASHION, help="the folder of Fashion-MNIST's IDX files")
  p.add_argument('--workdir', default='runs/vs_pythae')
  args = p.parse_args(argv)
  if args.tiny:  # code paths, not speed: compile fast (set before XLA starts)
    os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
  threads = set_threads(args.threads)  # before JAX or torch runs anything
  from ae_jax import data as data_lib
  pythae_side.quiet()
  epochs = args.epochs or (2 if args.tiny else 100)
  root = os.path.join(args.workdir, datetime.datetime.now().strftime('%Y%m%d-%H%M%S'))
  num_train = args.train_images or (100 if args.tiny else 60_000)
  npz, test_fraction = write_npz(args.data, os.path.join(root, 'fashion_mnist.npz'), num_train,
                                 100 if args.tiny else 10_000)
  loaded = data_lib.load(base_config(npz, test_fraction, epochs).data)
  data = {'train': loaded.train['image'], 'test': loaded.test['image']}  # float32 NHWC [0, 1]
  rng = np.random.default_rng(SEED)
  num_samples = args.samples or (100 if args.tiny else 10_000)
  noise = {'eps': rng.standard_normal((len(data['test']), LATENT)).astype(np.float32),
           'prior': rng.standard_normal((num_samples, LATENT)).astype(np.float32)}
  features, space = feature_space(args.data)
  ctx = {'root': root, 'data': data, 'npz': npz, 'test_fraction': test_fraction,
         'epochs': epochs, 'noise': noise, 'features': features,
         'num_samples': num_samples, 'results': []}
  print(f'{len(data["train"])} train / {len(data["test"])} test images, {epochs} epochs, '
        f'{threads["threads"]} threads, runs in {root}', flush=True)
  i = 0
  for net in args.nets.split(','):
    for model in args.models.split(','):
      ctx['results'] += pair(model, net, i, ctx)
      i += 1
  if not args.no_sweep:
    ctx['results'] += sweep(ctx, i)
  if args.out:
    write(args, ctx, threads, space, epochs, num_samples)


def write(args, ctx, threads, space, epochs, num_samples):
  from importlib.metadata import version

  import jax
  import torch
  from ae_jax import bench, pythae_compare
  command = 'python experiments/vs_pythae.py ' + shlex.join(sys.argv[1:])
  title = 'ae_jax beside pythae: the same models, networks, data and budget'
  if args.tiny:
    title += ' (--tiny: 200 images, 2 epochs; code paths, not speed)'
  rec = bench.record(ctx['results'], command, title)
  n_train, n_test = len(ctx['data']['train']), len(ctx['data']['test'])
  rec.update(
      columns=pythae_compare.COLUMNS, threads=threads, torch=torch.__version__,
      pythae=version('pythae'), feature_space=space, losses=pythae_compare.LOSSES,
      budget={'latent_dim': LATENT, 'batch_size': BATCH, 'learning_rate': LR,
              'optimizer': 'Adam', 'epochs': epochs, 'samples': num_samples, 'seed': SEED,
              'betas': list(BETAS)},
      data={'name': 'Fashion-MNIST', 'train': n_train, 'test': n_test,
            'split': f'a seeded split of the first {n_train + n_test} of the 70,000 images, '
                     'train file first (data.name=npy, split_seed 0)'})
  date = datetime.date.today().isoformat()
  nets = '' if set(args.nets.split(',')) == set(NETS) else args.nets.replace(',', '-') + '-'
  path = os.path.join(args.out, f'{date}-{jax.default_backend()}-{nets}vs-pythae.json')
  bench.write_record(rec, path)
  print(f'wrote {path}')


if __name__ == '__main__':
  main()
