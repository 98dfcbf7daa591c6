"""The package as a user installs it: the import graph has no cycles and no path edits, the
generated reference pages are current, the console scripts answer, and evaluate takes
free-key overrides on a trained workdir."""
import ast
import json
import os
import re
import subprocess
import sys

import pytest

from ae_jax import docs


def _import_graph(root):
  """{module: modules of ae_jax it imports (at module level or inside functions)}."""
  mods = {}
  for folder, _, files in os.walk(os.path.join(root, 'ae_jax')):
    for f in files:
      if f.endswith('.py'):
        name = os.path.relpath(os.path.join(folder, f), root)[:-3].replace(os.sep, '.')
        mods[name.removesuffix('.__init__')] = os.path.join(folder, f)
  graph = {}
  for name, path in mods.items():
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
      if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('ae_jax'):
        for alias in node.names:
          full = f'{node.module}.{alias.name}'
          found.add(full if full in mods else node.module)
      elif isinstance(node, ast.Import):
        found |= {a.name for a in node.names if a.name.startswith('ae_jax')}
    graph[name] = {m for m in found if m in mods and m != name}
  return graph


def test_no_import_cycles_in_the_package(root):
  graph = _import_graph(root)
  assert 'ae_jax.config_lib' in graph and 'ae_jax.sweep' in graph['ae_jax.config_lib']
  cycles = []

  def visit(start, node, path):
    for nxt in graph[node]:
      if nxt == start:
        cycles.append(' -> '.join(path + [start]))
      elif nxt not in path and len(path) < 6:
        visit(start, nxt, path + [nxt])

  for module in graph:
    visit(module, module, [module])
  assert not cycles, cycles[:5]
  # the layers the design names: data never imports models
  assert not any(m.startswith('ae_jax.models') for m in graph['ae_jax.data'])


def test_no_import_path_edits_in_the_package_tests_or_experiments(root):
  hits = []
  for top in ('ae_jax', 'tests', 'experiments'):
    for folder, _, files in os.walk(os.path.join(root, top)):
      for f in files:
        if f.endswith('.py'):
          text = open(os.path.join(folder, f)).read()
          hits += [f for line in text.splitlines() if re.search(r'\bsys\.path\b', line)
                   and 'sys\\.path' not in line]
  assert not hits, hits


def test_the_generated_reference_pages_are_current(root):
  bad = docs.stale(os.path.join(root, 'docs'))
  assert not bad, f'{bad} are stale: regenerate with python -m ae_jax.docs'


def test_the_staleness_check_sees_an_edited_page(tmp_path):
  assert docs.stale(str(tmp_path))  # nothing written yet: the pages and study pages missing
  docs.write(str(tmp_path))
  assert docs.stale(str(tmp_path)) == []
  page = tmp_path / 'configs.md'
  edited = page.read_text().replace('`train.batch_size` | `64`', '`train.batch_size` | `32`')
  page.write_text(edited)
  assert docs.stale(str(tmp_path)) == [str(page)]
  # a generated block inside a hand-written page
  mixed = tmp_path / 'models.md'
  mixed.write_text('intro\n<!-- generated:presets -->\nold table\n<!-- /generated:presets -->\n'
                   'outro\n')
  assert str(mixed) in docs.stale(str(tmp_path))
  mixed.write_text(docs.fill_blocks(mixed.read_text()))
  assert str(mixed) not in docs.stale(str(tmp_path))
  assert '| `kl_f8` | vae | 4 channels |' in mixed.read_text()
  assert mixed.read_text().startswith('intro\n') and mixed.read_text().endswith('outro\n')


def test_a_new_study_gets_its_page_and_its_command_block(tmp_path, monkeypatch):
  import types
  fake = types.SimpleNamespace(__doc__='A new study (report 009): what it shows.\n\n'
                               '  python -m ae_jax.studies new_one --workdir runs/new [--quick]\n\n'
                               'Budgets (declared in MODELS; quick keeps each experiment, smoke '
                               'does not):\n\n  m: photos 32x32x3, mlp AE, 8 latents\n'
                               '    full: train.num_epochs=3\n')
  monkeypatch.setattr(docs, '_studies', lambda: ('new_one',))
  monkeypatch.setattr(docs, '_study_module', lambda name: fake)
  page = tmp_path / 'studies' / 'new_one.md'
  assert str(page) in docs.stale(str(tmp_path))
  docs.write(str(tmp_path))
  text = page.read_text()
  assert text.startswith('# Study: new_one\n') and docs.stale(str(tmp_path)) == []
  assert docs.STUDY_CHECK + '\n```bash\npython -m ae_jax.studies new_one --workdir runs/new\n```' \
      in text
  assert '```text\nm: photos 32x32x3, mlp AE, 8 latents\n  full: train.num_epochs=3\n```' in text
  page.write_text(text + '\nResults, by hand.\n')  # hand-written text outside the block stays
  fake.__doc__ = fake.__doc__.replace('report 009', 'report 010')
  assert docs.stale(str(tmp_path)) == [str(page)]
  docs.write(str(tmp_path))
  assert 'report 010' in page.read_text() and page.read_text().endswith('Results, by hand.\n')
  assert '| `new_one` | A new study (report 010): what it shows.' in (
      docs.fill_blocks('<!-- generated:studies -->\n<!-- /generated:studies -->', str(tmp_path)))


def test_a_studys_results_block_shows_the_tables_of_its_committed_results(tmp_path):
  """A report's tables go to its results.json; docs/studies/NAME.results.json, copied from
  a run, fills the page's results block with them (and without it the block says how to
  make one)."""
  from ae_jax.studies.report import Report
  block = '<!-- generated:study_results:one -->\n<!-- /generated:study_results:one -->\n'
  assert 'no committed results yet' in docs.fill_blocks(block, str(tmp_path))
  rep = Report('One')
  rep.table('Digits', ['model', 'PSNR (↑)'], [['vae', 20.123], ['ae', 'n/a']], note='a note')
  (tmp_path / 'studies').mkdir()
  with open(tmp_path / 'studies' / 'one.results.json', 'w') as f:
    json.dump({**rep.results(), 'budget': 'quick', 'banner': 'quick: fewer epochs'}, f)
  text = docs.fill_blocks(block, str(tmp_path))
  assert ('### Digits\n\n| model | PSNR (↑) |\n|---|---|\n| vae | 20.12 |\n| ae | n/a |\n\n'
          'a note') in text
  assert 'the quick budget (quick: fewer epochs)' in text
  # a results.json from before the tables were kept: its metrics rows, in registry order
  from ae_jax.metrics import registry
  rows = [{'key': 'a', 'table': 'T', 'metrics': {'ssim': 0.5, 'psnr': 20.0},
           'extra': {'step s': 0.1}}, {'key': 'b', 'table': 'T', 'metrics': {'psnr': 21.0},
                                       'extra': {'step s': 0.2}}]
  with open(tmp_path / 'studies' / 'two.results.json', 'w') as f:
    json.dump({'budget': 'full', 'models': rows}, f)
  text = docs.fill_blocks(block.replace(':one', ':two'), str(tmp_path))
  psnr, ssim = registry.get('psnr'), registry.get('ssim')
  assert (f'| model | step s | {psnr.label} | {ssim.label} |\n|---|---|---|---|\n'
          f'| a | 0.1 | {psnr.format(20.0)} | {ssim.format(0.5)} |\n'
          f'| b | 0.2 | {psnr.format(21.0)} |  |') in text


def test_the_prior_draws_block_shows_each_samplers_draws(tmp_path):
  block = '<!-- generated:prior_draws:d -->\n<!-- /generated:prior_draws:d -->\n'
  assert 'no committed draws yet' in docs.fill_blocks(block, str(tmp_path))
  (tmp_path / 'studies').mkdir()
  rows = [{'model': 'digits/ae', 'sampler': 'ceiling', 'kind': None, 'num_samples': 350,
           'fd_per_draw': [6.0, 7.0], 'mean': 6.5, 'std': 0.5},
          {'model': 'digits/ae', 'sampler': 'gmm', 'kind': 'gmm', 'num_samples': 350,
           'fd_per_draw': [5.735, 7.753], 'mean': 6.744, 'std': 1.009}]
  with open(tmp_path / 'studies' / 'd.json', 'w') as f:
    json.dump([{'command': 'python experiments/prior_draws.py --draws 2', 'rows': rows}], f)
  text = docs.fill_blocks(block, str(tmp_path))
  assert ('### digits/ae: 350 samples a draw\n\n`python experiments/prior_draws.py --draws 2`'
          '\n\n| sampler | kind | FD mean | FD std | FD of each draw |\n|---|---|---|---|---|\n'
          '| ceiling |  | 6.50 | 0.50 | 6.00, 7.00 |\n| gmm | gmm | 6.74 | 1.01 | 5.74, 7.75 |'
          ) in text


@pytest.fixture
def run_in(hang_s, checkout_env):
  """run_in(args, cwd) -> the finished command, importing the checkout's ae_jax."""
  def run(args, cwd):
    return subprocess.run(args, cwd=cwd, env=checkout_env(JAX_PLATFORMS='cpu'),
                          capture_output=True, text=True, timeout=hang_s)
  return run


@pytest.mark.slow
def test_the_console_script_lists_its_commands_and_each_shows_an_example(tmp_path, run_in):
  script = os.path.join(os.path.dirname(sys.executable), 'ae-jax')
  r = run_in([script, '--help'], cwd=str(tmp_path))
  assert r.returncode == 0
  for command in ('train', 'evaluate', 'latent', 'study', 'export', 'import-torch', 'bench'):
    assert f'  {command} ' in r.stdout
    h = run_in([script, command, '--help'], cwd=str(tmp_path))
    assert h.returncode == 0 and f'example:\n  ae-jax {command} ' in h.stdout, h.stderr
  r = run_in([script, 'trian'], cwd=str(tmp_path))
  assert r.returncode == 2 and "ae-jax: unknown command 'trian'" in r.stderr


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny):
  from ae_jax.train import train_and_evaluate
  workdir = str(tmp_path_factory.mktemp('trained') / 'w')
  train_and_evaluate(tiny(data__image_size=8, train__num_epochs=1), workdir)
  return workdir


@pytest.mark.slow
def test_evaluate_takes_free_overrides_of_the_workdirs_own_config(trained, tmp_path, root,
                                                                   run_in):
  script = os.path.join(os.path.dirname(sys.executable), 'ae-jax')
  r = run_in([script, 'evaluate', '--workdir', trained, '--metrics', 'nll_iwae',
            '--config.eval.iwae_samples=3', '--config.eval.iwae_chunk=3',
            '--config.eval.max_images=20'], cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr[-2000:]
  assert '| NLL (IWAE) |' in r.stdout
  out = json.load(open(os.path.join(trained, 'eval.json')))
  assert set(out['members'][0]['eval']) == {'nll_iwae'}
  # the same through python -m ae_jax.main, and a model key is refused in one line
  r = run_in([sys.executable, '-m', 'ae_jax.main', '--mode=evaluate', '--workdir', trained,
            '--config.model.latent_dim=3'], root)
  assert r.returncode == 2 and r.stderr.count('\n') == 1
  assert r.stderr.startswith('error: --config.model.latent_dim: a trained workdir keeps its '
                             'own model.latent_dim')
