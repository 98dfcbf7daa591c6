"""Reading and checking config values against their declarations (schema.py): the one
parser of `--config.a.b=value` text (`parse_value`), the generic check of a value
(`check_value`) and of a whole config (`check_config`), and the one-line error naming the
closest key for a misspelt one (`lookup`)."""
from __future__ import annotations

import ast
import difflib
import math
from typing import Any

import ml_collections

from ae_jax.errors import ConfigError
from ae_jax.keys import CHECKS, Key
from ae_jax.schema import all_keys

# ---- reading values: one parser for every command line ----------------------------


def suggest(name: str, candidates) -> str:
  """' (did you mean X?)' for the closest candidate, or ''."""
  close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
  return f' (did you mean {close[0]}?)' if close else ''


def lookup(name: str) -> Key:
  """The declaration of `name`; a ConfigError naming the closest key otherwise."""
  table = {k.name: k for k in all_keys()}
  if name in table:
    return table[name]
  group = name.rsplit('.', 1)[0] + '.' if '.' in name else ''
  siblings = sorted(n.rsplit('.', 1)[-1] for n in table if group and n.startswith(group)
                    and '.' not in n[len(group):])
  # a misspelt leaf among its siblings (learnig_rate), else a misplaced key anywhere
  if siblings:
    hint = suggest(name.rsplit('.', 1)[-1], siblings).replace('mean ', f'mean {group}')
  else:
    hint = suggest(name, table)
  listing = f'; {group.rstrip(".")} has: {", ".join(siblings)}' if siblings else ''
  raise ConfigError(f'config.{name} is not a config key{hint}{listing}')


def parse_value(key: Key, raw: str):
  """The command-line text `raw` as a value of `key`'s kind (ConfigError if it is not)."""
  text = raw.strip()
  if key.nullable and text in ('None', 'none', ''):
    return None
  try:
    if key.kind == 'str':
      if len(text) >= 2 and text[0] == text[-1] and text[0] in '\'"':
        return text[1:-1]
      return raw
    if key.kind == 'bool':
      lowered = text.lower()
      if lowered in ('true', '1', 'yes'):
        return True
      if lowered in ('false', '0', 'no'):
        return False
      raise ValueError
    if key.kind == 'int':
      value = ast.literal_eval(text)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError
      return int(value)
    if key.kind == 'float':
      value = float(text)
      return value
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError, TypeError):
    raise ConfigError(f'--config.{key.name}={raw}: {expected(key)}') from None
  if not isinstance(value, (tuple, list)):
    value = (value,)  # one value of a tuple key: --config.sweep.beta=4
  return _tuples(value)


def _tuples(v):
  return tuple(_tuples(x) for x in v) if isinstance(v, (list, tuple)) else v


def expected(key: Key) -> str:
  what = {'str': 'text', 'int': 'an int', 'float': 'a number', 'bool': 'True or False',
          'ints': 'a tuple of ints such as (32, 64)', 'floats': 'a tuple of numbers',
          'strs': "a tuple of names such as ('a', 'b')",
          'tuple': 'a tuple such as (0.0, 1.0, 4.0)'}
  return 'expected ' + what[key.kind] + (' or None' if key.nullable else '')


# ---- checking values ---------------------------------------------------------------


def _is_number(v) -> bool:
  return not isinstance(v, bool) and isinstance(v, (int, float))


def check_value(key: Key, value) -> None:
  """Raises ConfigError naming the key, the value and what is expected."""
  shown = tuple(value) if isinstance(value, list) else value
  bad = lambda why: ConfigError(f'config.{key.name}={shown!r} {why}')
  if value is None:
    if key.nullable:
      return
    raise bad(expected(key).replace('expected', 'is not valid; expected'))
  kind = key.kind
  if kind in ('ints', 'floats', 'strs', 'tuple'):
    if not isinstance(value, (tuple, list)):
      raise bad(f'is not valid; {expected(key)}')
    if key.non_empty and not value:
      raise bad(f'is empty; {expected(key)}')
    element = {'ints': 'int', 'floats': 'float', 'strs': 'str'}.get(kind)
    for v in value:
      if element == 'int' and (isinstance(v, bool) or not isinstance(v, int)):
        if not (_is_number(v) and v == int(v)):
          raise bad(f': {v!r} is not an int; {expected(key)}')
      if element == 'float' and not _is_number(v):
        raise bad(f': {v!r} is not a number; {expected(key)}')
      if element == 'str' and not isinstance(v, str):
        raise bad(f': {v!r} is not a name; {expected(key)}')
      if key.check:
        ok, why = CHECKS[key.check]
        if not ok(v):
          raise bad(f': {v!r} {why}')
    return
  if kind == 'str':
    if not isinstance(value, str):
      raise bad('is not valid; expected text')
  elif kind == 'bool':
    if not isinstance(value, bool):
      raise bad('is not valid; expected True or False')
  elif kind in ('int', 'float'):
    if not _is_number(value) or (kind == 'int' and value != int(value)):
      raise bad(f'is not valid; {expected(key)}')
    if not math.isfinite(value):
      raise bad('must be finite')
  allowed = key.allowed()
  if allowed and value not in allowed:
    raise bad(f'is not valid; expected one of {list(allowed)}')
  if key.check:
    ok, why = CHECKS[key.check]
    if not ok(value):
      raise bad(why)


def leaves(config, prefix: str = '') -> dict[str, Any]:
  """{dotted name: value} of every leaf of a ConfigDict."""
  out = {}
  for name in config.keys():
    value = config[name]
    if isinstance(value, ml_collections.ConfigDict):
      out.update(leaves(value, f'{prefix}{name}.'))
    else:
      out[f'{prefix}{name}'] = value
  return out


def check_config(config) -> None:
  """Every key known, every value of its declared kind, in its range or choices."""
  table = {k.name: k for k in all_keys()}
  values = leaves(config)
  for name, value in values.items():
    if name not in table:
      lookup(name)  # raises, naming the closest key
    check_value(table[name], value)
  for name in table:
    if name not in values:
      raise ConfigError(f'config.{name} is missing: build configs from '
                        'ae_jax.configs.base.get_config()')
