"""The reference pages that restate code, generated from the code.

  python -m ae_jax.docs            # (re)write them under docs/
  python -m ae_jax.docs --check    # exit 1, naming each page, if a committed one is stale

A page is a function of the declarations it documents (the config schema, ...), so it
cannot drift: tests/test_docs.py fails when a committed page differs from what this
module generates.
"""
from __future__ import annotations

import argparse
import os
import sys


def _configs() -> str:
  from ae_jax import schema
  return schema.markdown()


PAGES = {'configs.md': _configs}


def docs_dir() -> str:
  """docs/ of the checkout this package lives in."""
  return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs')


def render() -> dict[str, str]:
  """{page name: its generated text}."""
  return {name: fn().rstrip('\n') + '\n' for name, fn in PAGES.items()}


def stale(folder: str) -> list[str]:
  """The pages under `folder` that differ from (or lack) their generated text."""
  out = []
  for name, text in render().items():
    path = os.path.join(folder, name)
    if not os.path.exists(path) or open(path).read() != text:
      out.append(path)
  return out


def main(argv=None):
  p = argparse.ArgumentParser(prog='python -m ae_jax.docs', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--check', action='store_true', help='only check; exit 1 when stale')
  p.add_argument('--out', default=None, help='default: docs/ of this checkout')
  args = p.parse_args(argv)
  folder = args.out or docs_dir()
  if args.check:
    bad = stale(folder)
    for path in bad:
      print(f'stale: {path} (regenerate: python -m ae_jax.docs)', file=sys.stderr)
    sys.exit(1 if bad else 0)
  from ae_jax.workdir import write_text_file
  for name, text in render().items():
    write_text_file(os.path.join(folder, name), text)
    print(f'wrote {os.path.join(folder, name)}')


if __name__ == '__main__':
  main()
