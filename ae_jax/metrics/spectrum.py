"""Where reconstructions lose detail: power spectra of images and residuals.

A blurry reconstruction keeps the low spatial frequencies and drops the high ones, so the
residual x' - x holds most of its power there. `radial_power` is the radially averaged
power spectrum (the high_frequency study draws it for each model's residual);
`hf_retained` (metric 'hf_retained') is the share of the test originals' total power above
half the Nyquist frequency that the reconstructions keep: 1 keeps all of it, a blur gives < 1,
noise or over-sharpening > 1.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

HF_CUTOFF = 0.25  # cycles per pixel: half the Nyquist frequency


def _radius(h: int, w: int, xp=np):
  fy, fx = xp.fft.fftfreq(h), xp.fft.fftfreq(w)
  return xp.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)  # [H, W] cycles per pixel


def radial_power(images, bins: int = 0):
  """Radially averaged power spectrum of [N, H, W, C] images (orthonormal FFT, mean over
  images and channels) -> (frequencies in cycles/pixel [bins], power [bins])."""
  x = np.asarray(images, np.float64)
  n, h, w, c = x.shape
  power = np.square(np.abs(np.fft.fft2(x, axes=(1, 2), norm='ortho'))).mean((0, 3))  # [H, W]
  r = _radius(h, w)
  bins = bins or max(h, w) // 2
  edges = np.linspace(0.0, 0.5, bins + 1)  # up to Nyquist along an axis
  which = np.clip(np.digitize(r, edges) - 1, 0, bins - 1)
  inside = r <= 0.5
  total = np.bincount(which[inside], power[inside], bins)
  count = np.maximum(np.bincount(which[inside], None, bins), 1)
  return 0.5 * (edges[:-1] + edges[1:]), total / count


def hf_energy(images) -> jnp.ndarray:
  """Power above HF_CUTOFF cycles/pixel per image [B] (summed over channels)."""
  h, w = images.shape[1:3]
  band = jnp.asarray(_radius(h, w) >= HF_CUTOFF, jnp.float32)
  power = jnp.square(jnp.abs(jnp.fft.fft2(images, axes=(1, 2), norm='ortho')))
  return jnp.einsum('bhwc,hw->b', power, band)


def hf_powers(ctx) -> dict:
  """Per image: high-frequency power of the reconstruction and of the original (summed
  over the split; `hf_retained` divides the sums: flat images with no detail of their own
  would make per-image ratios meaningless)."""
  recon = jnp.clip(ctx.det.recon, 0.0, 1.0).astype(jnp.float32)
  return {'hf_recon': hf_energy(recon), 'hf_original': hf_energy(ctx.x.astype(jnp.float32))}


def hf_retained(sums: dict, n, image_shape):
  return sums['hf_recon'] / jnp.maximum(sums['hf_original'], 1e-12)
