"""How much memory this machine has for a run, and sizes as a user reads them.

A run that cannot fit should be refused before it allocates, with the estimate and the key
to turn: XLA aborts the process (SIGABRT) when a host allocation fails, and a device that
runs out stops a run with a message that names neither. The estimates themselves live
where their sizes are known (data.loading for the images, training for the train state).
"""
from __future__ import annotations

import os

import jax


def size(n: float) -> str:
  """Bytes as '820 MB', '24.0 GB'."""
  if n >= 2**30:
    return f'{n / 2**30:.1f} GB'
  mb = max(n, 0) / 2**20
  return f'{mb:.1f} MB' if mb < 10 else f'{mb:.0f} MB'


def host_available() -> int | None:
  """Bytes the host can still give (MemAvailable: free memory plus what the page cache
  would give back), or None where it cannot be read."""
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  try:
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
  except (ValueError, OSError, AttributeError):
    return None


def device_available(device=None) -> tuple[int | None, str]:
  """(bytes the device can still allocate, what it is): an accelerator's own memory, or
  the host's for the CPU (or a device without memory statistics)."""
  device = device or jax.devices()[0]
  try:
    stats = device.memory_stats() or {}
  except Exception:  # noqa: BLE001 - backends without memory statistics
    stats = {}
  if 'bytes_limit' in stats:
    return (int(stats['bytes_limit']) - int(stats.get('bytes_in_use', 0)),
            f'the {device.platform.upper()} ({device.device_kind})')
  return host_available(), 'this machine'
