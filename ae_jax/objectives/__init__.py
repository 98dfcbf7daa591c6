"""Training objectives, each declared once: `loss.objective` picks one.

An `Objective` (objectives/base.py) names its per-example loss function (`terms`), the model
kinds it trains, its config keys (declared here, with their sweep role: every weight is a
vmapped sweep axis; the unswept ones are its static settings, which its terms function
receives as its own mapping, `LossInputs.settings`), and the terms it logs. The train step, the
evaluation, the sweep tables, the schema (and so docs/configs.md) and the metric registry
read these declarations; adding an objective is one module and one entry in OBJECTIVES.

Every objective weights its latent regulariser by loss.beta (swept as `sweep.beta`): the
KL for the ELBO and IWAE, the total correlation for beta-TCVAE, the KL of FactorVAE's
ELBO, the MMD for WAE (the paper's lambda) and the code penalty for RAE. The terms
functions take a `LossInputs` and return per-example arrays [B]: 'loss' (what is
minimised), 'recon' (the reconstruction term), 'kl' (0 without a posterior) and their own.

The math lives beside each objective's terms (tcvae.py, mmd.py, iwae.py), the VQ layer in
models/quantizer.py, the discriminators in models/discriminators.py and adversarial.py.
"""
from __future__ import annotations

from ae_jax.keys import Key
from ae_jax.models import kinds
from ae_jax.objectives import elbo, factorvae, iwae, mmd, rae, tcvae
from ae_jax.objectives.base import LossInputs, Objective, ObjectiveSpec

__all__ = ['LossInputs', 'Objective', 'ObjectiveSpec', 'OBJECTIVES', 'REGISTRY', 'NAMES', 'get',
           'keys', 'logged_terms']


OBJECTIVES: tuple[Objective, ...] = (
    Objective('elbo', 'reconstruction + beta * KL (a plain AE: reconstruction; a VQ-VAE: '
              'reconstruction + its codebook terms; FSQ: reconstruction)', kinds.NAMES,
              elbo.terms, logged=('commitment', 'codebook'),
              derived=lambda config, members: {'vq_learning': config.model.vq.learning}),
    Objective('iwae', 'the importance-weighted bound of loss.iwae_samples posterior samples '
              '(Burda et al. 2016); with 1 sample exactly the ELBO objective', ('vae',),
              iwae.terms, logged=('iwae_bound',),
              derived=lambda config, members: {
                  'iwae_max': max(int(m.get('iwae_samples', 1)) for m in members)},
              keys=(Key('loss.iwae_samples', 5, 'int', 'iwae: importance samples K per image '
                        '(a sweep trains each member with its own K, by masking)',
                        check='at_least_1', sweep='vmap'),)),
    Objective('tcvae', 'beta-TCVAE (Chen et al. 2018): the KL split into index-code MI, total '
              'correlation and dimension-wise KL, weighted alpha, beta, gamma',
              ('vae',), tcvae.terms, logged=('mi', 'tc', 'dwkl'),
              pairs='estimates q(z) from the batch\'s other posteriors',
              keys=(Key('loss.tc_alpha', 1.0, 'float', 'tcvae: weight of the index-code '
                        'mutual information (beta weights the total correlation)',
                        check='non_negative', sweep='vmap'),
                    Key('loss.tc_gamma', 1.0, 'float', 'tcvae: weight of the dimension-wise '
                        'KL', check='non_negative', sweep='vmap'),
                    Key('loss.tc_estimator', 'mss', 'str', 'tcvae: minibatch stratified (mss, '
                        'unbiased q(z)) or weighted (mws, Chen et al.\'s code) sampling',
                        choices=('mss', 'mws')))),
    Objective('factorvae', 'FactorVAE (Kim & Mnih 2018): the ELBO + gamma * the total '
              'correlation a discriminator estimates on dimension-permuted codes',
              ('vae',), factorvae.terms, logged=('tc', 'critic_loss', 'critic_acc'),
              critic='tc', pairs='permutes each code dimension across the batch',
              keys=(Key('loss.factor_gamma', 6.4, 'float', 'factorvae: weight of the total '
                        'correlation (6.4 in the common dSprites reimplementation; Kim & Mnih '
                        'sweep 10-100)', check='non_negative', sweep='vmap'),
                    Key('loss.critic_hidden', (1000,) * 5, 'ints', 'factorvae: the TC '
                        'discriminator\'s hidden widths (an MLP, LeakyReLU 0.2)',
                        check='positive', non_empty=True))),
    Objective('wae_mmd', 'WAE-MMD (Tolstikhin et al. 2018): a deterministic encoder, '
              'reconstruction + beta * MMD (inverse multiquadric kernels) between the codes '
              'and N(0, I) samples; beta is the paper\'s lambda', ('ae',),
              mmd.terms, logged=('mmd',),
              pairs='compares every pair of the batch\'s codes (each code but with itself)'),
    Objective('rae', 'RAE (Ghosh et al. 2020): reconstruction + beta * ||z||^2 / 2 + a '
              'decoder regulariser (weight decay or gradient penalty); sample with an ex-post '
              'density (latent fit --density gmm)', ('ae',), rae.terms,
              logged=('code_l2', 'decoder_reg'),
              keys=(Key('loss.rae_decoder', 'l2', 'str', 'rae: the decoder regulariser: l2 '
                        '(its weights\' squared norm), gp (||grad_z of the decoder\'s output '
                        'sum||^2) or none', choices=('l2', 'gp', 'none')),
                    Key('loss.rae_decoder_weight', 1e-7, 'float', 'rae: the decoder '
                        'regulariser\'s weight (Ghosh et al. use 1e-7 for l2)',
                        check='non_negative', sweep='vmap'))),
)
REGISTRY: dict[str, Objective] = {o.name: o for o in OBJECTIVES}
NAMES = tuple(REGISTRY)


def get(name: str) -> Objective:
  return REGISTRY[name]


def keys() -> tuple[Key, ...]:
  """Every objective's own config keys (the schema adds them to the config)."""
  return tuple(k for o in OBJECTIVES for k in o.keys)


def logged_terms() -> tuple[str, ...]:
  return tuple(dict.fromkeys(t for o in OBJECTIVES for t in o.logged))
