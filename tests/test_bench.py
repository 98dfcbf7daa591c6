import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from ae_jax import bench
from ae_jax.train import Setup
from conftest import ROOT, tiny_config

KEYS = ('model', 'image_shape', 'batch_size', 'step_ms', 'images_per_sec', 'compile_s',
        'peak_rss_mb', 'device')


def test_bench_cli_prints_one_json_line_per_program():
  r = subprocess.run([sys.executable, '-m', 'ae_jax.bench', '--config', 'configs/vae_mlp.py',
                      '--steps', '3', '--synthetic', '--config.data.image_size=12',
                      '--config.sweep.batch_size=(8,16)', '--config.model.hidden=(16,)'],
                     cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith('{')]
  assert [l['batch_size'] for l in lines] == [8, 16]
  for l in lines:
    assert all(k in l for k in KEYS)
    assert l['image_shape'] == [12, 12, 3] and l['model'] == 'mlp_vae'
    assert l['images_per_sec'] == pytest.approx(l['batch_size'] * 1000 / l['step_ms'], rel=0.01)
    assert l['step_ms'] > 0 and l['compile_s'] > 0 and l['peak_rss_mb'] > 0


def test_bench_compares_scan_and_python_loops():
  out = bench.measure(tiny_config(), steps_timed=2, warmup=1, compare_loops=True)
  assert out['epoch_scan_ms'] > 0 and out['epoch_python_ms'] > 0
  assert out['scan_speedup_over_python_loop'] == pytest.approx(
      out['epoch_python_ms'] / out['epoch_scan_ms'], rel=0.01)


def test_bfloat16_computes_in_bf16_and_keeps_float32_state():
  f32 = Setup(tiny_config())
  bf16 = Setup(tiny_config(dtype='bfloat16'))
  x = jax.numpy.asarray(f32.dataset.train['image'][:32])
  s32, s16 = f32.init_state(), bf16.init_state()
  jaxpr = str(jax.make_jaxpr(bf16.fns.step_batch)(s16, x, bf16.hparams))
  assert 'bf16[32,32]' in jaxpr  # the hidden layer's activations
  assert 'bf16' not in str(jax.make_jaxpr(f32.fns.step_batch)(s32, x, f32.hparams))
  s16, m16 = bf16.fns.step_batch(s16, x, bf16.hparams)
  s32, m32 = f32.fns.step_batch(s32, x, f32.hparams)
  assert all(l.dtype == np.float32 for l in jax.tree_util.tree_leaves(s16.params))
  assert all(l.dtype == np.float32 for l in jax.tree_util.tree_leaves(s16.opt_state)
             if np.issubdtype(l.dtype, np.floating))
  # Same loss to bfloat16 precision (8 bits of mantissa).
  np.testing.assert_allclose(m16['loss'], m32['loss'], rtol=2e-2)
