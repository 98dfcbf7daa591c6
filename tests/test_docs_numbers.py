"""What the README promises a new user holds on their machine: it states no hand-written
times or measured values in its prose (they differ from what a user gets); the output it
shows is marked an example; measured numbers live in committed files the docs render."""
import os
import re

TIME = re.compile(r'\b\d[\d.,–-]*\s*(?:s|sec|seconds|min|minutes|h|hours)\b|\babout \d', re.I)


def _prose(path: str) -> list[tuple[int, str]]:
  """(line number, text) of a page's lines outside code blocks, HTML comments and
  generated blocks."""
  out, fenced, generated = [], False, False
  for i, line in enumerate(open(path).read().splitlines(), 1):
    if line.startswith('```'):
      fenced = not fenced
      continue
    if line.startswith('<!-- generated:'):
      generated = True
    if line.startswith('<!-- /generated:'):
      generated = False
      continue
    if fenced or generated or line.startswith('<!--'):
      continue
    out.append((i, line))
  return out


def test_the_readme_states_no_hand_written_times(root):
  found = [(i, line) for i, line in _prose(os.path.join(root, 'README.md'))
           if TIME.search(line)]
  assert not found, found


def test_the_readmes_shown_output_is_marked_an_example(root):
  text = open(os.path.join(root, 'README.md')).read()
  before = text.split('<!-- output -->')[0].rstrip().rsplit('\n\n', 1)[-1]
  assert 'example' in before and 'differ' in before, before
