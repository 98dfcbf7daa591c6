"""A sweep of bad inputs: every config key class gets invalid values (hypothesis draws them);
each must stop with a ConfigError naming the key, before anything runs, and leave an
existing workdir byte-for-byte as it was. Bad files and damaged checkpoints have their
own tests (test_data.py, test_faults.py)."""
import hashlib
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ae_jax import config_lib, config_values, schema, sweep
from ae_jax.errors import ConfigError
from ae_jax.train import train_and_evaluate

# key classes, from the schema's declarations
_KEYS = schema.keys()
CHOICE_KEYS = sorted(k.name for k in _KEYS if k.kind == 'str' and k.allowed())
POSITIVE = sorted(k.name for k in _KEYS if k.check == 'positive' and k.kind in ('int', 'float'))
NON_NEGATIVE = sorted(k.name for k in _KEYS if k.check == 'non_negative'
                      and k.kind in ('int', 'float'))
UNIT = sorted(k.name for k in _KEYS if k.check == 'unit')
FLOAT_KEYS = sorted(k.name for k in _KEYS if k.kind == 'float')
INT_KEYS = sorted(k.name for k in _KEYS if k.kind == 'int')
SWEEP_AXES = sorted(sweep.AXES)


def refused(overrides, key):
  """The override is refused with one line naming `key`, before anything is loaded."""
  with pytest.raises(ConfigError) as e:
    config_lib.programs(config_lib.load('configs/base.py', overrides))
  msg = str(e.value)
  assert key.split('.')[-1] in msg, (overrides, msg)
  assert '\n' not in msg and 'Traceback' not in msg
  return msg


FAST = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(key=st.sampled_from(CHOICE_KEYS),
       value=st.text(alphabet='abcdefghijklmnopqrstuvwxyz_', min_size=1, max_size=8))
def test_a_value_outside_the_choices_is_refused(key, value):
  if value in config_values.lookup(key).allowed():
    return
  msg = refused([f'--config.{key}={value}'], key)
  assert 'expected one of' in msg


@FAST
@given(key=st.sampled_from(POSITIVE), value=st.sampled_from([0, -1, -7]))
def test_zero_or_negative_where_positive_is_needed(key, value):
  refused([f'--config.{key}={value}'], key)


@FAST
@given(key=st.sampled_from(NON_NEGATIVE), value=st.integers(max_value=-1, min_value=-10**6))
def test_negative_where_non_negative_is_needed(key, value):
  refused([f'--config.{key}={value}'], key)


@FAST
@given(key=st.sampled_from(FLOAT_KEYS), value=st.sampled_from(['nan', 'inf', '-inf']))
def test_non_finite_floats(key, value):
  refused([f'--config.{key}={value}'], key)


@FAST
@given(key=st.sampled_from(UNIT), value=st.floats(min_value=1.0, max_value=1e6))
def test_adam_betas_outside_the_unit_interval(key, value):
  refused([f'--config.{key}={value}'], key)


@FAST
@given(key=st.sampled_from(INT_KEYS + FLOAT_KEYS),
       value=st.text(alphabet='abcxyz!', min_size=1, max_size=5))
def test_text_where_a_number_is_needed(key, value):
  refused([f'--config.{key}={value}'], key)


@FAST
@given(section=st.sampled_from(['model', 'data', 'train', 'loss', 'optim', 'checkpoint',
                                'figures', 'sweep', 'eval', 'mesh']),
       name=st.text(alphabet='qwz_', min_size=3, max_size=8))
def test_unknown_key_names_list_the_valid_ones(section, name):
  msg = refused([f'--config.{section}.{name}=1'], name)
  assert f'{section} has: ' in msg


@FAST
@given(axis=st.sampled_from(SWEEP_AXES))
def test_an_empty_sweep_axis(axis):
  msg = refused([f'--config.sweep.{axis}=()'], axis)
  assert 'is empty' in msg


@pytest.mark.parametrize('overrides,key', [
    (['--config.checkpoint.best_metric=psnrr'], 'best_metric'),
    (['--config.checkpoint.best_metric=lr'], 'best_metric'),
    (["--config.eval.metrics=('psnr','fidd')"], 'fidd'),
    (['--config.data.channels=2'], 'data.channels'),
    (['--config.optim.plateau_factor=1.5'], 'plateau_factor'),
    (["--config.model.hidden=()"], 'model.hidden'),
    (["--config.model.conv.channels=(8,-1)"], 'conv.channels'),
    (['--config.model.hidden=abc'], 'model.hidden'),  # not a number: was a traceback
    (['--config.model.resnet.channels=(8,2.5)'], 'resnet.channels'),
    (["--config.checkpoint.keep_epochs=(0,)"], 'keep_epochs'),
    (["--config.sweep.beta=(1.,'x')"], 'beta'),
    (['--config.sweep.mode=zip', "--config.sweep.beta=(1.,2.)", "--config.sweep.seed=(1,)"],
     'zip'),
    (['--config.mesh.members=0'], 'mesh.members'),
    (['--config.model.preset=conv_ae_small', '--config.model.kind=ae',
      '--config.model.latent_dim=7'], 'latent_dim'),
])
def test_inconsistent_values(overrides, key):
  refused(overrides, key)


def _digest(path):
  h = hashlib.sha256()
  for root, dirs, files in sorted(os.walk(path)):
    dirs.sort()
    for f in sorted(files):
      p = os.path.join(root, f)
      h.update(p.encode())
      h.update(open(p, 'rb').read())
  return h.hexdigest()


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny):
  workdir = str(tmp_path_factory.mktemp('trained') / 'w')
  train_and_evaluate(tiny(train__num_epochs=1), workdir)
  return workdir


@pytest.mark.slow
@pytest.mark.parametrize('overrides', [
    dict(train__learning_rate=float('nan')), dict(loss__beta=-1.0), dict(optim__b1=1.5),
    dict(model__conv__kernel=0), dict(figures__num_images=0), dict(data__split_seed=-1),
    dict(checkpoint__best_metric='psnrr'), dict(eval__metrics=('nope',)),
    dict(data__name='npy', data__path='/no/such.npy'), dict(data__name='nope'),
])
def test_bad_input_on_a_trained_workdir_changes_nothing(trained, overrides, tiny):
  from ae_jax.errors import DataError, WorkdirError
  before = _digest(trained)
  with pytest.raises((ConfigError, DataError, WorkdirError)) as e:
    train_and_evaluate(tiny(train__num_epochs=2, **overrides), trained)
  assert '\n' not in str(e.value)
  assert _digest(trained) == before


def test_a_refused_start_leaves_no_half_made_folder(tmp_path, tiny):
  from ae_jax.errors import DataError
  new, kept = tmp_path / 'runs' / 'new', tmp_path / 'kept'
  kept.mkdir()  # a folder the user made: it stays, as empty as it was
  for folder in (new, kept):
    with pytest.raises(DataError, match='/no/such.npy'):
      train_and_evaluate(tiny(data__name='npy', data__path='/no/such.npy'), str(folder))
  assert sorted(os.listdir(tmp_path)) == ['kept'] and os.listdir(kept) == []
