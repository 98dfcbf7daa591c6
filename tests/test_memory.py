"""A run that cannot fit in memory is refused before it allocates, with the estimate and the
key to turn (the data after preprocessing, from its shape and count; the train state from
the abstract variables), and a stop names the state training really reached (no "stopped
at epoch 1 (step 44)" for a run that never completed a step)."""
import jax
import pytest

from ae_jax import data, memory, train as train_lib, training
from ae_jax.data import loading
from ae_jax.errors import ConfigError
from ae_jax.main import main as ae_main

GB = 2**30
SMALL = ['--config', 'vae_mlp', '--config.train.num_epochs=1', '--config.figures.enabled=False',
         '--config.progress=False', "--config.eval.metrics=('loss',)"]


def _refused(argv, tmp_path, capsys, tree_digest) -> str:
  (tmp_path / 'keep.txt').write_text('x')
  before = tree_digest(tmp_path)
  with pytest.raises(SystemExit) as e:
    ae_main([*SMALL, '--workdir', str(tmp_path / 'w'), *argv])
  err = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 2 and len(err) == 1 and err[0].startswith('error: '), err
  assert tree_digest(tmp_path) == before  # no workdir left behind
  return err[0][len('error: '):]


CASES = {  # name -> (flags, the machine's memory, what the line says)
    # digits resized to 4096^2 held XLA's abort before: refused before a pixel is resized
    'digits at 4096 px': (
        ['--config.data.name=digits', '--config.data.image_size=4096'], 16 * GB,
        'digits at 4096x4096x1 needs 22.4 GB as float32 for its 359 test images; this '
        'machine has 16.0 GB available: lower data.image_size or data.test_fraction'),
    'the device tier asked for': (
        ['--config.data.name=digits', '--config.data.image_size=512',
         "--config.data.tier='device'"], 1 * GB,
        "digits at 512x512x1 needs 1.8 GB as float32 for its 359 test images and 1438 training "
        'images (the device tier); this machine has 1.0 GB available: lower data.image_size or '
        "data.test_fraction, or set data.tier='stream' (training images read batch by batch)"),
    'a model too big for the device': (
        ['--config.data.name=digits', '--config.data.image_size=0',
         '--config.model.hidden=(400000,)'], GB // 2,
        # 64*400000 + 400000*32 + 16*400000 + 400000*64 weights and their biases; Adam's two
        # moments beside them; the gradients; 1438 + 359 images of 8*8*4 bytes
        'this run needs about 1.1 GB before its activations: 815 MB for the train state '
        '(71,200,096 parameters x 1 member(s), with the optimizer state), 272 MB for the '
        "gradients, 0.4 MB for the images on the device; this machine has 512 MB available: "
        "lower train.batch_size, data.image_size or the model's size, or set "
        "data.tier='stream'"),
}


@pytest.mark.slow  # loads digits, resizes one image to 4096^2, traces a model's shapes
@pytest.mark.parametrize('case', sorted(CASES))
def test_a_run_too_big_for_memory_is_refused_up_front(case, tmp_path, capsys, monkeypatch,
                                                      tree_digest):
  flags, available, message = CASES[case]
  monkeypatch.setattr(loading, 'host_available', lambda: available)
  monkeypatch.setattr(training, 'device_available', lambda: (available, 'this machine'))
  resized = []
  real = data.preprocess.resize
  monkeypatch.setattr(data.preprocess, 'resize', lambda x, *a, **k: (
      resized.append(len(x)), real(x, *a, **k))[1])
  assert _refused(flags, tmp_path, capsys, tree_digest) == message
  if case != 'a model too big for the device':  # the data's: refused before it is made
    assert resized == [1]  # the one image whose shape the estimate reads


def test_the_data_estimate_counts_what_the_tier_holds():
  cfg = type('C', (), {'image_size': 64, 'crop': 0})
  loading.check_memory(cfg, 'x', (64, 64, 3), 1000, 100, 'stream', available=100 * 2**20)
  with pytest.raises(ConfigError, match=r'needs 52 MB as float32 for its 100 test images and '
                     r'1000 training images \(the device tier\); this machine has 50 MB'):
    loading.check_memory(cfg, 'x', (64, 64, 3), 1000, 100, 'device', available=50 * 2**20)
  assert memory.size(1.5 * 2**30) == '1.5 GB' and memory.size(3 * 2**20) == '3.0 MB'
  assert memory.size(40 * 2**20) == '40 MB'


@pytest.mark.slow
@pytest.mark.parametrize('when', ['dispatch', 'wait'])
def test_an_out_of_memory_stop_names_no_step_that_did_not_run(when, tmp_path, capsys,
                                                              monkeypatch, tree_digest):
  """The first chunk fails (at its dispatch, or when the host waits for it, after the step
  counter moved on): the line says no step completed, adds the estimate and the keys to
  turn, exit code 2."""
  def fail(*a, **k):
    raise jax.errors.JaxRuntimeError('RESOURCE_EXHAUSTED: Out of memory while trying to '
                                     'allocate 120.00GiB.')
  if when == 'dispatch':
    monkeypatch.setattr(training.Chunks, 'run', fail)
  else:
    monkeypatch.setattr(train_lib.jax, 'block_until_ready', fail)
  with pytest.raises(SystemExit) as e:
    ae_main([*SMALL, '--workdir', str(tmp_path / 'w'), '--config.data.name=digits',
             '--config.data.image_size=8', '--config.model.hidden=(16,)'])
  err = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 2 and len(err) == 1, err
  spent = '' if when == 'dispatch' else ' (in steps 1-22, none completed)'
  assert err[0].startswith(f'error: training stopped before its first step{spent} by '
                           'JaxRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying '
                           'to allocate 120.00GiB.; no checkpoint had been saved yet'), err
  assert 'The run needs about ' in err[0] and 'grow with train.batch_size' in err[0]
  assert 'lower train.batch_size, data.image_size' in err[0]
  assert 'step 22' not in err[0].split('; no checkpoint')[0].replace('1-22', '')
