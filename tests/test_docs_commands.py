"""Every ```bash block of README.md, docs/*.md and docs/studies/*.md is run, checked, or
marked as not run, by an HTML comment on the line before it (blank lines may lie between):

  <!-- run -->              run for real, as written
  <!-- run: ARGS -->        run for real with ARGS appended to each command that trains
                            (`python -m ae_jax.main` without --mode=evaluate, `python -m
                            ae_jax.studies`, `ae-jax train|study`): the tiny budget, such as
                            `--config.train.num_epochs=1 --config.data.num_examples=300`, or
                            `--smoke` for a study
  <!-- check: REASON -->    checked, not run (REASON says why not): each command is parsed
                            by its own argument parser; a training command's config is then
                            loaded with its overrides, validated and resolved (everything
                            `python -m ae_jax.main` does before it loads data); a study's
                            models are built at the budget asked, with the overrides; a
                            command with --config and overrides (bench) loads that config; a
                            shell script must exist and parse (`bash -n`)
  <!-- not run: REASON -->  shown only
  <!-- output -->           before a plain ``` block following a run block: what that block
                            prints. Every line but `...` must appear, in order, in what the
                            run printed; any number stands for any number, runs of spaces
                            for one.

A block with none of the first four fails, and so does a run block whose command exits
non-zero, unless the next command shows the exit code (`echo "exit code $?"`).

Commands run in-process (runpy, as `python -m` runs them), one after another, in one scratch
folder shared by every block: `configs/`, `experiments/` and `scripts/` link to this
checkout's, and `runs/vae_beta` is the README's first run block (the default run at its tiny
budget), run once before any block that names it. A block first runs the run blocks before
it on its page, so it sees what they trained. `pip install` is checked, never run (this
checkout is the package): every extra it names must exist in pyproject.toml. Other
programs: `echo`, `ls`, `rm`, `mkdir`, `cat` run as they are; anything else must be marked
`not run`.
"""
import argparse
import contextlib
import glob
import io
import logging
import os
import re
import runpy
import shlex
import subprocess
import sys
import tomllib

import pytest

# runpy runs `python -m ae_jax.main` as __main__ after the tests imported ae_jax.main itself
pytestmark = pytest.mark.filterwarnings('ignore:.*found in sys.modules:RuntimeWarning')

MARKER = re.compile(r'<!--\s*(run|check|not run|output)\s*(?::\s*(.*?))?\s*-->\s*$', re.S)
NUMBER = r'[-+]?(?:\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?|nan|inf)'
SHELL = ('echo', 'ls', 'rm', 'mkdir', 'cat')
LINKED = ('configs', 'experiments', 'scripts')
DEFAULT_RUN = 'runs/vae_beta'
# the checkout, here at import time: its pages' blocks parametrize test_doc_block
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pages() -> list[str]:
  docs = sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md')))
  studies = sorted(glob.glob(os.path.join(ROOT, 'docs', 'studies', '*.md')))
  return [os.path.join(ROOT, 'README.md')] + docs + studies


class Block:
  """A ```bash block: its page, line, marker (mode, argument), text and expected output."""

  def __init__(self, page, line, mode, arg, text, output=None):
    self.page, self.line, self.mode, self.arg, self.text = page, line, mode, arg, text
    self.output = output

  @property
  def id(self) -> str:
    return f'{os.path.relpath(self.page, ROOT)}:{self.line}'


def blocks_of(page: str) -> list[Block]:
  """The page's ```bash blocks with their markers; an `<!-- output -->` block is attached to
  the bash block before it."""
  lines = open(page).read().splitlines()
  out, marker, i = [], None, 0
  while i < len(lines):
    line = lines[i]
    m = MARKER.match(line.strip())
    if m:
      marker = (m.group(1), (m.group(2) or '').strip())
    elif line.startswith('```'):
      lang, start = line[3:].strip(), i
      i += 1
      body = []
      while i < len(lines) and not lines[i].startswith('```'):
        body.append(lines[i])
        i += 1
      text = '\n'.join(body)
      if lang == 'bash':
        mode, arg = marker or (None, '')
        out.append(Block(page, start + 1, mode, arg, text))
      elif marker and marker[0] == 'output':
        assert out and out[-1].mode == 'run', (
            f'{page}:{start + 1}: an <!-- output --> block must follow a run block')
        out[-1].output = text
      marker = None
    elif line.strip():
      marker = None if not line.strip().startswith('<!--') else marker
    i += 1
  return out


ALL = [b for p in pages() for b in blocks_of(p)]


# ---- parsing a block into commands ------------------------------------------------------

def commands(text: str) -> list[list[str]]:
  """The block's commands as argv lists: `\\` continuations joined, comments dropped, lines
  split at `&&` and `;`. A pipe or `&` is not supported: such a block is `not run`."""
  out = []
  for line in re.sub(r'\\\n', ' ', text).splitlines():
    lex = shlex.shlex(line, posix=True, punctuation_chars=';&|')
    lex.whitespace_split = True
    argv = []
    for token in lex:
      if token in ('&&', ';'):
        if argv:
          out.append(argv)
        argv = []
      elif token in ('&', '|', '||', '>', '<'):
        raise ValueError(f'{token!r} in {line!r}: not supported here; mark the block '
                         '<!-- not run: ... -->')
      else:
        argv.append(token)
    if argv:
      out.append(argv)
  return out


def strip_env(argv):
  """(`VAR=value` assignments before the program, the rest)."""
  env = {}
  while argv and re.match(r'^[A-Z_][A-Z0-9_]*=', argv[0]):
    k, _, v = argv[0].partition('=')
    env[k] = v
    argv = argv[1:]
  return env, argv


def trains(argv) -> bool:
  """Whether a command trains (the one a run marker's ARGS go to)."""
  _, argv = strip_env(argv)
  if argv[:3] == ['python', '-m', 'ae_jax.main']:
    return not any(a.startswith('--mode') and 'evaluate' in a for a in argv)
  return argv[:3] == ['python', '-m', 'ae_jax.studies'] or argv[:2] in (
      ['ae-jax', 'train'], ['ae-jax', 'study'])


def check_pip(argv):
  """`pip install` of this package (a path or the name ae_jax) with extras that exist."""
  extras = set(tomllib.load(open(os.path.join(ROOT, 'pyproject.toml'), 'rb'))['project'][
      'optional-dependencies'])
  targets = [a for a in argv[2:] if not a.startswith('-')]
  assert argv[:2] == ['pip', 'install'] and targets, argv
  for t in targets:
    m = re.fullmatch(r"(\.|ae_jax)(?:\[([\w,]+)\])?", t)
    assert m, (f'pip install {t}: a block that is run or checked installs only this package '
               '(. or ae_jax, with extras); mark it not run')
    for extra in (m.group(2) or '').split(','):
      assert not extra or extra in extras, f'pip install {t}: no extra {extra!r} ({extras})'


# ---- running commands in-process -------------------------------------------------------

class _Parsed(Exception):
  def __init__(self, namespace):
    self.namespace = namespace


@contextlib.contextmanager
def _stop_after_parsing():
  """ArgumentParser.parse_args raises _Parsed with its result: the command's flags are
  checked and nothing after them runs. (`ae-jax` dispatches before its command's parser.)"""
  original = argparse.ArgumentParser.parse_args

  def parse_args(self, args=None, namespace=None):
    raise _Parsed(original(self, args, namespace))
  argparse.ArgumentParser.parse_args = parse_args
  try:
    yield
  finally:
    argparse.ArgumentParser.parse_args = original


def _exit_code(e: SystemExit) -> int:
  if e.code is None:
    return 0
  if isinstance(e.code, int):
    return e.code
  print(e.code, file=sys.stderr)
  return 1


def _target(argv):
  """(kind, what, args) of a python/ae-jax command."""
  if argv[:2] == ['python', '-m']:
    return 'module', argv[2], argv[3:]
  if argv[0] == 'python' and argv[1].endswith('.py'):
    return 'script', argv[1], argv[2:]
  if argv[:2] == ['python', '-c']:
    return 'code', argv[2], argv[3:]
  if argv[0] == 'ae-jax':
    return 'ae-jax', 'ae-jax', argv[1:]
  raise AssertionError(f'{shlex.join(argv)}: not a command these docs run; mark the block '
                       '<!-- not run: ... -->')


def _execute(kind, what, args):
  if kind == 'module':
    assert what.startswith('ae_jax'), f'python -m {what}: not ae_jax'
    sys.argv = [what, *args]
    runpy.run_module(what, run_name='__main__', alter_sys=True)
  elif kind == 'script':
    sys.argv = [what, *args]
    runpy.run_path(what, run_name='__main__')
  elif kind == 'code':
    sys.argv = ['-c', *args]
    exec(compile(what, '<string>', 'exec'), {'__name__': '__main__'})
  else:
    from ae_jax import cli
    cli.main(args)


def _validate(kind, what, args, ns) -> None:
  """What a check does after the flags parsed (module docstring)."""
  from ae_jax import cli
  rest, overrides = cli.split_argv(args)
  if kind == 'ae-jax':
    what = {'train': 'ae_jax.main', 'study': 'ae_jax.studies'}.get(args[0], '')
  if what == 'ae_jax.main' and getattr(ns, 'mode', 'train') == 'train':
    from ae_jax import main, train
    stub = lambda config, workdir, fresh=False: {'members': []}
    saved, train.train_and_evaluate = train.train_and_evaluate, stub
    try:
      cli.run(lambda: main.train(ns, overrides, list(args)))
    finally:
      train.train_and_evaluate = saved
  elif what == 'ae_jax.studies':
    import importlib

    from ae_jax import studies
    budget = 'quick' if ns.quick else 'smoke' if ns.smoke else 'full'
    module = importlib.import_module(f'ae_jax.studies.{ns.study}')
    cli.run(lambda: [studies.build(m, budget, overrides) for m in module.MODELS])
  elif getattr(ns, 'config', None) and overrides:
    from ae_jax import config_lib
    cli.run(lambda: config_lib.resolve(config_lib.load(ns.config, overrides)))


def run_command(argv, check: bool, out) -> int:
  """Run (or check) one python/ae-jax command in-process; -> its exit code."""
  env, argv = strip_env(argv)
  kind, what, args = _target(argv)
  saved_argv, saved_env = list(sys.argv), dict(os.environ)
  os.environ.update(env)
  logging.getLogger('ae_jax').handlers.clear()  # a command's log lines go to its own stderr
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
      try:
        if not check:
          _execute(kind, what, args)
          return 0
        try:
          with _stop_after_parsing():
            _execute(kind, what, args)
        except _Parsed as parsed:
          _validate(kind, what, args, parsed.namespace)
          return 0
        raise AssertionError(f'{shlex.join(argv)}: ran without parsing its arguments')
      except SystemExit as e:
        return _exit_code(e)
  finally:
    sys.argv = saved_argv
    os.environ.clear()
    os.environ.update(saved_env)
    logging.getLogger('ae_jax').handlers.clear()


def run_shell(argv, last_rc: int, out) -> int:
  if argv[0] == 'echo':
    print(' '.join(a.replace('$?', str(last_rc)) for a in argv[1:]), file=out)
    return 0
  r = subprocess.run(argv, capture_output=True, text=True)
  out.write(r.stdout + r.stderr)
  return r.returncode


def check_script(argv):
  """sbatch / bash SCRIPT: the script exists and parses."""
  script = next(a for a in argv[1:] if not a.startswith('-'))
  assert os.path.exists(script), f'{shlex.join(argv)}: no {script}'
  r = subprocess.run(['bash', '-n', script], capture_output=True, text=True)
  assert r.returncode == 0, f'{script} does not parse: {r.stderr}'


def expect_output(expected: str, got: str):
  """Every expected line but `...`, in order, in `got`; numbers are wildcards."""
  lines = [' '.join(line.split()) for line in got.splitlines()]
  at = 0
  for want in expected.splitlines():
    want = ' '.join(want.split())
    if not want or want == '...':
      continue
    parts = re.split(NUMBER, want)
    pattern = re.compile(NUMBER.join(re.escape(p) for p in parts) + r'$')
    for j in range(at, len(lines)):
      if pattern.match(lines[j]):
        at = j + 1
        break
    else:
      raise AssertionError(f'documented output line not printed (in order): {want!r}\n'
                           f'printed:\n{got[-3000:]}')


# ---- the scratch folder -----------------------------------------------------------------

class Sandbox:
  def __init__(self, path):
    self.path, self.results = str(path), {}
    self.ran = {}  # argv -> (exit code, output) of commands that do not train
    for name in LINKED:
      os.symlink(os.path.join(ROOT, name), os.path.join(self.path, name))

  def run(self, block: Block) -> str:
    """Run `block` (once; cached) after what it depends on; -> what it printed."""
    if block.id in self.results:
      return self.results[block.id]
    page_blocks = [b for b in ALL if b.page == block.page]
    for before in page_blocks[:page_blocks.index(block)]:
      if before.mode == 'run':
        self.run(before)
    default = next(b for b in ALL if b.mode == 'run' and 'configs/vae_beta.py' in b.text
                   and DEFAULT_RUN in b.text)
    if DEFAULT_RUN in block.text and block is not default:
      self.run(default)
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(self.path)
    try:
      rc, cmds = 0, commands(block.text)
      for i, argv in enumerate(cmds):
        if argv[:2] == ['pip', 'install']:
          check_pip(argv)
          continue
        if argv[0] in SHELL:
          if block.mode != 'run':  # a check runs nothing but the commands' own parsing
            rc = 0
            continue
          rc = run_shell(argv, rc, out)
        elif block.mode == 'check' and argv[0] in ('bash', 'sbatch'):
          check_script(argv)
          continue
        elif block.mode == 'run' and not trains(argv) and tuple(argv) in self.ran:
          rc, printed = self.ran[tuple(argv)]  # the same command on the same workdir again
          out.write(printed)
        else:
          extra = shlex.split(block.arg) if block.mode == 'run' and trains(argv) else []
          one = io.StringIO()
          rc = run_command(argv + extra, block.mode == 'check', one)
          out.write(one.getvalue())
          if block.mode == 'run' and not trains(argv):
            self.ran[tuple(argv)] = rc, one.getvalue()
        shown = i + 1 < len(cmds) and cmds[i + 1][0] == 'echo' and any(
            '$?' in a for a in cmds[i + 1])
        assert rc == 0 or shown, (f'{block.id}: `{shlex.join(argv)}` exited with {rc}:\n'
                                  f'{out.getvalue()[-3000:]}')
    finally:
      os.chdir(cwd)
    self.results[block.id] = out.getvalue()
    return self.results[block.id]


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
  return Sandbox(tmp_path_factory.mktemp('docs_commands'))


def test_every_bash_block_is_marked():
  unmarked = [b.id for b in ALL if b.mode not in ('run', 'check', 'not run')]
  assert not unmarked, (f'{unmarked}: mark each with <!-- run -->, <!-- run: ARGS -->, '
                        '<!-- check: why not run --> or <!-- not run: why --> (this module\'s '
                        'docstring)')
  assert not [b.id for b in ALL if b.mode in ('check', 'not run') and not b.arg], (
      'a check or not-run marker says why')


def test_the_readme_test_command_is_the_one_ci_runs():
  readme = open(os.path.join(ROOT, 'README.md')).read()
  ci = [line.strip() for line in open(os.path.join(ROOT, '.ci', 'run'))
        if line.strip().startswith('python -m pytest')]
  assert len(ci) == 1 and f"pip install -e '.[test]' && {ci[0]}" in readme, ci


def test_every_relative_link_and_image_exists():
  broken = []
  for page in pages():
    for target in re.findall(r'\]\(([^)\s]+)\)', open(page).read()):
      path = target.split('#')[0]
      if path and not re.match(r'^[a-z]+:', path):
        if not os.path.exists(os.path.join(os.path.dirname(page), path)):
          broken.append(f'{os.path.relpath(page, ROOT)}: {target}')
  assert not broken, broken


def runs_something(block: Block) -> bool:
  """Whether checking `block` runs a command for real or spawns a process (the slow tier):
  a run block, a check after a run block on its page or naming the default run
  (Sandbox.run runs those first), or a check of a shell script (`bash -n`)."""
  page_blocks = [b for b in ALL if b.page == block.page]
  before = page_blocks[:page_blocks.index(block)]
  return (block.mode == 'run' or any(b.mode == 'run' for b in before)
          or DEFAULT_RUN in block.text
          or any(argv[0] in ('bash', 'sbatch') for argv in commands(block.text)))


RUN = [b for b in ALL if b.mode in ('run', 'check')]


@pytest.mark.parametrize('block', [
    pytest.param(b, id=b.id, marks=[pytest.mark.slow] if runs_something(b) else [])
    for b in RUN])
def test_doc_block(block, sandbox):
  printed = sandbox.run(block)
  if block.output is not None:
    expect_output(block.output, printed)


def test_output_matching_treats_numbers_as_wildcards():
  expect_output('epoch 5/40 [beta=0] eval: loss 338.3  recon 338.3\n...\n| 0 | 40 | 1e-3 |',
                'x\nepoch 1/1 [beta=0] eval: loss 1385 recon 1385\n| 0 | 1 | 0.5 |\n')
  with pytest.raises(AssertionError):
    expect_output('| 0 | 40 |\nepoch 5/40', 'epoch 1/1\n| 0 | 1 |')  # out of order
  with pytest.raises(AssertionError):
    expect_output('loss 3 recon 4', 'loss 3 kl 4')
