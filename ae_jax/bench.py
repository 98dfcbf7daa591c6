"""Time the training step of a config.

  python -m ae_jax.bench --config configs/X.py [--config.a.b=v ...] [--steps 20] [--synthetic]
                         [--compare-loops]

Prints one JSON line per model (per program of a sweep) with `model`, `image_shape`,
`batch_size`, `members`, `step_ms` (median over --steps timed steps after --warmup,
each synchronised), `images_per_sec`, `compile_s` (lowering + compiling the step),
`peak_rss_mb`, `device`, `dtype`, `gflop_per_step` (XLA's cost analysis of the compiled
step) and `gflops` (achieved), and with `--peak` the machine's float32 matmul rate
(`matmul_peak_gflops`, measured in the same run) and `peak_fraction`. `--synthetic` times on
random images of the configured
shape (data.image_size x data.image_size x (data.channels or 3)), so any preset can be
timed at any size without its data. `--compare-loops` also times one epoch as a
`lax.scan` against a Python loop of compiled steps over the same device-resident data.
"""
from __future__ import annotations

import datetime
import json
import os
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import cli, compile as compile_lib, config_lib, data
from ae_jax.errors import WorkdirError
from ae_jax.training import Training
from ae_jax.workdir import write_text_file


def synthetic_dataset(config, num: int, seed: int = 0) -> data.Dataset:
  size = config.data.image_size or 64
  shape = (size, size, config.data.channels or 3)
  rng = np.random.default_rng(seed)
  images = rng.random((num, *shape), dtype=np.float32)
  part = lambda x: {'image': x, 'label': np.zeros(len(x), np.int32),
                    'id': np.arange(len(x), dtype=np.int32)}
  info = data.DatasetInfo(name='synthetic', image_shape=shape, num_classes=0, class_names=())
  return data.Dataset(part(images), part(images[: max(1, num // 8)]), info)


def _model_name(config) -> str:
  m = config.model
  return m.preset or f'{m.arch}_{m.kind}'


def matmul_peak_gflops(n: int = 2048, dtype=jnp.float32, repeats: int = 5) -> float:
  """The device's dense matmul rate (GFLOP/s): the best of `repeats` n x n x n products."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
  f = jax.jit(lambda a: a @ a)
  jax.block_until_ready(f(a))
  best = float('inf')
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(f(a))
    best = min(best, time.perf_counter() - t0)
  return 2 * n ** 3 / best / 1e9


def device_peak_mb() -> float | None:
  """The accelerator's peak memory in use so far (MB), where the backend reports it."""
  try:
    stats = jax.devices()[0].memory_stats() or {}
  except Exception:  # noqa: BLE001 - backends without memory statistics
    return None
  peak = stats.get('peak_bytes_in_use')
  return round(peak / 2**20, 1) if peak else None


def machine() -> str:
  """'NVIDIA H200 (gpu, 1 device)' / '2-core x86_64 CPU (cpu, 1 device)'."""
  import os
  import platform
  dev = jax.devices()[0]
  if jax.default_backend() == 'cpu':
    name = f'{os.cpu_count()}-core {platform.machine()} CPU'
  else:
    name = getattr(dev, 'device_kind', str(dev))
  n = jax.device_count()
  return f'{name} ({jax.default_backend()}, {n} device{"s" if n > 1 else ""})'


def git_commit() -> str:
  """The checkout's commit (with '+changes' when the tree differs from it), or 'unknown'."""
  import os
  import subprocess
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=root, text=True,
                            capture_output=True, check=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=root,
                           text=True, capture_output=True).stdout.strip()
    return commit + ('+changes' if dirty else '')
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'


def record(results: list[dict], command: str, title: str) -> dict:
  """A benchmark file's contents (docs/benchmarks/*.json; docs/performance.md is generated
  from them): when, where, at which commit, by which command, and the results."""
  return {'title': title, 'date': datetime.date.today().isoformat(), 'machine': machine(),
          'commit': git_commit(), 'command': command, 'jax': jax.__version__,
          'results': results}


RECORD_KEYS = ('title', 'date', 'command', 'results')  # what `record` writes, at least


def check_record_path(path: str, flag: str = '--record') -> None:
  """Refuse a benchmark file path that holds anything but an earlier benchmark file (the
  only thing a benchmark replaces), naming what it holds; a new path is fine."""
  if not os.path.lexists(path):
    return
  if os.path.islink(path) or not os.path.isfile(path):
    raise WorkdirError(f'{flag} {path} is not a file (a folder or a link); give a new file or '
                       'an earlier benchmark file')
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, ValueError):
    value = None
  if not (isinstance(value, dict) and all(k in value for k in RECORD_KEYS)):
    raise WorkdirError(f'{flag} {path} exists and is not a benchmark file (no '
                       f'{", ".join(RECORD_KEYS)}); a benchmark replaces only an earlier '
                       'benchmark file: give a new file')


def write_record(rec: dict, path: str, flag: str = '--record') -> str:
  """The benchmark file `path` (new, or an earlier benchmark file: `check_record_path`)."""
  check_record_path(path, flag)
  write_text_file(path, json.dumps(rec, indent=1) + '\n')
  return path


def step_flops(compiled) -> float:
  """FLOPs of one compiled call, from XLA's cost analysis (0 when unavailable)."""
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get('flops', 0.0))
  except Exception:  # noqa: BLE001 (backends without cost analysis)
    return 0.0


def measure(config, steps_timed: int = 20, warmup: int = 3, synthetic: bool = False,
            compare_loops: bool = False, members=None, peak_gflops: float | None = None) -> dict:
  """Time one program's train step (and optionally its epoch loops)."""
  batch = config.train.batch_size
  dataset = synthetic_dataset(config, max(4 * batch, 64)) if synthetic else None
  training = Training.create(config, members, dataset)
  fns, inputs = training.functions, training.inputs
  state = training.init_state()
  x = jnp.asarray(training.dataset.train['image'][:batch])[None]  # a chunk of one step
  active = fns.active()
  t0 = time.perf_counter()
  compiled = fns.chunk_batches.lower(state, active, x, inputs).compile()
  compile_s = time.perf_counter() - t0
  times = []
  for i in range(warmup + steps_timed):
    t0 = time.perf_counter()
    state, active, m = compiled(state, active, x, inputs)
    jax.block_until_ready((state, m))
    if i >= warmup:
      times.append(time.perf_counter() - t0)
  step_s = statistics.median(times)
  k = training.spec.num_members
  policy = fns.policy
  out = {
      'model': _model_name(training.config), 'image_shape': list(training.spec.image_shape),
      'batch_size': batch, 'members': k, 'step_ms': round(step_s * 1e3, 3),
      'images_per_sec': float(f'{batch * k / step_s:.3g}'), 'compile_s': round(compile_s, 2),
      'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      'device': str(jax.devices()[0]), 'dtype': config.dtype,
      'loop': policy.loop, 'vectorize': policy.vectorize, 'ynnpack': policy.ynnpack,
  }
  device_mb = device_peak_mb()
  if device_mb is not None:
    out['device_peak_mb'] = device_mb
  flops = step_flops(compiled)
  if flops:
    out['gflop_per_step'] = round(flops / 1e9, 3)
    out['gflops'] = round(flops / step_s / 1e9, 1)
    if peak_gflops:
      out['matmul_peak_gflops'] = round(peak_gflops, 1)
      out['peak_fraction'] = round(flops / step_s / 1e9 / peak_gflops, 3)
  if compare_loops:
    out.update(_compare_loops(training, state))
  return out


def _compare_loops(training: Training, state) -> dict:
  images = jnp.asarray(training.dataset.train['image'])
  spec, inputs = training.spec, training.inputs
  res = {}
  for loop in ('scan', 'python'):
    policy = training.functions.policy._replace(loop=loop)
    fns = compile_lib.make_functions(spec.step, spec.image_shape, spec.num_members,
                                     training.plan, policy)
    st = jax.tree_util.tree_map(jnp.array, state)
    st, m = fns.epoch(st, images, inputs, 0)  # compile
    jax.block_until_ready(m)
    times = []
    for e in range(1, 4):
      t0 = time.perf_counter()
      st, m = fns.epoch(st, images, inputs, e)
      jax.block_until_ready(m)
      times.append(time.perf_counter() - t0)
    res[f'epoch_{loop}_ms'] = round(statistics.median(times) * 1e3, 2)
  res['scan_speedup_over_python_loop'] = round(res['epoch_python_ms'] / res['epoch_scan_ms'], 3)
  return res


def main(argv=None, prog='python -m ae_jax.bench'):
  p = cli.parser(prog, __doc__, f'{prog} --config vae_beta --steps 20')
  p.add_argument('--config', required=True, help='a config file, or a shipped config\'s name')
  p.add_argument('--steps', type=int, default=20)
  p.add_argument('--warmup', type=int, default=3)
  p.add_argument('--synthetic', action='store_true')
  p.add_argument('--compare-loops', action='store_true')
  p.add_argument('--peak', action='store_true',
                 help="also measure the device's float32 matmul rate and the step's fraction")
  p.add_argument('--record', default=None, metavar='FILE.json',
                 help='also write the results as a benchmark file (docs/benchmarks/: '
                      'docs/performance.md is generated from them)')
  p.add_argument('--title', default='', help='--record: what the measurement is for')
  args, overrides = cli.parse(p, argv)

  def body():
    config = config_lib.load(args.config, overrides)
    if args.record:
      check_record_path(args.record)  # before minutes of measuring
    peak = matmul_peak_gflops() if args.peak else None
    results = []
    for prog_ in config_lib.programs(config):
      result = measure(prog_.config, args.steps, args.warmup, args.synthetic,
                       args.compare_loops, prog_.members, peak)
      if prog_.name:
        result['program'] = prog_.name
      print(json.dumps(result), flush=True)
      results.append(result)
    if args.record:
      command = 'python -m ae_jax.bench ' + ' '.join(sys.argv[1:] if argv is None else argv)
      write_record(record(results, command, args.title or f'bench {args.config}'),
                   args.record)
      print(f'wrote {args.record}')

  cli.run(body)


if __name__ == '__main__':
  main()
