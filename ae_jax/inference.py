"""Use a trained workdir from a notebook or script; loading never reads the dataset.

  from ae_jax.inference import load
  m = load('runs/vae_beta', member='beta=4')   # the latest checkpoint; member index or name
  mean, logvar = m.encode(images)          # images: [N, H, W, C] float in [0, 1] or uint8
  recon = m.decode(mean)                   # [N, H, W, C] in [0, 1]
  recon = m.reconstruct(images)            # encode -> mean -> decode
  m.epoch, m.member, m.image_shape, m.class_names, m.class_values, m.latent_dim

Everything a model needs (image shape, classes, the member grid, the latent masks) is
recorded in the workdir at training time (model.json); only the parameters and
BatchNorm statistics are read from the checkpoint, once for all members of a sweep.
Loading reads no data, compiles no training step and reads no pretrained weights: the
parameters are restored into the run spec's abstract variables (spec.RunSpec).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import checkpoint, compile as compile_lib, config_lib, data, prior_run
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.models import fsq, kinds
from ae_jax.progress import Progress
from ae_jax.spec import RunSpec
from ae_jax.workdir import STATS, Workdir


def _array(x, what: str) -> np.ndarray:
  """np.asarray, with one ConfigError line for what NumPy cannot make one array of."""
  try:
    return np.asarray(x)
  except (ValueError, TypeError) as e:
    raise ConfigError(f'{what}: a {type(x).__name__} NumPy cannot make one array of '
                      f'({" ".join(str(e).split())}); expected an array') from None


def _whole(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _apply(model, method: str, variables, x, latent_mask):
  """model.encode (x: images -> mean, logvar) or model.decode (x: codes -> recon, logits)."""
  return model.apply(variables, x, latent_mask=latent_mask, method=getattr(model, method))


def _jitted(model, method: str):
  """_apply's encode, or its decode's recon clipped to [0, 1] (images everywhere in ae_jax
  are, and the latent-diffusion models' (logits + 1) / 2 and a linear output are not
  bounded), of (variables, x, latent_mask), compiled: once per load, or once per model
  across the runs inside compile.shared()."""
  def encode(v, x, mask):
    return _apply(model, 'encode', v, x, mask)

  def decode(v, z, mask):
    return jnp.clip(_apply(model, 'decode', v, z, mask)[0], 0.0, 1.0)

  return compile_lib.run_compiler().once(
      (method, model), lambda: jax.jit(encode if method == 'encode' else decode))


class Trained:
  """One trained member: its record, model, variables and latent mask, and array-in /
  array-out helpers. The helpers take and return NumPy arrays and work through large
  inputs in batches."""

  def __init__(self, spec: RunSpec, variables_stacked: dict, member: int, epoch,
               batch_size: int = 256, workdir: str | None = None):
    record = spec.record
    self.workdir = workdir  # where its priors are (<workdir>/priors/<name>/)
    self.record = record
    self.config = spec.config
    self.model = spec.model
    self.kind = spec.model.kind
    self.kind_info = kinds.get(self.kind)  # what its code is (posterior, quantised, ...)
    self.member = spec.members[member]
    self.member_index = member
    self.epoch = epoch
    self.image_shape = record.image_shape
    self.latent_shape = record.latent_shape
    self.latent_dim = int(self.member['latent_dim'])  # units (or channels) this member uses
    self.class_names = tuple(record.class_names)
    # the labels' own values, class_values[i] named class_names[i] (None: an older model.json)
    self.class_values = record.labels()
    self.color_key = tuple(record.color_key)
    self.storage = dict(record.storage)
    self.batch_size = batch_size
    pick = lambda x: x[member]
    self.params = jax.tree_util.tree_map(pick, variables_stacked['params'])
    self.batch_stats = jax.tree_util.tree_map(pick, variables_stacked.get('batch_stats', {}))
    # the model's other state (a VQ-VAE's EMA codebook)
    self.model_state = jax.tree_util.tree_map(pick, variables_stacked.get('model_state', {}))
    mask = spec.hparams.get('latent_mask')
    self.latent_mask = None if mask is None else mask[member]
    self.variables = {'params': self.params,
                      **({'batch_stats': self.batch_stats} if self.batch_stats else {}),
                      **self.model_state}

  @property
  def name(self) -> str:
    return self.member['name']

  def describe(self) -> str:
    """'member beta=4, epoch 40' (for figure titles)."""
    who = '' if self.name == 'run' else f'member {self.name}, '
    return f'{who}epoch {self.epoch}'

  # pure functions of (variables, array): jit-able, vmappable, differentiable
  def encode_fn(self, variables, x):
    return _apply(self.model, 'encode', variables, x, self.latent_mask)

  def decode_fn(self, variables, z):
    """-> (recon, logits): recon as the model makes it, in [0, 1] for a sigmoid or tanh
    output, wider for the latent-diffusion models ((logits + 1) / 2) and a linear output
    (`decode` clips it)."""
    return _apply(self.model, 'decode', variables, z, self.latent_mask)

  @functools.cached_property
  def _encode(self):
    fn = _jitted(self.model, 'encode')
    return lambda v, x: fn(v, x, self.latent_mask)

  @functools.cached_property
  def _decode(self):
    fn = _jitted(self.model, 'decode')
    return lambda v, z: fn(v, z, self.latent_mask)

  def _batched(self, fn, x, what: str):
    who = '' if self.name == 'run' else f' [{self.name}]'
    outs = []
    # large splits (latent tools, pass metrics) take minutes: say how far along they are
    with Progress(len(x), f'{what}{who}', unit='images', enabled=self.config.progress) as bar:
      for i in range(0, len(x), self.batch_size):
        outs.append(fn(x[i:i + self.batch_size]))
        bar.update(min(self.batch_size, len(x) - i))
    return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *outs)

  def _images(self, images, what: str):
    """What the loader accepts -> float32 [N, H, W, C] in [0, 1], converted by the loader's
    own function: floats in [0, 1], bool, uint8 0..255 (or 0..int_max when the model's
    data stored that integer dtype). Anything else is one ConfigError line."""
    x = _array(images, f'{what}: images')
    shape = tuple(self.image_shape)
    if x.shape == shape:
      x = x[None]  # one image
    elif x.ndim == 3 and shape[-1] == 1 and x.shape[1:] == shape[:2]:
      x = x[..., None]  # [N, H, W] gray, as the loader reads it
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
      raise ConfigError(f'{what}: images of shape {tuple(x.shape)} given; this model takes '
                        f'{shape} (H, W, C) images, as [N, H, W, C] or one [H, W, C]')
    if not len(x):
      raise ConfigError(f'{what}: no images given (shape {tuple(x.shape)})')
    stored = self.storage.get('dtype')
    int_max = int(self.storage.get('int_max') or 255) if str(x.dtype) == stored else 255
    return data.to_unit_float(x, f'{what}', int_max, error=ConfigError)

  def encode(self, images):
    """-> (mean, logvar) as NumPy [N, *latent]; logvar is None for an AE."""
    x = self._images(images, 'encode()')
    if not self.kind_info.posterior:  # an AE's or a quantised code: no log-variance
      mean = self._batched(lambda b: np.asarray(self._encode(self.variables, b)[0]), x,
                           'encoding')
      return mean, None
    return self._batched(lambda b: tuple(np.asarray(a) for a in self._encode(self.variables, b)),
                         x, 'encoding')

  def decode(self, z):
    """Codes [N, *latent] -> images [N, H, W, C] in [0, 1], for every model: a model whose
    output range is wider (the latent-diffusion presets, `model.output_activation='none'`)
    is clipped to it, as the metrics and figures see it."""
    z = _array(z, 'decode(): codes')
    if z.shape == tuple(self.latent_shape):
      z = z[None]  # one code
    if z.ndim < 2 or tuple(z.shape[1:]) != tuple(self.latent_shape) or not len(z):
      raise ConfigError(f'decode(): codes of shape {tuple(z.shape)} given; this model decodes '
                        f'[N, *{tuple(self.latent_shape)}] with N >= 1')
    if z.dtype.kind not in 'iuf':
      raise ConfigError(f'decode(): codes of dtype {z.dtype} given; expected float codes')
    z = z.astype(np.float32)
    if not np.isfinite(z).all():
      raise ConfigError('decode(): codes contain NaN or inf values; expected finite floats')
    return self._batched(lambda b: np.asarray(self._decode(self.variables, b)), z, 'decoding')

  def reconstruct(self, images):
    x = self._images(images, 'reconstruct()')
    mean, _ = self.encode(x)
    return self.decode(mean)

  # ---- a quantised code's codebook ----------------------------------------------------

  def _require_codebook(self):
    if not self.kind_info.quantized:
      raise ConfigError(f'{self.describe()} is a {self.kind_info.label}: it has no codebook')

  def codebook(self) -> np.ndarray:
    """The codebook [K, D]: a VQ-VAE's (its EMA statistics' or its parameters'), or FSQ's
    implicit one (every code of its grids, in index order)."""
    self._require_codebook()
    if self.kind_info.codebook == 'implicit':
      return np.asarray(fsq.implicit_codebook(self.model.quantizer.levels))
    stats = self.model_state.get('vq_stats', {}).get('quantizer')
    table = stats['codebook'] if stats is not None else self.params['quantizer']['codebook']
    return np.asarray(table)

  @property
  def num_codes(self) -> int:
    self._require_codebook()
    if self.kind_info.codebook == 'implicit':
      return fsq.codebook_size(self.model.quantizer.levels)
    return int(self.codebook().shape[0])

  def code_indices(self, z) -> np.ndarray:
    """The codebook index each position of codes z [N, *latent] quantises to ->
    [N, *positions]: the nearest code (VQ), or the code FSQ rounds it to."""
    self._require_codebook()
    if self.kind_info.codebook == 'implicit':
      levels = self.model.quantizer.levels
      codes = fsq.quantize(np.asarray(z, np.float32), levels)
      return np.asarray(fsq.codes_to_indices(codes, levels))
    table = self.codebook()
    flat = np.asarray(z, np.float32).reshape(-1, table.shape[1])
    dist = (np.sum(flat ** 2, 1, keepdims=True) - 2.0 * flat @ table.T
            + np.sum(table ** 2, 1)[None])
    return np.argmin(dist, -1).reshape(np.shape(z)[:-1])

  def index_latents(self, indices) -> np.ndarray:
    """Codes z [N, *positions, D] that decode() turns into the codebook entries `indices`
    [N, *positions]: the entries themselves (VQ), or for FSQ latents that quantize exactly
    to them (decode quantises its input, and quantising an FSQ code can move it)."""
    self._require_codebook()
    if self.kind_info.codebook == 'implicit':
      levels = self.model.quantizer.levels
      return np.asarray(fsq.preimage(fsq.indices_to_codes(indices, levels), levels))
    return self.codebook()[np.asarray(indices)]

  def sample_prior(self, num: int, seed: int = 0, temperature: float = 1.0):
    """Decode z ~ N(0, temperature^2 I) (meaningful for a VAE; an AE's or a quantised
    model's codes have no such prior: `python -m ae_jax.latent fit` then `sample` draw from
    one fitted to their training codes)."""
    if self.kind_info.quantized:
      raise ConfigError(f'{self.describe()} is a {self.kind_info.label}: it needs a prior over '
                        'its codes; fit one (python -m ae_jax.latent fit --density '
                        'categorical) and sample from it (latent sample)')
    for name, value, ok, what in (
        ('num', num, _whole(num) and num >= 1, 'a whole number >= 1'),
        ('seed', seed, _whole(seed), 'a whole number'),
        ('temperature', temperature, isinstance(temperature, (int, float, np.number))
         and math.isfinite(temperature) and temperature >= 0, 'a finite number >= 0')):
      if not ok:
        raise ConfigError(f'sample_prior(): {name}={value!r}; expected {what}')
    z = temperature * jax.random.normal(jax.random.PRNGKey(seed), (num, *self.latent_shape))
    if self.latent_mask is not None:
      z = z * self.latent_mask
    return self.decode(np.asarray(z))

  def sample(self, num: int, prior: str | None = None, seed: int = 0,
             temperature: float | None = None) -> np.ndarray:
    """`num` images [num, H, W, C] decoded from codes a prior draws: `prior` names one
    trained on this workdir's codes (python -m ae_jax.prior; <workdir>/priors/<prior>/),
    None the N(0, I) prior of a VAE (sample_prior). `temperature`: the prior's own when
    None."""
    if prior is None:
      return self.sample_prior(num, seed, 1.0 if temperature is None else temperature)
    if not (_whole(num) and num >= 1):
      raise ConfigError(f'sample(): num={num!r}; expected a whole number >= 1')
    if self.workdir is None:
      raise ConfigError('sample(prior=...): this model was not opened from a workdir')
    opened = self._priors.get(prior)
    if opened is None:
      opened = self._priors[prior] = prior_run.TrainedPrior.open(self.workdir, prior)
    if self.name not in opened.spec.members:
      raise WorkdirError(f'prior {prior!r} of {self.workdir} was trained for members '
                         f'{list(opened.spec.members)}, not {self.name!r}')
    codes = opened.sample(opened.spec.members.index(self.name), num, seed, temperature)
    if opened.spec.discrete:
      codes = self.index_latents(codes)  # indices [num, *positions] -> codes
    return self.decode(codes)

  @functools.cached_property
  def _priors(self) -> dict:
    return {}

  def latent_statistics(self) -> dict | None:
    """Its per-channel mean and std of the training codes as training saved them
    ({'mean': [C], 'std': [C]}, latent_stats.json), or None (a workdir trained before they
    were saved, or at another epoch)."""
    if self.workdir is None:
      return None
    wd = Workdir(self.workdir)
    if not wd.exists(STATS):
      return None
    saved = wd.read_json(STATS)
    if saved.get('epoch') != self.epoch:
      return None
    return saved.get('members', {}).get(self.name)

  @property
  def num_units(self) -> int:
    return math.prod(self.latent_shape)


class Loaded:
  """Every member of a workdir, read from one checkpoint."""

  def __init__(self, wd: Workdir, spec: RunSpec, variables, step: int, epoch):
    self.wd, self.spec, self.variables, self.step, self.epoch = wd, spec, variables, step, epoch

  @property
  def members(self) -> list[dict]:
    return list(self.spec.members)

  def member(self, member: int | str = 0) -> Trained:
    names = [m['name'] for m in self.spec.members]
    if isinstance(member, str):
      if member not in names:
        raise ConfigError(f'member {member!r} not in {self.wd.path}; members are {names}')
      member = names.index(member)
    if not 0 <= member < len(names):
      raise ConfigError(f'member {member} not in {self.wd.path}; it has {len(names)} '
                        f'member(s): {names}')
    return Trained(self.spec, self.variables, member, self.epoch, workdir=self.wd.path)


def open_workdir(workdir: str, epoch: int | None = None, config=None,
                 overrides=()) -> Loaded:
  """Read a workdir's model(s) at `epoch` (default: the latest checkpoint). `config`: the
  workdir's own config with other free settings (default: its own as it is); `overrides`:
  `--config.a.b=v` of keys free on a trained workdir (eval.*, figures.*, data.tier, ...)."""
  wd = Workdir(workdir)
  wd.require_trained()
  if overrides:
    own = config if config is not None else config_lib.read_config(wd)
    config = config_lib.resolve(config_lib.apply_overrides(own, overrides, only_free=True))
  spec = RunSpec.from_workdir(wd, config)
  steps = checkpoint.saved_steps(wd.checkpoints)
  if not steps:
    raise WorkdirError(f'{wd.checkpoints}: no checkpoint found; train first (python -m '
                       'ae_jax.main --config ... --workdir ' + workdir + ')')
  record = spec.record
  step = None
  if epoch is not None:
    step = record.checkpoint_step(epoch)
    if step not in steps:
      saved = [record.epoch_of(s) for s in steps]
      raise WorkdirError(f'{wd.checkpoints}: no checkpoint at epoch {epoch}; saved epochs: '
                         f'{saved} (keep more with checkpoint.keep_epochs)')
  variables, step = checkpoint.restore_params(wd.checkpoints, spec.abstract_variables(), step)
  return Loaded(wd, spec, variables, step, record.epoch_of(step))


def load(workdir: str, member: int | str = 0, epoch: int | None = None,
         overrides=()) -> Trained:
  """Member `member` (index or name) of `workdir` at `epoch` (default: the latest);
  `overrides`: `--config.a.b=v` of keys free on a trained workdir."""
  return open_workdir(workdir, epoch, overrides=overrides).member(member)
