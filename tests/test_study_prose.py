"""A study report's sentences that interpret results are built from its numbers: they say
what the table says (and when it goes against the usual expectation), name a member that
diverged, and its figures keep every member readable (one that ran away is drawn clipped).
These are the prose builders and the figure, fed numbers; no training."""
import math

import pytest

from ae_jax import figures
from ae_jax.studies import ae_vs_vae_noise, hyperparameter_tables, kl_weight_study
from ae_jax.studies import reconstruction_quality


def _member(beta, recon, kl, psnr, units, neg_elbo=None):
  return {'beta': beta, 'eval': {'recon': recon, 'kl': kl, 'psnr': psnr,
                                 'active_units': units,
                                 'neg_elbo': recon + kl if neg_elbo is None else neg_elbo}}


# the --quick run that contradicted its own prose: x100 above x1 in PSNR, x0's KL at 3.5e20
QUICK = [_member(0.0, 3000.0, 3.5e20, 11.9, 32), _member(1.0, 3100.0, 40.0, 11.75, 20),
         _member(100.0, 3050.0, 2.0, 12.12, 3)]


def test_the_kl_study_says_what_its_table_says():
  text = kl_weight_study.what_it_shows(QUICK)
  assert 'blurs' not in text
  assert ('The largest weight (×100) reconstructs better than ×1 here (12.12 against 11.75 dB '
          'PSNR)') in text
  assert 'with a code that carries less information (KL 2 against 40 nats; 3 against 20 ' \
         'active units)' in text
  # the diverged member is named, with its value
  assert '×0 diverged: KL 3.5e+20, −ELBO 3.5e+20' in text
  # the expected trade, where the numbers show it
  worse = [QUICK[0], QUICK[1], _member(100.0, 3300.0, 2.0, 10.2, 3)]
  text = kl_weight_study.what_it_shows(worse)
  assert 'reconstructs worse than ×1 (10.20 against 11.75 dB PSNR)' in text
  assert '×0 diverged' in text


def test_a_member_without_divergence_is_not_called_diverged():
  calm = [_member(0.0, 3000.0, 250.0, 12.5, 32), *QUICK[1:]]
  assert 'diverged' not in kl_weight_study.what_it_shows(calm)


@pytest.mark.parametrize('peaks,expected', [
    ({'a': 300.0, 'b': 310.0, 'c': 3.5e20}, {'c'}),
    ({'a': 300.0, 'b': 3.5e20}, {'b'}),  # two members: the smaller is the typical one
    ({'a': 300.0, 'b': float('nan'), 'c': 290.0}, {'b'}),
    ({'a': 300.0, 'b': 20_000.0, 'c': 290.0}, set()),  # under 100x: the same scale
    ({'a': 3.5e20}, set()),
])
def test_outliers(peaks, expected):
  assert set(figures.outliers(peaks)) == expected


def _records(peak):
  rows = []
  for member, scale in (('beta=0', peak), ('beta=1', 300.0), ('beta=100', 310.0)):
    for epoch in (1, 2, 3):
      for split in ('train', 'eval'):
        v = scale if member != 'beta=0' else 300.0 * (peak / 300.0) ** (epoch / 3)
        rows.append({'member': member, 'epoch': epoch, 'split': split, 'neg_elbo': v})
  return rows


def test_a_runaway_curve_is_drawn_clipped_and_the_others_keep_their_scale():
  fig = figures.loss_curves(_records(3.5e20), 'neg_elbo')
  ax = fig.axes[0]
  assert ax.get_ylim()[1] < 1e4  # the 300-nat curves fill the axes, not 1e21
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert any(t.startswith('beta=0 (off scale, up to 3.5e+20; drawn clipped)') for t in labels)
  # without a runaway member nothing is clipped
  fig = figures.loss_curves(_records(600.0), 'neg_elbo')
  labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert not any('off scale' in t for t in labels)
  assert fig.axes[0].get_ylim()[1] >= 600.0


def test_the_noise_study_reads_its_ratios():
  assert 'the VAE decodes noise nearer the data than the AE does (ratio 1.10 against ' \
         "the AE's 2.40)" in ae_vs_vae_noise.noise_verdict(2.4, 1.1)
  text = ae_vs_vae_noise.noise_verdict(1.1, 2.4)
  assert 'does not decode noise nearer the data' in text and 'against the usual' in text


def test_the_reconstruction_study_reads_its_psnr():
  members = [{'eval': {'psnr': p}} for p in (20.0, 22.0, 18.0, 19.0)]
  kinds = ['ae', 'ae', 'vae', 'vae']
  assert reconstruction_quality.kinds_verdict(members, kinds).startswith(
      'The VAEs reconstruct less sharply here (18.50 dB mean PSNR against the AEs\' 21.00)')
  members = [{'eval': {'psnr': p}} for p in (18.0, 19.0, 20.0, 22.0)]
  assert reconstruction_quality.kinds_verdict(members, kinds).startswith(
      'The VAEs reconstruct no worse than the AEs here')


def test_the_hyperparameter_study_reads_its_tables():
  tables = {('AE', 'learning rate'): [[0.1, 900.0, 11.4], [0.01, 80.0, 25.0],
                                      [0.001, 60.0, 27.4], [0.0001, 70.0, 26.0]],
            ('VAE', 'learning rate'): [[0.1, math.nan, math.nan], [0.01, 90.0, 15.0],
                                       [0.001, 80.0, 18.0]],
            ('AE', 'latent size'): [[32, 1.0, 26.9], [256, 1.0, 27.2]],
            ('VAE', 'latent size'): [[2, 1.0, 14.0], [512, 1.0, 19.0]]}
  text = hyperparameter_tables.reading(tables)
  assert ('AE: the highest learning rate (0.1) ends at 11.40 dB against 27.40 dB at 0.001: '
          'too high for this model.') in text
  assert ('VAE: the highest learning rate (0.1) ends at no finite PSNR against 18.00 dB at '
          '0.001: too high for this model.') in text
  assert 'AE: the smallest latent size (32) ends at 26.90 dB against 27.20 at 256: it costs ' \
         'it less than 1 dB here.' in text
  assert 'VAE: the smallest latent size (2) ends at 14.00 dB against 19.00 at 512: it caps ' \
         'what it reconstructs at this budget.' in text
