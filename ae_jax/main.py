"""Command line.

  python -m ae_jax.main --config configs/X.py --workdir runs/x [--config.a.b=v ...] [--fresh]
  python -m ae_jax.main --workdir runs/x --mode=evaluate [--metrics=lpips_vgg,nll_iwae]

Multi-host: add --coordinator_address=HOST:PORT --num_processes=N --process_id=I, or
--distributed to let JAX read the cluster's environment (SLURM, TPU pods).
"""
from __future__ import annotations

import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from ae_jax.errors import USER_ERRORS, Preempted, TrainingFailed

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py); '
                                'not needed with --mode=evaluate.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Where config, metrics, checkpoints and figures go '
                    '(default: runs/<config file name>).')
flags.DEFINE_enum('mode', 'train', ['train', 'evaluate'],
                  'train: train (resuming) and evaluate; evaluate: evaluate the latest checkpoint '
                  "of a trained workdir with its own config.")
flags.DEFINE_bool('fresh', False, 'Start again in a workdir that holds another run: it is moved '
                  'aside to <workdir>.old-<time> first (nothing is deleted).')
flags.DEFINE_list('metrics', None, '--mode=evaluate: metrics to compute (default: the '
                  "workdir's eval.metrics), e.g. default,lpips_vgg,nll_iwae.")
flags.DEFINE_integer('epoch', None, '--mode=evaluate: a saved epoch instead of the latest.')
flags.DEFINE_string('coordinator_address', None, 'Multi-host: HOST:PORT of process 0.')
flags.DEFINE_integer('num_processes', None, 'Multi-host: number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-host: this process (0..num_processes-1).')
flags.DEFINE_bool('distributed', False, 'Multi-host from the cluster environment '
                  '(jax.distributed.initialize() with no arguments: SLURM, TPU pods).')


def _config_file(argv):
  for i, a in enumerate(argv):
    if a.startswith('--config='):
      return a.split('=', 1)[1]
    if a == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _make_configs_importable(path: str | None) -> None:
  """Config files import `configs.base`: make that work from any working directory (the
  config's own repository first, then the one this package lives in)."""
  from ae_jax.workdir import repo_root
  roots = [repo_root()]
  if path:
    here = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    if os.path.exists(os.path.join(here, 'configs', '__init__.py')):
      roots.insert(0, here)
  for root in reversed(roots):
    if root not in sys.path:
      sys.path.insert(0, root)


def _check_config_path(path: str | None) -> str | None:
  if path is None or os.path.exists(path.split(':', 1)[0]):
    return None
  from ae_jax.workdir import repo_root
  folder = os.path.join(repo_root(), 'configs')
  shipped = sorted(f for f in os.listdir(folder) if f.endswith('.py') and f != '__init__.py')
  here = os.path.relpath(folder)
  if here.startswith('..'):  # started elsewhere: name the folder where they are
    here = folder
  return (f'--config {path}: no such file; the shipped configs are in {here}/: '
          + ', '.join(shipped))


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
  from ae_jax.errors import ConfigError
  problem = _check_config_path(path)
  if problem:
    raise ConfigError(problem)
  _make_configs_importable(path)
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, '', flag_values=fv, lock_config=True)
  argv = ['ae_jax', f'--config={path}', *overrides]
  saved = sys.argv
  sys.argv = argv  # ml_collections reads the overrides from sys.argv, not from fv(argv)
  try:
    fv(argv)
  except flags.Error as e:
    raise ConfigError(str(e)) from e
  except (AttributeError, KeyError) as e:
    raise ConfigError(_unknown_override(argv) or str(e)) from e
  finally:
    sys.argv = saved
  return fv.config


def explicit(argv, key: str) -> bool:
  """Whether the command line sets --config.<key>."""
  return any(a.split('=', 1)[0] == f'--config.{key}' for a in argv)


def parse_flags(argv):
  """absl's parser, with config mistakes reported as one clear line."""
  path = _config_file(argv)
  problem = _check_config_path(path)
  override = next((a.split('=', 1)[0] for a in argv if a.startswith('--config.')), None)
  if path is None and override:
    problem = f'{override} needs --config FILE: overrides change a config file\'s values'
  if problem:
    print(f'error: {problem}', file=sys.stderr)
    sys.exit(2)
  _make_configs_importable(path)
  try:
    return FLAGS(argv)
  except flags.Error as e:
    print(f'error: {e}', file=sys.stderr)
  except (AttributeError, KeyError) as e:
    print(f'error: {_unknown_override(argv) or e}', file=sys.stderr)
  except (ImportError, SyntaxError) as e:
    print(f'error: --config {path}: {type(e).__name__}: {e}', file=sys.stderr)
  sys.exit(2)


def _distributed():
  """jax.distributed from the flags or (--distributed) the cluster environment."""
  import jax
  if FLAGS.coordinator_address:
    host = FLAGS.coordinator_address.rsplit(':', 1)[0]
    kwargs = {}
    if host in ('127.0.0.1', 'localhost'):  # loopback: listen there only
      kwargs['coordinator_bind_address'] = FLAGS.coordinator_address.replace(
          'localhost', '127.0.0.1')
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                               FLAGS.process_id, **kwargs)
  elif FLAGS.distributed:
    jax.distributed.initialize()
  if jax.process_index() != 0:  # one process reports; every process warns and errs
    sys.stdout = open(os.devnull, 'w')


class _Plain(logging.Formatter):
  def format(self, record):
    return f'{record.levelname.lower()}: {record.getMessage()}'


class _NotTheirFailure(logging.Filter):
  """Drops a library's report of a KeyboardInterrupt as its own failure. When a second
  Ctrl-C lands while Orbax waits for a checkpoint write, Orbax logs 'Save Finalize thread
  ... failed.' with the traceback before passing the interrupt on; the stop is ours, and
  the command line says so in one line."""

  def filter(self, record):
    kind = record.exc_info[0] if record.exc_info else None
    return not (kind is not None and issubclass(kind, KeyboardInterrupt))


def _quiet_logs():
  """Library chatter off; ae_jax's own warnings as plain `warning: ...` lines."""
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
  for noisy in ('absl', 'jax', 'orbax', 'orbax.checkpoint'):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  quiet = _NotTheirFailure()
  for logger in (logging.getLogger('absl'), logging.getLogger('orbax')):
    if not any(isinstance(f, _NotTheirFailure) for f in logger.filters):
      logger.addFilter(quiet)  # a logger's filters see its own calls (Orbax logs via absl)
  for handler in logging.getLogger().handlers:  # and the root's handlers all propagated ones
    if not any(isinstance(f, _NotTheirFailure) for f in handler.filters):
      handler.addFilter(quiet)
  ours = logging.getLogger('ae_jax')
  if not ours.handlers:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Plain())
    ours.addHandler(handler)
  ours.setLevel(logging.INFO)
  ours.propagate = False


def main(argv):
  del argv
  _quiet_logs()
  config_path = _config_file(sys.argv)
  workdir = FLAGS.workdir or (os.path.join(
      'runs', os.path.splitext(os.path.basename(config_path))[0]) if config_path else None)
  try:
    _distributed()
    if FLAGS.mode == 'evaluate':
      if workdir is None:
        raise_usage('--mode=evaluate needs --workdir (a trained workdir)')
      from ae_jax.evaluate import evaluate_workdir, format_result
      result = evaluate_workdir(workdir, FLAGS.metrics, FLAGS.config, FLAGS.epoch)
      print(format_result(result))
      return
    if FLAGS.config is None:
      raise_usage('--config is required for training (e.g. --config configs/vae_beta.py)')
    from ae_jax import config_lib
    from ae_jax.train import train_and_evaluate
    config, note = config_lib.fit_eval_epochs(FLAGS.config, explicit(sys.argv, 'sweep.eval_epochs'))
    if note:
      print(note, flush=True)
    summary = train_and_evaluate(config, workdir, fresh=FLAGS.fresh)
  except USER_ERRORS as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except Preempted as e:
    print(str(e), file=sys.stderr)
    sys.exit(128 + e.signum)
  except TrainingFailed as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt:
    print(f'interrupted: stopped at once; the newest complete checkpoint in {workdir} is '
          'kept; run the same command again to resume', file=sys.stderr)
    _exit_now(130)
  if 'table' in summary:
    print(summary['table'], end='')
  else:
    from ae_jax.metrics import registry
    for m in summary['members']:
      print(f'final [{m["name"]}]: {registry.console_line(m["eval"])}')


def _exit_now(code: int):
  """Exit without the interpreter's teardown. After a second Ctrl-C a checkpoint write may
  be in flight; waiting for it would not be "at once", and tearing down its event loop
  prints 'Exception ignored ... Traceback' noise. What is lost is what SIGKILL loses:
  the unfinished write, whose temporary folder the next run removes."""
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


def raise_usage(message: str):
  from ae_jax.errors import ConfigError
  raise ConfigError(message)


def run():
  try:
    app.run(main, flags_parser=parse_flags)
  except KeyboardInterrupt:  # Ctrl-C while importing or parsing
    print('interrupted', file=sys.stderr)
    sys.exit(130)


if __name__ == '__main__':
  run()
