"""What the tests share: fast compiles, tiny configs, trained workdirs, helpers as fixtures.

Where a test goes: tests/test_<module>.py tests ae_jax/<module>.py (test_metric_<name>.py
ae_jax/metrics/<name>.py); a behaviour across modules (faults, bad inputs, entry points,
docs commands, new-user paths, packaging, a study) goes in tests/test_<behaviour>.py.

Tiers: a test that trains end to end, compiles a model, spawns a process or runs a study is
marked `slow` (the marker is registered in pyproject.toml), and so is one whose JAX math
compiles for seconds (measured: over about 1.5 s on a busy 2-core machine); the rest runs in
about a minute on two cores, in one process: `python -m pytest -q -m "not slow" tests`. A
session fixture that trains (wafer_runs) is for slow tests only.

No test file imports another or this one: what several files use is a fixture here (a
helper is a fixture that returns the function), what one file uses lives in that file.
tests/test_test_suite.py checks these rules."""
import contextlib
import os
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tests compile many tiny programs; skipping most XLA optimisations makes that quicker, and a
# compilation cache shared by the whole session (subprocesses included, through the
# environment) compiles each program once. AE_JAX_TEST_XLA=default runs them at the level
# users compile at (XLA's default, none of the flags below): slower, to check that what a
# test asserts does not hold at level 0 alone.
XLA_MODE = os.environ.get('AE_JAX_TEST_XLA', 'fast')  # another value: pytest_configure
if XLA_MODE == 'default':
  os.environ['JAX_DISABLE_MOST_OPTIMIZATIONS'] = '0'
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', tempfile.mkdtemp(prefix='ae_jax_xla_cache_'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')
# XLA:CPU's fusion emitters cost compile time the tests' short runs never earn back:
# conv_vae_bn_mish's one-epoch test compiled in 3.6 s without them against 10.9 s with,
# and the whole suite took 411 s against 545 s (one run each). The optimisation level is
# what a test asking for `optimized_xla` compiles at (the rest compile at level 0, the
# JAX flag above). Appended to any XLA_FLAGS already set; subprocesses inherit it.
TEST_XLA_FLAGS = ('--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=1 '
                  '--xla_llvm_disable_expensive_passes=true')
if XLA_MODE == 'fast' and TEST_XLA_FLAGS not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
# The classifiers sample quality trains and caches (metrics/sample_quality.py) go to a
# folder of the session's (its workers and subprocesses share it through the environment),
# never to the user's cache: no test may pass on what an earlier run cached there (a study
# test once passed only where a real Fashion-MNIST classifier had been cached), nor leave
# a classifier trained on made-up images there.
os.environ.setdefault('AE_JAX_TEST_CACHE', tempfile.mkdtemp(prefix='ae_jax_test_cache_'))
os.environ['AE_JAX_CACHE'] = os.environ['AE_JAX_TEST_CACHE']

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update('jax_disable_most_optimizations',
                  os.environ['JAX_DISABLE_MOST_OPTIMIZATIONS'] in ('1', 'true'))


def pytest_configure(config):
  if XLA_MODE not in ('fast', 'default'):
    raise pytest.UsageError(f'AE_JAX_TEST_XLA={XLA_MODE!r}: expected fast (the default) or '
                            "default (XLA's own optimisation level, what users compile at)")


def tiny_config(**overrides):
  """The base config shrunk to seconds: digits at 8x8, a small MLP VAE, 2 epochs."""
  from ae_jax.configs import base
  config = base.get_config()
  config.data.name = 'digits'
  config.model.hidden = (32,)
  config.model.latent_dim = 4
  config.train.batch_size = 32
  config.train.num_epochs = 2
  config.train.eval_every = 1
  config.checkpoint.every_epochs = 1
  config.figures.enabled = False
  config.progress = False
  # the per-batch metrics only: the end-of-run pass metrics (PCA baseline, LPIPS) have
  # tests of their own
  config.eval.metrics = ('loss', 'recon', 'kl', 'neg_elbo', 'psnr', 'ssim', 'active_units',
                         'kl_per_dim')
  from ae_jax import config_lib
  for key, value in overrides.items():
    config_lib.set_value(config, key.replace('__', '.'), value)
  return config


@pytest.fixture(autouse=True)
def _ae_jax_logs_reach_caplog():
  """The CLIs' entry points, called in-process by some tests, route ae_jax's log to stderr
  only; give it back to the root logger (pytest's caplog) after each test."""
  yield
  import logging
  log = logging.getLogger('ae_jax')
  log.handlers.clear()
  log.propagate = True


@pytest.fixture(scope='module', autouse=True)
def _shared_compilations():
  """The runs of one test file share their compilations (compile.shared): a run equal in
  spec, shapes and placement to an earlier one traces and compiles nothing. A test that
  patches a traced function asks for `own_compilations`. Per file, not per session: every
  kept XLA:CPU executable holds memory mappings (3.3 per tiny program, more for large
  ones), and a session's worth crashed two workers in XLA's compiler (a process may hold
  65,530)."""
  from ae_jax import compile as compile_lib
  with compile_lib.shared():
    yield


@pytest.fixture
def own_compilations():
  """A Compiler of this test's own: what it patches inside traced code is traced again."""
  from ae_jax import compile as compile_lib
  with compile_lib.shared() as compiler:
    yield compiler


@pytest.fixture
def optimized_xla():
  """This test compiles with XLA's optimisations (level 1: TEST_XLA_FLAGS; XLA's default
  under AE_JAX_TEST_XLA=default) and compilations of its own: for a test whose steps run
  the gradient of LPIPS's or a PatchGAN's convolutions, which XLA:CPU runs as slow loops at
  level 0. LPIPS-AlexNet's gradient on eight 32x32 images: 1.37 s a call at level 0 against
  0.047 s at level 1 (compiled in 2.9 s against 2.2 s); the sharp_reconstructions smoke
  study 113 s against 47 s. A tiny MLP's training scan compiles 2.6x slower at level 1,
  hence not the default."""
  with _xla_optimisations(True):
    yield


@pytest.fixture
def xla_level_0():
  """This test compiles at XLA's level 0 (the suite's own, asked for so that
  AE_JAX_TEST_XLA=default keeps it) with compilations of its own."""
  with _xla_optimisations(False):
    yield


@contextlib.contextmanager
def _xla_optimisations(on: bool):
  """Compile with XLA's optimisations on (else level 0) and a Compiler of this test's own,
  the process's setting restored after."""
  from ae_jax import compile as compile_lib
  before = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', not on)
  try:
    with compile_lib.shared():
      yield
  finally:
    jax.config.update('jax_disable_most_optimizations', before)


@pytest.fixture(scope='session')
def tiny():
  """tiny_config(**overrides): the base config shrunk to seconds (`a__b=v` sets a.b)."""
  return tiny_config


@pytest.fixture(scope='session')
def root():
  """The checkout's folder (configs/, docs/, experiments/ are under it)."""
  return ROOT


# No test depends on the machine's speed: a subprocess's or a wait's time limit is a hang
# guard only, far above the slowest run measured on a loaded 2-core machine (the slowest
# one measured: test_scale.py's 8-device run, about 4 minutes), so a slow or busy machine
# never fails a test and a hung one still ends.
HANG_S = 1800


@pytest.fixture(scope='session')
def hang_s():
  """Seconds a subprocess or a wait may take before a test calls it hung (a hang guard
  only, never a speed test: see HANG_S)."""
  return HANG_S


@pytest.fixture(scope='session')
def checkout_env():
  """checkout_env(**extra) -> os.environ with this checkout first on PYTHONPATH, plus
  `extra`: a subprocess started from any folder imports the ae_jax under test, not an
  installed copy."""
  def env(**extra):
    path = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
    return {**os.environ, 'PYTHONPATH': path, **extra}
  return env


def _wafer_config(kind: str, latent: int = 6, **overrides):
  """A tiny MLP model on 240 generated wafer maps (26x26, nine classes, ids 0..239)."""
  return tiny_config(data__name='wafer', data__num_examples=240, model__kind=kind,
                     model__latent_dim=latent, train__batch_size=48,
                     checkpoint__keep_epochs=(1,), **overrides)


@pytest.fixture(scope='session')
def wafer_runs(tmp_path_factory):
  """Trained workdirs shared by the tests of the latent tools and studies: an AE and a VAE
  with 6-dim codes and a VAE with 4 (two epochs each; epoch 1 kept)."""
  from ae_jax.train import train_and_evaluate
  root = tmp_path_factory.mktemp('wafer_runs')
  runs = {}
  for name, kind, latent in (('ae', 'ae', 6), ('vae', 'vae', 6), ('vae4', 'vae', 4)):
    runs[name] = str(root / name)
    train_and_evaluate(_wafer_config(kind, latent), runs[name])
  return runs


@pytest.fixture(scope='session')
def wafer_config():
  """wafer_config(kind, latent=6, **overrides): the config wafer_runs trained with."""
  return _wafer_config


@pytest.fixture(scope='session')
def diffusers():
  """diffusers (the test extra pins 0.42.1): its AutoencoderKL and CompVis converter.

  torchvision's compiled ops do not load beside the CPU torch wheel and diffusers imports
  it, so a stand-in module is installed (diffusers needs only its name and version here)
  and sys.modules restored afterwards."""
  import importlib.machinery
  import sys
  import types
  saved = {k: sys.modules.get(k) for k in ('torchvision', 'torchvision.transforms')}
  fake = types.ModuleType('torchvision')
  fake.__spec__ = importlib.machinery.ModuleSpec('torchvision', None)
  fake.__version__ = '0.28.0'
  fake.transforms = types.ModuleType('torchvision.transforms')
  sys.modules['torchvision'], sys.modules['torchvision.transforms'] = fake, fake.transforms
  try:
    import diffusers as lib
    from diffusers.loaders import single_file_utils
    yield types.SimpleNamespace(AutoencoderKL=lib.AutoencoderKL,
                                single_file_utils=single_file_utils)
  finally:
    for k, v in saved.items():
      if v is None:
        sys.modules.pop(k, None)
      else:
        sys.modules[k] = v


def _diffusers_config(p) -> dict:
  """diffusers.AutoencoderKL's keyword arguments for an ae_jax LDMPreset `p`: the same
  layout (level attention, quant convs, the published latent factors where it has them)."""
  n = len(p.ch_mult)
  down = tuple('AttnDownEncoderBlock2D' if i in p.attn_levels else 'DownEncoderBlock2D'
               for i in range(n))
  up = tuple('AttnUpDecoderBlock2D' if n - 1 - i in p.attn_levels else 'UpDecoderBlock2D'
             for i in range(n))
  factors = {k: v for k, v in (('scaling_factor', p.scaling_factor),
                               ('shift_factor', p.shift_factor)) if v is not None}
  return dict(block_out_channels=p.widths, layers_per_block=p.num_res_blocks,
              latent_channels=p.z_channels, down_block_types=down, up_block_types=up,
              norm_num_groups=p.norm_groups, mid_block_add_attention=p.mid_attention,
              use_quant_conv=p.quant_conv, use_post_quant_conv=p.post_quant_conv, **factors)


@pytest.fixture(scope='session')
def diffusers_config():
  """diffusers_config(preset: LDMPreset) -> diffusers.AutoencoderKL's keyword arguments for
  the same layout."""
  return _diffusers_config


@pytest.fixture(scope='session')
def autoencoder_kl(diffusers, tmp_path_factory):
  """autoencoder_kl(preset) -> (a diffusers AutoencoderKL in the layout of ae_jax's preset
  `preset` (a name or an LDMPreset) with torch's seed-0 random weights, in eval mode; the
  .safetensors file of its weights). Built once per preset and session."""
  built = {}

  def make(preset):
    import torch
    from safetensors.torch import save_file
    from ae_jax.models import LDM_PRESETS
    p = LDM_PRESETS[preset] if isinstance(preset, str) else preset
    if p not in built:
      torch.manual_seed(0)
      ref = diffusers.AutoencoderKL(**_diffusers_config(p)).eval()
      path = str(tmp_path_factory.mktemp('autoencoder_kl') / 'vae.safetensors')
      save_file(ref.state_dict(), path)
      built[p] = ref, path
    return built[p]
  return make


def _computes_what_diffusers_does(m, ref, tol: float = 1e-4):
  """Asserts that ae_jax model `m` (load()ed) encodes and decodes 2 random images as
  diffusers' AutoencoderKL `ref` does: the posterior mean and log-variance, the raw decoding
  of the mean (theirs in [-1, 1], ours (output + 1) / 2) and our clipped decode(); relative
  error max|ours - theirs| / max|theirs| below `tol`."""
  import numpy as np
  import torch
  x = np.random.default_rng(0).random((2, *m.image_shape)).astype(np.float32)
  with torch.no_grad():
    post = ref.encode(torch.from_numpy(2 * x.transpose(0, 3, 1, 2) - 1)).latent_dist
    want_mean = post.mean.numpy().transpose(0, 2, 3, 1)
    decoded = ref.decode(post.mean).sample.numpy().transpose(0, 2, 3, 1)
  mean, logvar = m.encode(x)
  rel = lambda a, b: np.max(np.abs(a - b)) / np.max(np.abs(b))
  assert rel(mean, want_mean) < tol
  assert rel(logvar, post.logvar.numpy().transpose(0, 2, 3, 1)) < tol
  raw = np.asarray(m.decode_fn(m.variables, want_mean)[0])  # (output + 1) / 2, unclipped
  assert rel(2 * raw - 1, decoded) < tol  # theirs in [-1, 1]
  # decode() is the raw decoding clipped to [0, 1]: another program, which XLA's default
  # level fuses otherwise (measured there: 3.5e-6 apart)
  ours = np.asarray(m.decode(want_mean))
  assert ours.min() >= 0.0 and ours.max() <= 1.0
  np.testing.assert_allclose(ours, np.clip(raw, 0.0, 1.0), atol=1e-5)


@pytest.fixture(scope='session')
def computes_what_diffusers_does():
  """computes_what_diffusers_does(m, ref, tol=1e-4): asserts a loaded model encodes and
  decodes as diffusers' AutoencoderKL `ref` does (mean, log-variance, decoding)."""
  return _computes_what_diffusers_does


def _train_on_draws(loss_fn, params, draw, num_steps: int, learning_rate: float, seed=0):
  """Adam on fresh draws: at step i, loss_fn(params, draw(key_i, 256), key_i') (a [B]
  loss, averaged), one jitted lax.scan over `num_steps` -> the trained params."""
  import jax
  import jax.numpy as jnp
  import optax
  key = jax.random.key(seed)
  opt = optax.adam(learning_rate)

  def step(carry, i):
    params, opt_state = carry
    k = jax.random.fold_in(key, i)
    batch = draw(jax.random.fold_in(k, 0), 256)
    grads = jax.grad(lambda p: loss_fn(p, batch, jax.random.fold_in(k, 1))[0].mean())(params)
    updates, opt_state = opt.update(grads, opt_state)
    return (optax.apply_updates(params, updates), opt_state), None

  return jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), jnp.arange(num_steps))[0])(
      params)[0]


@pytest.fixture(scope='session')
def train_on_draws():
  """train_on_draws(loss_fn, params, draw, num_steps, learning_rate, seed=0) -> params
  trained by Adam on fresh draws of 256 (draw(key, n)), as one jitted scan."""
  return _train_on_draws


def _tree_digest(path) -> dict:
  """{relative name: sha256 of its bytes, or 'folder'} of everything under `path`: equal
  digests mean no file or folder was added, removed or changed."""
  import hashlib
  out = {}
  for root, dirs, files in os.walk(path):
    for d in dirs:
      out[os.path.relpath(os.path.join(root, d), path)] = 'folder'
    for f in files:
      p = os.path.join(root, f)
      with open(p, 'rb') as fh:
        out[os.path.relpath(p, path)] = hashlib.sha256(fh.read()).hexdigest()
  return out


@pytest.fixture(scope='session')
def tree_digest():
  """tree_digest(path) -> {relative name: sha256 or 'folder'} of everything under path."""
  return _tree_digest


@pytest.fixture
def read_only(monkeypatch):
  """make(folder): writes under `folder` fail with EROFS, as on a read-only mount (chmod
  does not stop root, and the tests may run as root): creating, renaming or removing a
  file or folder there, or opening one for writing. Reading works."""
  import builtins
  import errno
  roots = []

  def inside(p):
    try:
      p = os.path.abspath(os.fsdecode(p))
    except TypeError:  # a file descriptor
      return False
    return any(p == r or p.startswith(r + os.sep) for r in roots)

  def refuse(p):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))

  def guarded(real, n_paths, writes=lambda *a, **k: True):
    def call(*a, **k):
      if writes(*a, **k) and any(inside(p) for p in a[:n_paths]):
        refuse(a[0])
      return real(*a, **k)
    return call

  flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
  monkeypatch.setattr(os, 'open', guarded(os.open, 1, lambda p, f, *a, **k: f & flags))
  for name, n in (('mkdir', 1), ('rename', 2), ('replace', 2), ('remove', 1),
                  ('unlink', 1), ('rmdir', 1)):
    monkeypatch.setattr(os, name, guarded(getattr(os, name), n))
  mode = lambda f, m='r', *a, **k: any(c in m for c in 'wax+')
  monkeypatch.setattr(builtins, 'open', guarded(builtins.open, 1, mode))

  def make(folder):
    roots.append(os.path.abspath(str(folder)))
    return str(folder)
  return make


def _smoke_study(name, workdir, *extra) -> str:
  """Runs study `name` at its --smoke budget in `workdir` and checks what every study
  promises (figures linked and embedded, the smoke banner first, results.json); -> its
  report.md."""
  import json
  import math
  import re

  from ae_jax.metrics import registry
  from ae_jax.studies.__main__ import main as study_main
  study_main([name, '--workdir', str(workdir), '--smoke', *extra])
  md = open(os.path.join(workdir, 'report.md')).read()
  html = open(os.path.join(workdir, 'report.html')).read()
  # every figure the Markdown links exists and is embedded in the HTML
  links = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', md)
  for rel in links:
    assert os.path.getsize(os.path.join(workdir, rel)) > 1000, rel
  assert html.count('data:image/png;base64,') == len(links)
  # the first thing it says is that this is not the report's experiment
  assert md.split('\n')[2].startswith("> **Smoke budget (`--smoke`): not this report's "
                                      'experiment.**')
  assert "<b>Smoke budget (`--smoke`): not this report&#x27;s experiment.</b>" in html
  # results.json: the study, its budget and what it changed, the settings, and a row per
  # model with a key, a description and registry-named metrics
  results = json.load(open(os.path.join(workdir, 'results.json')))
  assert results['study'] == name and results['budget'] == 'smoke'
  assert results['settings'] and all(results['settings'].values())
  assert results['budget_changes'] and 'train.num_epochs' in results['budget_changes']
  keys = [m['key'] for m in results['models']]
  assert keys and len(set(keys)) == len(keys)
  for m in results['models']:
    assert m['description'] and m['table'] and m['metrics']
    assert set(m['metrics']) <= set(registry.REGISTRY)
    values = [x for v in m['metrics'].values() for x in (v if isinstance(v, list) else [v])]
    assert all(v is None or math.isfinite(v) for v in values)  # vectors: kl_per_dim
  return md


@pytest.fixture(scope='session')
def smoke_study():
  """smoke_study(name, workdir, *extra) -> report.md: the study run at --smoke and checked
  (the studies' tests are slow)."""
  return _smoke_study


def _report_table(md: str, heading: str) -> list[list[str]]:
  part = md.split(f'## {heading}\n', 1)[1].split('\n## ', 1)[0]
  rows = [line for line in part.splitlines() if line.startswith('|')]
  return [[c.strip() for c in r.strip('|').split('|')] for r in rows[2:]]


@pytest.fixture(scope='session')
def report_table():
  """report_table(md, heading) -> the rows (cells stripped) of the table under `## heading`."""
  return _report_table


def _centroid_encoder(images):
  """A hand-made 'encoder' of dSprites images: the sprite's centre of mass (x, y)."""
  import numpy as np
  x = images[..., 0].astype(np.float64)  # [B, H, W]
  yy, xx = np.mgrid[0:x.shape[1], 0:x.shape[2]]
  mass = x.sum((1, 2))
  return np.stack([(x * xx).sum((1, 2)) / mass, (x * yy).sum((1, 2)) / mass], 1)


@pytest.fixture(scope='session')
def centroid_encoder():
  """centroid_encoder(images [B, H, W, 1]) -> [B, 2]: the sprite's centre of mass (x, y),
  an encoder that reads dSprites positions and nothing else."""
  return _centroid_encoder


# The slowest files first: xdist hands files (--dist loadfile) to the two workers in
# collection order, so a long file collected last would run alone at the end.
SLOW_FIRST = ('test_study_sharp_families.py', 'test_studies.py', 'test_lpips_training.py',
              'test_scale.py', 'test_faults.py', 'test_docs_commands.py',
              'test_study_high_frequency.py', 'test_entry_points.py', 'test_families.py',
              'test_gan.py', 'test_new_user.py', 'test_accelerator_check.py', 'test_lpips.py',
              'test_ldm_import.py', 'test_writes.py', 'test_train.py', 'test_configs.py')


def _write_idx(path, array) -> str:
  """An IDX file of a uint8 array, gzipped when `path` ends in .gz: two zero bytes, the
  type byte 0x08, the rank, each size as a big-endian 4-byte int, then the bytes."""
  import gzip
  import struct
  import numpy as np
  a = np.ascontiguousarray(array, np.uint8)
  content = bytes([0, 0, 8, a.ndim]) + struct.pack(f'>{a.ndim}I', *a.shape) + a.tobytes()
  with (gzip.open if str(path).endswith('.gz') else open)(path, 'wb') as f:
    f.write(content)
  return str(path)


def _idx_folder(folder, num_train: int = 40, num_test: int = 20, size: int = 28,
                gz: bool = True, seed: int = 0) -> dict:
  """The four IDX files of a tiny MNIST-like dataset in `folder` (created): class k (of
  10) is a bright bar at column 2k+2 over dim noise, labels in random order.
  -> {'train': (images uint8 [N, size, size], labels uint8 [N]), 'test': (...)}"""
  import numpy as np
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  out = {}
  for split, n, prefix in (('train', num_train, 'train'), ('test', num_test, 't10k')):
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    for i, k in enumerate(labels):
      images[i, 3:size - 3, 2 * k + 2:2 * k + 4] = 250
    ext = '.gz' if gz else ''
    _write_idx(os.path.join(folder, f'{prefix}-images-idx3-ubyte{ext}'), images)
    _write_idx(os.path.join(folder, f'{prefix}-labels-idx1-ubyte{ext}'), labels)
    out[split] = (images, labels)
  return out


@pytest.fixture(scope='session')
def write_idx():
  return _write_idx


@pytest.fixture(scope='session')
def idx_folder():
  return _idx_folder


@pytest.fixture
def recognised(monkeypatch, tmp_path):
  """recognised(arrays, name='fashion_mnist'): for this test, the IDX files idx_folder
  wrote (its `arrays`) are the published dataset `name`: an entry of their shapes and
  label files' digests joins data/idx.py's table. Its sample-quality classifier then
  trains on these files, in a cache of this test's (tmp_path/cache: the session's may hold
  one of other made-up files), for 150 steps (ten bars are learnt well before 500)."""
  import hashlib
  import struct
  from ae_jax.data import idx
  from ae_jax.metrics import sample_quality as sq

  def digest(labels):
    return hashlib.sha256(bytes([0, 0, 8, 1]) + struct.pack('>I', len(labels)) +
                          labels.tobytes()).hexdigest()

  def recognise(arrays, name='fashion_mnist'):
    (xtr, ytr), (xte, yte) = arrays['train'], arrays['test']
    title = {'fashion_mnist': 'Fashion-MNIST', 'mnist': 'MNIST'}[name]
    names = idx.FASHION_MNIST_CLASSES if name == 'fashion_mnist' else tuple('0123456789')
    entry = idx.Published(name, title, names, digest(ytr), digest(yte), len(xtr), len(xte),
                          xtr.shape[1:])
    monkeypatch.setattr(idx, 'PUBLISHED', (*idx.PUBLISHED, entry))
    monkeypatch.setenv('AE_JAX_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setattr(sq, '_MEMO', {})
    monkeypatch.setattr(sq, 'FILES_MIN_STEPS', 150)
  return recognise


def pytest_collection_modifyitems(config, items):
  rank = {name: i for i, name in enumerate(SLOW_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))  # stable
