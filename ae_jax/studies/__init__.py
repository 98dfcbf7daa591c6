"""Studies: one command reproduces a report end to end (trains what it needs, runs the latent
tools, writes report.md / report.html / results.json in its workdir).

  python -m ae_jax.studies kl_weight_study --workdir runs/kl [--quick | --smoke] [--config.a.b=v]

Each study module defines `NAME`, `MODELS` (a `Model` per model it trains: the experiment
every budget keeps, and the budgets) and `run(study: Study) -> Report`. Three budgets:

- full (the default): the report's experiment at the study's size;
- `--quick`: the same experiment (data, image size, channels, model family, latent size:
  a `Model`'s `Experiment`) with less data and fewer epochs; a quick budget can set only
  `BUDGET_KEYS`, so it cannot drift to another model;
- `--smoke`: the test suite's stand-in, tiny models on tiny data in seconds. It is NOT the
  report's experiment, and its report says so at the top.

`--config.*` overrides apply to every model the study trains (so `--config.data.name=folder
--config.data.path=imgs/` runs it on your images). A rerun on the same workdir resumes its
models (nothing is retrained) and redraws.
"""
from __future__ import annotations

import dataclasses
import importlib
import os

from ae_jax import config_lib, data, sweep, train
from ae_jax.errors import ConfigError, WorkdirError
from ae_jax.inference import load
from ae_jax.latent.tools import Source
from ae_jax.metrics import registry
from ae_jax.models import resolve_latent_dim, PRESETS
from ae_jax.report import swept_axes
from ae_jax.workdir import (MODELS, STUDY, Workdir, config_to_dict, refuse_links,
                           refuse_unless)

STUDIES = ('reconstruction_quality', 'latent_noise_generation', 'hyperparameter_tables',
           'ae_vs_vae_noise', 'kl_weight_study', 'latent_edits', 'beta_disentanglement',
           'high_frequency', 'sharp_reconstructions', 'model_families', 'generation',
           'tokenizers')
STUDY_FILE = STUDY
BUDGETS = ('full', 'quick', 'smoke')
# What the full and quick budgets may set: how much data and training, never what is trained.
BUDGET_KEYS = ('data.num_examples', 'train.num_epochs', 'train.eval_every',
               'checkpoint.every_epochs', 'checkpoint.keep_epochs', 'sweep.eval_epochs',
               'eval.max_images', 'eval.num_samples', 'eval.factor_vae_votes',
               'prior.num_epochs', 'prior.num_samples')
# The keys an `Experiment` decides; a model's shared settings may not set them.
EXPERIMENT_KEYS = ('data.name', 'data.image_size', 'data.channels', 'model.preset',
                   'model.arch', 'model.kind', 'model.latent_dim', 'sweep.latent_dim')
# (size, channels) of the embedded datasets as stored, for configs that leave
# data.image_size / data.channels at 0 (tests/test_studies.py checks them against the data)
NATIVE = {'digits': (8, 1), 'faces': (25, 1), 'dsprites': (64, 1), 'photos': (50, 3),
          'wafer': (26, 3)}


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What a model of a study is at every budget but --smoke: its data and its model."""
  data: str          # data.name
  image_size: int    # pixels a side, as the model sees them
  channels: int      # 1 gray, 3 RGB (or one-hot wafer maps)
  family: str        # a preset (models.PRESETS) or a custom model.arch (mlp, conv, resnet)
  kind: str          # ae | vae
  latent: int        # latent units (channels of a spatial code)

  def describe(self) -> str:
    s = self.image_size
    return (f'{self.data} {s}x{s}x{self.channels}, {self.family} {self.kind.upper()}, '
            f'{self.latent} latents')


def effective(config) -> Experiment:
  """The experiment a config runs (data.image_size / data.channels 0: the data's own)."""
  d, m = config.data, config.model
  size, channels = NATIVE.get(d.name, (0, 0))
  if d.name == 'wafer' and d.wafer.render == 'gray':
    channels = 1
  swept = sweep.axis_values(config, 'latent_dim')
  latent = max(int(v) for v in swept) if swept else resolve_latent_dim(m)
  return Experiment(d.name, int(d.image_size) or size, int(d.channels) or channels,
                    m.preset or m.arch, m.kind, latent)


def _experiment_values(config, e: Experiment) -> dict:
  """The config keys that make `config` run experiment `e`, leaving a key alone where the
  config already has it (a dataset's own size stays 0, a preset's own code size 0), so
  workdirs trained before these declarations still resume."""
  now = effective(config)
  out = {'data.name': e.data, 'model.kind': e.kind}
  if now.image_size != e.image_size or now.data != e.data:
    out['data.image_size'] = e.image_size
  if now.channels != e.channels or now.data != e.data:
    native = NATIVE.get(e.data, (0, 0))[1]
    out['data.channels'] = 0 if e.channels == native else e.channels
  if e.family in PRESETS:
    out['model.preset'] = e.family
    out['model.latent_dim'] = 0 if e.latent == PRESETS[e.family][1] else e.latent
  else:
    out['model.preset'], out['model.arch'] = '', e.family
    if now.latent != e.latent or now.family != e.family:
      out['model.latent_dim'] = e.latent
  return out


@dataclasses.dataclass(frozen=True)
class Model:
  """A model a study trains: its experiment, the settings every budget shares, and the
  budgets (`{'full': {...}, 'quick': {...}, 'smoke': {...}}`, config key -> value)."""
  key: str            # its folder, models/<key>/, and its key in results.json
  description: str    # one line, for the report and results.json
  experiment: Experiment
  budgets: dict
  settings: dict = dataclasses.field(default_factory=dict)
  base: str = 'base'  # the shipped config it starts from

  def __post_init__(self):
    if set(self.budgets) != set(BUDGETS):
      raise ValueError(f'model {self.key}: budgets {sorted(self.budgets)}, expected {BUDGETS}')
    bad = [k for k in self.settings if k in EXPERIMENT_KEYS]
    for budget in ('full', 'quick'):  # the same experiment: only the budget may differ
      bad += [k for k in self.budgets[budget] if k not in BUDGET_KEYS]
    if bad:
      raise ValueError(f'model {self.key}: {sorted(set(bad))} would change the experiment; '
                       'declare it in the Experiment (settings and the full and quick '
                       f'budgets set only {BUDGET_KEYS} beyond it)')


def build(model: Model, budget: str, overrides=()):
  """-> (config, notes): `model` at `budget` with the user's overrides applied."""
  cfg = config_lib.load(model.base)
  with cfg.unlocked():
    for values in (_experiment_values(cfg, model.experiment), model.settings,
                   model.budgets[budget]):
      for k, v in values.items():
        config_lib.set_value(cfg, k, v)
  notes = []
  cfg = config_lib.apply_user_overrides(cfg, overrides, 'the study', notes)
  return cfg, notes


def budget_doc(models) -> str:
  """The docstring paragraph on a study's budgets, from its declarations."""
  lines = ['', 'Budgets (declared in MODELS; quick keeps each experiment, smoke does not):']
  groups: dict = {}
  for m in models:
    groups.setdefault(repr(m.budgets), []).append(m)
  for ms in groups.values():
    lines.append('')
    lines += [f'  {m.key}: {m.experiment.describe()}' for m in ms]
    for b in BUDGETS:
      shown = ', '.join(f'{k}={v!r}' for k, v in ms[0].budgets[b].items()) or "the model's own"
      lines.append(f'    {b}: {shown}')
  return '\n'.join(lines) + '\n'


def check_owner(workdir: str):
  """A study writes into (and --fresh moves aside) only a study's folder, or a new or empty
  one; another command's folder is refused naming it. -> its owner (None: new or empty)."""
  return refuse_unless(workdir, ('study',), '--workdir', 'a study writes only into a new or '
                       'empty folder or a study\'s; use another --workdir')


class Study:
  """A study's workdir: its models under models/<key>/, its report at the top."""

  def __init__(self, name: str, workdir: str | Workdir, overrides=(), quick: bool = False,
               fresh: bool = False, budget: str | None = None):
    """`workdir`: a path, or a `Workdir` the caller holds (`Workdir.running()`, as the
    command line does) so that `fresh` never moves a live study aside. `budget`: full,
    quick or smoke (`quick=True` is budget='quick')."""
    budget = budget or ('quick' if quick else 'full')
    if budget not in BUDGETS:
      raise ConfigError(f'budget {budget!r}: expected one of {BUDGETS}')
    self.name, self.budget, self.overrides = name, budget, list(overrides)
    self.built: dict[str, tuple] = {}  # key -> (Model, config, full-budget config)
    self.notes: list[str] = []
    self.wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    workdir = self.wd.path
    found = check_owner(workdir)
    if fresh and found is not None:
      print(f'moved the previous study to {self.wd.move_aside()}', flush=True)
    recorded = self.wd.read_json(STUDY_FILE, default={}) if self.wd.exists(STUDY_FILE) else {}
    if recorded and recorded.get('study') != name:
      raise WorkdirError(f'{workdir} holds the study {recorded.get("study")!r}, not {name!r}; '
                         'use another --workdir, or --fresh to move it aside')
    was = recorded.get('budget', 'quick' if recorded.get('quick') else 'full')
    if recorded and was != budget:
      raise WorkdirError(f'{workdir} holds the {name} study at the {was} budget, not {budget}; '
                         'use another --workdir, or --fresh to move it aside')
    self.wd.prepare()
    self.wd.write_json(STUDY_FILE, {'study': name, 'budget': budget, 'quick': budget == 'quick',
                                    'overrides': self.overrides})

  @property
  def quick(self) -> bool:
    return self.budget == 'quick'

  @property
  def module(self):
    return importlib.import_module(f'ae_jax.studies.{self.name}')

  def model_dir(self, key: str) -> str:
    """models/<key>/ of the study's folder (no link on the way: refused)."""
    path = os.path.join(self.wd.path, MODELS, key)
    refuse_links(self.wd.path, path)
    return path

  def config(self, model: Model):
    """`model`'s config at this study's budget, with the user's overrides."""
    cfg, notes = build(model, self.budget, self.overrides)
    full, _ = build(model, 'full', self.overrides)
    self.built[model.key] = (model, config_lib.thaw(cfg), full)  # as declared, before a
    # study derives keys from it (kl_weight_study's shown epochs)
    for note in notes + [registry.missing_extras_note(cfg.eval.metrics,
                                                      data.photographic(cfg.data))]:
      if note and note not in self.notes:  # each once, however many models say it
        print(f'note: {note}', flush=True)
        self.notes.append(note)
    return cfg

  def train(self, key: str, config) -> dict:
    """Train (or resume) model `key`; -> its summary."""
    print(f'== {self.name}: model {key}', flush=True)
    return train.train_and_evaluate(config, self.model_dir(key))

  def source(self, key: str, member=0, epoch=None):
    """Model `key` (a member, at a saved epoch) with its dataset, for the latent tools."""
    return Source(load(self.model_dir(key), member, epoch), self.model_dir(key))

  def out(self, name: str):
    """Outputs folder latent/<name>/ of the study's workdir."""
    return self.wd.outputs(name)

  def members(self, key: str, description: str | None = None) -> list[dict]:
    """summary.json's members of model `key` (name, eval metrics, ...), each with its
    sweep values from members.json (e.g. 'beta'), and its results.json `key`,
    `description` (the declared Model's, or `description`) and `sweep` (the values of the
    axes its members differ in)."""
    wd = Workdir(self.model_dir(key))
    grid = {m['name']: m for m in wd.read_members() or []}
    members = [{**grid.get(m['name'], {}), **m} for m in wd.read_json('summary.json')['members']]
    axes = swept_axes(members)
    model = self.built.get(key, (None,))[0]
    about = description or (model.description if model else key)
    for m in members:
      many = len(members) > 1
      m['key'] = f'{key}/{m["name"]}' if many else key
      m['description'] = f'{about}; member {m["name"]}' if many else about
      m['sweep'] = {a: m[a] for a in axes}
    return members

  def records(self, key: str) -> list[dict]:
    return Workdir(self.model_dir(key)).read_metrics()

  def save_figure(self, fig, name: str) -> str:
    return self.wd.save_figure(fig, name)

  # ---- what the report says about the budget ------------------------------------------

  def changes(self) -> dict:
    """{config key: {'ran': value, 'full': value}} where this budget's models differ from
    the full budget's (empty at the full budget)."""
    out = {}
    for _, cfg, full in self.built.values():  # resolved: a preset's latent_dim 0 as its size
      a, b = (config_lib.flat(config_to_dict(config_lib.resolve(c))) for c in (cfg, full))
      for k in a:
        if k in b and a[k] != b[k] and k not in out:
          out[k] = {'ran': a[k], 'full': b[k]}
    return out

  def banner(self) -> str:
    """The line at the top of a quick or smoke report: what it ran instead of the full
    budget ('' at the full budget)."""
    if self.budget == 'full':
      return ''
    changed = '; '.join(f'{k} {_show(v["ran"])} (full: {_show(v["full"])})'
                        for k, v in self.changes().items()) or 'nothing'
    ran = sorted({effective(cfg).describe() for _, cfg, _ in self.built.values()})
    full = sorted({m.experiment.describe() for m, _, _ in self.built.values()})
    if self.budget == 'quick':
      return (f'**Quick budget (`--quick`)**: the full report\'s experiment ({"; ".join(full)}) '
              f'with less data and training: {changed}. Its numbers are not the full '
              'budget\'s.')
    return (f'**Smoke budget (`--smoke`): not this report\'s experiment.** The test suite\'s '
            f'stand-in trained {"; ".join(ran)} instead of {"; ".join(full)}: {changed}. '
            'Nothing in it measures what the report is about.')

  def meta(self) -> dict:
    """results.json's header: the study, its budget, the overrides and the changes."""
    return {'study': self.name, 'budget': self.budget, 'overrides': self.overrides,
            'budget_changes': self.changes(),
            'experiments': {k: dataclasses.asdict(m.experiment)
                            for k, (m, _, _) in self.built.items()}}


def _show(v) -> str:
  if isinstance(v, (list, tuple)):
    return '(' + ', '.join(_show(x) for x in v) + (',)' if len(v) == 1 else ')')
  return repr(v) if isinstance(v, str) else str(v)


def base_config(name: str = 'base'):
  """A shipped config (ae_jax/configs/<name>.py), as `--config <name>` builds it."""
  return config_lib.load(name)
