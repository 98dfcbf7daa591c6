"""Progress of long phases: a tqdm bar on a terminal, else a line every so often.

Training, the end-of-run pass metrics (LPIPS over 40,000 test patches once ran 12 minutes
without a word), the IWAE estimate and the batched encode/decode behind the latent tools
and studies all report through `Progress` (or `track`). Where stderr is a terminal that is
a tqdm bar; where it is a file (a batch job's log) it is one line with the count, the time
spent and the time left every `EVERY_S` seconds. Both stay silent for a phase that ends
within `FIRST_S` seconds, so the many short phases of a small run print nothing.
"""
from __future__ import annotations

import sys
import time

import tqdm

FIRST_S = 5.0   # nothing for phases shorter than this
EVERY_S = 30.0  # a log file gets a line this often


def _is_terminal(stream) -> bool:
  try:
    return bool(stream.isatty())
  except (AttributeError, ValueError):  # no isatty, or a closed stream
    return False


def duration(seconds: float) -> str:
  """'45 s', '12 min', '2 h 05 min'."""
  s = int(round(max(seconds, 0.0)))
  if s < 120:
    return f'{s} s'
  if s < 3600:
    return f'{round(s / 60)} min'
  return f'{s // 3600} h {s % 3600 // 60:02d} min'


class Progress:
  """Counts `total` units of a phase: `update(n)` as work completes, `close()` at the end
  (or use it as a context manager). `enabled=False` says nothing at all (config.progress)."""

  def __init__(self, total: int, desc: str, unit: str = 'it', enabled: bool = True,
               initial: int = 0, leave: bool = False, stream=None, clock=time.monotonic,
               first_s: float | None = None, every_s: float | None = None):
    stream = sys.stderr if stream is None else stream
    first_s = FIRST_S if first_s is None else first_s
    every_s = EVERY_S if every_s is None else every_s
    self.total, self.desc, self.unit, self.n = int(total), desc, unit, int(initial)
    self._initial, self._stream, self._clock, self._every = int(initial), stream, clock, every_s
    self._bar, self._lines, self._said, self._postfix = None, False, False, ''
    if not enabled:
      return
    if _is_terminal(stream):
      self._bar = tqdm.tqdm(total=self.total, initial=self.n, desc=desc, unit=unit, leave=leave,
                            delay=first_s, dynamic_ncols=True, file=stream)
    else:
      self._lines = True
      self._t0 = clock()
      self._next = self._t0 + first_s

  def update(self, n: int = 1) -> None:
    self.n += n
    if self._bar is not None:
      self._bar.update(n)
    elif self._lines:
      now = self._clock()
      if now >= self._next:
        self._say(now)
        self._next = now + self._every

  def set_postfix(self, **values) -> None:
    """Shown after the count (the bar's postfix; the end of a log line)."""
    if self._bar is not None:
      self._bar.set_postfix(**values)
    self._postfix = ', '.join(f'{k}={v}' for k, v in values.items())

  def _say(self, now: float, end: bool = False) -> None:
    spent = now - self._t0
    count = f'{self.desc}: {self.n}/{self.total} {self.unit}'
    if end:
      line = f'{count} after {duration(spent)}'
    else:
      done = self.n - self._initial
      left = (self.total - self.n) * spent / done if done > 0 else None
      pct = 100.0 * self.n / self.total if self.total else 100.0
      line = (f'{count} ({pct:.0f}%), {duration(spent)} so far'
              + (f', about {duration(left)} left' if left is not None else ''))
    print(line + (f', {self._postfix}' if self._postfix else ''), file=self._stream,
          flush=True)
    self._said = True

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None
    elif self._lines:
      self._lines = False
      if self._said:  # a phase long enough to be reported says when it ended
        self._say(self._clock(), end=True)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
    return False


def track(iterable, desc: str, total: int | None = None, **kwargs):
  """Yield from `iterable`, counting one unit per item (Progress's keywords apply)."""
  total = len(iterable) if total is None else total
  with Progress(total, desc, **kwargs) as p:
    for item in iterable:
      yield item
      p.update()
