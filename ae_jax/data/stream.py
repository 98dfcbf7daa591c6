"""Prefetched batches from a StreamSource, sharded across hosts and devices.

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


def blocks(rows_per_epoch, start_step: int, steps_per_epoch: int, total_steps: int, chunk: int):
  """Row blocks [n, B] from `start_step` to `total_steps`, n <= chunk, never crossing an
  epoch's end (the trainer's chunks); rows_per_epoch(e) -> [steps_per_epoch, B]."""
  step, cached = start_step, (None, None)
  while step < total_steps:
    epoch, pos = divmod(step, steps_per_epoch)
    if cached[0] != epoch:
      cached = (epoch, rows_per_epoch(epoch))
    n = min(chunk, steps_per_epoch - pos)
    yield cached[1][pos:pos + n]
    step += n


def batches(source, row_blocks, depth: int, plan):
  """Yield global arrays [c, B, ...], split over the mesh's 'data' devices along B, for
  each block of rows in `row_blocks` (an iterable of [c, B] index arrays, possibly
  spanning epochs), `depth` blocks read ahead. Each process reads only its rows."""
  q: queue.Queue = queue.Queue(maxsize=max(1, depth))
  stop = threading.Event()

  def worker():
    try:
      for rows in row_blocks:
        if stop.is_set():
          return
        local = np.stack([host_rows(r) for r in rows])  # [c, B_local]
        x = source.read(local.ravel()).reshape(*local.shape, *source.shape[1:])
        q.put(plan.put_local(x, axis=1))
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
