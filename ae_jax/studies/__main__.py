"""python -m ae_jax.studies NAME --workdir DIR [--quick] [--fresh] [--config.a.b=v ...]"""
from __future__ import annotations

import importlib

from ae_jax import cli
from ae_jax.studies import STUDIES, Study
from ae_jax.workdir import Workdir


def main(argv=None, prog='python -m ae_jax.studies'):
  p = cli.parser(prog, __doc__, f'{prog} kl_weight_study --workdir runs/kl_weight --quick')
  p.add_argument('study', choices=STUDIES)
  p.add_argument('--workdir', default=None, help='default: runs/<study>')
  p.add_argument('--quick', action='store_true', help='a budget of seconds (the tests use it)')
  p.add_argument('--fresh', action='store_true', help='move an existing workdir aside first')
  args, overrides = cli.parse(p, argv)
  workdir = args.workdir or f'runs/{args.study}'

  def body():
    module = importlib.import_module(f'ae_jax.studies.{args.study}')
    wd = Workdir(workdir)
    with wd.running():  # a second study here is refused; each model's folder is held too
      study = Study(args.study, wd, overrides, args.quick, args.fresh)
      md, html = module.run(study).write(study.wd)
    print(f'wrote {md} and {html}')

  cli.run(body, workdir)


if __name__ == '__main__':
  main()
