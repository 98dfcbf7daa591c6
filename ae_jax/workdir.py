"""The workdir contract: config.json, members.json, metrics.jsonl, summary.json."""
from __future__ import annotations

import json
import math
import os

import ml_collections


def _clean(v):
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)
  return v


def write_json(path: str, obj) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=False, default=str)
  os.replace(tmp, path)  # never leave a half-written file behind


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())


def base_config() -> ml_collections.ConfigDict:
  """configs/base.py, found next to the package (works from any working directory)."""
  import importlib.util
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  spec = importlib.util.spec_from_file_location('ae_jax_base_config',
                                                os.path.join(root, 'configs', 'base.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def config_from_file(path: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (tuples restored where the base has tuples)."""
  cfg = base_config()
  _merge(cfg, read_json(path), path)
  return cfg


def _merge(cfg, values: dict, where: str, prefix: str = ''):
  for k, v in values.items():
    if k not in cfg:
      continue  # keys of newer/older versions are ignored
    if isinstance(cfg[k], ml_collections.ConfigDict):
      _merge(cfg[k], v, where, prefix + k + '.')
    else:
      cfg[k] = tuple(v) if isinstance(cfg[k], tuple) else v


class MetricsLog:
  """Append-only metrics.jsonl; on resume, rows after the restored epoch are dropped
  (they were logged after the last checkpoint and will be logged again)."""

  def __init__(self, path: str, keep_through_epoch: int):
    self.path = path
    rows = read_metrics(path) if os.path.exists(path) else []
    self.rows = [r for r in rows if r['epoch'] <= keep_through_epoch]
    if len(self.rows) != len(rows):
      write_metrics(path, self.rows)

  def write(self, rows: list[dict]) -> None:
    rows = [{k: _clean(v) for k, v in r.items()} for r in rows]
    with open(self.path, 'a') as f:
      for r in rows:
        f.write(json.dumps(r) + '\n')
    self.rows.extend(rows)


def write_metrics(path: str, rows: list[dict]) -> None:
  """Replace `path` with `rows`, one JSON object per line (atomically)."""
  with open(path + '.tmp', 'w') as f:
    for r in rows:
      f.write(json.dumps(r) + '\n')
  os.replace(path + '.tmp', path)


def read_metrics(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
