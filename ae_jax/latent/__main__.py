"""python -m ae_jax.latent TOOL --workdir DIR [--member M] [--epoch E] [--out DIR] [options]

Tools on a trained workdir; each writes PNG figures and .npy/.npz arrays into
<workdir>/latent/<tool>/ (or --out DIR) and prints what it wrote. A run's files replace
the folder's previous run as a whole when the tool ends; a tool that fails, or a second
one writing the same folder meanwhile, changes nothing there (exit code 2). On a
read-only workdir give --out DIR.

  reconstruct   originals vs reconstructions (--ids, or --num random test images);
                --with WORKDIR[:MEMBER] adds models as rows, --epochs 10,50,100 one row per
                saved epoch
  fit           fit a density to a model's training codes, what `sample` draws from for an
                AE or a VQ-VAE (--density gaussian | gmm --components 10 | categorical)
  sample        decode prior samples (VAE: z ~ N(0, T² I); AE, VQ-VAE: the fitted density)
  interpolate   between the codes of two real images (--ids A,B --steps N), linear and
                spherical
  edit          chosen dimensions scaled/shifted (--edits 0*2,2+5)
  traverse      dimensions swept over ±span·σ (--dims, default: most informative first)
  generate      latent-noise generation: gen_data.npy / gen_label.npy (--ids or --per-class)
  same-noise    identical Gaussian draws decoded by several models (--with WORKDIR[:MEMBER])
  encode        a split's codes to codes.npz and a 2-D map of them
"""
from __future__ import annotations

import argparse
import os

from ae_jax import cli
from ae_jax.errors import ConfigError
from ae_jax.inference import load
from ae_jax.latent import fitted, tools
from ae_jax.latent.tools import Source
from ae_jax.models import kinds
from ae_jax.workdir import Workdir

TOOLS = ('reconstruct', 'fit', 'sample', 'interpolate', 'edit', 'traverse', 'generate',
         'same-noise', 'encode')


def parser(prog: str = 'python -m ae_jax.latent') -> argparse.ArgumentParser:
  p = cli.parser(prog, __doc__, f'{prog} interpolate --workdir runs/vae_beta --member beta=4 '
                 '--ids 3,227')
  p.add_argument('tool', choices=TOOLS)
  p.add_argument('--workdir', required=True, help='a trained workdir')
  p.add_argument('--member', default='0', help='member index or name (default 0)')
  p.add_argument('--epoch', type=int, default=None, help='a saved epoch (default: latest)')
  p.add_argument('--out', default=None, metavar='DIR', help='the folder the tool writes in '
                 '(default: <workdir>/latent/<tool>/)')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--ids', default=None, help='dataset ids: 3,227 or 1-5,226-230')
  p.add_argument('--num', type=int, default=None,
                 help='images (reconstruct: random test images, default 10; sample: 16; '
                      'same-noise: draws per set, 8)')
  p.add_argument('--with', dest='others', action='append', default=[],
                 metavar='WORKDIR[:MEMBER]', help='another model (":MEMBER" alone: another '
                 'member of --workdir); repeatable')
  p.add_argument('--epochs', default=None, help='reconstruct: saved epochs, e.g. 10,50,100')
  p.add_argument('--temperature', type=float, default=None, help='sample: the prior\'s '
                 'temperature (N(0, T² I), a fitted density\'s, an autoregressive prior\'s); '
                 'default 1, or a trained prior\'s own')
  p.add_argument('--prior', default=None, metavar='NAME', help='sample: a prior trained on '
                 'the workdir\'s codes (python -m ae_jax.prior; <workdir>/priors/NAME/)')
  p.add_argument('--density', default='gaussian', choices=('gaussian', 'gmm', 'categorical'),
                 help='fit: a full-covariance Gaussian, a Gaussian mixture (RAE\'s ex-post '
                      'density), or (VQ-VAE) a categorical per code position')
  p.add_argument('--components', type=int, default=10, help='fit --density gmm: components')
  p.add_argument('--steps', type=int, default=10, help='interpolate: codes from end to end')
  p.add_argument('--edits', default='0*2,2+5', help='edit: DIM*SCALE or DIM+SHIFT, ...')
  p.add_argument('--dims', default=None, help='traverse: dimensions (default: top 10 by KL)')
  p.add_argument('--span', type=float, default=3.0, help='traverse: ±span·σ')
  p.add_argument('--points', type=int, default=7, help='traverse: values per dimension')
  p.add_argument('--per-id', type=int, default=5, help='generate: samples per image')
  p.add_argument('--sigma', default='0.5',
                 help="generate: noise scale, or 'schedule' (sample i gets i/10)")
  p.add_argument('--per-class', type=int, default=0,
                 help='generate: this many source images of each class instead of --ids')
  p.add_argument('--classes', default='', help='generate --per-class: class names (default all)')
  p.add_argument('--sets', type=int, default=2, help='same-noise: sets of draws')
  p.add_argument('--split', default='test', help='encode: train or test')
  p.add_argument('--fitted', default=None, metavar='FILE', help='sample (AE, VQ-VAE): the '
                 'density fit wrote (default: <workdir>/latent/fit/density.npz; fit --out DIR '
                 'writes DIR/density.npz)')
  return p


def _member(text: str):
  return int(text) if text.lstrip('-').isdigit() else text


def _load(workdir: str, member, epoch, overrides=()):
  return Source(load(workdir, _member(str(member)), epoch, overrides), workdir)


def _check_flags(args) -> None:
  """The flags' own values, before any model loads (one ConfigError line each)."""
  import math

  counts = {'--num': args.num, '--steps': args.steps, '--points': args.points,
            '--per-id': args.per_id, '--sets': args.sets}
  for flag, value in counts.items():
    if value is not None and value < 1:
      raise ConfigError(f'{flag} {value}: expected a positive whole number')
  if args.per_class < 0:
    raise ConfigError(f'--per-class {args.per_class}: expected 0 (use --ids) or more')
  for flag, value in (('--temperature', args.temperature), ('--span', args.span)):
    if value is not None and (not math.isfinite(value) or value < 0):
      raise ConfigError(f'{flag} {value}: expected a finite number >= 0')
  if args.sigma != 'schedule':
    try:
      if not float(args.sigma) >= 0 or not math.isfinite(float(args.sigma)):
        raise ValueError
    except ValueError:
      raise ConfigError(f"--sigma {args.sigma!r}: expected a number >= 0 or 'schedule'") \
          from None
  if args.split not in ('train', 'test'):
    raise ConfigError(f'--split {args.split!r}: expected train or test')
  tools.parse_ids(args.ids)
  tools.parse_ids(args.dims)
  tools.parse_ids(args.epochs)
  if args.tool == 'edit':
    tools.parse_edits(args.edits)


def run(args, overrides=()) -> dict:
  """The tool `args.tool`; `overrides`: --config.* of keys free on a trained workdir.
  Its output folder is held from before the models load until its files are in place
  (`workdir.Outputs`): a folder that cannot be written stops it at once."""
  _check_flags(args)
  wd = Workdir(args.workdir)
  wd.require_trained()
  # what it reads besides the workdir: an --out holding any of it would be moved away
  reads = [spec.partition(':')[0] for spec in args.others] + [args.fitted or '']
  with wd.outputs(args.tool.replace('-', '_'), args.out, reads=reads) as out:
    return _run(args, overrides, out)


def _run(args, overrides, out) -> dict:
  main = _load(args.workdir, args.member, args.epoch, overrides)
  others = []
  for spec in args.others:
    wd, _, member = spec.partition(':')
    others.append(_load(wd or args.workdir, member or '0', None, overrides))
  ids = tools.parse_ids(args.ids)
  if args.tool == 'reconstruct':
    sources = [main] + others
    if args.epochs:
      sources = [_load(args.workdir, args.member, e, overrides)
                 for e in tools.parse_ids(args.epochs)]
      sources += others
    ids = ids or main.random_ids(args.num or 10, args.seed)
    return tools.reconstruct(sources, ids, out)
  if args.tool == 'fit':
    return fitted.fit(main, out, args.density, args.components, args.seed)
  if args.tool == 'sample':
    density = None
    if args.prior is not None:
      return fitted.sample(main, args.num or 16, args.seed, args.temperature, out,
                           prior=args.prior)
    if not kinds.get(main.model.kind).posterior:  # no N(0, I) prior: a fitted density
      path = args.fitted or Workdir(args.workdir).outputs('fit').file(fitted.DENSITY)
      density = fitted.read_density(path, given=args.fitted is not None)
    return fitted.sample(main, args.num or 16, args.seed, args.temperature, out, density)
  if args.tool == 'interpolate':
    if not ids:
      test_ids = main.dataset.test['id']
      ids = [int(test_ids[0]), int(test_ids[1])]
    return tools.interpolate(main, ids, args.steps, out)
  if args.tool == 'edit':
    ids = ids or [int(i) for i in main.dataset.test['id'][:8]]
    return tools.edit(main, ids, tools.parse_edits(args.edits), out)
  if args.tool == 'traverse':
    image_id = ids[0] if ids else int(main.dataset.test['id'][0])
    dims = tools.parse_ids(args.dims)
    return tools.traverse(main, image_id, dims, args.span, args.points, out)
  if args.tool == 'generate':
    classes = [c.strip() for c in args.classes.split(',') if c.strip()]
    if not ids and not args.per_class:
      ids = tools.parse_ids(tools.DEFAULT_GENERATE_IDS)
    return tools.generate(main, ids, args.per_id, args.sigma, args.seed, out,
                          per_class=args.per_class, classes=classes)
  if args.tool == 'same-noise':
    return tools.same_noise([main] + others, args.num or 8, args.sets, args.seed, out)
  return tools.encode(main, args.split, out)


def main(argv=None, prog='python -m ae_jax.latent'):
  args, overrides = cli.parse(parser(prog), argv)

  def body():
    for value in run(args, overrides).values():
      if isinstance(value, str) and os.path.isfile(value):  # the files it wrote
        print(f'wrote {value}')

  cli.run(body)


if __name__ == '__main__':
  main()
