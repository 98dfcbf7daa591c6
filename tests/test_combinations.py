"""Combinations that cannot work are refused up front, in one line, instead of training as
something else: a PatchGAN beside FactorVAE's own critic, a batch of one for an estimate made
from pairs within the batch (at training and at evaluation), a swept weight the run never
reads, too few samples or test images for the sample-quality metrics. Each through the
command line: exit code 2, one `error:` line, nothing left behind."""
import os

import numpy as np
import pytest

from ae_jax import config_lib
from ae_jax.errors import ConfigError
from ae_jax.main import main as ae_main

PAIRS = {'tcvae': "estimates q(z) from the batch's other posteriors",
         'factorvae': 'permutes each code dimension across the batch',
         'wae_mmd': "compares every pair of the batch's codes (each code but with itself)"}
KIND = {'tcvae': 'vae', 'factorvae': 'vae', 'wae_mmd': 'ae'}


def _pairs(objective, flag, what):
  return ([f'--config.loss.objective={objective}', f'--config.model.kind={KIND[objective]}',
           flag], f'config.loss.objective={objective!r} {PAIRS[objective]}, so it needs batches '
          f'of two examples or more: {what} must be >= 2')


CASES = {
    'factorvae with a PatchGAN': (
        ['--config.loss.objective=factorvae', '--config.loss.gan_weight=0.5'],
        "config.loss.objective='factorvae' trains its own discriminator (the TC critic), so the "
        'PatchGAN of config.loss.gan_weight=0.5 cannot train beside it; set loss.gan_weight=0, '
        'or use the PatchGAN with another objective'),
    'factorvae with a swept PatchGAN': (
        ['--config.loss.objective=factorvae', '--config.sweep.gan_weight=(0.0, 0.5)'],
        "config.loss.objective='factorvae' trains its own discriminator (the TC critic), so the "
        'PatchGAN of config.sweep.gan_weight=(0.0, 0.5) cannot train beside it'),
    **{f'{o}, {name}': _pairs(o, flag, what) for o in PAIRS for name, flag, what in (
        ('batch of one', '--config.train.batch_size=1', 'config.train.batch_size=1'),
        ('swept batch of one', '--config.sweep.batch_size=(8, 1)',
         'config.sweep.batch_size=(8, 1)'),
        ('evaluation batch of one', '--config.train.eval_batch_size=1',
         'config.train.eval_batch_size=1'))},
    'tc_gamma swept under elbo': (
        ['--config.sweep.tc_gamma=(1.0, 2.0)'],
        "config.sweep.tc_gamma: loss.tc_gamma is read only with loss.objective='tcvae', not "
        "loss.objective='elbo' with model.kind='vae': its members would train the same model "
        'under different names'),
    'iwae_samples swept under elbo': (
        ['--config.sweep.iwae_samples=(1, 5)'],
        "config.sweep.iwae_samples: loss.iwae_samples is read only with loss.objective='iwae'"),
    'factor_gamma swept under tcvae': (
        ['--config.loss.objective=tcvae', '--config.sweep.factor_gamma=(1.0, 2.0)'],
        "loss.factor_gamma is read only with loss.objective='factorvae', not "
        "loss.objective='tcvae'"),
    'commitment swept on a VAE': (
        ['--config.sweep.commitment=(0.1, 0.2)'],
        "config.sweep.commitment: loss.commitment is read only with model.kind='vqvae'"),
    'beta swept on a plain AE': (
        ['--config.model.kind=ae', '--config.sweep.beta=(1.0, 4.0)'],
        "config.sweep.beta: loss.beta is read only with a model with a KL term"),
    'precision from 2 samples': (
        ["--config.eval.metrics=('psnr', 'precision')", '--config.eval.num_samples=2'],
        'config.eval.num_samples=2 is too few for the sample-quality metrics (precision and '
        'recall compare each sample with its 3rd nearest neighbour): give at least 4'),
    'fd_classifier on 3 test images': (
        ["--config.eval.metrics=('fd_classifier',)", '--config.eval.max_images=3'],
        'config.eval.max_images=3 is too few test images for the sample-quality metrics'),
}


def _refused(flags, tmp_path, capsys, tree_digest) -> str:
  workdir = tmp_path / 'runs' / 'x'
  before = tree_digest(tmp_path)
  with pytest.raises(SystemExit) as e:
    ae_main(['--config', 'vae_mlp', '--workdir', str(workdir),
             '--config.train.num_epochs=1', *flags])
  err = capsys.readouterr().err.strip()
  assert e.value.code == 2
  assert len(err.splitlines()) == 1 and err.startswith('error: ')
  assert tree_digest(tmp_path) == before and not os.path.exists(workdir)
  return err[len('error: '):]


@pytest.mark.parametrize('case', sorted(CASES))
def test_a_combination_that_cannot_work_is_one_line(case, tmp_path, capsys, tree_digest):
  flags, message = CASES[case]
  assert message in _refused(flags, tmp_path, capsys, tree_digest)


def test_what_the_rules_refuse_still_works_where_it_is_read(tiny):
  """The same weights train where the run reads them (the rules refuse no more than that)."""
  for overrides in (dict(loss__objective='tcvae', sweep__tc_gamma=(1.0, 2.0)),
                    dict(loss__objective='factorvae', loss__critic_hidden=(8,)),
                    dict(model__kind='ae', loss__objective='rae', sweep__beta=(1.0, 2.0)),
                    dict(loss__objective='wae_mmd', model__kind='ae', train__batch_size=2,
                         train__eval_batch_size=2),
                    dict(loss__gan_weight=0.5)):
    config_lib.resolve(tiny(**overrides))
  with pytest.raises(ConfigError):
    config_lib.resolve(tiny(loss__objective='factorvae', sweep__gan_weight=(0.0, 0.1)))


def _npy(tmp_path, n):
  path = tmp_path / 'images.npy'
  np.save(path, np.random.default_rng(0).integers(0, 255, (n, 8, 8, 1), dtype=np.uint8))
  return str(path)


@pytest.mark.parametrize('case', ['tcvae on one test image', 'precision on 3 test images'])
def test_a_test_split_too_small_is_refused_before_training(case, tmp_path, capsys,
                                                           tree_digest):
  """What the config alone cannot tell: refused once the data is loaded, before anything
  compiles or trains."""
  path = _npy(tmp_path, 10)
  data = ['--config.data.name=npy', f'--config.data.path={path}', '--config.data.image_size=0']
  if case.startswith('tcvae'):
    flags = ['--config.loss.objective=tcvae', '--config.data.test_fraction=0.05',
             '--config.train.batch_size=4']
    message = ("config.loss.objective='tcvae' estimates q(z) from the batch's other posteriors, "
               'so its evaluation needs two test images or more; the test split has 1: raise '
               'data.test_fraction')
  else:
    flags = ["--config.eval.metrics=('psnr', 'precision')", '--config.data.test_fraction=0.3',
             '--config.train.batch_size=4']
    message = ("the metrics ['precision'] need more than 3 test images; this run evaluates 3: "
               'raise data.test_fraction (or eval.max_images)')
  assert _refused(data + flags, tmp_path, capsys, tree_digest) == message
