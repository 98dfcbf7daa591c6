"""Command line: python -m ae_jax.main --config configs/X.py --workdir runs/x [--config.a.b=v]."""
from __future__ import annotations

import json
import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from ae_jax.errors import ConfigError, DataError, NonFiniteLossError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Where config, metrics, checkpoints and figures go '
                    '(default: runs/<config file name>).')
flags.DEFINE_enum('mode', 'train', ['train', 'evaluate'],
                  'train: train (resuming) and evaluate; evaluate: evaluate the latest checkpoint.')
flags.mark_flags_as_required(['config'])


def _config_file(argv):
  for i, a in enumerate(argv):
    if a.startswith('--config='):
      return a.split('=', 1)[1]
    if a == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _unknown_override(argv):
  """The first --config.a.b override whose key the config file does not have."""
  import importlib.util
  path = _config_file(argv)
  if path is None or not path.endswith('.py'):
    return None
  spec = importlib.util.spec_from_file_location('_ae_jax_cfg', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for a in argv:
    if not a.startswith('--config.'):
      continue
    node, walked = config, 'config'
    for part in a[len('--config.'):].split('=', 1)[0].split('.'):
      if not hasattr(node, 'keys') or part not in node:
        valid = ', '.join(sorted(node.keys())) if hasattr(node, 'keys') else '(none)'
        return f'{a.split("=", 1)[0]}: {walked} has no key {part!r}; its keys are: {valid}'
      node, walked = node[part], f'{walked}.{part}'
  return None


def load_config_with_overrides(path: str, overrides: list[str]):
  """A config file plus `--config.a.b=value` overrides, as the CLI would build it."""
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, '', flag_values=fv, lock_config=True)
  argv = ['ae_jax', f'--config={path}', *overrides]
  try:
    fv(argv)
  except flags.Error as e:
    raise ConfigError(str(e)) from e
  except (AttributeError, KeyError) as e:
    raise ConfigError(_unknown_override(argv) or str(e)) from e
  return fv.config


def parse_flags(argv):
  """absl's parser, with config-override mistakes reported as one clear line."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    print(f'error: {e}', file=sys.stderr)
  except (AttributeError, KeyError) as e:
    print(f'error: {_unknown_override(argv) or e}', file=sys.stderr)
  sys.exit(2)


def main(argv):
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
  logging.basicConfig(level=logging.INFO, format='%(message)s')
  for noisy in ('absl', 'jax', 'orbax', 'orbax.checkpoint'):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  workdir = FLAGS.workdir or os.path.join(
      'runs', os.path.splitext(os.path.basename(_config_file(sys.argv) or 'run'))[0])
  try:
    if FLAGS.mode == 'train':
      from ae_jax.train import train_and_evaluate
      summary = train_and_evaluate(FLAGS.config, workdir)
    else:
      from ae_jax.inference import evaluate_workdir
      try:
        summary = evaluate_workdir(workdir)
      except (FileNotFoundError, ValueError) as e:  # not a (single-program) workdir
        raise ConfigError(str(e)) from e
  except (ConfigError, DataError, NonFiniteLossError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  if 'table' in summary:
    print(summary['table'], end='')
  else:
    print(json.dumps({m['name']: m['eval'] for m in summary['members']}, indent=1))


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
