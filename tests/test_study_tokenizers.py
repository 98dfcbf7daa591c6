"""The tokenizers study at its --smoke budget: the KL autoencoder, the EMA codebook and FSQ
at two codebook sizes in one table, with their compression counted from the codes' shapes,
and the study's declarations (matched codebook sizes and code widths) on its configs."""
import json
import math

import pytest

from ae_jax import config_lib
from ae_jax.models import kinds, resolve_latent_dim
from ae_jax.studies import build
from ae_jax.studies import tokenizers as tok


def test_the_pairs_match_codebook_size_and_code_width():
  """At the full budget every model is the same network at the same positions; VQ and FSQ of
  one size have K = prod(levels) and the same code width, the KL model the 2^10 pair's."""
  cfgs = {m.key: config_lib.resolve(build(m, 'full')[0]) for m in tok.MODELS}
  assert {c.model.preset for c in cfgs.values()} == {tok.PRESET}
  for vq, fsq in tok.PAIRS:
    levels = kinds.fsq_levels(cfgs[fsq].model)
    assert cfgs[vq].model.vq.codes == math.prod(levels)
    assert resolve_latent_dim(cfgs[vq].model) == resolve_latent_dim(cfgs[fsq].model) == len(
        levels)
    assert cfgs[vq].model.vq.restart_threshold == 0.0  # plain EMA, as the docstring says
  assert [math.prod(kinds.fsq_levels(cfgs[f].model)) for _, f in tok.PAIRS] == [1000, 15360]
  assert cfgs['kl'].model.latent_dim == 4 and cfgs['kl'].model.kind == 'vae'
  assert len({(c.loss.reconstruction, c.loss.lpips_weight, c.train.batch_size,
               c.train.num_epochs, c.data.num_examples) for c in cfgs.values()}) == 1


@pytest.mark.slow
def test_tokenizers(tmp_path, smoke_study, report_table):
  md = smoke_study('tokenizers', tmp_path)
  rows = report_table(md, 'Test metrics')
  head = md.split('## Test metrics\n', 1)[1].splitlines()[1]
  cols = [c.strip() for c in head.strip('|').split('|')]
  col = {name: cols.index(name) for name in cols}
  assert [r[0] for r in rows] == ['KL autoencoder, 4 channels', 'VQ (EMA), K = 32',
                                  'FSQ (8, 5, 5, 5), K = 1000', 'VQ (EMA), K = 32',
                                  'FSQ (8, 8, 8, 6, 5), K = 15360']
  # smoke: 16x16x3 photos, one stride-2 conv: 8x8 positions of 4 (or 5) channels
  per_pixel = [float(r[col['latents/pixel']]) for r in rows]
  assert per_pixel == pytest.approx([256 / 768] * 3 + [320 / 768] * 2, rel=1e-3)
  bits = [r[col['bits/pixel']] for r in rows]
  assert bits[0] == '' and float(bits[1]) == pytest.approx(64 * 5 / 256, rel=1e-3)
  assert float(bits[2]) == pytest.approx(64 * math.log2(1000) / 256, rel=1e-3)
  assert float(bits[4]) == pytest.approx(64 * math.log2(15360) / 256, rel=1e-3)
  used = [r[col['codes used (↑)']] for r in rows]
  assert used[0] == '' and all(0.0 < float(u) <= 1.0 for u in used[1:])
  assert float(rows[0][col['step time (× KL)']]) == 1.0
  assert all(float(r[col['step s']]) > 0 for r in rows)
  assert '## FSQ against the EMA codebook' in md and 'Target (' in md
  assert 'figures/crops.png' in md
  results = json.load(open(tmp_path / 'results.json'))
  assert [m['key'] for m in results['models']] == [k for k, *_ in tok.TOKENIZERS]
  fsq_row = results['models'][2]
  assert fsq_row['metrics']['perplexity'] >= 1.0 and 'commitment' not in fsq_row['metrics']
  assert results['models'][1]['extra']['step time (× KL)'] > 0
