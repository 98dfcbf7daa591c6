import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ae_jax import compile as compile_lib, cpu_policy, optim, steps
from ae_jax.training import prepare


@pytest.mark.slow
@pytest.mark.parametrize('loop', ['scan', 'python'])
def test_train_step_is_traced_once_across_epochs(loop, monkeypatch, tiny, own_compilations):
  # A step that lost its jit, or an epoch index baked in as a constant, would retrace.
  chex.clear_trace_counter()
  monkeypatch.setattr(steps, 'train_step', chex.assert_max_traces(steps.train_step, n=1))
  setup = prepare(tiny(train__loop=loop))
  assert setup.functions.loop == loop
  state = setup.init_state()
  images = jnp.asarray(setup.dataset.train['image'])
  for epoch in range(3):
    state, m = setup.functions.epoch(state, images, setup.inputs, epoch)
  assert m['loss'].shape == (1, setup.steps_per_epoch)
  assert int(setup.functions.stack(state).step[0]) == 3 * setup.steps_per_epoch


@pytest.mark.slow
def test_auto_loop_is_the_scan_unless_xla_convs_run_in_it_on_cpu(tiny):
  assert prepare(tiny()).functions.loop == 'scan'
  conv = tiny(model__arch='conv', model__conv__channels=(4,))
  assert prepare(conv).functions.loop == 'scan'  # canonical convolutions (model.conv.impl='auto')
  xla = tiny(model__arch='conv', model__conv__channels=(4,), model__conv__impl='xla')
  assert prepare(xla).functions.loop == ('python' if jax.default_backend() == 'cpu' else 'scan')


@pytest.mark.slow
def test_scan_and_python_loops_agree(tiny):
  out = []
  for loop in ('scan', 'python'):
    setup = prepare(tiny(train__loop=loop))
    state, m = setup.functions.epoch(setup.init_state(), jnp.asarray(setup.dataset.train['image']),
                               setup.inputs, 0)
    out.append((state.params, m['loss']))
  chex.assert_trees_all_close(out[0], out[1], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_epoch_order_depends_on_epoch_and_seed_only(tiny):
  setup = prepare(tiny())
  st = jax.tree_util.tree_map(lambda x: x[0], setup.functions.stack(setup.init_state()))
  n = setup.dataset.train['image'].shape[0]
  a = steps.epoch_batches(setup.spec.step, st.data_key, n, 0)
  b = steps.epoch_batches(setup.spec.step, st.data_key, n, 1)
  assert a.shape == (setup.steps_per_epoch, 32)
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(a, steps.epoch_batches(setup.spec.step, st.data_key, n, 0))
  assert len(np.unique(np.asarray(a))) == a.size  # no example twice in an epoch


def _spec(**kw):
  base = dict(name='adam', b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, schedule='constant',
              warmup_steps=0, total_steps=100, plateau_factor=0.0, plateau_patience=10,
              steps_per_epoch=2, grad_clip_norm=0.0)
  base.update(kw)
  return optim.OptimSpec(**base)


@pytest.mark.slow
def test_adam_weight_decay_is_l2_and_adamw_is_decoupled():
  p = {'w': jnp.array([2.0, -1.0])}
  g = {'w': jnp.array([0.5, 0.5])}
  eps = 1e-8
  for name in ('adam', 'adamw'):
    tx = optim.make_optimizer(_spec(name=name, weight_decay=0.1, eps=eps))
    d, _ = tx.update(g, tx.init(p), p, value=jnp.array(1.0))
    gp = g['w'] + 0.1 * p['w']
    # First Adam step: bias-corrected m/sqrt(v) = g/|g|.
    want = (gp / (jnp.abs(gp) + eps) if name == 'adam'
            else g['w'] / (jnp.abs(g['w']) + eps) + 0.1 * p['w'])
    np.testing.assert_allclose(d['w'], want, rtol=1e-5)


@pytest.mark.slow
def test_reduce_on_plateau_halves_after_patience_epochs():
  tx = optim.make_optimizer(_spec(plateau_factor=0.5, plateau_patience=2, steps_per_epoch=3))
  p = {'w': jnp.ones(2)}
  state = tx.init(p)
  scales = []
  for step in range(3 * 7):  # 7 epochs of a flat loss
    _, state = tx.update({'w': jnp.ones(2)}, state, p, value=jnp.array(1.0))
    if (step + 1) % 3 == 0:
      scales.append(float(optim.plateau_scale(state)))
  # torch.optim.lr_scheduler.ReduceLROnPlateau(factor=0.5, patience=2) stepped on the same
  # losses: epoch 1 is the best; the 3rd epoch without improvement (epoch 4) halves the
  # rate, and the counter starts again.
  assert scales == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_schedules():
  cos = _spec(schedule='cosine', total_steps=10)
  assert float(optim.schedule_multiplier(cos, 0)) == 1.0
  assert abs(float(optim.schedule_multiplier(cos, 5)) - 0.5) < 1e-6
  assert float(optim.schedule_multiplier(cos, 10)) < 1e-6
  warm = _spec(schedule='warmup_cosine', warmup_steps=4, total_steps=14)
  assert [float(optim.schedule_multiplier(warm, s)) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
  assert abs(float(optim.schedule_multiplier(warm, 9)) - 0.5) < 1e-6


@pytest.mark.slow
def test_gradient_clipping_bounds_adam_input():
  tx = optim.make_optimizer(_spec(grad_clip_norm=1.0))
  p = {'w': jnp.zeros(4)}
  _, state = tx.update({'w': jnp.full(4, 100.0)}, tx.init(p), p, value=jnp.array(0.0))
  adam_state = next(s for s in state if isinstance(s, optax.ScaleByAdamState))
  # m = (1 - b1) * clipped gradient, and the clipped gradient has norm 1.
  np.testing.assert_allclose(jnp.linalg.norm(adam_state.mu['w']) / 0.1, 1.0, rtol=1e-5)


def test_eval_padding_holds_real_images():
  """The last evaluation batch is filled up with the split's first images (weight 0), so a
  pair estimate (tcvae, wae_mmd, factorvae) never pairs a real row with a blank one."""
  images = np.arange(1, 6, dtype=np.float32).reshape(5, 1, 1, 1)
  batched, valid = steps.batch_for_eval(images, 3)
  assert batched.reshape(-1).tolist() == [1, 2, 3, 4, 5, 1]
  assert valid.reshape(-1).tolist() == [True] * 5 + [False]
  batched, valid = steps.batch_for_eval(images[:2], 4, multiple=4)  # more padding than rows
  assert batched.reshape(-1).tolist() == [1, 2, 1, 2] and valid.sum() == 2


@pytest.mark.slow
def test_eval_padding_is_masked(tiny):
  images = np.random.default_rng(0).random((5, 4, 4, 1)).astype(np.float32)
  batched, valid = steps.batch_for_eval(images, 2)
  assert batched.shape == (3, 2, 4, 4, 1) and valid.sum() == 5
  setup = prepare(tiny())
  state = setup.init_state()
  x = jnp.asarray(setup.dataset.test['image'][:5])
  key = jax.random.PRNGKey(0)
  evaluate = compile_lib.make_evaluate(setup.spec.step, 1, 'vmap',
                                      ('psnr', 'ssim', 'active_units'))
  full = evaluate(state, *[jnp.asarray(a) for a in steps.batch_for_eval(np.asarray(x), 5)],
                  setup.inputs, key)
  small = evaluate(state, *[jnp.asarray(a) for a in steps.batch_for_eval(np.asarray(x), 2)],
                   setup.inputs, key)
  # The deterministic metrics do not depend on how the split is batched.
  for k in ('psnr', 'ssim', 'active_units'):
    np.testing.assert_allclose(full[k], small[k], rtol=1e-5)


@pytest.mark.slow
def test_ynnpack_auto_is_off_only_for_narrow_conv_models_on_cpu(tiny):
  from ae_jax.models import build_model
  from ae_jax.configs import base
  widths = {}
  for preset, kind, shape in (('conv_ae_small', 'ae', (26, 26, 3)),
                              ('conv_vae_bn_mish', 'vae', (64, 64, 3)),
                              ('mlp_vae_50', 'vae', (50, 50, 3))):
    cfg = base.get_config().model
    cfg.preset, cfg.kind = preset, kind
    widths[preset] = cpu_policy.widest_conv(build_model(cfg, shape), shape)
  assert widths == {'conv_ae_small': 64, 'conv_vae_bn_mish': 1024, 'mlp_vae_50': 0}
  choose = cpu_policy.choose_ynnpack
  assert [choose('auto', True, w) for w in widths.values()] == ['off', 'on', 'on']
  assert choose('auto', False, 64) == 'on'  # GPU/TPU: XLA's defaults
  assert choose('auto', True, 64, num_members=4) == 'on'  # a sweep (vae_beta): measured slower
  assert prepare(tiny(model__arch='conv', model__conv__channels=(4,),
                    sweep__beta=(1.0, 4.0))).functions.policy.ynnpack == 'on'
  assert choose('on', True, 64) == 'on' and choose('off', True, 1024) == 'off'


@pytest.mark.slow
def test_ynnpack_off_compiles_without_ynn_fusions_and_trains_the_same(tiny):
  """The option reaches XLA (a YNNPACK fusion in the default step, none with 'off') and
  changes only the speed: one step's parameters agree to float32 rounding. (Adam's first
  step divides each gradient by its own size, so an element whose gradient is near zero
  moves by a rounding-sized fraction of the learning rate: 1.5e-6 measured at XLA's default
  level, atol 1e-5, against steps of 1e-3.)"""
  out = {}
  for ynn in ('on', 'off'):
    setup = prepare(tiny(model__arch='conv', model__conv__channels=(8, 16),
                       data__image_size=16, model__conv__ynnpack=ynn))
    assert setup.functions.policy.ynnpack == ynn
    state = setup.init_state()
    batch = jnp.asarray(setup.dataset.train['image'][:setup.config.train.batch_size])
    hlo = setup.functions.chunk_batches.lower(state, setup.functions.active(), batch[None],
                                        setup.inputs).compile().as_text()
    out[ynn] = ('__ynn' in hlo, setup.functions.step_batch(state, batch, setup.inputs)[0].params)
  if jax.default_backend() == 'cpu':
    assert out['on'][0] and not out['off'][0]
  chex.assert_trees_all_close(out['on'][1], out['off'][1], rtol=1e-4, atol=1e-5)
