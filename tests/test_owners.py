"""A command replaces only its own previous output: an --out (or a --workdir) naming what
another command owns is refused in one line naming the owner, before any work, and no
command moves or deletes what it is about to read. Every command with an output path:
evaluate, the latent tools, export, the import of PyTorch weights, studies, training, the
benchmark's --record."""
import json
import os
import shutil

import pytest

from ae_jax import bench, config_lib, interop
from ae_jax.errors import WorkdirError
from ae_jax.export import main as export_main
from ae_jax.latent.__main__ import main as latent_main
from ae_jax.main import main as ae_main
from ae_jax.studies import Study
from ae_jax.studies.__main__ import main as study_main
from ae_jax.workdir import owner

TINY = ['--config', 'vae_mlp', '--config.data.name=digits', '--config.model.hidden=(16,)',
        '--config.model.latent_dim=4', '--config.train.num_epochs=1', '--config.progress=False',
        '--config.figures.enabled=False', "--config.eval.metrics=('loss', 'psnr')"]


@pytest.fixture(scope='module')
def made(tmp_path_factory):
  """Folders of every owner: two trained workdirs (one a sweep), a study's, a latent
  tool's outputs (fit: a fitted density), an evaluation's --out, an export."""
  root = tmp_path_factory.mktemp('owners')
  paths = {k: str(root / k) for k in ('run', 'other', 'sweep', 'study', 'fit', 'eval',
                                      'export')}
  ae_main([*TINY, '--workdir', paths['run']])
  ae_main([*TINY, '--workdir', paths['other'], '--config.train.seed=1'])
  ae_main([*TINY, '--workdir', paths['sweep'], '--config.sweep.beta=(1.0, 2.0)'])
  latent_main(['fit', '--workdir', paths['run'], '--out', paths['fit']])
  ae_main(['--mode=evaluate', '--workdir', paths['run'], '--metrics=psnr', '--out',
           paths['eval']])
  export_main(['--workdir', paths['sweep'], '--member', 'beta=2', '--out', paths['export']])
  Study('latent_noise_generation', paths['study'], budget='smoke')
  return paths


def test_whose_a_folder_is(tmp_path):
  assert owner(str(tmp_path / 'new')) is None
  (tmp_path / 'empty' / 'figures').mkdir(parents=True)
  (tmp_path / 'empty' / '.lock').write_text('')
  assert owner(str(tmp_path / 'empty')) is None  # what a start that went no further leaves
  for name, files, kind in (('run', {'config.json': '{}'}, 'run'),
                            ('crashed', {'crash.log': 'x'}, 'run'),
                            ('study', {'study.json': '{}', 'report.md': ''}, 'study'),
                            ('tool', {'.outputs.json': '{"tool": "fit"}'}, 'tool'),
                            ('export', {'.outputs.json': '{"tool": "export"}'}, 'export'),
                            ('evaluated', {'eval.json': '{}'}, 'tool'),
                            ('mine', {'notes.txt': 'x'}, 'files')):
    (tmp_path / name).mkdir()
    for f, text in files.items():
      (tmp_path / name / f).write_text(text)
    assert owner(str(tmp_path / name)).kind == kind, name


def _cases(p):
  """name -> (command line, the line it must print, or None: it must succeed)."""
  ev = ['--mode=evaluate', '--workdir', p['run'], '--metrics=psnr', '--out']
  enc = ['encode', '--workdir', p['run'], '--out']
  exp = ['--workdir', p['sweep'], '--member', 'beta=1', '--replace', '--out']
  return {
      'evaluate --out another workdir': (
          ae_main, ev + [p['other']], f'--out {p["other"]} holds a trained workdir; give a new '
          'or empty folder (`--mode=evaluate --out` replaces only its own previous outputs, as '
          'a whole)'),
      "evaluate --out a tool's outputs": (
          ae_main, ev + [p['fit']], f"--out {p['fit']} holds `latent fit`'s outputs"),
      'evaluate --out a study': (ae_main, ev + [p['study']], "holds a study's folder"),
      'evaluate --out a folder holding the workdir': (
          ae_main, ev + [os.path.dirname(p['run'])],
          f'--out {os.path.dirname(p["run"])} holds {p["run"]}, which this command reads'),
      'evaluate --out its own previous output': (ae_main, ev + [p['eval']], None),
      'evaluate --out the workdir itself': (ae_main, ev + [p['run']], None),
      "latent encode --out another tool's outputs": (
          latent_main, enc + [p['fit']], f"--out {p['fit']} holds `latent fit`'s outputs; give "
          'a new or empty folder (`latent encode` replaces only its own previous outputs, as a '
          'whole)'),
      'latent sample --out the folder of the density it reads': (
          latent_main, ['sample', '--workdir', p['other'], '--fitted',
                        os.path.join(p['fit'], 'density.npz'), '--out', p['fit']],
          f'--out {p["fit"]} holds {os.path.join(p["fit"], "density.npz")}, which this command '
          'reads'),
      'latent encode --out the workdir': (
          latent_main, enc + [p['run']], f'--out {p["run"]} is {p["run"]}, which this command '
          'reads'),
      'latent encode --out another workdir': (
          latent_main, enc + [p['other']], f'--out {p["other"]} holds a trained workdir'),
      'latent encode --out an export': (latent_main, enc + [p['export']],
                                        'holds an exported workdir'),
      'latent encode --out an evaluation': (latent_main, enc + [p['eval']],
                                            "holds `--mode=evaluate --out`'s outputs"),
      'export --out the source': (
          export_main, exp + [p['sweep']], f'--out {p["sweep"]} is {p["sweep"]}, which this '
          'command reads; give another folder'),
      'export --out a folder holding the source': (
          export_main, exp + [os.path.dirname(p['sweep'])], 'which this command reads'),
      'export --out inside the source': (
          export_main, exp + [os.path.join(p['sweep'], 'x')], 'is inside the source workdir'),
      'export --replace a trained workdir': (
          export_main, exp + [p['other']], f'--out {p["other"]} holds a trained workdir; export '
          'writes only into a new or empty folder, or replaces a previous export (--replace)'),
      'export --replace a study': (export_main, exp + [p['study']], "holds a study's folder"),
      'export --out a previous export, without --replace': (
          export_main, exp[:-2] + ['--out', p['export']], f'--out {p["export"]} holds an '
          'exported workdir; choose another folder, or pass --replace'),
      'study --workdir a trained workdir': (
          study_main, ['latent_noise_generation', '--smoke', '--workdir', p['other']],
          f'--workdir {p["other"]} holds a trained workdir; a study writes only into a new or '
          "empty folder or a study's; use another --workdir"),
      "study --fresh on a tool's outputs": (
          study_main, ['latent_noise_generation', '--smoke', '--fresh', '--workdir', p['fit']],
          "holds `latent fit`'s outputs"),
      'train --workdir a study': (
          ae_main, [*TINY, '--workdir', p['study']], f'--workdir {p["study"]} holds a study\'s '
          'folder; a run trains only in a new or empty folder or a trained workdir; use another '
          '--workdir'),
      "train --workdir a tool's outputs": (ae_main, [*TINY, '--workdir', p['fit']],
                                           "holds `latent fit`'s outputs"),
      'train --fresh on an evaluation': (
          ae_main, [*TINY, '--fresh', '--workdir', p['eval']],
          '(--fresh moves aside only a previous run)'),
      'bench --record a file of another kind': (
          bench.main, ['--config', 'vae_mlp', '--steps', '1', '--record',
                       os.path.join(p['run'], 'summary.json')],
          f'--record {os.path.join(p["run"], "summary.json")} exists and is not a benchmark '
          'file (no title, date, command, results); a benchmark replaces only an earlier '
          'benchmark file: give a new file'),
  }


CASE_NAMES = sorted(_cases({k: k for k in ('run', 'other', 'sweep', 'study', 'fit', 'eval',
                                           'export')}))


@pytest.mark.slow
@pytest.mark.parametrize('case', CASE_NAMES)
def test_a_command_replaces_only_its_own_output(made, case, tmp_path, capsys, tree_digest):
  paths = {k: str(tmp_path / k) for k in made}
  for k, v in made.items():
    shutil.copytree(v, paths[k], symlinks=True)
  main, argv, message = _cases(paths)[case]
  before = tree_digest(tmp_path)
  try:
    main(argv)
    code = 0
  except SystemExit as e:
    code = e.code
  err = capsys.readouterr().err.strip().splitlines()
  if message is None:
    assert code == 0, err
    return
  assert code == 2 and len(err) == 1 and err[0].startswith('error: '), err
  assert message in err[0], err[0]
  assert tree_digest(tmp_path) == before  # nothing moved, replaced or left behind


@pytest.mark.slow
def test_an_import_refuses_another_commands_folder(made, tmp_path, tree_digest):
  config = config_lib.load('vae_mlp', ['--config.data.image_size=8', '--config.data.channels=1'])
  for name in ('study', 'fit', 'eval'):
    before = tree_digest(made[name])
    with pytest.raises(WorkdirError, match=f'--workdir {made[name]} holds '):
      interop.import_to_workdir({}, config, made[name], fresh=name == 'eval')
    assert tree_digest(made[name]) == before


def test_a_benchmark_file_replaces_only_a_benchmark_file(tmp_path):
  path = str(tmp_path / 'b.json')
  rec = bench.record([{'step_ms': 1.0}], 'python -m ae_jax.bench', 'a title')
  bench.write_record(rec, path)
  bench.write_record({**rec, 'title': 'again'}, path)  # an earlier benchmark file: replaced
  assert json.load(open(path))['title'] == 'again'
  (tmp_path / 'notes.json').write_text('{"mine": 1}')
  with pytest.raises(WorkdirError, match='is not a benchmark file'):
    bench.write_record(rec, str(tmp_path / 'notes.json'))
  assert json.load(open(tmp_path / 'notes.json')) == {'mine': 1}
