"""Every prior kind declared once, so a trainer can drive any of them the same way, and
the config schema, the docs, the command line and sampling read the same declarations.

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

A fitted kind (`fitted`: gaussian, gmm, categorical) has no training loop: fit(codes,
settings, seed) -> params of NumPy arrays, sample_fitted(params, num, seed, temperature),
held_out_fitted(params, codes) (priors/fitted.py).

Each kind declares its settings as config keys, `prior.<kind>.<setting>` (`keys`), whose
values build its settings dataclass by keyword; `derived` names the settings the caller
supplies from the autoencoder instead (the codebook's size).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from ae_jax.errors import ConfigError
from ae_jax.keys import Key
from ae_jax.priors import autoregressive, fitted, flow, two_stage

LATENT_KINDS = ('continuous', 'discrete')


@dataclasses.dataclass(frozen=True)
class PriorKind:
  name: str
  doc: str
  latent_kinds: tuple[str, ...]  # of LATENT_KINDS
  settings: type                 # the frozen settings dataclass
  held_out_name: str             # what held_out measures (a metric name)
  logged: tuple[str, ...] = ()   # the terms loss returns beside the loss
  normalize: bool = False        # codes normalized by stats.py around the prior
  keys: tuple[Key, ...] = ()     # its settings as config keys, prior.<name>.<setting>
  derived: tuple[str, ...] = ()  # settings the caller supplies from the model
  # a trained kind's pure JAX functions
  init: Callable | None = None
  loss: Callable | None = None
  sample: Callable | None = None
  held_out: Callable | None = None
  # a fitted kind's NumPy functions
  fit: Callable | None = None
  sample_fitted: Callable | None = None
  held_out_fitted: Callable | None = None

  @property
  def fitted(self) -> bool:
    return self.fit is not None

  def make_settings(self, **values):
    """The settings from keyword values (a config subtree); an unknown name is one line."""
    names = tuple(f.name for f in dataclasses.fields(self.settings))
    unknown = sorted(set(values) - set(names))
    if unknown:
      raise ConfigError(f'{self.name} prior: unknown setting(s) {", ".join(unknown)}; '
                        f'expected some of {", ".join(names)}')
    return self.settings(**values)

  def settings_from(self, config, **derived):
    """The settings of config.prior.<name> (a ConfigDict) with the derived ones."""
    own = {k.name.rsplit('.', 1)[-1]: _plain(config.prior[self.name][k.name.rsplit('.', 1)[-1]])
           for k in self.keys}
    return self.make_settings(**own, **derived)


def _plain(value):
  return tuple(value) if isinstance(value, list) else value


def _keys(kind: str, *specs) -> tuple[Key, ...]:
  """Keys prior.<kind>.<setting> from (setting, default, value kind, doc[, choices/check])."""
  out = []
  for name, default, value_kind, doc, *rest in specs:
    extra = rest[0] if rest else {}
    out.append(Key(f'prior.{kind}.{name}', default, value_kind, f'{kind} prior: {doc}',
                   role='free', **extra))
  return tuple(out)


_F = flow.FlowSettings()
FLOW = PriorKind(
    'flow', 'conditional flow matching / rectified flow (Lipman et al. 2023; Liu et al. '
    '2023): an MLP (flat codes) or DiT (spatial codes) velocity field, Euler or Heun '
    'sampling', ('continuous',), flow.FlowSettings, 'fm_loss', ('fm_loss',), normalize=True,
    init=flow.init, loss=flow.loss, sample=flow.sample, held_out=flow.held_out,
    keys=_keys('flow',
               ('net', _F.net, 'str', 'velocity network: mlp (flat codes) | dit (spatial '
                'codes) | auto', {'choices': flow.NETS}),
               ('hidden', _F.hidden, 'int', 'the MLP\'s width, the DiT\'s token width',
                {'check': 'positive'}),
               ('depth', _F.depth, 'int', 'the MLP\'s hidden layers, the DiT\'s blocks',
                {'check': 'positive'}),
               ('time_dim', _F.time_dim, 'int', 'sinusoidal time features',
                {'check': 'positive'}),
               ('time_scale', _F.time_scale, 'float', 'the fastest time feature\'s radians '
                'per unit t', {'check': 'positive'}),
               ('time_mode', _F.time_mode, 'str', 'MLP: time features concatenated to the '
                'input or added', {'choices': flow.TIME_MODES}),
               ('t_dist', _F.t_dist, 'str', 'training times: uniform on [0, 1] or '
                'logit_normal (sigmoid of N(t_mean, t_std), as SD3 trains)',
                {'choices': flow.TIME_DISTS}),
               ('t_mean', _F.t_mean, 'float', 'logit_normal: the mean of logit(t)', {}),
               ('t_std', _F.t_std, 'float', 'logit_normal: the standard deviation of '
                'logit(t)', {'check': 'positive'}),
               ('coupling', _F.coupling, 'str', 'noise paired with codes independently '
                'or by minibatch optimal transport (ot: entropic, Sinkhorn)',
                {'choices': flow.COUPLINGS}),
               ('ot_reg', _F.ot_reg, 'float', 'ot: Sinkhorn\'s entropic weight relative '
                'to the mean squared distance', {'check': 'positive'}),
               ('heads', _F.heads, 'int', 'DiT attention heads (divide hidden)',
                {'check': 'positive'}),
               ('patch', _F.patch, 'int', 'DiT patch size (divides the code\'s height and '
                'width)', {'check': 'positive'}),
               ('mlp_ratio', _F.mlp_ratio, 'int', 'DiT: the MLP\'s width over hidden',
                {'check': 'positive'}),
               ('steps', _F.steps, 'int', 'sampler steps', {'check': 'positive'}),
               ('sampler', _F.sampler, 'str', 'euler | heun', {'choices': flow.SAMPLERS}),
               ('held_out_draws', _F.held_out_draws, 'int', '(t, noise) draws per held-out '
                'code', {'check': 'positive'}),
               ('ema_decay', 0.999, 'float', 'EMA of the weights, which sampling uses, '
                'warmed up as min(decay, (1 + t) / (10 + t)) at update t (0: the weights '
                'themselves)', {'check': 'unit'})))
_A = autoregressive.AutoregressiveSettings(num_codes=2)
AUTOREGRESSIVE = PriorKind(
    'autoregressive', 'a causal transformer over code indices in raster order (VQ-GAN\'s '
    'prior, Esser et al. 2021): exact likelihood, sampling with temperature and top-k',
    ('discrete',), autoregressive.AutoregressiveSettings, 'bits_per_code',
    ('nll', 'bits_per_code'), init=autoregressive.init, loss=autoregressive.loss,
    sample=autoregressive.sample, held_out=autoregressive.held_out, derived=('num_codes',),
    keys=_keys('autoregressive',
               ('width', _A.width, 'int', 'token width', {'check': 'positive'}),
               ('depth', _A.depth, 'int', 'transformer blocks', {'check': 'positive'}),
               ('heads', _A.heads, 'int', 'attention heads (divide width)',
                {'check': 'positive'}),
               ('mlp_ratio', _A.mlp_ratio, 'int', 'the blocks\' MLP width over width',
                {'check': 'positive'}),
               ('temperature', _A.temperature, 'float', 'sampling: logits / temperature; '
                '0: the most likely code at each position', {'check': 'non_negative'}),
               ('top_k', _A.top_k, 'int', 'sampling: only the k most likely codes; 0: all',
                {'check': 'non_negative'})))
_T = two_stage.TwoStageSettings()
TWO_STAGE = PriorKind(
    'two_stage', 'a second MLP VAE with a learned decoder variance on the codes (Dai & '
    'Wipf 2019)', ('continuous',), two_stage.TwoStageSettings, 'neg_elbo',
    ('recon', 'kl', 'neg_elbo', 'gamma'), normalize=True, init=two_stage.init,
    loss=two_stage.loss, sample=two_stage.sample, held_out=two_stage.held_out,
    keys=_keys('two_stage',
               ('hidden', _T.hidden, 'int', 'hidden width', {'check': 'positive'}),
               ('depth', _T.depth, 'int', 'hidden layers of the encoder and decoder',
                {'check': 'positive'}),
               ('latent_dim', _T.latent_dim, 'int', 'its latent size; 0: the code\'s',
                {'check': 'non_negative'}),
               ('skip', _T.skip, 'bool', 'the input concatenated to the last hidden layer'),
               ('decoder_noise', _T.decoder_noise, 'bool', 'sampling adds N(0, gamma I) to '
                'the decoded mean')))
GAUSSIAN = PriorKind(
    'gaussian', 'one full-covariance Gaussian fitted to the codes (latent fit\'s default)',
    ('continuous',), fitted.GaussianSettings, 'nll', fit=fitted.fit_gaussian,
    sample_fitted=fitted.sample_continuous, held_out_fitted=fitted.held_out_continuous)
_G = fitted.GMMSettings()
GMM = PriorKind(
    'gmm', 'a Gaussian mixture fitted to the codes by EM (Ghosh et al. 2020\'s ex-post '
    'density)', ('continuous',), fitted.GMMSettings, 'nll', fit=fitted.fit_gmm,
    sample_fitted=fitted.sample_continuous, held_out_fitted=fitted.held_out_continuous,
    keys=_keys('gmm',
               ('components', _G.components, 'int', 'mixture components',
                {'check': 'positive'}),
               ('covariance', _G.covariance, 'str', 'full | tied | diag | spherical',
                {'choices': fitted.density.COVARIANCE_TYPES}),
               ('max_iter', _G.max_iter, 'int', 'EM iterations', {'check': 'positive'})))
CATEGORICAL = PriorKind(
    'categorical', 'the code index at each position drawn on its own, by its training '
    'frequency (latent fit --density categorical)', ('discrete',),
    fitted.CategoricalSettings, 'bits_per_code', fit=fitted.fit_categorical,
    sample_fitted=fitted.sample_categorical, held_out_fitted=fitted.held_out_categorical,
    derived=('num_codes',),
    keys=_keys('categorical', ('smoothing', 1.0, 'float', 'added to every count',
                               {'check': 'non_negative'})))

PRIORS: dict[str, PriorKind] = {k.name: k for k in (FLOW, AUTOREGRESSIVE, TWO_STAGE,
                                                      GAUSSIAN, GMM, CATEGORICAL)}


def get(name: str) -> PriorKind:
  if name not in PRIORS:
    raise ConfigError(f'prior {name!r}: expected one of {", ".join(PRIORS)}')
  return PRIORS[name]


def keys() -> tuple[Key, ...]:
  """Every kind's settings keys (the schema adds them to the config)."""
  return tuple(k for kind in PRIORS.values() for k in kind.keys)
