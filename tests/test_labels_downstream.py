"""Everything after training accepts what training accepted: every latent tool and study
that touches labels runs on string, float and gappy (negative, non-contiguous) integer
labels of a tiny .npy dataset and writes the user's own label values; and what would fail
only after training (a metric whose data is missing) is refused before it starts."""
import os

import numpy as np
import pytest

from ae_jax.main import main as ae_main

KINDS = {  # kind -> (label values, class names)
    'string': (np.array(['cat', 'dog', 'eel'], '<U3'), ('cat', 'dog', 'eel')),
    'float': (np.array([-0.5, 1.0, 2.25], np.float32), ('-0.5', '1', '2.25')),
    'gappy': (np.array([-3, 7, 40], np.int64), ('-3', '7', '40')),
}


def _dataset(root, kind, n=60):
  values, _ = KINDS[kind]
  rng = np.random.default_rng(0)
  which = np.arange(n) % len(values)  # class i is brighter, so classes differ in pixels
  images = rng.integers(0, 40, (n, 8, 8, 1)) + 60 * which[:, None, None, None]
  path = os.path.join(root, f'{kind}.npz')
  np.savez(path, images=images.astype(np.uint8), labels=values[which])
  return path, which


@pytest.fixture(scope='module')
def runs(tmp_path_factory, tiny):
  """kind -> (workdir, data path, class of each image): a tiny VAE per label kind."""
  from ae_jax.train import train_and_evaluate
  root = tmp_path_factory.mktemp('labels')
  out = {}
  for kind in KINDS:
    path, which = _dataset(str(root), kind)
    workdir = str(root / kind)
    train_and_evaluate(tiny(data__name='npy', data__path=path, train__num_epochs=1,
                            train__batch_size=16), workdir)
    out[kind] = (workdir, path, which)
  return out


TOOLS = {  # tool -> (flags, what its outputs must hold: a check of (folder, values, which))
    'reconstruct': (['--ids', '0,1,2'], lambda d, v, w: os.path.getsize(d / 'reconstruct.png')),
    'interpolate': (['--ids', '0,1', '--steps', '3'],
                    lambda d, v, w: os.path.getsize(d / 'interpolate.png')),
    'edit': (['--ids', '0,1', '--edits', '0*2'], lambda d, v, w: os.path.getsize(d / 'edit.png')),
    'traverse': (['--ids', '2', '--points', '3'],
                 lambda d, v, w: os.path.getsize(d / 'traverse.png')),
    'generate': (['--ids', '0,1,2', '--per-id', '2'],
                 lambda d, v, w: np.testing.assert_array_equal(
                     np.load(d / 'gen_label.npy'), np.repeat(v[w[[0, 1, 2]]], 2))),
    'generate --per-class': (['--per-class', '2', '--per-id', '1'],
                             lambda d, v, w: np.testing.assert_array_equal(
                                 np.sort(np.load(d / 'gen_label.npy')), np.repeat(v, 2))),
    'encode': ([], lambda d, v, w: np.testing.assert_array_equal(
        np.load(d / 'codes.npz')['labels'], v[w[np.load(d / 'codes.npz')['ids']]])),
}


@pytest.mark.slow
@pytest.mark.parametrize('tool', sorted(TOOLS))
@pytest.mark.parametrize('kind', sorted(KINDS))
def test_every_latent_tool_takes_every_label_kind(runs, kind, tool, tmp_path, capsys):
  from ae_jax.latent.__main__ import main as latent_main
  workdir, _, which = runs[kind]
  values, _ = KINDS[kind]
  flags, check = TOOLS[tool]
  name = tool.split()[0]
  latent_main([name, '--workdir', workdir, '--out', str(tmp_path / 'o'), *flags])
  out = capsys.readouterr().out
  assert 'wrote ' in out
  check(tmp_path / 'o', values, which)
  if 'gen_label.npy' in os.listdir(tmp_path / 'o'):
    assert np.load(tmp_path / 'o' / 'gen_label.npy').dtype == values.dtype


@pytest.mark.slow
@pytest.mark.parametrize('kind', sorted(KINDS))
def test_latent_noise_generation_takes_every_label_kind(kind, tmp_path, capsys, smoke_study):
  """The study that once died in np.bincount on string labels after its model trained."""
  path, _ = _dataset(str(tmp_path), kind, n=200)  # the smoke budget's batch is 64
  md = smoke_study('latent_noise_generation', tmp_path / 'study', '--config.data.name=npy',
                   f'--config.data.path={path}', '--config.data.image_size=0',
                   '--config.data.channels=0')
  values, names = KINDS[kind]
  gen = np.load(tmp_path / 'study' / 'latent' / 'generate' / 'gen_label.npy')
  assert gen.dtype == values.dtype and set(gen.tolist()) <= set(values.tolist())
  row = next(line for line in md.splitlines() if line.startswith('| gen_label.npy'))
  counted = [n for n in names if f'{n}: ' in row]
  assert counted and sum(int(row.split(f'{n}: ')[1].split(',')[0].split(' ')[0])
                         for n in counted) == len(gen)
  assert 'off-wafer' not in md  # the generated images are described as stored


def test_label_counts_use_class_indices_not_values():
  from ae_jax.studies.latent_noise_generation import label_counts
  assert label_counts([0, 2, 2, -1], ('cat', 'dog', 'eel')) == 'cat: 1, eel: 2, unlabelled: 1'
  assert label_counts([], ()) == '-'


CASES = {  # what used to fail at the final evaluation, after training
    'mig without factors': (["--config.eval.metrics=('psnr', 'mig')"],
                            "metric 'mig' needs ground-truth factors: data.name='dsprites' "
                            "(not 'npy'); leave it out of eval.metrics"),
    'fd_classifier without a classifier': (
        ["--config.eval.metrics=('psnr', 'fd_classifier')"],
        "sample-quality metrics have classifiers for data.name in ['digits', 'fashion_mnist', "
        "'mnist', 'wafer'], not 'npy'"),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_a_metric_without_its_data_is_refused_before_training(case, tmp_path, capsys,
                                                              tree_digest):
  path, _ = _dataset(str(tmp_path), 'string')
  flags, message = CASES[case]
  before = tree_digest(tmp_path)
  with pytest.raises(SystemExit) as e:
    ae_main(['--config', 'vae_mlp', '--workdir', str(tmp_path / 'w'), '--config.data.name=npy',
             f'--config.data.path={path}', '--config.data.image_size=0',
             '--config.train.num_epochs=1', '--config.train.batch_size=16', *flags])
  err = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 2 and err == [f'error: {message}']
  assert tree_digest(tmp_path) == before
