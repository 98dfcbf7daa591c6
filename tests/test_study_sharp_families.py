"""The sharp_reconstructions and model_families studies at their --smoke budget, the
factor_vae metric they report, and the LPIPS trunk the sharp recipe trains with."""
import json
import os
import types

import numpy as np
import pytest

from ae_jax import config_lib
from ae_jax.errors import ConfigError
from ae_jax.metrics import passes

pytestmark = pytest.mark.slow


def test_sharp_reconstructions(tmp_path, smoke_study, report_table, optimized_xla):
  from ae_jax.studies import sharp_reconstructions as sr
  md = smoke_study('sharp_reconstructions', tmp_path)
  rows = report_table(md, 'Test metrics')
  assert [r[0] for r in rows[:3]] == [label for _, label, _ in sr.RECIPES]
  # PCA with as many components as the autoencoder's code (smoke: an 8-unit conv VAE)
  assert rows[3][0] == 'PCA, 8 units'
  results = json.load(open(tmp_path / 'results.json'))
  assert [m['key'] for m in results['models']] == ['mse', 'l1_lpips', 'l1_lpips_gan', 'pca']
  gan = results['models'][2]['metrics']
  # how far the discriminator got: its last logged training values, with a nonzero weight
  assert {'gan_d', 'logits_real', 'logits_fake', 'gan_lambda'} <= set(gan)
  assert gan['gan_lambda'] > 0
  assert '## The discriminator' in md and 'From step 5 of 10' in md
  # the L1 + LPIPS model's loss carries its LPIPS term; the MSE model's does not
  cols = md.split('## Test metrics\n', 1)[1].splitlines()[1]
  assert 'PSNR' in cols and 'SSIM' in cols
  summary = json.load(open(tmp_path / 'models' / 'l1_lpips' / 'summary.json'))
  ev = summary['members'][0]['eval']
  assert ev['loss'] > ev['recon'] + 0.05  # + LPIPS-AlexNet (and the small KL)
  for name in ('error_spectrum.png', 'crops.png'):
    assert f'figures/{name}' in md


def test_model_families(tmp_path, smoke_study, report_table, idx_folder, recognised,
                        monkeypatch):
  from ae_jax.studies import model_families as mf
  fashion = str(tmp_path / 'fashion')  # IDX files taken for Fashion-MNIST, made here
  # the Fashion-MNIST table's sample FD trains its classifier on these files
  recognised(idx_folder(fashion, num_train=300, num_test=100))
  monkeypatch.setattr(mf, 'FASHION', fashion)
  md = smoke_study('model_families', tmp_path / 'study')
  tmp_path = tmp_path / 'study'
  labels = {k: label for k, label, _, _ in mf.FAMILIES}
  for title, ds in (('dSprites', 'dsprites'), ('Photographs', 'photos'),
                    ('Fashion-MNIST', 'fashion')):
    rows = report_table(md, f'{title}: test metrics')
    assert [r[0] for r in rows] == [labels[k] for k in mf.SMOKE_FAMILIES]
    assert f'figures/samples_{ds}.png' in md
  head = md.split('## dSprites: test metrics\n', 1)[1].splitlines()[1]
  assert 'MIG (↑)' in head and 'FactorVAE score (↑)' in head
  assert 'sample FD' not in head and 'Sample FD: not measured' in md  # not at --smoke
  results = json.load(open(tmp_path / 'results.json'))
  keys = [m['key'] for m in results['models']]
  assert keys == [f'{d}/{k}' for d in ('dsprites', 'photos', 'fashion')
                  for k in mf.SMOKE_FAMILIES]
  # the real-data table's sample FD, in the Fashion-MNIST classifier's space, at any budget
  fashion_fd = [float(r[-1]) for r in report_table(md, 'Fashion-MNIST: test metrics')]
  assert len(fashion_fd) == len(mf.SMOKE_FAMILIES) and all(v > 0 for v in fashion_fd)
  assert 'samples in Fashion-MNIST classifier feature space' in md
  for m in results['models'][:len(mf.SMOKE_FAMILIES)]:
    assert 0.0 <= m['metrics']['factor_vae'] <= 1.0 and 0.0 <= m['metrics']['mig'] <= 1.0
  # each family sampled its own way, and the caption says how
  caption = md.split('## Photographs: samples\n', 1)[1].split('\n## ', 1)[0]
  assert 'RAE (β=1, L2 decoder): AE samples' in caption  # from the fitted mixture
  assert 'VQ-VAE (K=512): VQ-VAE samples' in caption
  assert ('WAE-MMD (λ=100): prior samples z ~ N(0, 1² I), the prior a WAE matches its codes '
          'to') in caption
  assert os.path.isdir(tmp_path / 'models' / 'photos' / 'vqvae' / 'checkpoints')
  assert os.path.isfile(tmp_path / 'latent' / 'fit_photos_rae' / 'density.npz')
  assert 'traversal of the highest-MIG family' in md


def test_factor_vae_metric_scores_an_encoder_that_reads_positions(centroid_encoder):
  """The registered pass on a hand-made encoder of the sprite's centre of mass: it names x
  and y perfectly and nothing else, so its score is ~2/5 of the votes (x, y of five
  factors), and an encoder of noise scores near chance (1/5)."""
  cfg = config_lib.load('base')
  with cfg.unlocked():
    cfg.data.name, cfg.eval.factor_vae_votes = 'dsprites', 200
  images = np.zeros((4, 64, 64, 1), np.float32)

  def ctx(encode):
    member = types.SimpleNamespace(encode=lambda x: (encode(x), None), name='run')
    return types.SimpleNamespace(config=cfg, factors=np.zeros((4, 5)), images=images,
                                 members=[member])

  good = passes.factor_vae(ctx(centroid_encoder))['factor_vae'][0]
  noise = np.random.default_rng(0)
  bad = passes.factor_vae(ctx(lambda x: noise.normal(size=(len(x), 4))))['factor_vae'][0]
  assert 0.3 < good < 0.5 and bad < 0.3
  with pytest.raises(ConfigError, match="needs ground-truth factors"):
    passes.factor_vae(types.SimpleNamespace(factors=None))


def test_the_lpips_term_trains_with_the_trunk_it_names():
  """loss.lpips_net picks the trunk the training term uses (AlexNet is the cheap one); the
  weights enter under its own name, and a trunk larger than the images is one line."""
  from ae_jax import losses
  from ae_jax.metrics import lpips
  cfg = config_lib.load('base')
  with cfg.unlocked():
    cfg.loss.lpips_weight, cfg.loss.lpips_net, cfg.loss.reduction = 1.0, 'alex', 'mean'
  spec = losses.LossSpec.from_config(cfg.loss)
  nets = losses.pretrained_networks(spec)
  assert list(nets) == ['lpips_alex']
  x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
  y = np.clip(x + 0.1, 0, 1)
  term = losses.extra_terms(y, x, spec, nets)
  np.testing.assert_allclose(term, lpips.distance(lpips.load('alex'), y, x, 'alex'),
                             rtol=1e-5)
  assert not np.allclose(term, lpips.distance(lpips.load('vgg'), y, x, 'vgg'), rtol=1e-2)
  with cfg.unlocked():
    cfg.data.name, cfg.data.image_size = 'digits', 16
  with pytest.raises(ConfigError, match=r"lpips_net='alex' needs images of at least 31 "
                                        r'pixels a side; data.image_size is 16'):
    config_lib.resolve(cfg)


@pytest.mark.parametrize('latent,shape', [('flat', (16,)), ('spatial', (4, 4, 16))])
def test_a_residual_vq_vae_quantises_a_plain_code(latent, shape):
  """model.arch='resnet' with model.kind='vqvae' (its encoder built a VAE's mean and
  log-variance, which the quantiser could not reshape): flat and spatial codes."""
  from ae_jax.models import build_model, latent_shape
  cfg = config_lib.load('base')
  with cfg.unlocked():
    cfg.data.name, cfg.data.image_size = 'photos', 32
    cfg.model.arch, cfg.model.kind, cfg.model.latent_dim = 'resnet', 'vqvae', 16
    cfg.model.resnet.latent = latent
  model = build_model(config_lib.resolve(cfg).model, (32, 32, 3))
  assert latent_shape(model, (32, 32, 3)) == shape
