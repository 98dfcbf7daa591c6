"""Export one member of a sweep as a standalone workdir.

  python -m ae_jax.export --workdir runs/beta --member beta=4 --out runs/beta4

The new workdir has its own config (the member's values, no sweep), checkpoint,
metrics and summary, so every other command (inference, --mode=evaluate, resuming
training) treats it as an ordinary run. A member of a latent_dim sweep becomes a model
of its own latent size: its unused (masked) units are sliced away.
"""
from __future__ import annotations

import copy
import os
import sys

import jax
import numpy as np
import optax
from absl import app, flags
from absl import logging as absl_logging

from ae_jax import checkpoint, sweep, workdir as wd
from ae_jax.models import slice_latent


def _program_dir(workdir: str, member: str) -> str:
  members = wd.read_json(os.path.join(workdir, 'members.json'))
  names = [m['name'] for m in members]
  if member not in names:
    raise KeyError(f'member {member!r} not in {workdir}; members are {names}')
  program = members[names.index(member)].get('program')
  return os.path.join(workdir, 'programs', program) if program else workdir


def export_member(workdir: str, member: str, out: str) -> str:
  from ae_jax.inference import _restored
  src = _program_dir(workdir, member)
  setup, state, epoch = _restored(src)
  names = [m['name'] for m in setup.members]
  i = names.index(member)
  m = setup.members[i]
  one = jax.tree_util.tree_map(lambda x: np.asarray(x[i]), state)  # this member, unstacked

  config = copy.deepcopy(setup.config)
  with config.unlocked():
    config.loss.beta = m['beta']
    config.train.learning_rate = m['learning_rate']
    config.train.seed = m['seed']
    config.loss.kl_warmup_epochs = m['kl_warmup_epochs']
    config.model.latent_dim = m['latent_dim']
    for key in list(sweep.AXES) + list(sweep.OUTER) + ['eval_epochs']:
      config.sweep[key] = None
  if sweep.swept_latent(setup.config) and m['latent_dim'] != setup.config.model.latent_dim:
    cut = lambda tree: slice_latent(setup.model, tree, m['latent_dim'])
    opt_state = tuple(
        s._replace(mu=cut(s.mu), nu=cut(s.nu)) if isinstance(s, optax.ScaleByAdamState) else s
        for s in one.opt_state)
    one = one.replace(params=cut(one.params), opt_state=opt_state)
  stacked = jax.tree_util.tree_map(lambda x: np.asarray(x)[None], one)

  new_member = {**{k: m[k] for k in sweep.AXES}, 'name': 'run'}
  os.makedirs(os.path.join(out, 'figures'), exist_ok=True)
  wd.write_json(os.path.join(out, 'config.json'), wd.config_to_dict(config))
  wd.write_json(os.path.join(out, 'members.json'), [new_member])
  ckpts = checkpoint.Checkpoints(out, config.checkpoint.max_to_keep)
  ckpts.save(epoch, stacked, [new_member])
  ckpts.close()
  rows = [{**r, 'member': 'run'} for r in wd.read_metrics(os.path.join(src, 'metrics.jsonl'))
          if r['member'] == member and r['epoch'] <= epoch]
  wd.write_metrics(os.path.join(out, 'metrics.jsonl'), rows)
  summary = wd.read_json(os.path.join(src, 'summary.json'))
  entry = next(e for e in summary['members'] if e['name'] == member)
  wd.write_json(os.path.join(out, 'summary.json'), {
      'exported_from': {'workdir': os.path.abspath(workdir), 'member': member, 'epoch': epoch},
      'num_epochs': summary.get('num_epochs'), 'members': [{**entry, 'name': 'run'}]})
  return out


FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A sweep workdir.')
flags.DEFINE_string('member', None, "The member's name, e.g. 'beta=4,latent_dim=16'.")
flags.DEFINE_string('out', None, 'The new workdir to write.')


def main(argv):
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
  if not (FLAGS.workdir and FLAGS.member and FLAGS.out):
    print('error: --workdir, --member and --out are required', file=sys.stderr)
    sys.exit(2)
  try:
    out = export_member(FLAGS.workdir, FLAGS.member, FLAGS.out)
  except (KeyError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(f'exported {FLAGS.member!r} of {FLAGS.workdir} to {out}')


if __name__ == '__main__':
  app.run(main)
