"""The declaration of a config key (`Key`), shared by the schema and by the modules that
declare keys of their own (the objectives). Nothing here imports the rest of ae_jax."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

# Value kinds. A tuple kind holds a tuple of that element type; `nullable` adds None.
KINDS = ('str', 'int', 'float', 'bool', 'ints', 'floats', 'strs', 'tuple')
CHECKS = {
    'positive': (lambda v: v > 0, 'must be > 0'),
    'non_negative': (lambda v: v >= 0, 'must be >= 0'),
    'unit': (lambda v: 0 <= v < 1, 'must be in [0, 1)'),
    'open_unit': (lambda v: 0 < v < 1, 'must be in (0, 1)'),
    'at_least_1': (lambda v: v >= 1, 'must be >= 1'),
    'at_least_2': (lambda v: v >= 2, 'must be >= 2'),
}
ROLES = ('model', 'free')


@dataclasses.dataclass(frozen=True)
class Key:
  name: str                 # dotted, e.g. 'train.batch_size'
  default: Any
  kind: str                 # one of KINDS
  doc: str                  # one line (docs/configs.md)
  choices: tuple | Callable[[], tuple] = ()  # allowed values (a function: read lazily)
  check: str = ''           # one of CHECKS, applied to the value (each element of a tuple)
  role: str = 'model'       # 'model': changes what a workdir's checkpoints mean; 'free'
  sweep: str = ''           # '' | 'vmap' | 'outer': a sweep axis named after the last part
  nullable: bool = False    # None allowed (tuple kinds: "not set")
  non_empty: bool = False   # tuple kinds: at least one element

  @property
  def axis(self) -> str:
    return self.name.rsplit('.', 1)[-1] if self.sweep else ''

  def allowed(self) -> tuple:
    return tuple(self.choices()) if callable(self.choices) else tuple(self.choices)
