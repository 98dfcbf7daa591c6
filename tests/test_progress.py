"""ae_jax.progress: a bar on a terminal, a line now and then in a log file, silence for
short phases; and a long phase (a pass metric, encoding a split) reporting through it."""
import io

import numpy as np
import pytest

from ae_jax import progress


class Terminal(io.StringIO):
  def isatty(self):
    return True


class Clock:
  """A clock the test moves by hand."""

  def __init__(self):
    self.t = 0.0

  def __call__(self):
    return self.t


def test_a_log_file_gets_a_line_with_count_and_time_left_every_so_often():
  log, clock = io.StringIO(), Clock()
  with progress.Progress(1000, 'LPIPS-vgg', unit='images', stream=log, clock=clock) as p:
    for _ in range(100):  # 10 images a second for 100 s
      clock.t += 1.0
      p.update(10)
      if clock.t == 4.0:
        assert log.getvalue() == ''  # nothing in the first seconds
  lines = log.getvalue().splitlines()
  # at 5 s, then every 30 s; then when it ends
  assert lines[0] == 'LPIPS-vgg: 50/1000 images (5%), 5 s so far, about 95 s left'
  assert lines[1] == 'LPIPS-vgg: 350/1000 images (35%), 35 s so far, about 65 s left'
  assert [line.split(':')[1].split('/')[0].strip() for line in lines[2:4]] == ['650', '950']
  assert lines[-1] == 'LPIPS-vgg: 1000/1000 images after 100 s'
  assert len(lines) == 5


def test_short_phases_and_disabled_progress_say_nothing():
  for stream in (io.StringIO(), Terminal()):
    clock = Clock()
    for _ in progress.track(range(50), 'encoding', stream=stream, clock=clock):
      clock.t += 0.05  # 2.5 s in all
    assert stream.getvalue() == ''
  log, clock = io.StringIO(), Clock()
  with progress.Progress(10, 'training', enabled=False, stream=log, clock=clock) as p:
    clock.t = 1000.0
    p.update(10)
  assert log.getvalue() == ''


def test_a_terminal_gets_a_tqdm_bar():
  term = Terminal()
  with progress.Progress(10, 'IWAE', unit='images', stream=term, first_s=0, leave=True) as p:
    p.update(4)
    p.set_postfix(loss='1.5')
    p.update(6)
  out = term.getvalue()
  assert 'IWAE: 100%|' in out and '10/10' in out and 'loss=1.5' in out
  assert 'so far' not in out  # not the log-file lines


@pytest.mark.slow
def test_a_long_pass_and_encoding_report_through_it(tmp_path, monkeypatch, capsys, tiny):
  from ae_jax.evaluate import evaluate_workdir
  from ae_jax.train import train_and_evaluate
  workdir = str(tmp_path / 'w')
  train_and_evaluate(tiny(train__num_epochs=1), workdir)
  capsys.readouterr()
  monkeypatch.setattr(progress, 'FIRST_S', 0.0)  # as if each phase took long
  monkeypatch.setattr(progress, 'EVERY_S', 1e9)
  evaluate_workdir(workdir, ['nll_iwae'], overrides=['--config.eval.iwae_samples=4',
                                                     '--config.progress=True'])
  err = capsys.readouterr().err.splitlines()
  iwae = [line for line in err if line.startswith('IWAE, 4 samples: ')]
  assert iwae and iwae[-1].startswith('IWAE, 4 samples: 359/359 images after ')
  evaluate_workdir(workdir, ['nll_iwae'], overrides=['--config.eval.iwae_samples=4'])
  assert 'IWAE' not in capsys.readouterr().err  # config.progress=False (tiny_config's)
  from ae_jax.inference import load
  m = load(workdir, overrides=['--config.progress=True'])
  m.encode(np.zeros((300, *m.image_shape), np.float32))
  assert 'encoding: 300/300 images after ' in capsys.readouterr().err
