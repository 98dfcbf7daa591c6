"""A prior as a second training run inside a workdir (python -m ae_jax.prior): a sweep's
members each get the prior their codes alone would train, a stopped prior resumes bit for
bit, a model loaded in another process samples what the command line samples, workdirs
from before priors existed take one, and mistakes are one line."""
import json
import os
import shutil
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

from ae_jax import checkpoint, codes, config_lib, data, preempt, prior
from ae_jax.errors import Preempted, WorkdirError
from ae_jax.export import export_member
from ae_jax.inference import load
from ae_jax.prior_run import TrainedPrior, folder
from ae_jax.prior_train import train_prior
from ae_jax.train import train_and_evaluate
from ae_jax.workdir import Workdir

pytestmark = pytest.mark.slow

SMALL = {  # each kind at a size that trains in seconds
    'flow': ['--config.prior.flow.hidden=32', '--config.prior.flow.depth=2',
             '--config.prior.flow.steps=8', '--config.prior.flow.time_dim=16'],
    'two_stage': ['--config.prior.two_stage.hidden=32', '--config.prior.two_stage.depth=1'],
    'autoregressive': ['--config.prior.autoregressive.width=16',
                       '--config.prior.autoregressive.depth=1',
                       '--config.prior.autoregressive.heads=2'],
    'gmm': ['--config.prior.gmm.components=3'], 'gaussian': [], 'categorical': [],
}
COMMON = ['--config.prior.num_epochs=2', '--config.prior.batch_size=128',
          '--config.prior.num_samples=0', '--config.progress=False']


def _prior_config(workdir, kind, *extra):
  config = config_lib.read_config(Workdir(workdir))
  return config_lib.apply_overrides(config, [f'--config.prior.kind={kind}', *COMMON,
                                             *SMALL[kind], *extra], only_free=True)


@pytest.fixture(scope='module')
def runs(tmp_path_factory, tiny):
  """Two-member sweeps (a VAE over beta; a conv VQ-VAE with a 4x4 code over seeds) and
  each one's member 1 exported as a workdir of its own."""
  root = tmp_path_factory.mktemp('prior_runs')
  out = {}
  vq = dict(model__kind='vqvae', model__arch='conv', model__conv__channels=(8,),
            model__conv__latent='spatial', model__latent_dim=3, model__vq__codes=8)
  for name, config, member in (
      ('vae', tiny(sweep__beta=(0.5, 1.0)), 'beta=1'),
      ('vq', tiny(sweep__seed=(0, 1), **vq), 'seed=1')):
    workdir = str(root / name)
    train_and_evaluate(config, workdir)
    export_member(workdir, member, workdir + '_one')
    out[name] = (workdir, workdir + '_one')
  return out


def _weights(workdir, name):
  p = TrainedPrior.open(workdir, name)
  if p.spec.prior_kind.fitted:
    return [{k: np.asarray(v, np.float64) for k, v in m.items() if v.dtype.kind == 'f'}
            for m in p.params]
  flat = jax.tree_util.tree_flatten_with_path(p.params)[0]
  # attention's key bias has no gradient (softmax is invariant to a shift of a query's
  # scores): Adam turns its round-off gradients into steps of the learning rate's size, so
  # it wanders at noise level in any two runs and changes no output
  return [{jax.tree_util.keystr(path): np.asarray(x[k]) for path, x in flat
           if not jax.tree_util.keystr(path).endswith("['key']['bias']")}
          for k in range(len(p.spec.members))]


@pytest.mark.parametrize('kind,model', [('flow', 'vae'), ('two_stage', 'vae'), ('gmm', 'vae'),
                                        ('gaussian', 'vae'), ('autoregressive', 'vq'),
                                        ('categorical', 'vq')])
def test_each_members_prior_is_the_one_its_codes_alone_train(runs, kind, model):
  pair, one = runs[model]
  for workdir in (pair, one):
    train_prior(_prior_config(workdir, kind), workdir)
  chex.assert_trees_all_close(_weights(pair, kind)[1], _weights(one, kind)[0], rtol=1e-4,
                              atol=1e-5)
  member = 'beta=1' if model == 'vae' else 'seed=1'
  a = load(pair, member=member).sample(4, prior=kind, seed=3)
  b = load(one).sample(4, prior=kind, seed=3)
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  summary = json.load(open(os.path.join(folder(pair, kind).path, 'summary.json')))
  members = json.load(open(os.path.join(pair, 'members.json')))
  assert [m['name'] for m in summary['members']] == [m['name'] for m in members]
  assert all(np.isfinite(list(m['held_out'].values())[0]) for m in summary['members'])


def test_a_stopped_prior_resumes_bit_for_bit(runs, monkeypatch):
  _, workdir = runs['vae']
  full = _prior_config(workdir, 'flow', '--config.prior.name=full',
                       '--config.prior.num_epochs=3', '--config.prior.checkpoint_every=2')
  part = _prior_config(workdir, 'flow', '--config.prior.name=part',
                       '--config.prior.num_epochs=3')
  train_prior(full, workdir)
  first = {'done': False}

  def stop_once(self, step):  # a SIGTERM that lands in the first epoch
    if not first['done']:
      first['done'] = True
      self.signum = 15
      return True
    return False

  with monkeypatch.context() as m:
    m.setattr(preempt.Watcher, 'should_stop', stop_once)
    with pytest.raises(Preempted, match='stopped by SIGTERM at prior epoch 1'):
      train_prior(part, workdir)
  spe = TrainedPrior.open(workdir, 'full').spec.steps_per_epoch
  assert checkpoint.saved_steps(folder(workdir, 'part').checkpoints) == [spe]  # saved at once
  train_prior(part, workdir)  # resumes at epoch 1
  a, b = (TrainedPrior.open(workdir, n) for n in ('full', 'part'))
  assert a.step == b.step == 3 * spe
  # checkpoints every prior.checkpoint_every epochs and at the end; the stop above saved at
  # once, in epoch 1, although the default (10) would not have
  assert checkpoint.saved_steps(folder(workdir, 'full').checkpoints) == [2 * spe, 3 * spe]
  chex.assert_trees_all_equal(a.params, b.params)
  rows = lambda n: [json.loads(line) for line in open(
      os.path.join(folder(workdir, n).path, 'metrics.jsonl'))]
  assert [r['loss'] for r in rows('full') if r['split'] == 'train'] == \
      [r['loss'] for r in rows('part') if r['split'] == 'train']


def test_a_loaded_model_samples_what_the_command_line_samples(runs, root):
  workdir = runs['vae'][0]
  prior.main(['--workdir', workdir, '--config.prior.kind=gmm', '--config.prior.name=cli',
              *COMMON, *SMALL['gmm']])
  env = {**os.environ, 'PYTHONPATH': root}
  r = subprocess.run([sys.executable, '-m', 'ae_jax.latent', 'sample', '--workdir', workdir,
                      '--member', 'beta=1', '--prior', 'cli', '--num', '6', '--seed', '5'],
                     capture_output=True, text=True, env=env, timeout=1800)  # a hang guard
  assert r.returncode == 0, r.stderr
  cli_images = np.load(os.path.join(workdir, 'latent', 'sample', 'samples.npy'))
  np.testing.assert_array_equal(cli_images, load(workdir, member='beta=1').sample(
      6, prior='cli', seed=5))


def test_a_workdir_from_before_priors_takes_one(runs, tmp_path):
  workdir = str(tmp_path / 'old')
  shutil.copytree(runs['vae'][1], workdir, ignore=shutil.ignore_patterns('priors'))
  path = os.path.join(workdir, 'config.json')
  saved = json.load(open(path))
  del saved['prior']  # as a version without priors wrote it
  json.dump(saved, open(path, 'w'))
  summary = train_prior(_prior_config(workdir, 'gaussian'), workdir)
  assert np.isfinite(summary['members'][0]['held_out']['nll'])
  assert load(workdir).sample(2, prior='gaussian').shape == (2, 8, 8, 1)


def test_mistakes_are_one_line_and_change_nothing(runs, capsys, tree_digest):
  vae, vq = runs['vae'][1], runs['vq'][1]
  before = tree_digest(vae)
  for argv, message in (
      ([vae, '--config.prior.kind=autoregressive'],
       "config.prior.kind='autoregressive' models discrete codes"),
      ([vq, '--config.prior.kind=flow'], "config.prior.kind='flow' models continuous codes"),
      ([vae, '--config.prior.kind=pixelcnn'], "config.prior.kind='pixelcnn' is not valid"),
      ([vae, '--config.model.latent_dim=3'], 'a trained workdir keeps its own model.latent_dim')):
    with pytest.raises(SystemExit) as e:
      prior.main(['--workdir', *argv, *COMMON])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and message in err and len(err.splitlines()) == 1, err
  assert tree_digest(vae) == before
  with pytest.raises(WorkdirError, match="has no prior 'nope'"):
    load(vae).sample(2, prior='nope')
  # a prior of the same name with other settings is refused, not trained over
  train_prior(_prior_config(vae, 'gmm', '--config.prior.name=g'), vae)
  with pytest.raises(WorkdirError, match='holds a prior trained with other settings'):
    train_prior(_prior_config(vae, 'gmm', '--config.prior.name=g',
                              '--config.prior.gmm.components=4'), vae)


def test_the_saved_latent_statistics_are_the_codes_own(runs):
  """latent_stats.json, written at the end of training, equals the statistics recomputed
  from the loaded model (in the sweep and in its exported member), and a flow prior
  normalizes the codes by the same numbers."""
  sweep, workdir = runs['vae']
  m = load(workdir)
  saved = m.latent_statistics()
  assert saved == codes.member_statistics(m, data.load(m.config.data))
  assert load(sweep, 'beta=1').latent_statistics() == saved
  assert load(sweep, 'beta=0.5').latent_statistics() != saved
  assert len(saved['mean']) == m.latent_shape[-1] and min(saved['std']) > 0
  summary = json.load(open(os.path.join(workdir, 'summary.json')))
  assert summary['members'][0]['latent_stats'] == saved
  train_prior(_prior_config(workdir, 'flow', '--config.prior.name=stats'), workdir)
  spec = TrainedPrior.open(workdir, 'stats').spec
  np.testing.assert_allclose(spec.stats[0]['mean'], saved['mean'], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(spec.stats[0]['std'], saved['std'], rtol=1e-5, atol=1e-7)


def test_a_second_prior_takes_the_codes_the_first_computed(runs, tmp_path, monkeypatch, capsys):
  workdir = str(tmp_path / 'vae')
  shutil.copytree(runs['vae'][1], workdir, ignore=shutil.ignore_patterns('priors'))
  encoded = []
  real = codes.codes
  monkeypatch.setattr(codes, 'codes', lambda *a, **k: encoded.append(1) or real(*a, **k))
  train_prior(_prior_config(workdir, 'gmm'), workdir)
  assert len(encoded) == 2  # the training and the test split
  broken = folder(workdir, 'broken').path  # a damaged folder, read first, is passed over
  shutil.copytree(folder(workdir, 'gmm').path, broken)
  with open(os.path.join(broken, 'codes.npz'), 'r+b') as f:
    f.truncate(100)
  train_prior(_prior_config(workdir, 'gaussian'), workdir)
  assert len(encoded) == 2 and "codes: those prior 'gmm' computed" in capsys.readouterr().out

  def saved(name):
    with np.load(os.path.join(folder(workdir, name).path, 'codes.npz')) as f:
      return {k: f[k] for k in f.files}
  chex.assert_trees_all_equal(saved('gaussian'), saved('gmm'))
  # codes of another kind (one draw of q(z|x)) or another seed are computed afresh
  for name, extra in (('drawn', '--config.prior.codes=sample'),
                      ('seed1', '--config.prior.seed=1')):
    train_prior(_prior_config(workdir, 'gaussian', f'--config.prior.name={name}', extra),
                workdir)
  assert len(encoded) == 6
  assert not np.array_equal(saved('drawn')['train'], saved('gmm')['train'])
