"""The config schema: every key declared once, and everything derived from the declarations
(the base config, validation, the override parser, the workdir rule, the sweep axes, the
docs page); config files and their mistakes; resolving once."""
import os
import sys

import ml_collections
import pytest

from ae_jax import config_lib, config_values, docs, schema, sweep
from ae_jax.errors import ConfigError, WorkdirError


def test_the_base_config_is_the_declarations():
  config = schema.base_config()
  declared = {k.name: k for k in schema.all_keys()}
  assert set(config_values.leaves(config)) == set(declared)
  for name, value in config_values.leaves(config).items():
    assert value == declared[name].default, name
  config_values.check_config(config)  # the defaults pass their own checks
  from ae_jax.configs import base
  assert config_values.leaves(base.get_config()) == config_values.leaves(config)


def test_no_key_is_shadowed_by_a_configdict_method():
  """config.model.vq.update would read ConfigDict.update, not the value."""
  config = schema.base_config()
  for name in config_values.leaves(config):
    leaf = name.rsplit('.', 1)[-1]
    assert not hasattr(ml_collections.ConfigDict, leaf), name


def test_the_sweep_axes_and_the_workdir_rule_come_from_the_declarations():
  vmapped = {k.axis: k.name for k in schema.keys() if k.sweep == 'vmap'}
  outer = {k.axis: k.name for k in schema.keys() if k.sweep == 'outer'}
  assert {a: key for a, (key, _) in sweep.AXES.items()} == vmapped
  assert sweep.OUTER == outer
  # member names keep the axis order older workdirs recorded
  assert list(sweep.AXES)[:5] == ['beta', 'learning_rate', 'seed', 'kl_warmup_epochs',
                                  'latent_dim']
  for axis in list(vmapped) + list(outer):
    assert config_values.lookup(f'sweep.{axis}').nullable
  assert schema.is_free('eval.iwae_samples') and schema.is_free('train.num_epochs')
  assert not schema.is_free('model.latent_dim') and not schema.is_free('sweep.beta')
  assert not schema.is_free('no.such.key')
  old = {'eval': {'iwae_samples': 10}, 'model': {'latent_dim': 4}}
  new = {'eval': {'iwae_samples': 99}, 'model': {'latent_dim': 5}}
  assert config_lib.meaning_changes(old, new) == ['model.latent_dim: 4 -> 5']


def test_a_new_declaration_reaches_the_base_config_validation_the_parser_and_the_docs(
    monkeypatch):
  key = schema.Key('train.warp', 3, 'int', 'a test key', check='positive', role='free')
  monkeypatch.setattr(schema, '_contributed', lambda: (key,))
  config = schema.base_config()
  assert config.train.warp == 3
  assert schema.is_free('train.warp')
  assert config_lib.apply_overrides(config, ['--config.train.warp=7']).train.warp == 7
  with pytest.raises(ConfigError, match=r'config.train.warp=0 must be > 0'):
    config_lib.apply_overrides(config, ['--config.train.warp=0'])
  assert '| `train.warp` | `3` | > 0 | free |  | a test key |' in docs.configs_markdown()


@pytest.mark.parametrize('name,raw,value', [
    ('train.batch_size', '32', 32), ('train.batch_size', '32.0', 32),
    ('train.learning_rate', '1e-3', 1e-3), ('train.learning_rate', '2', 2.0),
    ('model.preset', 'mlp_ae_50', 'mlp_ae_50'), ('model.preset', "''", ''),
    ('model.preset', '', ''), ('data.skip_corrupt', 'True', True),
    ('data.skip_corrupt', 'false', False), ('model.hidden', '(64, 32)', (64, 32)),
    ('model.hidden', '[64]', (64,)), ('sweep.beta', '(0., 1.)', (0.0, 1.0)),
    ('sweep.beta', '4', (4,)), ('sweep.beta', 'None', None),
    ('checkpoint.keep_epochs', '(10, 50)', (10, 50)), ('eval.metrics', "('psnr',)", ('psnr',)),
])
def test_overrides_are_parsed_by_their_declared_kind(name, raw, value):
  parsed = config_values.parse_value(config_values.lookup(name), raw)
  assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize('item,message', [
    ('--config.train.batch_size=abc', '--config.train.batch_size=abc: expected an int'),
    ('--config.train.batch_size=2.5', '--config.train.batch_size=2.5: expected an int'),
    ('--config.train.learning_rate=fast', 'expected a number'),
    ('--config.data.skip_corrupt=maybe', 'expected True or False'),
    ('--config.model.hidden=(64,', 'expected a tuple of ints'),
    ('--config.train.learnig_rate=1', 'config.train.learnig_rate is not a config key (did you '
                                      'mean train.learning_rate?); train has: batch_size'),
    ('--config.trian.seed=1', 'config.trian.seed is not a config key (did you mean '
                              'train.seed?)'),
    ('--config.train=1', 'config.train is not a config key'),
    ('--config.train.seed', 'expected --config.<key>=<value>'),
])
def test_bad_overrides_are_one_line(item, message):
  with pytest.raises(ConfigError) as e:
    config_lib.apply_overrides(schema.base_config(), [item])
  assert message in str(e.value) and '\n' not in str(e.value)


def test_a_misspelt_key_in_a_config_file_is_refused_not_ignored(tmp_path):
  path = tmp_path / 'mine.py'
  path.write_text('from ae_jax.configs import base\n\n'
                  'def get_config():\n'
                  '  config = base.get_config()\n'
                  '  config.train.learnig_rate = 3e-4\n'
                  '  return config\n')
  with pytest.raises(ConfigError, match=r'config.train.learnig_rate is not a config key \(did '
                                        r'you mean train.learning_rate\?\)'):
    config_lib.resolve(config_lib.load(str(path)))


@pytest.mark.parametrize('body,message', [
    ('x = 1\n', 'defines no get_config()'),
    ('def get_config():\n  raise RuntimeError("no such dataset here")\n',
     'get_config() raised RuntimeError: no such dataset here'),
    ('def get_config():\n  return {"train": 1}\n', 'get_config() returned dict, not a ConfigDict'),
    ('from configs import base\n', 'ModuleNotFoundError: import of configs halted; None in '
                                  'sys.modules; config files import the base as `from '
                                  'ae_jax.configs import base`'),
    ('def get_config(:\n', 'SyntaxError while reading it'),
])
def test_a_broken_config_file_is_one_line_naming_it(tmp_path, monkeypatch, body, message):
  # as outside a checkout (`python -m pytest` puts the checkout, with its configs/ link, on
  # the path): an old config's `import configs` fails
  monkeypatch.setitem(sys.modules, 'configs', None)
  path = tmp_path / 'broken.py'
  path.write_text(body)
  with pytest.raises(ConfigError) as e:
    config_lib.load(str(path))
  assert str(e.value).startswith(f'--config {path}: ') and message in str(e.value)
  assert '\n' not in str(e.value)


def test_shipped_configs_load_by_name_from_any_folder(tmp_path, monkeypatch, root):
  monkeypatch.chdir(tmp_path)
  assert 'vae_beta' in config_lib.shipped() and 'base' in config_lib.shipped()
  by_name = config_lib.load('vae_beta')
  by_path = config_lib.load(os.path.join(root, 'configs', 'vae_beta.py'))
  assert config_values.leaves(by_name) == config_values.leaves(by_path)
  assert by_name.sweep.beta == (0.0, 1.0, 4.0, 100.0)
  with pytest.raises(ConfigError, match=r'no such file \(did you mean vae_beta\?\)'):
    config_lib.load('vae_bta')


def test_resolving_once_freezes_and_a_second_resolve_is_the_same_object(tiny):
  config = config_lib.resolve(tiny(sweep__latent_dim=(2, 6)))
  assert isinstance(config, ml_collections.FrozenConfigDict)
  assert config_lib.resolve(config) is config
  assert config.model.latent_dim == 6  # a latent sweep's model is built at its largest size
  with pytest.raises(AttributeError):
    config.train.batch_size = 3
  assert config_lib.resolve(tiny(model__latent_dim=0)).model.latent_dim == 16


def test_free_overrides_on_a_trained_workdir_refuse_model_keys(tiny):
  config = tiny()
  out = config_lib.apply_overrides(config, ['--config.eval.iwae_samples=64'], only_free=True)
  assert out.eval.iwae_samples == 64
  with pytest.raises(ConfigError, match=r'--config.model.latent_dim: a trained workdir keeps '
                                        r'its own model.latent_dim'):
    config_lib.apply_overrides(config, ['--config.model.latent_dim=3'], only_free=True)


def test_a_renamed_key_of_an_old_config_json_is_read_under_its_new_name(monkeypatch, caplog):
  monkeypatch.setattr(config_lib, 'RENAMED', {'train.lr': 'train.learning_rate'})
  monkeypatch.setattr(config_lib, '_told', set())
  for _ in range(2):
    cfg = schema.base_config()
    config_lib.merge_config(cfg, {'train': {'lr': 0.25, 'gone_key': 1}, 'model': {'kind': 'ae'}},
                        'w/config.json')
    assert cfg.train.learning_rate == 0.25 and cfg.model.kind == 'ae'
  notes = [r.getMessage() for r in caplog.records if 'train.lr' in r.getMessage()]
  assert notes == ['w/config.json: config key train.lr is now train.learning_rate; read under '
                   'its new name']  # once per process
  with pytest.raises(WorkdirError, match=r'w/config.json: train.batch_size=\'lots\' is not a '
                                         r'value this key takes'):
    config_lib.merge_config(schema.base_config(), {'train': {'batch_size': 'lots'}},
                        'w/config.json')
