"""The comparison with pythae: under pythae_compare.SETTINGS ae_jax's objectives are pythae's
losses (its formulas always; its own loss functions where pythae is installed), and the page
renders a measurement file."""
import importlib.util
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import config_lib, docs, losses, objectives, pythae_compare, sweep
from ae_jax.models.base import ModelOutput
from ae_jax.models.quantizer import VectorQuantizer

HAVE_PYTHAE = importlib.util.find_spec('pythae') is not None
needs_pythae = pytest.mark.skipif(not HAVE_PYTHAE, reason='pythae is not installed (optional)')
B, L, SHAPE = 4, 3, (5, 5, 1)
P = math.prod(SHAPE)


def _setup(model, tiny):
  """The resolved config, LossSpec, the objective's settings and the member's
  hyperparameters for pythae model `model`."""
  overrides = {k.replace('.', '__'): v for k, v in pythae_compare.SETTINGS[model].items()}
  config = config_lib.resolve(tiny(**overrides))
  members = sweep.expand(config)
  spec = losses.LossSpec.from_config(config.loss)
  settings = objectives.get(config.loss.objective).settings(config, members)
  hp = {k: jnp.asarray(v[0]) for k, v in sweep.hparams(members).items()}
  return config, spec, settings, hp


def _draws(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.random((B, *SHAPE)).astype(np.float32)
  recon = rng.random((B, *SHAPE)).astype(np.float32)
  mean = rng.normal(size=(B, L)).astype(np.float32)
  logvar = rng.normal(scale=0.5, size=(B, L)).astype(np.float32)
  eps = rng.normal(size=(B, L)).astype(np.float32)
  return x, recon, mean, logvar, mean + np.exp(0.5 * logvar) * eps


def _terms(tiny, model, out, x, decode=None, params=None, key=0):
  config, spec, settings, hp = _setup(model, tiny)
  inp = objectives.LossInputs(x=jnp.asarray(x), out=out, hp=hp, beta=hp['beta'], loss=spec,
                              settings=settings, num_train=100, key=jax.random.PRNGKey(key),
                              decode=decode, latent_mask=None, networks={}, params=params)
  return objectives.get(config.loss.objective).terms(inp)


def _sse(a, b):
  return ((a - b) ** 2).reshape(len(a), -1).sum(1)


def _kl(mean, logvar):
  return -0.5 * (1 + logvar - mean ** 2 - np.exp(logvar)).sum(1)


@pytest.mark.slow  # JAX op by op
def test_vae_settings_minimise_pythaes_vae_loss(tiny):
  """pythae: 1/2 sum_P (x_hat - x)^2 + KL; ours: the same plus (P/2) log 2 pi."""
  x, recon, mean, logvar, z = _draws()
  out = ModelOutput(recon=recon, logits=recon, mean=mean, logvar=logvar, z=z)
  t = _terms(tiny, 'vae', out, x)
  pythae = 0.5 * _sse(recon, x) + _kl(mean, logvar)
  np.testing.assert_allclose(t['loss'], pythae + 0.5 * P * math.log(2 * math.pi), rtol=1e-5)


@pytest.mark.slow  # JAX op by op
def test_rae_l2_settings_minimise_pythaes_rae_l2_loss_and_weight_decay(tiny):
  """pythae: sum_P (x_hat - x)^2 + 1e-4 |z|^2 / 2, and Adam weight decay 1e-7 on the decoder
  (its gradient, 1e-7 theta); ours puts the decay in the loss."""
  x, recon, _, _, z = _draws(1)
  out = ModelOutput(recon=recon, logits=recon, mean=z, logvar=None, z=z)
  theta = {'decoder': {'w': jnp.asarray(np.linspace(-1, 1, 7, dtype=np.float32))},
           'encoder': {'w': jnp.ones(3)}}
  t = _terms(tiny, 'rae_l2', out, x, params=theta)
  decay = 0.5e-7 * float(jnp.sum(theta['decoder']['w'] ** 2))
  np.testing.assert_allclose(t['loss'], _sse(recon, x) + 1e-4 * 0.5 * (z ** 2).sum(1) + decay,
                             rtol=1e-6)
  grad = jax.grad(lambda p: _terms(tiny, 'rae_l2', out, x, params=p)['loss'].mean())(theta)
  np.testing.assert_allclose(grad['decoder']['w'], 1e-7 * theta['decoder']['w'], rtol=1e-5)
  assert not np.any(grad['encoder']['w'])


@pytest.mark.slow  # JAX op by op
def test_vqvae_settings_weigh_the_vq_terms_as_pythae(tiny):
  """pythae: mean_B sum_P (x_hat - x)^2 + 0.25 mean (z_e - sg e)^2 + mean (sg z_e - e)^2,
  learnt by the codebook loss (no EMA)."""
  x, recon, _, _, z = _draws(2)
  codebook = np.linspace(-1, 1, 9, dtype=np.float32)[:, None]
  vq = VectorQuantizer(9, 'codebook_loss').apply({'params': {'codebook': codebook}},
                                                 jnp.asarray(z)[..., None])
  out = ModelOutput(recon=recon, logits=recon, mean=z[..., None], logvar=None,
                    z=vq.quantized, aux={'commitment': vq.commitment, 'codebook': vq.codebook})
  t = _terms(tiny, 'vqvae', out, x)
  e = codebook[np.abs(z[..., None] - codebook[:, 0]).argmin(-1), 0]  # [B, L]
  sq = ((z - e) ** 2).mean(1)
  np.testing.assert_allclose(t['loss'], _sse(recon, x) + 0.25 * sq + sq, rtol=1e-5)
  np.testing.assert_allclose(t['loss'].mean(), _sse(recon, x).mean() + 1.25 * ((z - e) ** 2).mean(),
                             rtol=1e-5)


def _pythae_log_w(x, recons, mean, logvar, zs):
  """pythae's IWAE log-weights [B, K]: -(1/2 sse + log q - log p) without the 2 pi's."""
  sse = np.stack([_sse(r, x) for r in recons], 1)
  log_q = (-0.5 * (logvar[:, None] + (zs - mean[:, None]) ** 2 / np.exp(logvar)[:, None])).sum(-1)
  log_p = -0.5 * (zs ** 2).sum(-1)
  return -(0.5 * sse + log_q - log_p)


@pytest.mark.slow  # JAX op by op
def test_iwae_settings_minimise_the_ten_sample_bound_of_pythaes_weights(tiny):
  x, _, mean, logvar, z = _draws(3)
  w = np.random.default_rng(4).normal(size=(L, P)).astype(np.float32)
  decode = lambda zz: (jax.nn.sigmoid(zz @ w).reshape(-1, *SHAPE),) * 2
  recon0 = np.asarray(decode(z)[0])
  out = ModelOutput(recon=recon0, logits=recon0, mean=mean, logvar=logvar, z=z)
  t = _terms(tiny, 'iwae', out, x, decode=decode, key=5)
  from ae_jax.objectives import iwae
  draws = iwae.sample_posterior(jax.random.PRNGKey(5), mean, logvar, 10)  # the objective's
  zs = np.asarray(draws.z.at[0].set(z)).transpose(1, 0, 2)  # [B, K, L]; draw 0 is out.z
  recons = [np.asarray(decode(zs[:, k])[0]) for k in range(10)]
  log_w = _pythae_log_w(x, recons, mean, logvar, zs)
  bound = np.log(np.exp(log_w - log_w.max(1, keepdims=True)).mean(1)) + log_w.max(1)
  np.testing.assert_allclose(t['loss'], -bound + 0.5 * P * math.log(2 * math.pi), rtol=1e-5)


@needs_pythae
@pytest.mark.slow
def test_the_formulas_above_are_pythaes_loss_functions():
  import torch
  from pythae import models
  x, recon, mean, logvar, z = _draws()
  nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
  t = lambda a: torch.from_numpy(a)
  vae = models.VAE(models.VAEConfig(input_dim=(1, 5, 5), latent_dim=L))
  loss = vae.loss_function(nchw(recon), nchw(x), t(mean), t(logvar), t(z))[0]
  np.testing.assert_allclose(float(loss), (0.5 * _sse(recon, x) + _kl(mean, logvar)).mean(),
                             rtol=1e-5)
  rae = models.RAE_L2(models.RAE_L2_Config(input_dim=(1, 5, 5), latent_dim=L))
  loss = rae.loss_function(nchw(recon), nchw(x), t(z))[0]
  np.testing.assert_allclose(float(loss), (_sse(recon, x) + 1e-4 * 0.5 * (z ** 2).sum(1)).mean(),
                             rtol=1e-5)
  assert rae.model_config.reg_weight == 1e-7  # the decoder's Adam weight decay
  vq = models.VQVAEConfig(input_dim=(1, 5, 5), latent_dim=L)
  assert (vq.num_embeddings, vq.commitment_loss_factor, vq.quantization_loss_factor,
          vq.use_ema) == (512, 0.25, 1.0, False)


@needs_pythae
@pytest.mark.slow
def test_pythaes_iwae_gradient_is_the_bounds():
  """Its loss value is -sum_k sg(w~_k) log w_k, but its gradient is -grad log mean_k w_k:
  the bound our settings minimise."""
  import torch
  from pythae import models
  x, _, mean, logvar, _ = _draws(6)
  k = 10
  iw = models.IWAE(models.IWAEConfig(input_dim=(1, 5, 5), latent_dim=L, number_samples=k))
  rng = np.random.default_rng(7)
  zs = (mean[:, None] + np.exp(0.5 * logvar)[:, None] * rng.normal(size=(B, k, L))).astype(
      np.float32)
  recon = rng.random((B, k, P)).astype(np.float32)
  xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  rt = torch.from_numpy(recon).requires_grad_()
  rep = lambda a: torch.from_numpy(np.repeat(a[:, None], k, 1))
  iw.loss_function(rt, xt, rep(mean), rep(logvar), torch.from_numpy(zs))[0].backward()
  theirs = rt.grad.numpy()

  def neg_bound(r):
    sse = ((r - jnp.asarray(x.reshape(B, 1, P))) ** 2).sum(-1)
    log_q = (-0.5 * (logvar[:, None] + (zs - mean[:, None]) ** 2 / np.exp(logvar)[:, None])).sum(-1)
    log_w = -(0.5 * sse + log_q + 0.5 * (zs ** 2).sum(-1))
    return -(jax.nn.logsumexp(log_w, 1) - math.log(k)).mean()
  np.testing.assert_allclose(jax.grad(neg_bound)(jnp.asarray(recon)), theirs, rtol=1e-4,
                             atol=1e-7)


# ---- the page ---------------------------------------------------------------------------

def _record():
  pair = lambda lib, ips, **kw: {'name': 'vae mlp', 'model': 'vae', 'net': 'mlp',
                                 'library': lib, 'images_per_sec': ips, 'first_epoch_s': 2.5,
                                 'recon_mse': 20.25, 'neg_elbo': 740.5, 'fd': 12.5, **kw}
  vq = {'name': 'vqvae conv', 'model': 'vqvae', 'net': 'conv', 'library': 'ae_jax',
        'images_per_sec': None, 'recon_mse': 30.0, 'fd': 40.0, 'codebook_usage': 0.125,
        'perplexity': 5.5}
  sweep_row = lambda lib, ips: {'name': 'beta_vae sweep mlp', 'model': 'beta_vae sweep',
                                'net': 'mlp', 'library': lib, 'images_per_sec': ips,
                                'wall_s': 100.0, 'members': 2,
                                'per_beta': [{'beta': 0.5, 'recon_mse': 10.0, 'neg_elbo': 700.0,
                                              'kl': 30.0, 'fd': 9.0},
                                             {'beta': 4.0, 'recon_mse': 15.0, 'neg_elbo': 710.0,
                                              'kl': 8.0, 'fd': 11.0}]}
  ours = sweep_row('ae_jax', 9000.0)
  ours['speedup'] = 4.5
  return {'title': 'ae_jax beside pythae', 'date': '2026-12-06', 'machine': '2-core CPU',
          'commit': 'abc1234', 'command': 'python experiments/vs_pythae.py --out',
          'jax': '0.10.2', 'torch': '2.13.0+cpu', 'pythae': '0.1.2', 'columns':
          pythae_compare.COLUMNS, 'losses': pythae_compare.LOSSES,
          'feature_space': 'digits-classifier 28x28x1 v1',
          'budget': {'latent_dim': 16, 'batch_size': 100, 'learning_rate': 1e-3,
                     'optimizer': 'Adam', 'epochs': 100, 'samples': 10000, 'seed': 0},
          'threads': {'threads': 2, 'how': 'NPROC'},
          'data': {'name': 'Fashion-MNIST', 'train': 60000, 'test': 10000, 'split': 'seeded'},
          'results': [pair('pythae', 1000.0), pair('ae_jax', 5000.0, speedup=5.0), vq,
                      sweep_row('pythae', 2000.0), ours]}


def test_page_tables_carry_both_libraries_the_sweep_and_the_losses():
  page = pythae_compare.render(_record(), '2026-12-06-cpu-vs-pythae.json')
  assert '| vae | mlp | pythae | 1000 | – | 2.5 | 20.25 | 740.5 | 12.5 | – |' in page
  assert '| vae | mlp | ae_jax | 5000 | 5× |' in page
  assert '| vqvae | conv | ae_jax | – | – | – | 30 | – | 40 | 12.5% (5.5) |' in page
  assert '| ae_jax | 2 | 9000 | 4.5× | 100 |' in page
  assert '| 4 | 15 | 15 | 710 | 710 | 8 | 8 | 11 | 11 |' in page  # pythae, ae_jax per column
  assert 'beta_vae sweep' not in page.split('### The beta sweep')[0]  # not among the pairs
  for loss in pythae_compare.LOSSES:
    assert f'| {loss["model"]} |' in page
  assert '[`benchmarks/2026-12-06-cpu-vs-pythae.json`]' in page
  assert 'digits-classifier 28x28x1 v1' in page and '60000 training' in page


def test_the_record_renders_on_the_performance_page_too():
  table = docs.benchmark_table(_record())
  assert table.splitlines()[0].startswith('| model | library | images/s | ae_jax / pythae |')
  assert '| vae mlp | ae_jax | 5000.0 | 5× |' in table


def test_block_renders_every_file_newest_first_or_says_how_to_make_one(tmp_path):
  assert 'no measurement yet' in pythae_compare.block(str(tmp_path))
  bench = tmp_path / 'benchmarks'
  bench.mkdir()
  (bench / '2026-11-30-cpu-accelerator_check.json').write_text('{}')  # not this experiment's
  assert 'no measurement yet' in pythae_compare.block(str(tmp_path))
  old, new = _record(), _record()
  old['date'], new['date'] = '2026-12-01', '2026-12-06'
  (bench / '2026-12-01-cpu-vs-pythae.json').write_text(json.dumps(old))
  (bench / '2026-12-06-cpu-vs-pythae.json').write_text(json.dumps(new))
  (bench / '2026-12-06-cpu-conv-vs-pythae.json').write_text(json.dumps(new))  # one run's nets
  page = pythae_compare.block(str(tmp_path))
  heads = [line for line in page.splitlines() if line.startswith('### 2026')]
  assert heads == ['### 2026-12-06-cpu-vs-pythae', '### 2026-12-06-cpu-conv-vs-pythae',
                   '### 2026-12-01-cpu-vs-pythae']
  assert page.split('\n\n', 2)[1].startswith('Measured 2026-12-06')
  assert page.count('Measured 2026-12-01') == 1
