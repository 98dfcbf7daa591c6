"""Use a trained workdir from a notebook or script.

  from ae_jax.inference import load
  m = load('runs/vae_beta')                # the latest checkpoint, member 0
  mean, logvar = m.encode(images)          # images: [N, H, W, C] float in [0, 1]
  recon = m.decode(mean)                   # [N, H, W, C] in [0, 1]
  recon = m.reconstruct(images)            # encode -> mean -> decode
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import checkpoint, workdir as wd


class Trained:
  """One trained member of a workdir: its model, variables and array-in/array-out helpers."""

  def __init__(self, setup, state, member: int, epoch: int):
    self.setup = setup
    self.config = setup.config
    self.model = setup.model
    self.member = setup.members[member]
    self.epoch = epoch
    self.image_shape = setup.image_shape
    pick = lambda x: x[member]
    self.params = jax.tree_util.tree_map(pick, state.params)
    self.batch_stats = jax.tree_util.tree_map(pick, state.batch_stats)
    mask = setup.hparams.get('latent_mask')
    self.latent_mask = None if mask is None else mask[member]
    self.variables = {'params': self.params,
                      **({'batch_stats': self.batch_stats} if self.batch_stats else {})}
    self._encode = jax.jit(lambda v, x: self.model.apply(
        v, x, latent_mask=self.latent_mask, method=self.model.encode))
    self._decode = jax.jit(lambda v, z: self.model.apply(
        v, z, latent_mask=self.latent_mask, method=self.model.decode)[0])

  def _images(self, x):
    x = jnp.asarray(x, jnp.float32)
    if x.ndim == 3:
      x = x[None]
    if tuple(x.shape[1:]) != tuple(self.image_shape):
      raise ValueError(f'images of shape {tuple(x.shape[1:])} given; this model takes '
                       f'{tuple(self.image_shape)} (H, W, C) in [0, 1]')
    return x

  def encode(self, images):
    """-> (mean, logvar) as numpy; logvar is None for an AE."""
    mean, logvar = self._encode(self.variables, self._images(images))
    return np.asarray(mean), None if logvar is None else np.asarray(logvar)

  def decode(self, z):
    return np.asarray(self._decode(self.variables, jnp.asarray(z, jnp.float32)))

  def reconstruct(self, images):
    mean, _ = self._encode(self.variables, self._images(images))
    return np.asarray(self._decode(self.variables, mean))

  def sample_prior(self, num: int, seed: int = 0):
    """Decode z ~ N(0, I) (meaningful for a VAE)."""
    from ae_jax.models import latent_shape
    shape = latent_shape(self.model, self.image_shape)
    z = jax.random.normal(jax.random.PRNGKey(seed), (num, *shape))
    return self.decode(z)


def _restored(workdir: str, epoch: int | None = None):
  from ae_jax.train import Setup
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {workdir!r} is not a trained workdir')
  members_path = os.path.join(workdir, 'members.json')
  members = wd.read_json(members_path) if os.path.exists(members_path) else None
  if members and 'program' in members[0]:
    raise ValueError(f'{workdir!r} holds several programs; load one of '
                     f'{sorted({m["program"] for m in members})} under {workdir}/programs/, '
                     'or export a member (python -m ae_jax.export)')
  setup = Setup(wd.config_from_file(path), members)
  state, epoch = checkpoint.restore_state(os.path.join(workdir, 'checkpoints'),
                                          setup.fns.stack(setup.init_state()), epoch)
  return setup, state, epoch  # state in the [K, ...] form


def load(workdir: str, member: int | str = 0, epoch: int | None = None) -> Trained:
  """Load member `member` (index or name) of `workdir` at `epoch` (default: latest)."""
  setup, state, epoch = _restored(workdir, epoch)
  if isinstance(member, str):
    names = [m['name'] for m in setup.members]
    if member not in names:
      raise KeyError(f'member {member!r} not in {workdir}; members are {names}')
    member = names.index(member)
  return Trained(setup, state, member, epoch)


def evaluate_workdir(workdir: str) -> dict:
  """Evaluate the latest checkpoint on the test split (the CLI's --mode=evaluate)."""
  setup, state, epoch = _restored(workdir)
  ev = setup.evaluate(setup.fns.unstack(state))
  return {'epoch': epoch, 'members': [
      {'name': m['name'], 'eval': {k: float(v[i]) for k, v in ev.items()}}
      for i, m in enumerate(setup.members)]}
