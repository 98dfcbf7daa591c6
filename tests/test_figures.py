"""Figures stay readable: many members get small multiples with one colour each, train and
eval differ by line style, and categorical channels get a colour key."""
import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
import numpy as np
import pytest

from ae_jax import figures


def _drawn(fig):
  """The renderer of `fig` drawn on an Agg canvas (figures.subplots makes canvas-less
  Figures; saving gives them one)."""
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  return canvas.get_renderer()


def _records(members):
  rows = []
  for m in members:
    for e in (1, 2, 3):
      rows.append({'member': m, 'epoch': e, 'split': 'train', 'loss': 10.0 / e})
      rows.append({'member': m, 'epoch': e, 'split': 'eval', 'loss': 12.0 / e})
  return rows


@pytest.mark.slow  # builds full-size models or draws figures: seconds
def test_many_members_get_small_multiples_and_distinct_colours():
  names = [f'beta={i}' for i in range(12)]
  fig = figures.loss_curves(_records(names))
  axes = [a for a in fig.axes if a.lines]
  assert len(axes) == 12  # one panel per member
  styles = {line.get_linestyle() for line in axes[0].lines}
  assert styles == {'-', '--'}  # train solid, eval dashed
  assert [a.get_title() for a in axes] == names  # each panel names its member
  few = figures.loss_curves(_records(names[:6]))
  shared = [a for a in few.axes if a.lines]
  assert len(shared) == 1  # a few members share one axes, each its own colour
  colours = {matplotlib.colors.to_hex(line.get_color()) for line in shared[0].lines}
  assert len(colours) == 6
  assert len(figures.colors(12)) == len({matplotlib.colors.to_hex(c) for c in figures.colors(12)})


def test_categorical_images_get_a_colour_key():
  import numpy as np
  rows = [np.zeros((4, 6, 6, 3), np.float32)] * 2
  key = (('red', 'off-wafer'), ('green', 'good die'), ('blue', 'failing die'))
  fig = figures.image_rows(rows, ['original', 'recon'], color_key=key)
  texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
  assert texts == ['off-wafer', 'good die', 'failing die']
  assert not figures.image_rows(rows, ['a', 'b']).legends


@pytest.mark.slow  # builds full-size models or draws figures: seconds
def test_image_rows_title_and_key_clear_the_images_and_column_titles():
  """generate.png's title ran into its column headers (tight_layout leaves the suptitle
  out): the title sits above every column title, the colour key below every image, on a
  short figure and a tall one."""
  for n_rows, title in ((2, 'samples\nfrom the prior, seed 0'), (15, '5 samples per image')):
    rows = [np.zeros((6, 8, 8, 3))] * n_rows
    fig = figures.image_rows(rows, [f'id {i}\nCenter' for i in range(n_rows)], title,
                             color_key=(('red', 'off'), ('green', 'good')),
                             col_titles=['original'] + [f'σ={s}' for s in range(5)])
    renderer = _drawn(fig)
    top = fig._suptitle.get_window_extent(renderer)
    heads = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    assert heads and all(top.y0 >= h.y1 for h in heads), (n_rows, top, heads)
    legend = fig.legends[0].get_window_extent(renderer)
    assert all(legend.y1 <= ax.get_window_extent(renderer).y0 for ax in fig.axes)


def test_a_long_title_is_wrapped_inside_the_figure():
  # the title `latent sample` gives a VQ-VAE, over a row of 4 samples (a narrow figure)
  title = ('VQ-VAE samples: code indices from a categorical distribution of code indices at '
           'each position (independently) fitted to its 512 training codes; a VQ-VAE needs '
           'such a prior\nvqvae member beta=0.25 at epoch 10 of runs/vq, seed 0')
  images = np.zeros((4, 16, 16, 1), np.float32)
  for rows in ([images], [images, images]):
    fig = figures.image_rows(rows, [''] * len(rows), title)
    renderer = _drawn(fig)
    box = fig._suptitle.get_window_extent(renderer)
    page = fig.bbox
    assert box.x0 >= page.x0 and box.x1 <= page.x1, (box, page)
    assert box.y0 >= page.y0 and box.y1 <= page.y1, (box, page)
    # and above the images
    assert box.y0 >= max(a.get_window_extent(renderer).y1 for a in fig.axes) - 1
