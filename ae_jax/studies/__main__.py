"""python -m ae_jax.studies NAME --workdir DIR [--quick] [--fresh] [--config.a.b=v ...]"""
from __future__ import annotations

import argparse
import importlib
import sys

from ae_jax.studies import STUDIES, Study
from ae_jax.workdir import Workdir


def main(argv=None):
  p = argparse.ArgumentParser(prog='python -m ae_jax.studies', description=__doc__)
  p.add_argument('study', choices=STUDIES)
  p.add_argument('--workdir', default=None, help='default: runs/<study>')
  p.add_argument('--quick', action='store_true', help='a budget of seconds (the tests use it)')
  p.add_argument('--fresh', action='store_true', help='move an existing workdir aside first')
  args, overrides = p.parse_known_args(argv)
  bad = [o for o in overrides if not o.startswith('--config.')]
  if bad:
    p.error(f'unrecognized arguments: {" ".join(bad)}')
  from ae_jax.errors import USER_ERRORS, Preempted, TrainingFailed
  from ae_jax.main import _exit_now, _quiet_logs
  _quiet_logs()
  module = importlib.import_module(f'ae_jax.studies.{args.study}')
  workdir = args.workdir or f'runs/{args.study}'
  wd = Workdir(workdir)
  try:
    with wd.running():  # a second study here is refused; each model's folder is held too
      study = Study(args.study, wd, overrides, args.quick, args.fresh)
      md, html = module.run(study).write(study.wd)
  except USER_ERRORS as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except TrainingFailed as e:  # the model in training saved its last good state first
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  except Preempted as e:  # SIGTERM or a first Ctrl-C: the model in training saved first
    print(str(e), file=sys.stderr)  # names the model's checkpoints; the rerun resumes it
    sys.exit(128 + e.signum)
  except KeyboardInterrupt:  # a second Ctrl-C (see ae_jax.main._exit_now)
    print(f'interrupted: stopped at once; every complete checkpoint in {workdir} is kept; '
          'run the same command again to resume', file=sys.stderr)
    _exit_now(130)
  print(f'wrote {md} and {html}')


if __name__ == '__main__':
  main()
