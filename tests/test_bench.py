import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from ae_jax import bench
from ae_jax.training import prepare

pytestmark = pytest.mark.slow

KEYS = ('model', 'image_shape', 'batch_size', 'step_ms', 'images_per_sec', 'compile_s',
        'peak_rss_mb', 'device')


def test_bench_cli_prints_one_json_line_per_program(root, hang_s, checkout_env):
  r = subprocess.run([sys.executable, '-m', 'ae_jax.bench', '--config', 'configs/vae_mlp.py',
                      '--steps', '3', '--synthetic', '--config.data.image_size=12',
                      '--config.sweep.batch_size=(8,16)', '--config.model.hidden=(16,)'],
                     cwd=root, env=checkout_env(), capture_output=True, text=True,
                     timeout=hang_s)
  assert r.returncode == 0, r.stderr[-2000:]
  lines = [json.loads(line) for line in r.stdout.splitlines() if line.startswith('{')]
  assert [line['batch_size'] for line in lines] == [8, 16]
  for line in lines:
    assert all(k in line for k in KEYS)
    assert line['image_shape'] == [12, 12, 3] and line['model'] == 'mlp_vae'
    assert line['images_per_sec'] == pytest.approx(
        line['batch_size'] * 1000 / line['step_ms'], rel=0.01)
    assert line['step_ms'] > 0 and line['compile_s'] > 0 and line['peak_rss_mb'] > 0


def test_bench_compares_scan_and_python_loops(tiny):
  out = bench.measure(tiny(), steps_timed=2, warmup=1, compare_loops=True)
  assert out['epoch_scan_ms'] > 0 and out['epoch_python_ms'] > 0
  assert out['scan_speedup_over_python_loop'] == pytest.approx(
      out['epoch_python_ms'] / out['epoch_scan_ms'], rel=0.01)


def test_bfloat16_computes_in_bf16_and_keeps_float32_state(tiny):
  f32 = prepare(tiny())
  bf16 = prepare(tiny(dtype='bfloat16'))
  x = jax.numpy.asarray(f32.dataset.train['image'][:32])
  s32, s16 = f32.init_state(), bf16.init_state()
  jaxpr = str(jax.make_jaxpr(bf16.functions.step_batch)(s16, x, bf16.inputs))
  assert 'bf16[32,32]' in jaxpr  # the hidden layer's activations
  assert 'bf16' not in str(jax.make_jaxpr(f32.functions.step_batch)(s32, x, f32.inputs))
  s16, m16 = bf16.functions.step_batch(s16, x, bf16.inputs)
  s32, m32 = f32.functions.step_batch(s32, x, f32.inputs)
  assert all(leaf.dtype == np.float32 for leaf in jax.tree_util.tree_leaves(s16.params))
  assert all(leaf.dtype == np.float32 for leaf in jax.tree_util.tree_leaves(s16.opt_state)
             if np.issubdtype(leaf.dtype, np.floating))
  # Same loss to bfloat16 precision (8 bits of mantissa).
  np.testing.assert_allclose(m16['loss'], m32['loss'], rtol=2e-2)


def test_bench_variants_declares_configs_that_resolve_and_measures_ratios(tmp_path, root):
  """experiments/bench_variants.py: every declared family / LPIPS variant is a valid config
  (a typo'd key would only show on the machine that runs it), and a run writes ratios to
  its first variant in a benchmark file."""
  import importlib.util
  import os
  from ae_jax import config_lib
  spec = importlib.util.spec_from_file_location(
      'bench_variants', os.path.join(root, 'experiments', 'bench_variants.py'))
  bv = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bv)
  assert bv._split('a=1,b=(2,3),c=x') == ['a=1', 'b=(2,3)', 'c=x']
  for config, variants, base in (('base', bv.FAMILIES, bv.FAMILY_CONFIG),
                                 ('ae_photos', bv.LPIPS, [])):
    for text in variants:
      name, extra = bv._variant(text)
      config_lib.resolve(config_lib.load(config, base + extra))
  out = tmp_path / 'b.json'
  bv.main(['--config', 'base', '--config.data.num_examples=64', '--config.train.batch_size=8',
           '--variant', 'vae:', '--variant', 'ae:model.kind=ae', '--steps', '2', '--warmup',
           '1', '--record', str(out)])
  rec = json.load(open(out))
  assert [r['variant'] for r in rec['results']] == ['vae', 'ae']
  first, second = rec['results']
  assert first['ratio_to_reference'] == 1.0
  assert second['ratio_to_reference'] == pytest.approx(second['step_ms'] / first['step_ms'],
                                                       rel=1e-2)
  assert rec['command'].startswith('python experiments/bench_variants.py --config base')
