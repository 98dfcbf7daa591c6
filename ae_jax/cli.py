"""The command lines' one shared layer, and the `ae-jax` command.

  ae-jax train --config vae_beta --workdir runs/vae_beta [--config.a.b=v ...] [--fresh]
  ae-jax evaluate --workdir runs/vae_beta [--metrics default,nll_iwae] [--config.eval.x=v]
  ae-jax latent TOOL --workdir runs/vae_beta [...]      ae-jax study NAME [--quick]
  ae-jax export --workdir W --member M --out O          ae-jax import-torch ...
  ae-jax bench --config vae_beta

Every entry point (these, and the `python -m ae_jax.<module>` forms) runs its work through
`run`, which maps ae_jax's errors to one line and an exit code: a user's mistake 2, an
unexpected failure in training (its state saved) 1, a stop by a signal 128 + its number
(the checkpoint saved first), a second Ctrl-C 130 at once. `evaluate` exits 0 when it
printed its result but could not save eval.json (a `warning:` line says so); a latent
tool, whose result is its files, exits 2 (docs/faults.md). `--config.a.b=value` overrides
are taken apart from the other flags by `split_argv` and parsed by
`config_lib.apply_overrides`, the one parser.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

import jax

from ae_jax import preempt
from ae_jax.errors import USER_ERRORS, ConfigError, Preempted, TrainingFailed
from ae_jax.workdir import CHECKPOINTS

EXIT_USER_ERROR, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


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


def quiet_logs():
  """Library chatter off; ae_jax's own warnings as plain `warning: ...` lines."""
  from absl import logging as absl_logging
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
  quiet_abandoned_reads()


def only_process_zero_reports() -> None:
  """In a multi-process job every process but 0 prints nothing on stdout (each one still
  warns and errs on stderr)."""

  if jax.process_index() != 0:
    sys.stdout = open(os.devnull, 'w')


def quiet_abandoned_reads() -> None:
  """When a restore fails, the TensorStore reads Orbax still had in flight end on their
  own: into the event loop Orbax has already closed ('RuntimeError: Event loop is closed'),
  as coroutines finalized with their read error ('Exception ignored in: <coroutine ...>')
  or never awaited (a RuntimeWarning), or as tasks whose error nobody retrieves (asyncio's
  log). Each prints a traceback: dozens around our one line about the damaged checkpoint.
  Installed by the command lines (a library call leaves the process's hooks alone), this
  drops exactly those; anything else still reaches the previous `sys.unraisablehook`, log
  or warning filters."""
  previous = sys.unraisablehook
  if getattr(previous, 'ae_jax_abandoned_reads', False):
    return

  def hook(unraisable):
    e, obj = unraisable.exc_value, unraisable.object
    code = getattr(obj, 'cr_code', None)
    if isinstance(e, RuntimeError) and str(e) == 'Event loop is closed':
      return
    if code is not None and f'{os.sep}orbax{os.sep}' in code.co_filename:
      return
    previous(unraisable)

  hook.ae_jax_abandoned_reads = True
  sys.unraisablehook = hook
  logging.getLogger('asyncio').addFilter(_orbax_task_never_retrieved)
  # attributed to whatever module the garbage collector happened to run in (inspect, ...);
  # ae_jax itself has no coroutines
  warnings.filterwarnings('ignore', r"coroutine '\w+' was never awaited", RuntimeWarning)


def _orbax_task_never_retrieved(record) -> bool:
  message = record.getMessage()
  return not ('exception was never retrieved' in message
              and any(w in message for w in ('orbax', 'OCDBT', 'TensorStore', 'zarr')))


def exit_now(code: int):
  """Exit without the interpreter's teardown. After a second Ctrl-C a checkpoint write may
  be in flight; waiting for it would not be "at once", and tearing down its event loop
  prints 'Exception ignored ... Traceback' noise. What is lost is what SIGKILL loses:
  the unfinished write, whose temporary folder the next run removes."""
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (RuntimeError, OSError, ValueError):  # in a signal handler, inside a write
      pass
  os._exit(code)


def run(body, where: str | None = None):
  """body() with ae_jax's errors as one line and an exit code (module docstring).
  `where`: the folder whose complete checkpoints a second Ctrl-C keeps."""
  quiet_logs()
  try:
    # a second Ctrl-C during training ends the process in its signal handler (preempt)
    with preempt.at_second_signal(lambda: _interrupted(where)):
      return body()
  except USER_ERRORS as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
  except TrainingFailed as e:  # training saved its last good state first
    print(f'error: {e}', file=sys.stderr)
    sys.exit(EXIT_FAILED)
  except Preempted as e:  # SIGTERM or a first Ctrl-C: the model in training saved first
    print(str(e), file=sys.stderr)
    sys.exit(128 + e.signum)
  except KeyboardInterrupt:  # a Ctrl-C outside training (before anything ran, ...)
    _interrupted(where)


def _interrupted(where: str | None):
  """A second Ctrl-C's one line and exit 130, at once (also from a signal handler)."""
  preempt.write_now(f'interrupted: stopped at once{_what_is_kept(where)}\n')
  exit_now(EXIT_INTERRUPTED)


def _what_is_kept(where: str | None) -> str:
  """What a run stopped at once leaves: its complete checkpoints, if it saved any (in the
  workdir's checkpoints folder, its programs' or a study's models'), or nothing."""
  if not where:
    return ''
  if has_checkpoint(where):
    return (f'; every complete checkpoint in {where} is kept; run the same command again to '
            'resume')
  return f'; nothing was saved in {where} yet: the same command starts from the beginning'


def has_checkpoint(folder: str, depth: int = 4) -> bool:
  """Whether a complete checkpoint (a step folder of a `checkpoints` folder) lies in `folder`
  or its subfolders down to `depth` levels (a sweep's programs/, a study's models/)."""
  top = folder.rstrip(os.sep).count(os.sep)
  for root, dirs, _ in os.walk(folder):
    # a finished save is a folder named by its step (checkpoint.saved_steps); Orbax's
    # unfinished ones are <step>.orbax-checkpoint-tmp...
    if os.path.basename(root) == CHECKPOINTS and any(d.isdigit() for d in dirs):
      return True
    if root.count(os.sep) - top >= depth:
      dirs[:] = []
  return False


def split_argv(argv) -> tuple[list[str], list[str]]:
  """(the other arguments, the `--config.a.b=value` overrides) of a command line."""
  rest, overrides = [], []
  for a in argv:
    if a.startswith('--config.'):
      if '=' not in a:
        raise ConfigError(f'{a}: expected --config.<key>=<value> (with "=")')
      overrides.append(a)
    else:
      rest.append(a)
  return rest, overrides


def parse(parser: argparse.ArgumentParser, argv, overrides: bool = True):
  """(args, overrides): argparse's own errors exit 2 with its usage line; a malformed
  override is one line too."""
  argv = list(sys.argv[1:] if argv is None else argv)
  try:
    rest, found = split_argv(argv) if overrides else (argv, [])
  except ConfigError as e:
    parser.error(str(e))
  return parser.parse_args(rest), found


def parser(prog: str, doc: str, example: str) -> argparse.ArgumentParser:
  """An ArgumentParser whose --help ends with a worked example."""
  return argparse.ArgumentParser(
      prog=prog, description=doc, epilog=f'example:\n  {example}',
      formatter_class=argparse.RawDescriptionHelpFormatter)


# ---- ae-jax ---------------------------------------------------------------------------

COMMANDS = {
    'train': ('ae_jax.main', 'train_main', 'train (resuming) and evaluate a config'),
    'evaluate': ('ae_jax.main', 'evaluate_main', 'evaluate a trained workdir'),
    'latent': ('ae_jax.latent.__main__', 'main', 'latent tools on a trained workdir'),
    'study': ('ae_jax.studies.__main__', 'main', 'reproduce a report end to end'),
    'prior': ('ae_jax.prior', 'main', 'train a prior over a trained workdir\'s codes'),
    'export': ('ae_jax.export', 'main', 'one member of a sweep as its own workdir'),
    'import-torch': ('ae_jax.interop', 'main', 'PyTorch weights into a workdir'),
    'bench': ('ae_jax.bench', 'main', 'time a config\'s training step'),
}


def main(argv=None):
  """`ae-jax COMMAND ...`: each command's own --help shows an example."""
  import importlib
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] not in COMMANDS:
    width = max(map(len, COMMANDS))
    lines = [f'  {name:{width}}  {what}' for name, (_, _, what) in COMMANDS.items()]
    text = ('usage: ae-jax COMMAND [options]   (ae-jax COMMAND --help for its options)\n\n'
            'commands:\n' + '\n'.join(lines) + '\n\nexample:\n  ae-jax train --config '
            'vae_beta --workdir runs/vae_beta')
    if argv and argv[0] in ('-h', '--help'):
      print(text)
      return
    print(text if not argv else f'ae-jax: unknown command {argv[0]!r}\n{text}',
          file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
  module, function, _ = COMMANDS[argv[0]]
  getattr(importlib.import_module(module), function)(argv[1:], prog=f'ae-jax {argv[0]}')
