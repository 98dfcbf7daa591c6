"""MS-SSIM against an independent NumPy implementation of the paper's definition."""
import numpy as np
import pytest
from scipy.signal import convolve2d

from ae_jax.errors import ConfigError
from ae_jax.metrics import ms_ssim as msssim

W = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def np_msssim(a, b):
  """Per image: prod_j cs_j^w_j (j < 5) * ssim_5^w_5, NumPy/SciPy, channels averaged."""
  def gauss(size):
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-0.5 * (x / 1.5) ** 2)
    g /= g.sum()
    return np.outer(g, g)

  def stats(x, y, k):
    f = lambda z: convolve2d(z, k[::-1, ::-1], mode='valid')
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    return ((2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs).mean(), cs.mean()

  out = []
  for img_a, img_b in zip(a, b):
    per_channel = []
    for c in range(a.shape[-1]):
      x, y = img_a[..., c].astype(np.float64), img_b[..., c].astype(np.float64)
      value = 1.0
      for j in range(5):
        side = min(x.shape)
        size = min(11, side) if min(11, side) % 2 else min(11, side) - 1
        s, cs = stats(x, y, gauss(size))
        value *= max(s if j == 4 else cs, 0.0) ** W[j]
        h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
        y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
      per_channel.append(value)
    out.append(np.mean(per_channel))
  return np.array(out)


@pytest.mark.slow
@pytest.mark.parametrize('shape', [(176, 176, 1), (200, 180, 3), (64, 64, 3), (33, 40, 1)])
def test_matches_an_independent_implementation(shape):
  rng = np.random.default_rng(shape[0])
  a = rng.random((2, *shape)).astype(np.float32)
  a = (a + np.roll(a, 1, 1) + np.roll(a, 1, 2)) / 3  # some structure
  b = np.clip(a + 0.1 * rng.normal(size=a.shape), 0, 1).astype(np.float32)
  np.testing.assert_allclose(msssim.ms_ssim(a, b), np_msssim(a, b), rtol=2e-4, atol=2e-5)


@pytest.mark.slow
def test_identical_images_score_one_and_noise_lowers_it():
  rng = np.random.default_rng(0)
  a = rng.random((1, 64, 64, 3)).astype(np.float32)
  assert float(msssim.ms_ssim(a, a)[0]) == pytest.approx(1.0, abs=1e-5)
  scores = [float(msssim.ms_ssim(a, np.clip(a + s * rng.normal(size=a.shape), 0, 1))[0])
            for s in (0.02, 0.1, 0.3)]
  assert scores[0] > scores[1] > scores[2]


def test_too_small_is_a_clear_error():
  with pytest.raises(ConfigError, match=r'at least 32x32 .* these are 26x26'):
    msssim.ms_ssim(np.zeros((1, 26, 26, 3)), np.zeros((1, 26, 26, 3)))
