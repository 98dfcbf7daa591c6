"""The test suite's own conventions (tests/conftest.py's docstring): no test file imports
another or conftest, a test that trains or spawns a process (itself or through a fixture)
is marked slow, and pytest runs in one process unless the command asks for workers."""
import ast
import functools
import glob
import os
import shlex
import tomllib

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
# calls that train, run a study or spawn a process: a fixture making one (itself or through
# a helper or another fixture) is a training fixture; a test spawning a process itself is
# slow too
TRAINS = ('train_and_evaluate', 'study_main', 'interop.main')


def _trains(call: str) -> bool:
  return any(call == k or call.endswith('.' + k) for k in TRAINS)


def _spawns(call: str) -> bool:
  return call.startswith(('subprocess.', 'multiprocessing.')) or call.endswith('Popen')


def _files():
  return sorted(glob.glob(os.path.join(TESTS, '*.py')))


@functools.lru_cache(maxsize=None)
def _tree(path):
  return ast.parse(open(path).read(), path)


def _is_fixture(node) -> bool:
  return any('fixture' in ast.unparse(d) for d in node.decorator_list)


def _is_slow(node) -> bool:
  return any(ast.unparse(d) == 'pytest.mark.slow' for d in node.decorator_list)


def _functions(tree) -> dict:
  return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _calls(name, functions, seen=None) -> set[str]:
  """What function `name` calls (`a.b` as written), and what the module-level functions it
  names call, transitively (a fixture that returns a helper runs what the helper runs)."""
  seen = set() if seen is None else seen
  if name in seen or name not in functions:
    return set()
  seen.add(name)
  node = functions[name]
  calls = {ast.unparse(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
  for used in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}:
    calls |= _calls(used, functions, seen)
  return calls


def _training_fixtures(tree, shared=frozenset()) -> set:
  """Fixtures of `tree` that train, run a study or spawn a process, or request one that
  does (`shared`: the training fixtures of conftest.py)."""
  functions = _functions(tree)
  fixtures = {name: n for name, n in functions.items() if _is_fixture(n)}
  found = set(shared)
  for _ in range(len(fixtures) + 1):  # to a fixed point: fixtures request fixtures
    for name, node in fixtures.items():
      calls = _calls(name, functions)
      if (any(_trains(c) or _spawns(c) for c in calls)
          or {a.arg for a in node.args.args} & found):
        found.add(name)
  return found


def bad_imports(paths) -> list[str]:
  """`file:line: imports NAME` for each import of conftest, a test file or tests.*."""
  bad = []
  for path in paths:
    for node in ast.walk(_tree(path)):
      names = []
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):  # a relative one too: tests/ is no package
        names = ['.' * node.level + (node.module or '')]
      for name in names:
        top = name.split('.')[0]
        if top in ('conftest', 'tests') or top.startswith('test_') or name.startswith('.'):
          bad.append(f'{os.path.basename(path)}:{node.lineno}: imports {name}')
  return bad


def unmarked(conftest, paths) -> list[str]:
  """`file:line: test (why)` for each test not marked slow that requests a training fixture
  (of its file or of `conftest`, directly or through another fixture) or spawns a process
  itself."""
  shared = _training_fixtures(_tree(conftest))
  out = []
  for path in paths:
    tree = _tree(path)
    module_slow = any(
        isinstance(n, ast.Assign) and any(getattr(t, 'id', '') == 'pytestmark' for t in n.targets)
        and 'pytest.mark.slow' in ast.unparse(n.value) for n in tree.body)
    training = _training_fixtures(tree, shared)
    for node in _functions(tree).values():
      if not node.name.startswith('test_') or module_slow or _is_slow(node):
        continue
      uses = sorted({a.arg for a in node.args.args} & training)
      spawns = sorted(c for c in _calls(node.name, {node.name: node}) if _spawns(c))
      if uses or spawns:
        out.append(f'{os.path.basename(path)}:{node.lineno}: {node.name} '
                   f'({", ".join(uses + spawns)})')
  return out


def test_no_test_file_imports_another_or_conftest():
  bad = bad_imports(_files())
  assert not bad, ('shared helpers are fixtures in tests/conftest.py; a helper one file uses '
                   f'lives in that file: {bad}')


def test_what_trains_or_spawns_a_process_is_marked_slow():
  conftest = os.path.join(TESTS, 'conftest.py')
  shared = _training_fixtures(_tree(conftest))
  assert {'wafer_runs', 'smoke_study'} <= shared and 'tiny' not in shared  # it sees them
  found = unmarked(conftest, [p for p in _files() if p != conftest])
  assert not found, f'mark these @pytest.mark.slow: {found}'


def test_pytest_runs_in_one_process_unless_the_command_asks_for_workers():
  options = tomllib.load(open(os.path.join(TESTS, os.pardir, 'pyproject.toml'), 'rb'))[
      'tool']['pytest']['ini_options']
  addopts = shlex.split(options.get('addopts', ''))
  assert not [a for a in addopts if a.startswith(('-n', '--numprocesses', '--dist'))], addopts
  assert any(m.startswith('slow:') for m in options['markers'])


@pytest.mark.parametrize('text,found', [
    ('from conftest import ROOT\n', 'test_x.py:1: imports conftest'),
    ('def f():\n  from tests.test_studies import _run\n',
     'test_x.py:2: imports tests.test_studies'),
    ('import test_data as d\n', 'test_x.py:1: imports test_data'),
    ('from . import helpers\n', 'test_x.py:1: imports .'),
])
def test_the_import_check_sees_each_form(tmp_path, text, found):
  (tmp_path / 'test_x.py').write_text(text)
  assert bad_imports([str(tmp_path / 'test_x.py')]) == [found]
  (tmp_path / 'test_y.py').write_text('import os\nfrom ae_jax import data\n')
  assert bad_imports([str(tmp_path / 'test_y.py')]) == []


def test_the_slow_check_sees_a_fixture_that_trains_through_a_helper_or_another_fixture(
    tmp_path):
  (tmp_path / 'conftest.py').write_text(
      'import pytest\n\ndef _train(c):\n  return train_and_evaluate(c, "w")\n\n'
      '@pytest.fixture\ndef runs():\n  return _train(1)\n')
  (tmp_path / 'test_x.py').write_text(
      'import pytest\n\n@pytest.fixture\ndef copy(runs):\n  return runs\n\n'
      'def test_a(copy):\n  assert copy\n\n'
      '@pytest.mark.slow\ndef test_b(copy):\n  assert copy\n\n'
      'def test_c(tmp_path):\n  assert subprocess.run(["true"]).returncode == 0\n\n'
      'def test_d(tmp_path):\n  assert tmp_path\n')
  assert unmarked(str(tmp_path / 'conftest.py'), [str(tmp_path / 'test_x.py')]) == [
      'test_x.py:7: test_a (copy)', 'test_x.py:14: test_c (subprocess.run)']
