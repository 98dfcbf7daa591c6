"""Mapping a one-member function over a program's members: vmapped, unrolled, or (one
member) called as it is. Pure; nothing compiled here (compile.py jits the result)."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _take(arg, axis, i: int):
  """Member i of `arg` along the member axes `axis` (0: every leaf's leading axis; None:
  shared; a tuple/NamedTuple: per field, as jax.vmap's in_axes prefixes)."""
  if axis is None:
    return arg
  if axis == 0 and not isinstance(axis, tuple):
    return jax.tree_util.tree_map(lambda x: x[i], arg)
  return type(arg)(*[_take(a, ax, i) for a, ax in zip(arg, axis)])


def over_members(fn, in_axes, num_members: int, strategy: str = 'vmap',
                 state_out: bool = False):
  """Map `fn` over the leading member axis of the arguments whose in_axes is 0 (or, for a
  NamedTuple argument, of its fields whose axis is 0).

  'vmap' batches the members; 'unroll' writes one copy of `fn` per member into the same
  program. vmapping a convolution whose weights carry the member axis makes it a grouped
  convolution, which XLA:CPU runs several times slower than the separate convolutions
  'unroll' emits.

  With one member, argument 0 is the state *without* a member axis (see
  compile.Functions.unstack): carrying a size-1 axis through the step made XLA keep extra
  copies of the weights, 2.3x slower on the 50x50 MLP VAE. The other arguments are
  squeezed, and the outputs other than the state (output 0 when `state_out`) get the
  axis back.
  """
  def take(args, axes, i):
    return [_take(a, ax, i) for a, ax in zip(args, axes)]

  expand = lambda t: jax.tree_util.tree_map(lambda x: x[None], t)
  if num_members == 1:
    def single(*args):
      out = fn(args[0], *take(args[1:], in_axes[1:], 0))
      return (out[0], *[expand(o) for o in out[1:]]) if state_out else expand(out)

    return single

  if strategy == 'vmap':
    return jax.vmap(fn, in_axes=in_axes)

  def unrolled(*args):
    outs = [fn(*take(args, in_axes, i)) for i in range(num_members)]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)

  return unrolled
