"""Train or evaluate from the command line.

  python -m ae_jax.main --config configs/vae_beta.py --workdir runs/x [--config.a.b=v ...]
  python -m ae_jax.main --config vae_beta ...        # a shipped config by name, any folder
  python -m ae_jax.main --workdir runs/x --mode=evaluate [--metrics=lpips_vgg,nll_iwae]
  ae-jax train ... / ae-jax evaluate ...             # the same, as console scripts

Multi-host: add --coordinator_address=HOST:PORT --num_processes=N --process_id=I, or
--distributed to let JAX read the cluster's environment (SLURM, TPU pods).
"""
from __future__ import annotations

import os
import sys

import jax

from ae_jax import cli, config_lib, train as train_lib
from ae_jax.errors import ConfigError, WorkdirError, WriteError
from ae_jax.evaluate import evaluate_workdir, format_result, write_result
from ae_jax.metrics import registry


def _add_common(p, evaluate_only: bool = False):
  p.add_argument('--workdir', default=None, required=evaluate_only,
                 help='where config, metrics, checkpoints and figures go (default: '
                      'runs/<config name>)')
  p.add_argument('--coordinator_address', default=None, help='multi-host: HOST:PORT of '
                 'process 0')
  p.add_argument('--num_processes', type=int, default=None, help='multi-host: processes')
  p.add_argument('--process_id', type=int, default=None, help='multi-host: this process')
  p.add_argument('--distributed', action='store_true', help='multi-host from the cluster '
                 'environment (SLURM, TPU pods): jax.distributed.initialize()')


def _add_evaluate(p):
  p.add_argument('--out', default=None, metavar='DIR', help='evaluate: write eval.json into '
                 'DIR instead of the workdir (a read-only one, say)')
  p.add_argument('--metrics', default=None, help='metrics to compute, comma-separated '
                 "(default: the workdir's eval.metrics), e.g. default,lpips_vgg,nll_iwae")
  p.add_argument('--epoch', type=int, default=None, help='a saved epoch instead of the '
                 'latest')


def _module_parser():
  p = cli.parser('python -m ae_jax.main', __doc__,
                 'python -m ae_jax.main --config configs/vae_beta.py --workdir runs/vae_beta')
  p.add_argument('--config', default=None, help='a config file, or a shipped config\'s name '
                 '(vae_beta); not needed with --mode=evaluate')
  p.add_argument('--mode', choices=('train', 'evaluate'), default='train',
                 help='train: train (resuming) and evaluate; evaluate: evaluate the latest '
                      'checkpoint of a trained workdir with its own config')
  p.add_argument('--fresh', action='store_true', help='start again in a workdir that holds '
                 'another run: it is moved aside to <workdir>.old-<time> first')
  _add_common(p)
  _add_evaluate(p)
  return p


def _distributed(args):
  """jax.distributed from the flags or (--distributed) the cluster environment."""
  if args.coordinator_address:
    host = args.coordinator_address.rsplit(':', 1)[0]
    kwargs = {}
    if host in ('127.0.0.1', 'localhost'):  # loopback: listen there only
      kwargs['coordinator_bind_address'] = args.coordinator_address.replace(
          'localhost', '127.0.0.1')
    jax.distributed.initialize(args.coordinator_address, args.num_processes,
                               args.process_id, **kwargs)
  elif args.distributed:
    jax.distributed.initialize()
  cli.only_process_zero_reports()


def _default_workdir(args) -> str | None:
  if args.workdir:
    return args.workdir
  if args.config:
    return os.path.join('runs', os.path.splitext(os.path.basename(args.config))[0])
  return None


def train(args, overrides, argv) -> None:
  """Load, resolve and train a config; print its final metrics or sweep table."""
  if args.config is None:
    raise ConfigError('--config is required for training (e.g. --config vae_beta, or '
                      '--config configs/vae_beta.py)')
  _distributed(args)  # before anything touches a device
  notes = []
  config = config_lib.load(args.config, overrides, notes)
  config, note = config_lib.fit_eval_epochs(config,
                                            config_lib.explicit(argv, 'sweep.eval_epochs'))
  config = config_lib.resolve(config)  # the one resolution; nothing below edits it
  notes += [registry.missing_extras_note(config.eval.metrics)]
  for line in [f'note: {n}' for n in notes if n] + ([note] if note else []):
    print(line, flush=True)
  summary = train_lib.train_and_evaluate(config, _default_workdir(args), fresh=args.fresh)
  if 'table' in summary:
    print(summary['table'], end='')
  else:
    for m in summary['members']:
      print(f'final [{m["name"]}]: {registry.console_line(m["eval"])}')


def evaluate(args, overrides) -> None:
  """Evaluate a trained workdir with its own config (free keys overridable) and print the
  table; then write eval.json into the workdir (or --out). The result is printed first: a
  file that cannot be written is a `warning:` line saying so and where it can go, and the
  exit code stays 0 (the result is on screen)."""
  workdir = _default_workdir(args)
  if workdir is None:
    raise ConfigError('--mode=evaluate needs --workdir (a trained workdir)')
  if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
    raise WorkdirError(f'--out {args.out} is a file; give a folder for eval.json')
  _distributed(args)
  config = config_lib.load(args.config) if args.config else None
  metrics = [m for m in args.metrics.split(',') if m] if args.metrics else None
  result = evaluate_workdir(workdir, metrics, config, args.epoch, overrides, write=False)
  print(format_result(result), flush=True)
  try:
    path = write_result(result, args.out)
  except WriteError as e:
    print(f'warning: the result above is not saved: {e.path} could not be written '
          f'({e.reason}); give --out DIR to write eval.json into a folder you can write',
          file=sys.stderr)
    return
  if args.out and path:
    print(f'wrote {path}')


def main(argv=None, prog=None):
  """python -m ae_jax.main (train, or --mode=evaluate)."""
  args, overrides = cli.parse(_module_parser(), argv)
  argv = list(sys.argv[1:] if argv is None else argv)
  if args.mode == 'evaluate':
    cli.run(lambda: evaluate(args, overrides), _default_workdir(args))
  else:
    cli.run(lambda: train(args, overrides, argv), _default_workdir(args))


def train_main(argv=None, prog='ae-jax train'):
  p = cli.parser(prog, 'Train (resuming) and evaluate a config in a workdir.',
                 f'{prog} --config vae_beta --workdir runs/vae_beta --config.train.num_epochs=10')
  p.add_argument('--config', required=True, help='a config file, or a shipped config\'s name')
  p.add_argument('--fresh', action='store_true', help='move a workdir holding another run '
                 'aside first (nothing is deleted)')
  _add_common(p)
  args, overrides = cli.parse(p, argv)
  argv = list(sys.argv[1:] if argv is None else argv)
  cli.run(lambda: train(args, overrides, argv), _default_workdir(args))


def evaluate_main(argv=None, prog='ae-jax evaluate'):
  p = cli.parser(prog, 'Evaluate a trained workdir\'s latest (or a saved) checkpoint on its '
                 'test split; --config.* sets keys free on a trained workdir (eval.*, ...).',
                 f'{prog} --workdir runs/vae_beta --metrics default,nll_iwae '
                 '--config.eval.iwae_samples=64')
  p.add_argument('--config', default=None, help='a config of the same model whose free '
                 'settings apply (default: the workdir\'s own)')
  _add_common(p, evaluate_only=True)
  _add_evaluate(p)
  args, overrides = cli.parse(p, argv)
  cli.run(lambda: evaluate(args, overrides), args.workdir)


def run():
  try:
    main()
  except KeyboardInterrupt:  # Ctrl-C while importing or parsing
    print('interrupted', file=sys.stderr)
    sys.exit(cli.EXIT_INTERRUPTED)


if __name__ == '__main__':
  run()
