"""Train a prior over a trained workdir's codes, stored inside it.

  python -m ae_jax.prior --workdir runs/vae --config.prior.kind=flow
  python -m ae_jax.prior --workdir runs/vqvae --config.prior.kind=autoregressive
  ae-jax prior --workdir runs/ae --config.prior.kind=gmm --config.prior.gmm.components=10

The prior trains on the codes of every member of the workdir (its latest checkpoint, or
--epoch), in <workdir>/priors/<name>/ (the name defaults to the kind), and resumes when run
again; --fresh moves a previous one aside. Sample it with `python -m ae_jax.latent sample
--workdir W --prior NAME`, or in Python `load(W).sample(16, prior=NAME)`. The workdir's
own config supplies everything else; only `--config.prior.*` (and other free keys) can be
set here. docs/priors.md has the kinds and their settings.
"""
from __future__ import annotations

from ae_jax import cli, config_lib
from ae_jax.errors import WorkdirError
from ae_jax.prior_train import train_prior
from ae_jax.workdir import Workdir


def main(argv=None, prog='python -m ae_jax.prior'):
  p = cli.parser(prog, __doc__, f'{prog} --workdir runs/vae_beta --config.prior.kind=flow')
  p.add_argument('--workdir', required=True, help='a trained workdir')
  p.add_argument('--epoch', type=int, default=None, help='the codes of a saved epoch '
                 'instead of the latest checkpoint')
  p.add_argument('--fresh', action='store_true', help='move a prior of the same name aside '
                 'first (nothing is deleted)')
  args, overrides = cli.parse(p, argv)

  def body():
    wd = Workdir(args.workdir)
    if not wd.is_trained():
      raise WorkdirError(f'{args.workdir!r} is not a trained workdir (no config.json): train '
                         'it first (python -m ae_jax.main --config ... --workdir '
                         f'{args.workdir})')
    config = config_lib.apply_overrides(config_lib.read_config(wd), overrides,
                                        only_free=True)
    summary = train_prior(config, args.workdir, fresh=args.fresh, epoch=args.epoch)
    for m in summary['members']:
      who = '' if m['name'] == 'run' else f' [{m["name"]}]'
      held = '  '.join(f'{k} {v:.4g}' for k, v in m['held_out'].items())
      grades = next((g for g in summary.get('grades', []) if g['name'] == m['name']), {})
      shown = '  '.join(f'{k} {grades[k]:.4g}' for k in ('fd_classifier', 'precision',
                                                         'recall', 'fd_lpips') if k in grades)
      print(f'prior{who}: {held}  {shown}'.rstrip())

  cli.run(body, args.workdir)


if __name__ == '__main__':
  main()
