"""Latent-space tools: `ops` (pure, jit-able array functions), `tools` (figures and arrays
from trained models) and the CLI, `python -m ae_jax.latent TOOL --workdir DIR ...`."""
from ae_jax.latent.ops import (add_noise, edit, fit_gaussian, interpolate, lerp,  # noqa: F401
                               nearest_distance, order_dims, sample_gaussian, sigma_schedule,
                               slerp, traverse)
