"""Export one member of a sweep as a standalone workdir.

  python -m ae_jax.export --workdir runs/beta --member beta=4 --out runs/beta4 [--replace]

The new workdir has its own config (the member's values, no sweep), checkpoint, model
record, metrics and summary, so every other command (inference, --mode=evaluate,
resuming training) treats it as an ordinary run. A member of a latent_dim sweep becomes
a model of its own latent size: its unused (masked) units are sliced away. A non-empty
--out is refused unless it is a previous export and --replace is given, which moves it
aside first (nothing is deleted); an --out holding anything else (a trained workdir, a
study, a tool's outputs, your files) is refused naming it, and so is an --out that is,
holds or lies inside the source workdir.
"""
from __future__ import annotations

import os

import jax
import numpy as np
import optax

from ae_jax import checkpoint, cli, config_lib, record as record_lib, sweep
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.models import build_model, latent_shape, slice_latent
from ae_jax.spec import RunSpec
from ae_jax.workdir import (MEMBERS, OUTPUTS_MARK, STATS, SUMMARY, Workdir, owner,
                           refuse_reading)


def _program(wd: Workdir, member: str) -> Workdir:
  members = wd.read_members()
  if members is None:
    raise WorkdirError(f'{wd.path!r} is not a trained workdir (no members.json)')
  names = [m['name'] for m in members]
  if member not in names:
    raise ConfigError(f'member {member!r} not in {wd.path}; members are {names}')
  program = members[names.index(member)].get('program')
  return wd.program(program) if program else wd


def member_config(config, member: dict):
  """The config of one member as an unswept run: each swept axis's value set on its
  config key (sweep.AXES / sweep.OUTER say which)."""
  config = config_lib.thaw(config)
  with config.unlocked():
    for axis, (key, _) in sweep.AXES.items():
      config_lib.set_value(config, key, member[axis])
    for axis, key in sweep.OUTER.items():
      if axis in member:
        value = member[axis]
        config_lib.set_value(config, key, tuple(value) if isinstance(value, list) else value)
    for axis in list(sweep.AXES) + list(sweep.OUTER) + ['eval_epochs']:
      config.sweep[axis] = None
  return config


def _check_out(workdir: str, out: str, replace: bool) -> bool:
  """Refuse an --out export may not write (see the module); -> whether it holds a previous
  export that --replace moves aside."""
  if os.path.exists(out) and not os.path.isdir(out):
    raise WorkdirError(f'--out {out} is a file, not a folder; choose another --out')
  refuse_reading(out, [workdir])
  if os.path.realpath(out).startswith(os.path.realpath(workdir).rstrip(os.sep) + os.sep):
    raise WorkdirError(f'--out {out} is inside the source workdir {workdir}; give a folder '
                       'outside it')
  found = owner(out)
  if found is None:
    return False
  if found.kind != 'export':
    raise WorkdirError(f'--out {out} holds {found.what}; export writes only into a new or empty '
                       'folder, or replaces a previous export (--replace)')
  if not replace:
    raise WorkdirError(f'--out {out} holds {found.what}; choose another folder, or pass '
                       '--replace to move it aside first (nothing is deleted)')
  return True


def export_member(workdir: str, member: str, out: str, replace: bool = False) -> str:
  src = _program(Workdir(workdir), member)
  dst = Workdir(out)
  if _check_out(workdir, out, replace):
    print(f'moved {out} to {dst.move_aside()}')
  dst.prepare()
  # marks the folder an export's (what --replace may replace), before anything else of it
  dst.write_json(OUTPUTS_MARK, {'tool': 'export', 'workdir': workdir, 'member': member})
  spec = RunSpec.from_workdir(src)
  ckpts = checkpoint.Checkpoints(src.checkpoints, writer=False)
  try:
    restored = ckpts.restore_latest(spec.abstract_state())
  finally:
    ckpts.close()
  if restored is None:
    raise WorkdirError(f'{src.checkpoints}: no checkpoint to export; train first')
  state, step, progress = restored
  names = [m['name'] for m in spec.members]
  i = names.index(member)
  m = spec.members[i]
  one = jax.tree_util.tree_map(lambda x: np.asarray(x[i]), state)  # this member, unstacked
  config = member_config(spec.config, m)
  if sweep.swept_latent(spec.config) and m['latent_dim'] != spec.config.model.latent_dim:
    cut = lambda tree: slice_latent(spec.model, tree, m['latent_dim'])
    opt_state = tuple(
        s._replace(mu=cut(s.mu), nu=cut(s.nu)) if isinstance(s, optax.ScaleByAdamState) else s
        for s in one.opt_state)
    one = one.replace(params=cut(one.params), opt_state=opt_state)
  stacked = jax.tree_util.tree_map(lambda x: np.asarray(x)[None], one)

  new_member = {**{k: m[k] for k in sweep.AXES}, 'name': 'run'}
  model = build_model(config_lib.resolve(config).model, spec.image_shape)
  exported = spec.record.replace(members=(new_member,),
                                 latent_shape=tuple(latent_shape(model, spec.image_shape)))
  if spec.record.format >= 2:
    record_lib.write_run(dst, config, [new_member], exported)
  else:  # an old workdir's export stays of its format (its checkpoints numbered by epoch)
    dst.write_config(config)
    dst.write_json(MEMBERS, [new_member])
  out_ckpts = checkpoint.Checkpoints(dst.checkpoints, max_to_keep=config.checkpoint.max_to_keep)
  out_ckpts.save(step, stacked, [new_member], {**progress, 'frozen': {}})
  out_ckpts.close()
  rows = [{**r, 'member': 'run'} for r in src.read_metrics()
          if r['member'] == member and r.get('step', 0) <= step]
  dst.write_metrics(rows)
  summary = src.read_json(SUMMARY, default={})
  entry = next((e for e in summary.get('members', []) if e['name'] == member), {})
  dst.write_json(SUMMARY, {
      'exported_from': {'workdir': workdir, 'member': member, 'step': step},
      'num_epochs': summary.get('num_epochs'), 'steps_per_epoch': spec.steps_per_epoch,
      'image_shape': list(spec.image_shape), 'members': [{**entry, 'name': 'run'}]})
  stats = src.read_json(STATS, default={})
  if member in stats.get('members', {}):  # the member's code statistics go with it
    dst.write_json(STATS, {**stats, 'members': {'run': stats['members'][member]}})
  return out


def main(argv=None, prog='python -m ae_jax.export'):
  p = cli.parser(prog, __doc__, f'{prog} --workdir runs/vae_beta --member beta=4 '
                 '--out runs/beta4')
  p.add_argument('--workdir', required=True, help='a sweep workdir')
  p.add_argument('--member', required=True, help="the member's name, e.g. 'beta=4'")
  p.add_argument('--out', required=True, help='the new workdir')
  p.add_argument('--replace', action='store_true', help='move a non-empty --out aside first')
  args, _ = cli.parse(p, argv, overrides=False)

  def body():
    out = export_member(args.workdir, args.member, args.out, args.replace)
    print(f'exported {args.member!r} of {args.workdir} to {out}')

  cli.run(body)


if __name__ == '__main__':
  main()
