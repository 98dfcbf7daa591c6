"""What a run says before it starts when it does something other than the plain reading of
the command: a preset named over a config file's latent size, metrics left out for a
missing extra. Training itself is stubbed: these are about the first lines."""
import pytest

from ae_jax import config_lib, main
from ae_jax.metrics import registry

AE_MLP_TO_PRESET = ['--config.model.preset=mlp_ae_50', '--config.model.kind=ae']


@pytest.fixture
def trained(monkeypatch):
  """main.train's configs, with training stubbed out (where main calls it)."""
  seen = []
  monkeypatch.setattr(main.train_lib, 'train_and_evaluate',
                      lambda config, workdir, fresh=False: seen.append(config) or {'members': []})
  return seen


def test_a_preset_on_the_command_line_builds_its_published_latent_over_the_files(
    trained, tmp_path, capsys):
  # configs/ae_mlp.py sets a 16-unit code; mlp_ae_50 publishes 128
  main.main(['--config', 'ae_mlp', '--workdir', str(tmp_path), *AE_MLP_TO_PRESET])
  assert trained[-1].model.latent_dim == 128
  out = capsys.readouterr().out.splitlines()
  assert out[0] == ('note: model.preset=mlp_ae_50 from the command line builds its published '
                    '128-unit code, not the model.latent_dim=16 that --config ae_mlp sets (add '
                    '--config.model.latent_dim=16 to keep that)')
  # a size on the command line is the user's: kept, nothing to say
  main.main(['--config', 'ae_mlp', '--workdir', str(tmp_path / 'b'), *AE_MLP_TO_PRESET,
             '--config.model.latent_dim=16'])
  assert trained[-1].model.latent_dim == 16
  assert 'note: model.preset' not in capsys.readouterr().out
  # a preset whose code is fixed by its architecture builds instead of refusing
  notes = []
  config = config_lib.load('ae_mlp', ['--config.model.preset=conv_ae_small',
                                      '--config.model.kind=ae'], notes)
  assert config_lib.resolve(config).model.latent_dim == 64
  assert notes[0].endswith('(its code size is fixed)')
  # a file that names the preset and its own size keeps both
  notes = []
  config = config_lib.load('conv_vae_bn_mish', ['--config.model.preset=conv_vae_bn_mish'], notes)
  assert config.model.latent_dim == 1024 and not notes


def test_a_run_on_photographs_says_when_lpips_is_not_installed(trained, tmp_path, capsys,
                                                               monkeypatch):
  # `pip install -e .` without the lpips extra: a run on photographs would have LPIPS columns
  with monkeypatch.context() as without:
    without.setitem(registry._EXTRA_MODULES, 'lpips', 'ae_jax_no_such_module')
    main.main(['--config', 'vae_photos', '--workdir', str(tmp_path)])
    assert capsys.readouterr().out.splitlines()[0] == (
        "note: LPIPS columns (LPIPS-VGG, PCA LPIPS-VGG) need `pip install 'ae_jax[lpips]'`; "
        'skipped')
    # metrics named without 'default' ask for nothing that is missing: no note
    main.main(['--config', 'vae_photos', '--workdir', str(tmp_path / 'b'),
               "--config.eval.metrics=('psnr',)"])
    assert 'LPIPS' not in capsys.readouterr().out
    # wafer maps are not photographs: 'default' has no LPIPS there, so nothing is missing
    main.main(['--config', 'vae_beta', '--workdir', str(tmp_path / 'd')])
    assert 'LPIPS' not in capsys.readouterr().out
  main.main(['--config', 'vae_photos', '--workdir', str(tmp_path / 'c')])
  assert 'LPIPS' not in capsys.readouterr().out  # installed here
  assert len(trained) == 4  # nothing trained for real
