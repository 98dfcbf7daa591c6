"""Whose a folder is: the command whose output it holds (`owner`), so that a command
replaces only its own previous output and names the owner of anything else it is pointed
at (`refuse_unless`), and never moves away a folder it is about to read (`refuse_reading`).

What each command may replace (docs/faults.md):
- training, an import (`--fresh` included) and an export (`--replace`): a trained workdir
  (an export's too), or a new or empty folder; an export replaces only an export's;
- a study: its own study folder (the same study; `--fresh` moves it aside);
- a latent tool and `--mode=evaluate --out`: that same tool's previous output (its
  `.outputs.json` names the tool), or a new or empty folder.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple

from ae_jax.errors import WorkdirError
from ae_jax.workdir.links import link_error
from ae_jax.workdir.records import (_SCAFFOLD, EVAL, LOCK, OUTPUTS_MARK, PROBE, STUDY,
                                    WRITTEN_FILES, WRITTEN_FOLDERS)

# what only a training run (an import, an export) writes at the top of its workdir
_RUN = (set(WRITTEN_FILES) | set(WRITTEN_FOLDERS)) - {EVAL, LOCK, PROBE, STUDY, OUTPUTS_MARK,
                                                      'report.md', 'report.html', 'results.json'}


class Owner(NamedTuple):
  kind: str   # 'run' | 'export' | 'study' | 'tool' | 'file' | 'files'
  what: str   # as a user reads it: 'the trained workdir', "`latent fit`'s outputs", ...
  tool: str = ''  # kind 'tool' (and 'export'): the tool its .outputs.json names


def _mark(path: str) -> dict | None:
  mark = os.path.join(path, OUTPUTS_MARK)
  if os.path.islink(mark):  # planted: it would pass another folder off as a tool's
    raise link_error(mark)
  try:
    with open(mark) as f:
      value = json.load(f)
  except (OSError, ValueError):
    return None
  return value if isinstance(value, dict) and isinstance(value.get('tool'), str) else None


def tool_name(tool: str) -> str:
  """How a user typed the command that wrote a tool folder."""
  if tool == 'evaluate':
    return '--mode=evaluate --out'
  if tool == 'export':
    return 'export'
  return f'latent {tool.replace("_", "-")}'


def _content(path: str) -> set[str]:
  """The names in `path` that hold something: not the lock, not the write probe, not an
  empty figures/ or checkpoints/ (what a start that went no further leaves)."""
  out = set()
  for n in os.listdir(path):
    p = os.path.join(path, n)
    if n in (LOCK, PROBE):
      continue
    if n in _SCAFFOLD and os.path.isdir(p) and not os.path.islink(p) and not os.listdir(p):
      continue
    out.add(n)
  return out


def owner(path: str) -> Owner | None:
  """Who `path`'s contents belong to; None for a missing or empty folder (or one holding
  only what a start that went no further leaves)."""
  if not os.path.lexists(path):
    return None
  if not os.path.isdir(path):
    return Owner('file', 'a file')
  names = _content(path)
  if not names:
    return None
  mark = _mark(path)
  if mark is not None and mark['tool'] == 'export':
    return Owner('export', 'an exported workdir', 'export')
  if mark is not None:
    return Owner('tool', f"`{tool_name(mark['tool'])}`'s outputs", mark['tool'])
  if STUDY in names:
    return Owner('study', 'a study\'s folder')
  if names == {EVAL}:  # an evaluation's --out of a version before the marks
    return Owner('tool', "`--mode=evaluate --out`'s outputs", 'evaluate')
  if names & _RUN:
    return Owner('run', 'a trained workdir')
  return Owner('files', 'files no ae_jax command wrote')


def refuse_unless(path: str, allowed: tuple[str, ...], flag: str, why: str,
                  tool: str = '') -> Owner | None:
  """WorkdirError naming `path`'s owner unless it is new or empty, or its owner's kind is
  in `allowed` ('tool' only when it is `tool`'s own). `flag`: the flag the user gave it
  (`--out`); `why`: what to do instead. A file is left to the caller's own line. -> the
  owner (None: new or empty)."""
  found = owner(path)
  if found is None or found.kind == 'file' or found.kind in allowed and (
      found.kind != 'tool' or found.tool == tool):
    return found
  raise WorkdirError(f'{flag} {path} holds {found.what}; {why}')


def _inside(path: str, folder: str) -> bool:
  path, folder = os.path.realpath(path), os.path.realpath(folder)
  return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_reading(out: str, reads, flag: str = '--out') -> None:
  """WorkdirError when `out` is, or holds, a path the command reads (`reads`): replacing
  `out` would move away what it is about to read."""
  for path in reads:
    if path and _inside(path, out):
      same = os.path.realpath(path) == os.path.realpath(out)
      where = 'is' if same else 'holds'
      raise WorkdirError(f'{flag} {out} {where} {path}, which this command reads; give another '
                         'folder')
