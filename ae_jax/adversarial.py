"""Adversarial loss terms: taming's GAN losses and adaptive weight, FactorVAE's TC terms.

Pure functions; nothing here holds state or reads a config. Conventions:

* Discriminator and generator losses are per example, like `ae_jax.losses`: logits
  [B, ...] (patch logits [B, h, w, 1]) -> [B], the mean over one example's logits. Every
  example has the same number of patches, so the batch mean of the result is exactly
  taming's scalar (`torch.mean` over batch and patches). Real and fake logits are paired
  by index, which an autoencoder's batch (images and their reconstructions) provides.
* The discriminators see images in [-1, 1] (`models.discriminators.to_disc_input`).
* Taming's generator loss is -mean D(x_hat) (`g_loss_hinge`) whichever discriminator loss
  is chosen ('hinge' or 'vanilla'); `g_loss_nonsaturating` is the GAN paper's
  softplus(-D(x_hat)), the generator half of `vanilla_d_loss`.

The adaptive weight (taming `calculate_adaptive_weight`, Esser et al. 2021 eq. 7) balances
the generator loss against the reconstruction loss at the decoder's last layer w:

  lambda = clip(|grad_w L_rec| / (|grad_w L_G| + 1e-4), 0, 1e4) * disc_weight,

held constant (no gradient) in L_rec + lambda * adopt_weight(factor, step, start) * L_G.
Then the G term's gradient at w has the norm of the reconstruction term's times
disc_weight, whatever the reduction of L_rec (sum or mean over pixels): the choice only
moves the 1e-4.

The two gradients at w need no extra pass through the model. With the last layer a conv
y = conv(h, w) + b, the gradient of any loss with respect to w is the correlation of its
input h with the loss's gradient dy at y (`conv_kernel_grad`), and dy comes from a
backward pass through what follows y only (the output activation, the loss, and for L_G
the discriminator). In a train step:

  (y, h), model_vjp = jax.vjp(decoder_up_to_last_conv_output, params, has_aux=True)
  dy_rec = jax.grad(lambda y: rec_loss(tail(y)))(y)          # tail: e.g. tanh, rescale
  dy_g = jax.grad(lambda y: g_loss(disc(tail(y))))(y)
  lam = adaptive_weight_at_conv(h, dy_rec, dy_g, kernel.shape, disc_weight)
  grads, = model_vjp(dy_rec + lam * factor * dy_g)          # the one full backward pass

FactorVAE (Kim & Mnih 2018; 1Konny/FactorVAE): a discriminator D tells codes z ~ q(z)
(label 0, logit 0) from codes whose every dimension is permuted independently across a
batch, samples of prod_j q(z_j) (label 1, logit 1). At its optimum logit 0 - logit 1 =
log q(z) / prod_j q(z_j), whose mean over q(z) is the total correlation; the VAE adds
gamma times that estimate to its loss, and D minimises the cross-entropy.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax


def _per_example_mean(x):
  return x.reshape(x.shape[0], -1).mean(-1)  # [B, ...] -> [B]


# ---- image discriminator and generator losses (taming vqperceptual.py) ----------------


def hinge_d_loss(logits_real, logits_fake):
  """1/2 (mean relu(1 - D(x)) + mean relu(1 + D(x_hat))) per example -> [B]."""
  return 0.5 * (_per_example_mean(jax.nn.relu(1.0 - logits_real))
                + _per_example_mean(jax.nn.relu(1.0 + logits_fake)))


def vanilla_d_loss(logits_real, logits_fake):
  """1/2 (mean softplus(-D(x)) + mean softplus(D(x_hat))) per example -> [B]: the
  binary cross-entropy with real labelled 1 and fake 0."""
  return 0.5 * (_per_example_mean(jax.nn.softplus(-logits_real))
                + _per_example_mean(jax.nn.softplus(logits_fake)))


def g_loss_hinge(logits_fake):
  """-mean D(x_hat) per example -> [B]: taming's generator loss (with either D loss)."""
  return -_per_example_mean(logits_fake)


def g_loss_nonsaturating(logits_fake):
  """mean softplus(-D(x_hat)) per example -> [B]: the non-saturating generator loss."""
  return _per_example_mean(jax.nn.softplus(-logits_fake))


D_LOSSES = {'hinge': hinge_d_loss, 'vanilla': vanilla_d_loss}
G_LOSSES = {'hinge': g_loss_hinge, 'nonsaturating': g_loss_nonsaturating}


def adopt_weight(weight, step, start):
  """`weight` from step `start` on, 0 before (taming: `global_step < threshold` -> 0).

  Works on traced steps and weights, so a jitted step needs no recompile at the switch."""
  return jnp.where(step < start, jnp.zeros_like(weight), weight)


# ---- adaptive weight --------------------------------------------------------------------


def _norm(tree):
  return jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(tree)))


def adaptive_weight(rec_grad, g_grad, disc_weight, eps: float = 1e-4,
                    max_weight: float = 1e4):
  """taming's calculate_adaptive_weight from the two losses' gradients at the last layer.

  rec_grad, g_grad: arrays (or pytrees, norm over all leaves) of the same shape.
  Returns the scalar ||rec_grad|| / (||g_grad|| + eps), clipped to [0, max_weight], with
  no gradient, times disc_weight (taming detaches before multiplying too).
  """
  ratio = _norm(rec_grad) / (_norm(g_grad) + eps)
  return jax.lax.stop_gradient(jnp.clip(ratio, 0.0, max_weight)) * disc_weight


def _explicit_padding(padding, in_size: Sequence[int], kernel: Sequence[int],
                      strides: Sequence[int]):
  if isinstance(padding, str):
    return jax.lax.padtype_to_pads(in_size, kernel, strides, padding)
  if isinstance(padding, int):
    return [(padding, padding)] * 2
  return [tuple(p) for p in padding]


def conv_kernel_grad(h, dy, kernel_shape, padding='SAME', strides=(1, 1)):
  """The gradient of a loss with respect to a conv's HWIO kernel, from the conv's input
  h [B, H, W, Cin] and the loss's gradient dy [B, Ho, Wo, Cout] at the conv's output.

  For y[b, i, j, o] = sum_{u, v, c} h_pad[b, s*i + u, s*j + v, c] w[u, v, c, o],
    dL/dw[u, v, c, o] = sum_{b, i, j} h_pad[b, s*i + u, s*j + v, c] dy[b, i, j, o],
  a correlation of h with dy over batch and space. It runs as one canonical NHWC/HWIO
  convolution: channels Cin as its batch, the batch B as its features, dy as a kernel
  dilated by the stride. padding: 'SAME' | 'VALID' | int | ((lo, hi), (lo, hi)), as the
  conv's; the high side is trimmed (a negative pad) to the rows the conv reached.
  -> [kh, kw, Cin, Cout]
  """
  kh, kw, cin, cout = kernel_shape
  strides = tuple(strides)
  sizes, outs = h.shape[1:3], dy.shape[1:3]
  pads = _explicit_padding(padding, sizes, (kh, kw), strides)
  # pad so that the correlation's output is exactly kh x kw: n + lo + hi = k + s (o - 1)
  pads = [(lo, k + s * (o - 1) - n - lo)
          for (lo, _), k, s, o, n in zip(pads, (kh, kw), strides, outs, sizes)]
  dw = jax.lax.conv_general_dilated(
      jnp.transpose(h, (3, 1, 2, 0)),   # [Cin, H, W, B]
      jnp.transpose(dy, (1, 2, 0, 3)),  # [Ho, Wo, B, Cout]
      (1, 1), pads, rhs_dilation=strides,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))  # [Cin, kh, kw, Cout]
  assert dw.shape == (cin, kh, kw, cout), (dw.shape, kernel_shape)
  return jnp.transpose(dw, (1, 2, 0, 3))  # [kh, kw, Cin, Cout]


def adaptive_weight_at_conv(h, dy_rec, dy_g, kernel_shape, disc_weight, padding='SAME',
                            strides=(1, 1), eps: float = 1e-4, max_weight: float = 1e4):
  """`adaptive_weight` with both kernel gradients from the last conv's input h and the
  losses' gradients at its output (dy_rec, dy_g [B, Ho, Wo, Cout])."""
  grad = lambda dy: conv_kernel_grad(h, dy, kernel_shape, padding, strides)
  return adaptive_weight(grad(dy_rec), grad(dy_g), disc_weight, eps, max_weight)


# ---- FactorVAE ---------------------------------------------------------------------------


def permute_dims(z, key):
  """Each code dimension shuffled across the batch by its own permutation: [B, ...] ->
  [B, ...]. Every marginal q(z_j) is kept, the dependence between dimensions is lost, so
  the rows are samples of prod_j q(z_j)."""
  # argsort of iid uniforms: a uniformly random permutation per column, all in one draw
  order = jnp.argsort(jax.random.uniform(key, z.shape), axis=0)
  return jnp.take_along_axis(z, order, axis=0)


def tc_per_example(logits):
  """logit 0 - logit 1 per code -> [B]: D's estimate of log q(z) / prod_j q(z_j)."""
  return logits[:, 0] - logits[:, 1]


def tc_estimate(logits):
  """The total-correlation estimate: mean of logit 0 - logit 1 over codes from q(z).

  This is FactorVAE's `vae_tc_loss`, which the VAE minimises (times gamma)."""
  return jnp.mean(tc_per_example(logits))


def tc_discriminator_loss(logits_q, logits_perm):
  """D's cross-entropy, 1/2 (CE(D(z), 0) + CE(D(permute_dims(z')), 1)) per example -> [B].

  logits_q [B, 2] on codes from q(z) (label 0), logits_perm [B, 2] on permuted codes
  (label 1; FactorVAE permutes a second, independent batch z'). Codes go in without
  gradient to the encoder (stop_gradient them): this loss trains D only.
  """
  zeros = jnp.zeros(logits_q.shape[0], jnp.int32)
  return 0.5 * (optax.softmax_cross_entropy_with_integer_labels(logits_q, zeros)
                + optax.softmax_cross_entropy_with_integer_labels(logits_perm, zeros + 1))
