"""Learned priors over a frozen autoencoder's codes, trained on its training codes and
sampled to generate: flow matching (flow.py, velocity.py), an autoregressive transformer
over discrete codes (autoregressive.py), the two-stage VAE (two_stage.py); latent
statistics to normalize continuous codes (stats.py); the common interface (registry.py).

Everything here is pure: no file I/O, no printing, no global state. Settings are frozen
dataclasses bound by keyword; PRNG keys come from the caller (`fold_in(key, step)`).
"""
from ae_jax.priors import autoregressive, flow, stats, two_stage, velocity
from ae_jax.priors.autoregressive import AutoregressiveSettings
from ae_jax.priors.flow import FlowSettings, ema_update
from ae_jax.priors.registry import LATENT_KINDS, PRIORS, PriorKind, get
from ae_jax.priors.stats import LatentStats
from ae_jax.priors.two_stage import TwoStageSettings

__all__ = ['AutoregressiveSettings', 'FlowSettings', 'LATENT_KINDS', 'LatentStats', 'PRIORS',
           'PriorKind', 'TwoStageSettings', 'autoregressive', 'ema_update', 'flow', 'get',
           'stats', 'two_stage', 'velocity']
