"""Studies: one command reproduces a report end to end (trains what it needs, runs the latent
tools, writes report.md / report.html in its workdir).

  python -m ae_jax.studies kl_weight_study --workdir runs/kl [--quick] [--config.a.b=v ...]

Each study module defines `NAME`, a docstring with its full settings, and
`run(study: Study) -> Report`. `--config.*` overrides apply to every model the study trains
(so `--config.data.name=folder --config.data.path=imgs/` runs it on your images); `--quick`
shrinks the budget to seconds (the test suite runs every study that way). A rerun on the
same workdir resumes its models (nothing is retrained) and redraws.
"""
from __future__ import annotations

import os

from ae_jax import config_lib
from ae_jax.errors import WorkdirError
from ae_jax.workdir import Workdir

STUDIES = ('reconstruction_quality', 'latent_noise_generation', 'hyperparameter_tables',
           'ae_vs_vae_noise', 'kl_weight_study', 'latent_edits', 'beta_disentanglement',
           'high_frequency')
STUDY_FILE = 'study.json'


class Study:
  """A study's workdir: its models under models/<key>/, its report at the top."""

  def __init__(self, name: str, workdir: str | Workdir, overrides=(), quick: bool = False,
               fresh: bool = False):
    """`workdir`: a path, or a `Workdir` the caller holds (`Workdir.running()`, as the
    command line does) so that `fresh` never moves a live study aside."""
    self.name, self.quick, self.overrides = name, quick, list(overrides)
    self.wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    workdir = self.wd.path
    if fresh and not self.wd.is_empty():
      print(f'moved the previous study to {self.wd.move_aside()}', flush=True)
    recorded = self.wd.read_json(STUDY_FILE, default={}) if self.wd.exists(STUDY_FILE) else {}
    if recorded and recorded.get('study') != name:
      raise WorkdirError(f'{workdir} holds the study {recorded.get("study")!r}, not {name!r}; '
                         'use another --workdir, or --fresh to move it aside')
    if not recorded and self.wd.is_trained():
      raise WorkdirError(f'{workdir} holds a training run, not a study; use another --workdir')
    self.wd.prepare()
    self.wd.write_json(STUDY_FILE, {'study': name, 'quick': quick, 'overrides': self.overrides})

  def model_dir(self, key: str) -> str:
    return os.path.join(self.wd.path, 'models', key)

  def config(self, base, quick_overrides=()):
    """`base` with the quick budget (if --quick) and then the user's overrides applied."""
    cfg = config_lib.apply_overrides(base, list(quick_overrides) if self.quick else [])
    return config_lib.apply_overrides(cfg, self.overrides)

  def train(self, key: str, config) -> dict:
    """Train (or resume) model `key`; -> its summary."""
    from ae_jax.train import train_and_evaluate
    print(f'== {self.name}: model {key}', flush=True)
    return train_and_evaluate(config, self.model_dir(key))

  def source(self, key: str, member=0, epoch=None):
    """Model `key` (a member, at a saved epoch) with its dataset, for the latent tools."""
    from ae_jax.inference import load
    from ae_jax.latent.tools import Source
    return Source(load(self.model_dir(key), member, epoch), self.model_dir(key))

  def out(self, name: str):
    """Outputs folder latent/<name>/ of the study's workdir."""
    return self.wd.outputs(name)

  def members(self, key: str) -> list[dict]:
    """summary.json's members of model `key` (name, eval metrics, ...), each with its
    sweep values from members.json (e.g. 'beta')."""
    wd = Workdir(self.model_dir(key))
    grid = {m['name']: m for m in wd.read_members() or []}
    return [{**grid.get(m['name'], {}), **m} for m in wd.read_json('summary.json')['members']]

  def records(self, key: str) -> list[dict]:
    return Workdir(self.model_dir(key)).read_metrics()

  def save_figure(self, fig, name: str) -> str:
    return self.wd.save_figure(fig, name)


def base_config(name: str = 'base'):
  """A shipped config (ae_jax/configs/<name>.py), as `--config <name>` builds it."""
  return config_lib.load(name)
