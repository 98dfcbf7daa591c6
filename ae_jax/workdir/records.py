"""A workdir's file names, and the shapes its JSON records must have (`check_record`: one
WorkdirError line naming the file, the key at fault and how to fix it)."""
from __future__ import annotations

import json

from ae_jax.errors import WorkdirError

CONFIG, MEMBERS, MODEL, METRICS = 'config.json', 'members.json', 'model.json', 'metrics.jsonl'
SUMMARY, EVAL, LOCK = 'summary.json', 'eval.json', '.lock'
STATS = 'latent_stats.json'  # the codes' per-channel statistics at the end of training
CHECKPOINTS, BEST, FIGURES, PROGRAMS, LATENT = ('checkpoints', 'checkpoints_best', 'figures',
                                                'programs', 'latent')
TENSORBOARD, PRIORS = 'tensorboard', 'priors'
DAMAGED, MODELS, WANDB = 'checkpoints_damaged', 'models', 'wandb'
STUDY, CRASH_LOG, PROBE = 'study.json', 'crash.log', '.write-test'
OUTPUTS_MARK = '.outputs.json'  # in a tool's output folder: the tool and the files of its run
# Every name ae_jax writes at the top of a workdir (a run's, a study's, an export's): files,
# and folders whose whole contents are ae_jax's. None of them may be a symbolic link
# (links.py); a workdir may itself be one.
WRITTEN_FILES = (CONFIG, MEMBERS, MODEL, METRICS, SUMMARY, STATS, EVAL, LOCK, PROBE, STUDY,
                 CRASH_LOG, OUTPUTS_MARK, 'sweep.csv', 'sweep.md', 'report.md', 'report.html',
                 'results.json')
WRITTEN_FOLDERS = (FIGURES, CHECKPOINTS, BEST, DAMAGED, PROGRAMS, TENSORBOARD, LATENT, MODELS,
                   WANDB, PRIORS)
# what `prepare` and a start that went no further leave: nothing of a run while empty
_SCAFFOLD = (FIGURES, CHECKPOINTS)
# what a run writes before its first epoch (from the config and the data: rewritten alike)
_START = (CONFIG, MEMBERS, MODEL)

# ---- what each record must hold ---------------------------------------------------------
# file -> {key: kind}; a '!' marks a required key, a dotted key a nested one. MEMBERS is a
# non-empty list of such objects (the record layer adds each vmapped sweep axis's type). What
# is not listed is not checked here (merge_config checks config.json's values by key).
RECORDS = {
    CONFIG: {'model': 'object!', 'model.kind': 'text!', 'model.latent_dim': 'count!',
             'data': 'object!', 'data.name': 'text!', 'train': 'object!',
             'train.batch_size': 'count!', 'train.num_epochs': 'count!'},
    MODEL: {'image_shape': 'shape!', 'steps_per_epoch': 'count!', 'format': 'count',
            'checkpoint_unit': 'unit', 'kind': 'text', 'num_train': 'count',
            'class_names': 'texts', 'color_key': 'list', 'storage': 'object',
            'latent_shape': 'counts', 'members': 'list'},
    MEMBERS: [{'name': 'text!', 'program': 'text'}],
    SUMMARY: {'members': 'list', 'image_shape': 'shape', 'steps_per_epoch': 'count'},
}
_REWRITE = ("restore it from a copy, or run this workdir's training command again (it resumes, "
            'trains nothing new and rewrites it)')
FIX = {CONFIG: 'restore it from a copy, or start again with --fresh (moves this workdir aside)',
        MODEL: _REWRITE, MEMBERS: _REWRITE, SUMMARY: _REWRITE}


def _count(v):
  return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _number(v):
  return isinstance(v, (int, float)) and not isinstance(v, bool)


KINDS = {  # kind -> (test, what a user reads)
    'object': (lambda v: isinstance(v, dict), 'a JSON object'),
    'list': (lambda v: isinstance(v, list), 'a list'),
    'text': (lambda v: isinstance(v, str), 'a string'),
    'texts': (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
              'a list of strings'),
    'count': (_count, 'a positive integer'),
    'counts': (lambda v: isinstance(v, list) and all(map(_count, v)),
               'a list of positive integers'),
    'int': (lambda v: isinstance(v, int) and not isinstance(v, bool), 'an integer'),
    'number': (_number, 'a number'),
    'shape': (lambda v: isinstance(v, list) and len(v) == 3 and all(map(_count, v)),
              'a list of 3 positive integers [H, W, C]'),
    'unit': (lambda v: v in ('step', 'epoch'), '"step" or "epoch"'),
}


def _what(v) -> str:
  kind = {dict: 'an object', list: 'a list', str: 'a string', bool: 'a boolean',
          type(None): 'null'}.get(type(v), 'a number')
  text = json.dumps(v)
  return f'{text} ({kind})' if len(text) <= 40 else kind


def check_record(path: str, value, shape, fix: str) -> None:
  """Raise one WorkdirError line naming `path`, the key and `fix` where `value` (a JSON
  record) lacks a required key of `shape` or holds a key of the wrong kind."""
  if isinstance(shape, list):  # a non-empty list of records
    if not isinstance(value, list) or not value:
      raise WorkdirError(f'{path} holds {_what(value)}; expected a non-empty list of objects '
                         f'(one per trained model); {fix}')
    for i, item in enumerate(value):
      check_record(f'{path}: entry {i}', item, shape[0], fix)
    return
  if not isinstance(value, dict):
    raise WorkdirError(f'{path} holds {_what(value)}; expected a JSON object; {fix}')
  for key, kind in shape.items():
    required, kind = kind.endswith('!'), kind.rstrip('!')
    node, found = value, True
    for part in key.split('.'):
      if not isinstance(node, dict) or part not in node:
        found = False
        break
      node = node[part]
    test, what = KINDS[kind]
    if not found:  # (a parent comes first in `shape`: it is named when it is at fault)
      if required:
        raise WorkdirError(f'{path} has no {key!r} ({what}); {fix}')
      continue
    if not test(node):
      raise WorkdirError(f'{path}: {key!r} is {_what(node)}; expected {what}; {fix}')
