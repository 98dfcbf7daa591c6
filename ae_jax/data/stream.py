"""Prefetched batches from a StreamSource, sharded across hosts.

A background thread reads and preprocesses upcoming batches while the device trains on
the current one. With several processes (jax.distributed), each reads only its own
rows of every global batch (by `jax.process_index()`) and the rows are assembled into
one global array sharded over all devices along the batch axis.
"""
from __future__ import annotations

import queue
import threading

import jax
import numpy as np


def host_rows(row: np.ndarray) -> np.ndarray:
  """This process's share of one global batch of indices."""
  n, p = jax.process_count(), jax.process_index()
  if len(row) % n:
    raise ValueError(f'batch size {len(row)} is not divisible by {n} processes')
  per = len(row) // n
  return row[p * per:(p + 1) * per]


def _to_device(local: np.ndarray):
  if jax.process_count() == 1:
    return jax.device_put(local)
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  mesh = Mesh(np.array(jax.devices()), ('data',))
  return jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec('data')), local)


def blocks(rows_per_epoch, epochs, chunk: int):
  """Row blocks [<=chunk, B] for each epoch in turn; rows_per_epoch(e) -> [steps, B]."""
  for e in epochs:
    rows = rows_per_epoch(e)
    for start in range(0, len(rows), chunk):
      yield rows[start:start + chunk]


def batches(source, row_blocks, depth: int = 4, squeeze: bool = False):
  """Yield device arrays [c, B, ...] for each block of rows in `row_blocks` (an iterable
  of [c, B] index arrays, possibly spanning epochs), `depth` blocks read ahead; with
  squeeze, blocks of one row yield [B, ...]."""
  q: queue.Queue = queue.Queue(maxsize=max(1, depth))
  stop = threading.Event()

  def worker():
    try:
      for rows in row_blocks:
        if stop.is_set():
          return
        local = np.stack([host_rows(r) for r in rows])  # [c, B_local]
        x = source.read(local.ravel()).reshape(*local.shape, *source.shape[1:])
        q.put(_to_device(x[0] if squeeze else x))
      q.put(None)
    except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
      q.put(e)

  thread = threading.Thread(target=worker, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is None:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
    while thread.is_alive():  # unblock a worker waiting on a full queue
      try:
        q.get_nowait()
      except queue.Empty:
        thread.join(0.01)
