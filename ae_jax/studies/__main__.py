"""python -m ae_jax.studies NAME --workdir DIR [--quick | --smoke] [--fresh] [--config.a.b=v ...]

--quick runs the report's experiment (its data, image size, channels, models and latent
sizes) with less data and fewer epochs; --smoke is the test suite's budget, tiny models
that are not the report's experiment (its report says so at the top).
"""
from __future__ import annotations

import importlib

from ae_jax import cli
from ae_jax.studies import STUDIES, Study, check_owner
from ae_jax.workdir import Workdir


def main(argv=None, prog='python -m ae_jax.studies'):
  p = cli.parser(prog, __doc__, f'{prog} kl_weight_study --workdir runs/kl_weight --quick')
  p.add_argument('study', choices=STUDIES)
  p.add_argument('--workdir', default=None, help='default: runs/<study>')
  budget = p.add_mutually_exclusive_group()
  budget.add_argument('--quick', action='store_true', help='the same experiment, smaller: '
                      'less data and fewer epochs (minutes)')
  budget.add_argument('--smoke', action='store_true', help='the test suite\'s budget: tiny '
                      'models, NOT the report\'s experiment (seconds)')
  p.add_argument('--fresh', action='store_true', help='move an existing workdir aside first')
  args, overrides = cli.parse(p, argv)
  workdir = args.workdir or f'runs/{args.study}'
  chosen = 'quick' if args.quick else 'smoke' if args.smoke else 'full'

  def body():
    module = importlib.import_module(f'ae_jax.studies.{args.study}')
    check_owner(workdir)  # before running() makes its lock there
    wd = Workdir(workdir)
    with wd.running():  # a second study here is refused; each model's folder is held too
      study = Study(args.study, wd, overrides, fresh=args.fresh, budget=chosen)
      md, html = module.run(study).write(study.wd, study)
    print(f'wrote {md}, {html} and results.json')

  cli.run(body, workdir)


if __name__ == '__main__':
  main()
