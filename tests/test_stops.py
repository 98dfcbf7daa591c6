"""A non-finite stop names the first non-finite term, wherever it is (the model's, a
discriminator's, the model's adversarial terms), at the earliest step, and the keys that
govern it; a stop message names the state training really reached."""
import types

import numpy as np
import pytest

from ae_jax import stops
from ae_jax.errors import NonFiniteLossError

NAN, INF = float('nan'), float('inf')


def _metrics(steps=4, members=1, **bad):
  """{term: [K, steps]} all finite, then `bad`: term -> [(member, step, value), ...]."""
  names = ('loss', 'recon', 'kl', 'gan_g', 'gan_d', 'gan_lambda', 'logits_real',
           'logits_fake', 'tc', 'critic_loss', 'lr', 'beta')
  out = {n: np.ones((members, steps), np.float32) for n in names}
  for name, where in bad.items():
    if name in ('finite', 'critic_finite'):
      out[name] = np.ones((members, steps), bool)
    for k, s, v in where:
      out[name][k, s] = v
  return out


CASES = {  # name -> (bad values, (member, step, term, part), what the key advice says)
    # the critic diverges at step 2; its NaN reaches the generator's terms one step later
    'a diverging discriminator': (
        dict(gan_d=[(0, 1, INF), (0, 2, NAN)], gan_g=[(0, 1, -INF), (0, 2, NAN)],
             gan_lambda=[(0, 1, NAN)], recon=[(0, 2, NAN)], loss=[(0, 2, NAN)]),
        (0, 2, 'gan_d', 'critic'), 'optim.disc_learning_rate'),
    # the model diverges: the critic's loss on its NaN reconstructions is NaN the same step
    'a diverging model': (
        dict(recon=[(0, 2, NAN)], loss=[(0, 2, NAN)], gan_d=[(0, 2, NAN)],
             logits_fake=[(0, 2, NAN)]),
        (0, 3, 'recon', 'model'), 'train.learning_rate'),
    # FactorVAE: the TC term reads the critic; the critic's own loss is named
    'a diverging TC critic': (
        dict(tc=[(0, 0, NAN)], loss=[(0, 0, NAN)], critic_loss=[(0, 0, NAN)]),
        (0, 1, 'critic_loss', 'critic'), 'optim.disc_learning_rate'),
    'the adaptive weight': (
        dict(gan_lambda=[(0, 3, INF)]), (0, 4, 'gan_lambda', 'adversarial'), 'loss.gan_weight'),
    'an objective term of its own': (
        dict(tc=[(0, 1, NAN)], loss=[(0, 1, NAN)]), (0, 2, 'tc', 'model'), 'train.learning_rate'),
    'gradients only (skip_nonfinite flags)': (
        dict(finite=[(0, 1, False)]), (0, 2, 'gradients', 'model'), 'optim.grad_clip_norm'),
    "the discriminator's state only": (
        dict(finite=[(0, 2, False)], critic_finite=[(0, 2, False)]),
        (0, 3, 'discriminator', 'critic'), 'optim.disc_learning_rate'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_the_first_nonfinite_term_is_named_with_its_key(case):
  bad, (k, step, term, part), knob = CASES[case]
  metrics = _metrics(**bad)
  found = stops.first_nonfinite(metrics, None, 0)
  assert found[:3] == (k, step, term) and found[4] == part
  training = types.SimpleNamespace(members=({'name': 'run'},), steps_per_epoch=4)
  config = types.SimpleNamespace(train=types.SimpleNamespace(skip_nonfinite_members=False))
  ckpts = types.SimpleNamespace(steps=lambda: [])
  with pytest.raises(NonFiniteLossError) as e:
    stops.check_finite(training, metrics, 0, {}, ['run'], config, ckpts)
  message = str(e.value)
  assert len(message.splitlines()) == 1
  assert message.startswith(f'non-finite training loss at step {step} (epoch 1, member '
                            "'run'): ")
  assert f"term {term!r} = " in message and knob in message
  assert 'no checkpoint had been saved yet' in message


def test_the_earliest_step_of_any_member_and_frozen_members_skipped():
  metrics = _metrics(members=3, recon=[(0, 2, NAN)], gan_d=[(1, 1, NAN)],
                     loss=[(2, 0, INF)])
  assert stops.first_nonfinite(metrics, None, 10)[:4] == (2, 11, 'loss', INF)
  assert stops.first_nonfinite(metrics, None, 10, skip={2})[:3] == (1, 12, 'gan_d')
  assert stops.first_nonfinite(metrics, None, 10, skip={1, 2})[:3] == (0, 13, 'recon')
  assert stops.first_nonfinite(_metrics(members=2), None, 0) is None


def test_a_frozen_member_is_named_by_its_first_term(capsys):
  metrics = _metrics(members=2, gan_d=[(1, 1, NAN)], gan_g=[(1, 2, NAN)])
  training = types.SimpleNamespace(members=({'name': 'a'}, {'name': 'b'}), steps_per_epoch=4)
  config = types.SimpleNamespace(train=types.SimpleNamespace(skip_nonfinite_members=True))
  frozen = {}
  stops.check_finite(training, metrics, 0, frozen, ['a', 'b'], config, None)
  assert frozen == {'b': {'step': 2, 'term': 'gan_d'}}
  assert "the discriminator's term 'gan_d' = nan: member frozen" in capsys.readouterr().out


@pytest.mark.slow
def test_a_diverging_discriminator_is_named_through_the_command_line(tmp_path, capsys,
                                                                    optimized_xla):
  """A PatchGAN whose Adam steps are huge: the run stops naming the discriminator's loss
  and optim.disc_learning_rate, not the reconstruction one step later."""
  from ae_jax.main import main as ae_main
  (tmp_path / 'keep.txt').write_text('x')
  with pytest.raises(SystemExit) as e:
    ae_main(['--config', 'vae_mlp', '--workdir', str(tmp_path / 'w'),
             '--config.data.name=digits', '--config.data.image_size=16',
             "--config.model.hidden=(32,)", '--config.model.latent_dim=4',
             '--config.loss.gan_weight=0.5', '--config.loss.gan_adaptive=False',
             '--config.model.disc.layers=1', '--config.model.disc.channels=8',
             '--config.optim.disc_learning_rate=1e30', '--config.train.num_epochs=1',
             '--config.train.batch_size=32', '--config.train.chunk_steps=4',
             '--config.figures.enabled=False', '--config.progress=False',
             "--config.eval.metrics=('loss',)"])
  err = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 2 and len(err) == 1
  assert err[0].startswith("error: non-finite training loss at step 2 (epoch 1, member 'run'): "
                           "the discriminator's term 'gan_d' = nan; no checkpoint had been "
                           'saved yet. The discriminator diverged: lower '
                           'optim.disc_learning_rate'), err
  assert (tmp_path / 'keep.txt').read_text() == 'x'
