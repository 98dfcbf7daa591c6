"""The PatchGAN recipe of the latent-diffusion autoencoder in the train step (critic.py):
nothing changes before loss.gan_start_step, the discriminator trains after it, taming's
adaptive weight equals the gradient-norm ratio computed apart, resume is bit-exact with
the discriminator's state, a sweep over gan_weight trains as its single runs, and the
mistakes are one line. The losses' values are tested in test_adversarial.py."""
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ae_jax import adversarial, checkpoint, critic, steps
from ae_jax.errors import ConfigError
from ae_jax.train import train_and_evaluate
from ae_jax.training import prepare

# a small conv AE on 16x16 digits; the PatchGAN with 2 layers (receptive field 34 px,
# smallest image 12 px) and 8 channels; 11 steps an epoch
BASE = dict(data__image_size=16, train__batch_size=128, model__kind='ae', model__arch='conv',
            model__conv__channels=(8, 16), model__latent_dim=8, model__disc__layers=2,
            model__disc__channels=8, eval__metrics=('loss', 'recon', 'psnr'))


@pytest.fixture
def gan_config(tiny):
  """gan_config(**overrides): BASE with the PatchGAN at loss.gan_weight 0.5."""
  return lambda **overrides: tiny(**{**BASE, 'loss__gan_weight': 0.5, **overrides})


def _epoch(setup, epoch=0, state=None):
  images = jnp.asarray(setup.dataset.train['image'])
  state = setup.init_state() if state is None else state
  state, metrics = setup.functions.epoch(state, images, setup.inputs, epoch)
  return setup.functions.stack(state), jax.tree_util.tree_map(np.asarray, metrics)


@pytest.mark.slow
@pytest.mark.parametrize('optimised', [False, True], ids=['xla_level_0', 'xla_optimised'])
def test_before_the_start_the_run_is_the_one_without_the_gan(tiny, gan_config, optimised,
                                                             request):
  """The two runs are different XLA programs (the GAN's step holds the generator's term at
  weight 0). At level 0 (the suite's) they compute the same bits; optimised, XLA fuses them
  differently and the weights part in their last bits (measured at XLA's default level:
  13 of 14 tensors, at most 6e-8 apart after an epoch), hence docs/models.md's 'up to
  float rounding'. The discriminator does not move either way."""
  request.getfixturevalue('optimized_xla' if optimised else 'xla_level_0')
  spe = 1437 // 128
  with_gan = prepare(gan_config(loss__gan_start_step=spe + 3))
  plain = prepare(tiny(**BASE))
  a, metrics = _epoch(with_gan)
  b, _ = _epoch(plain)
  if optimised:
    chex.assert_trees_all_close(a.params, b.params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(a.opt_state, b.opt_state, rtol=1e-5, atol=1e-6)
  else:
    chex.assert_trees_all_equal(a.params, b.params)
    chex.assert_trees_all_equal(a.opt_state, b.opt_state)
  # the discriminator did not move: zero gradients, Adam's zero steps, statistics kept
  start = with_gan.functions.stack(with_gan.init_state()).critic
  chex.assert_trees_all_equal(a.critic['params'], start['params'])
  chex.assert_trees_all_equal(a.critic['batch_stats'], start['batch_stats'])
  assert np.all(np.isfinite(metrics['gan_d'])) and np.all(np.isfinite(metrics['gan_lambda']))


@pytest.mark.slow
def test_after_the_start_the_discriminator_trains(tiny, gan_config):
  setup = prepare(gan_config(loss__gan_start_step=0))
  start = setup.functions.stack(setup.init_state())
  state, metrics = _epoch(setup)
  moved = {name: not np.array_equal(state.critic['params'][name]['kernel'],
                                    start.critic['params'][name]['kernel'])
           for name in start.critic['params'] if 'kernel' in start.critic['params'][name]}
  # every kernel of D changed: nonzero gradients (the output's bias may not: while all
  # logits sit inside the hinge's margins, its gradients from real and fake cancel)
  assert all(moved.values()), moved
  assert np.all(np.isfinite(metrics['gan_g'])) and np.all(metrics['gan_lambda'] >= 0)
  # it learns to tell them apart: its logits on real images rise above those on recons
  assert metrics['logits_real'][0, -1] > metrics['logits_fake'][0, -1]
  # and the generator's term reached the model: not the run without it
  plain, _ = _epoch(prepare(tiny(**BASE)))
  assert not np.allclose(jax.tree_util.tree_leaves(state.params)[0],
                         jax.tree_util.tree_leaves(plain.params)[0])


@pytest.mark.slow
def test_the_adaptive_weight_is_the_gradient_norm_ratio_at_the_decoders_last_layer(gan_config):
  setup = prepare(gan_config(loss__gan_start_step=0))
  spec, state = setup.spec.step, setup.init_state()
  inputs = jax.tree_util.tree_map(lambda v: v[0], setup.inputs._replace(networks={}))
  hp = inputs.hp
  batch = jnp.asarray(setup.dataset.train['image'][:128])
  keys = steps._keys(jax.random.fold_in(state.noise_key, state.step))

  def objective(params):  # the objective alone, as its own forward and backward pass
    t, _, _ = steps._forward(spec, state, params, batch, inputs, hp['beta'], keys, True)
    return t['loss'].mean()

  def generator(params):
    _, out, _ = steps._forward(spec, state, params, batch, inputs, hp['beta'], keys, True)
    return critic.generator_term(spec.critic, state.critic, out.recon).mean()

  layer = spec.critic.last_layer
  assert layer == 'out'  # the conv decoder's final 3x3 conv
  g_obj = jax.jit(jax.grad(objective))(state.params)['decoder'][layer]['kernel']
  g_gen = jax.jit(jax.grad(generator))(state.params)['decoder'][layer]['kernel']
  want = np.linalg.norm(g_obj) / (np.linalg.norm(g_gen) + 1e-4)
  _, metrics = setup.functions.step_batch(state, batch, setup.inputs)
  # the step's one fused program against two separate gradients: 1.5e-4 apart at XLA's
  # default level (norms of a 3x3 conv's gradient, summed in another order)
  np.testing.assert_allclose(metrics['gan_lambda'][0], min(want, 1e4), rtol=1e-3)


@pytest.mark.slow
def test_resume_is_bit_exact_with_the_discriminator(tmp_path, gan_config, optimized_xla):
  full, part = str(tmp_path / 'full'), str(tmp_path / 'part')
  cfg = lambda epochs: gan_config(loss__gan_start_step=5, train__num_epochs=epochs,
                                  eval__metrics=('loss',))
  train_and_evaluate(cfg(2), full)
  train_and_evaluate(cfg(1), part)
  train_and_evaluate(cfg(2), part)
  setup = prepare(cfg(2))
  template = setup.functions.stack(setup.init_state(from_data=False))
  a, _ = checkpoint.restore_state(os.path.join(full, 'checkpoints'), template)
  b, _ = checkpoint.restore_state(os.path.join(part, 'checkpoints'), template)
  assert jax.tree_util.tree_leaves(a.critic['opt_state'])
  chex.assert_trees_all_equal(a, b)


@pytest.mark.slow
def test_a_sweep_over_the_gan_weight_trains_each_member_as_on_its_own(gan_config):
  weights = (0.1, 0.5)
  sweep = prepare(gan_config(loss__gan_start_step=0, sweep__gan_weight=weights))
  state, _ = _epoch(sweep)
  members = [jax.tree_util.tree_map(lambda x: np.asarray(x)[k], state) for k in range(2)]
  # the two weights train apart by far more than the tolerance below
  gap = max(np.abs(a - b).max() for a, b in zip(jax.tree_util.tree_leaves(members[0].params),
                                                jax.tree_util.tree_leaves(members[1].params)))
  assert gap > 1e-2
  for k, w in enumerate(weights):
    alone, _ = _epoch(prepare(gan_config(loss__gan_start_step=0, loss__gan_weight=w)))
    single = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], alone)
    # vmapped and single programs round differently and Adam carries it: a few of ~8k
    # weights reach 2e-4 on some CPUs
    chex.assert_trees_all_close(members[k].params, single.params, rtol=1e-3, atol=5e-4)
    chex.assert_trees_all_close(members[k].critic['params'], single.critic['params'],
                                rtol=1e-3, atol=5e-4)


@pytest.mark.parametrize('overrides,message', [
    (dict(loss__gan_start_step=50), r'config.loss.gan_start_step=50 is at or after the run\'s '
                                    r'last step \(22 = train.num_epochs 2 x 11 steps per '
                                    r'epoch\): the discriminator would never train'),
    (dict(data__image_size=8, model__disc__layers=3), r'24'),
])
def test_gan_mistakes_are_one_line(overrides, message, gan_config):
  with pytest.raises(ConfigError) as e:
    prepare(gan_config(**overrides))
  assert '\n' not in str(e.value)
  import re
  assert re.search(message, str(e.value)), str(e.value)


def test_the_discriminator_optimizer_and_losses_are_tagged_as_configured(gan_config):
  setup = prepare(gan_config(loss__gan_loss='vanilla', loss__gan_generator='nonsaturating',
                           optim__disc_learning_rate=3e-4))
  spec = setup.spec.step.critic
  assert (spec.kind, spec.d_loss, spec.g_loss, spec.learning_rate) == (
      'patch', 'vanilla', 'nonsaturating', 3e-4)
  assert adversarial.D_LOSSES[spec.d_loss] is adversarial.vanilla_d_loss
  assert isinstance(critic.optimizer(spec), optax.GradientTransformation)
