"""Every prior kind declared once, so a trainer can drive any of them the same way.

A `PriorKind` names the codes it models (`latent_kinds`: 'continuous' codes [N, D] or
[N, H, W, C], or 'discrete' code indices [N, ...]), its settings class (a frozen dataclass
built by keyword, validated on construction) and four pure functions, each taking the
settings by keyword so that `functools.partial(f, settings=s)` is jit-able and vmaps over a
leading member axis of `params` (and of `key`):

  init(key, codes_shape, settings) -> params       codes_shape [N, ...]; N is ignored
  loss(params, batch, key, settings) -> (loss [B], {term: [B]})   per example; the caller
                                                   reduces and passes fold_in(key, step)
  sample(params, key, num, settings) -> codes [num, ...]
  held_out(params, codes, key, settings) -> [B]    the prior's own held-out number per
                                                   example (`held_out_name`); its mean over
                                                   examples is the number to report

Parameters record the codes' shape, so `sample` needs no shape. `normalize` says whether
the codes go through stats.normalize before `loss`/`held_out` and the samples through
stats.unnormalize (the continuous kinds; the statistics are the caller's to fit on the
training codes and keep beside the parameters).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from ae_jax.errors import ConfigError
from ae_jax.priors import autoregressive, flow, two_stage

LATENT_KINDS = ('continuous', 'discrete')


@dataclasses.dataclass(frozen=True)
class PriorKind:
  name: str
  doc: str
  latent_kinds: tuple[str, ...]  # of LATENT_KINDS
  settings: type                 # the frozen settings dataclass
  init: Callable
  loss: Callable
  sample: Callable
  held_out: Callable
  held_out_name: str             # what held_out measures (a metric name)
  logged: tuple[str, ...]        # the terms loss returns beside the loss
  normalize: bool                # codes normalized by stats.py around the prior

  def make_settings(self, **values):
    """The settings from keyword values (a config subtree); an unknown name is one line."""
    names = tuple(f.name for f in dataclasses.fields(self.settings))
    unknown = sorted(set(values) - set(names))
    if unknown:
      raise ConfigError(f'{self.name} prior: unknown setting(s) {", ".join(unknown)}; '
                        f'expected some of {", ".join(names)}')
    return self.settings(**values)


FLOW = PriorKind(
    'flow', 'conditional flow matching / rectified flow (Lipman et al. 2023; Liu et al. '
    '2023): an MLP (flat codes) or DiT (spatial codes) velocity field, Euler or Heun '
    'sampling', ('continuous',), flow.FlowSettings, flow.init, flow.loss, flow.sample,
    flow.held_out, 'fm_loss', ('fm_loss',), normalize=True)
AUTOREGRESSIVE = PriorKind(
    'autoregressive', 'a causal transformer over code indices in raster order (VQ-GAN\'s '
    'prior, Esser et al. 2021): exact likelihood, sampling with temperature and top-k',
    ('discrete',), autoregressive.AutoregressiveSettings, autoregressive.init,
    autoregressive.loss, autoregressive.sample, autoregressive.held_out, 'bits_per_code',
    ('nll', 'bits_per_code'), normalize=False)
TWO_STAGE = PriorKind(
    'two_stage', 'a second MLP VAE with a learned decoder variance on the codes (Dai & '
    'Wipf 2019)', ('continuous',), two_stage.TwoStageSettings, two_stage.init,
    two_stage.loss, two_stage.sample, two_stage.held_out, 'neg_elbo',
    ('recon', 'kl', 'neg_elbo', 'gamma'), normalize=True)

PRIORS: dict[str, PriorKind] = {k.name: k for k in (FLOW, AUTOREGRESSIVE, TWO_STAGE)}


def get(name: str) -> PriorKind:
  if name not in PRIORS:
    raise ConfigError(f'prior {name!r}: expected one of {", ".join(PRIORS)}')
  return PRIORS[name]
