"""Symbolic links inside the folders ae_jax writes: refused, never followed.

The folder a user names (a --workdir, an --out) is theirs, and may itself be a link:
`runs/x -> /disk2/x` puts a run on another disk, and ae_jax works through it. Below that
folder nothing ae_jax writes may be a link: one planted there (`ln -s ~/precious
runs/x/.lock`) would make a write, a truncation or a checkpoint clean-up land outside the
folder the user gave. So every write checks the path from the named folder (its `root`)
down to the file (`refuse_links`), files are created with O_EXCL or O_NOFOLLOW, and a run
scans its workdir before it starts (`scan`). A refusal is one WriteError line naming the
link and where it points.
"""
from __future__ import annotations

import os

from ae_jax.errors import WriteError
from ae_jax.workdir.records import WANDB, WRITTEN_FILES, WRITTEN_FOLDERS

NOFOLLOW = getattr(os, 'O_NOFOLLOW', 0)  # (not on Windows, where links need privileges)


def link_error(link: str) -> WriteError:
  """The one line for a link where ae_jax would write."""
  try:
    target = f' (to {os.readlink(link)})'
  except OSError:
    target = ''
  return WriteError(f'{link} is a symbolic link{target}; ae_jax does not write through a link '
                    'inside a folder it writes: remove the link (a --workdir or --out may '
                    'itself be a link, to put it on another disk)', link,
                    'a symbolic link')


def link_below(root: str, path: str) -> str | None:
  """The first existing component of `path` below `root` (`path` itself included, `root`
  not) that is a symbolic link, or None. A `path` outside `root`: only itself."""
  root, path = os.path.abspath(root), os.path.abspath(path)
  rel = os.path.relpath(path, root)
  if rel == os.curdir:
    return None
  if rel == os.pardir or rel.startswith(os.pardir + os.sep):
    return path if os.path.islink(path) else None
  here = root
  for part in rel.split(os.sep):
    here = os.path.join(here, part)
    if os.path.islink(here):
      return here
    if not os.path.lexists(here):
      return None  # what follows does not exist yet: it will be made a folder or a file
  return None


def refuse_links(root: str, path: str) -> None:
  """WriteError naming the link if a component of `path` below `root` is one."""
  link = link_below(root, path)
  if link is not None:
    raise link_error(link)


def scan(folder: str) -> None:
  """Refuse a workdir (a run's, a study's, an export's) in which a name ae_jax writes is
  a link, or anything inside a folder whose contents are ae_jax's (checkpoints/, figures/,
  programs/, models/, latent/, ...) is one. Cheap: a walk of those folders, no reads."""
  if not os.path.isdir(folder):
    return
  for name in WRITTEN_FILES + WRITTEN_FOLDERS:
    path = os.path.join(folder, name)
    if os.path.islink(path):
      raise link_error(path)
  for name in WRITTEN_FOLDERS:
    if name == WANDB:  # W&B's own folder: it makes links there itself (latest-run)
      continue
    top = os.path.join(folder, name)
    if not os.path.isdir(top):
      continue
    for here, dirs, files in os.walk(top):  # followlinks=False: links are listed, not entered
      for entry in dirs + files:
        path = os.path.join(here, entry)
        if os.path.islink(path):
          raise link_error(path)


def make_folder(root: str, path: str) -> str:
  """`path` (below `root`) made a folder if it is not one, refusing links on the way."""
  refuse_links(root, path)
  os.makedirs(path, exist_ok=True)
  refuse_links(root, path)  # (made meanwhile by another process)
  return path
