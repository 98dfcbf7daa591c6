"""The device mesh a program runs on, the shardings its compiled functions use, and the
one way values come back to the host.

`config.mesh.data` devices split every batch (data parallel; -1 = all devices not used by
`mesh.members`), `config.mesh.members` devices split a sweep's members (each device holds
K / members of them). Parameters and optimizer state are replicated over `data`. One CPU
or one GPU is the 1 x 1 mesh, where every sharding below is trivial, so single-device
runs take the same code path as a multi-host job.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ae_jax.errors import ConfigError


class Plan(NamedTuple):
  mesh: Mesh
  data: int      # devices along the batch axis
  members: int   # devices along the member axis

  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def batch(self, axis: int = 0) -> NamedSharding:
    """Arrays whose `axis` is the batch (split over 'data')."""
    return NamedSharding(self.mesh, P(*([None] * axis), 'data'))

  def stacked(self, num_members: int) -> NamedSharding:
    """[K, ...] member-stacked arrays: split over 'members' (replicated for one member)."""
    if num_members == 1 or self.members == 1:
      return self.replicated()
    return NamedSharding(self.mesh, P('members'))

  def put(self, x, sharding: NamedSharding | None = None):
    """A global array from a host value every process holds in full."""
    sharding = sharding or self.replicated()
    x = np.asarray(x)
    if jax.process_count() == 1:
      return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

  def put_local(self, local, axis: int = 0):
    """A global array, split over 'data' along `axis`, from this process's rows."""
    sharding = self.batch(axis)
    if jax.process_count() == 1:
      return jax.device_put(local, sharding)
    return jax.make_array_from_process_local_data(sharding, local)


def plan(config, num_members: int = 1) -> Plan:
  """The mesh from config.mesh, checked against the devices, batch and members."""
  devices = jax.devices()
  n = len(devices)
  members, data = int(config.mesh.members), int(config.mesh.data)
  if members < 1:
    raise ConfigError(f'config.mesh.members={members} must be >= 1')
  if data == -1:
    data = n // members
  if data < 1 or members * data > n:
    raise ConfigError(f'config.mesh.data={config.mesh.data} x mesh.members={members} needs '
                      f'more than the {n} device{"s" if n > 1 else ""} '
                      f'there {"are" if n > 1 else "is"} (data=-1 takes the rest)')
  if jax.process_count() > 1 and members * data != n:
    raise ConfigError(f'config.mesh.data={config.mesh.data} x mesh.members={members}: a '
                      f'multi-process job must use all {n} devices (data=-1 takes the rest)')
  if members > 1 and num_members % members:
    raise ConfigError(f'config.mesh.members={members} does not divide the sweep\'s '
                      f'{num_members} members')
  if config.train.batch_size % data:
    raise ConfigError(f'config.train.batch_size={config.train.batch_size} is not divisible by '
                      f'the {data} devices of mesh.data')
  grid = np.array(devices[:members * data]).reshape(members, data)
  return Plan(Mesh(grid, ('members', 'data')), data, members)


def single() -> Plan:
  """The 1 x 1 mesh of the first device (loading a trained model, tools)."""
  return Plan(Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ('members', 'data')), 1, 1)


def host(tree):
  """Device values as NumPy on every process (gathering shards other processes hold)."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
      from jax.experimental import multihost_utils
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
  return jax.tree_util.tree_map(get, tree)
