"""The high_frequency study at its --smoke budget (a file of its own, so the test workers
share the studies' time)."""
import pytest

pytestmark = pytest.mark.slow


def test_high_frequency(tmp_path, smoke_study, report_table):
  from ae_jax.studies import high_frequency
  md = smoke_study('high_frequency', tmp_path)
  rows = report_table(md, 'Test metrics per remedy')
  labels = {k: label for k, label, _ in high_frequency.REMEDIES}
  assert [r[0] for r in rows] == [labels[k] for k in high_frequency.SMOKE_REMEDIES]
  head = md.split('## Test metrics per remedy\n', 1)[1].splitlines()[1]
  cols = [c.strip() for c in head.strip('|').split('|')]
  hf, psnr = cols.index('HF energy'), cols.index('PSNR (↑)')
  assert 'MS-SSIM (↑)' in cols
  assert all(0.0 < float(r[hf]) < 1e3 and 5 < float(r[psnr]) < 60 for r in rows)
  # the extra terms reach the loss: loss != recon exactly where a weight is set
  loss, recon = cols.index('loss (↓)'), cols.index('recon (↓)')
  extra = {labels[k] for k, _, o in high_frequency.REMEDIES if any('weight' in x for x in o)}
  assert all((r[loss] != r[recon]) == (r[0] in extra) for r in rows)
  assert len(report_table(md, "Report 000's fix: two extra layers after the MLP decoder")) == 2
  for name in ('error_spectrum.png', 'crops.png'):
    assert f'figures/{name}' in md
  # sentences from what ran: the MLP pair's parameter counts and size are the models'
  assert 'mlp (247,796 parameters) and mlp (247,796 parameters), on 50x50 patches' in md
