"""The error-spectrum tools and the hf_retained metric."""
import numpy as np
import jax.numpy as jnp

from ae_jax.metrics import spectrum


def test_radial_power_puts_a_sinusoid_at_its_frequency():
  n = 32
  yy, xx = np.mgrid[:n, :n]
  for cycles in (2, 5, 12):  # cycles per image -> cycles / n per pixel
    img = np.sin(2 * np.pi * cycles * xx / n)[None, ..., None]
    freqs, power = spectrum.radial_power(img)
    assert abs(freqs[np.argmax(power)] - cycles / n) <= 0.5 / (n // 2)


def test_hf_retained_is_one_for_a_copy_and_below_one_for_a_blur_over_the_split():
  rng = np.random.default_rng(0)
  x = rng.random((4, 16, 16, 3)).astype(np.float32)
  blur = (x + np.roll(x, 1, 1) + np.roll(x, 1, 2) + np.roll(x, (1, 1), (1, 2))) / 4
  ctx = lambda r: type('Ctx', (), {'x': jnp.asarray(x),
                                   'det': type('O', (), {'recon': jnp.asarray(r)})})
  ratio = lambda r: np.asarray(spectrum.hf_retained(
      {k: v.sum() for k, v in spectrum.hf_powers(ctx(r)).items()}, 4, (16, 16, 3)))
  np.testing.assert_allclose(ratio(x), 1.0, rtol=1e-5)
  v = ratio(blur)
  assert v < 0.5
  # against NumPy: power above 0.25 cycles/px of the blur over that of the original
  r = np.sqrt(np.fft.fftfreq(16)[:, None] ** 2 + np.fft.fftfreq(16)[None] ** 2) >= 0.25
  p = lambda a: (np.abs(np.fft.fft2(a, axes=(1, 2))) ** 2 * r[None, :, :, None]).sum((1, 2, 3))
  np.testing.assert_allclose(v, p(blur).sum() / p(x).sum(), rtol=1e-4)
