"""compile.py: a run's compilations are its own unless the caller shares them."""
import contextvars

import chex
import numpy as np
import pytest

from ae_jax import compile as compile_lib, inference
from ae_jax.train import train_and_evaluate


def test_a_run_compiles_for_itself_unless_shared():
  alone = contextvars.Context()  # no shared() around: each run makes its own Compiler
  assert alone.run(compile_lib.run_compiler) is not alone.run(compile_lib.run_compiler)
  with compile_lib.shared() as outer:
    assert compile_lib.run_compiler() is outer
    with compile_lib.shared() as inner:
      assert compile_lib.run_compiler() is inner is not outer
    assert compile_lib.run_compiler() is outer


@pytest.mark.slow
def test_equal_runs_inside_shared_compile_once_and_train_alike(tmp_path, tiny, monkeypatch):
  made = []
  real = compile_lib.make_functions
  monkeypatch.setattr(compile_lib, 'make_functions', lambda *a: made.append(1) or real(*a))
  with compile_lib.shared():
    for name in ('a', 'b'):
      train_and_evaluate(tiny(), str(tmp_path / name))
  assert len(made) == 1  # the second run's spec, shapes and placement were the first's
  with compile_lib.shared():
    train_and_evaluate(tiny(), str(tmp_path / 'c'))  # a new scope compiles again
  assert len(made) == 2
  a, b, c = (inference.load(str(tmp_path / n)) for n in 'abc')
  chex.assert_trees_all_equal(a.params, b.params)
  chex.assert_trees_all_equal(a.params, c.params)
  # loaded models of equal specs encode through one compilation inside shared() only
  with compile_lib.shared():
    assert inference._jitted(a.model, 'encode') is inference._jitted(b.model, 'encode')
  alone = contextvars.Context()
  assert (alone.run(inference._jitted, a.model, 'encode')
          is not alone.run(inference._jitted, b.model, 'encode'))
  x = np.random.default_rng(0).random((3, *a.image_shape)).astype(np.float32)
  with compile_lib.shared():  # the same codes as a load's own compilation
    np.testing.assert_array_equal(a.encode(x)[0], alone.run(lambda: b.encode(x))[0])
