"""Sample grids of every embedded dataset (the README's pictures).

  python experiments/dataset_gallery.py [--out docs/datasets]

Writes wafer.png (five maps of each of the nine classes), dsprites.png (each shape at
several scales and orientations), digits.png, photos.png and faces.png, each atomically
and never through a symbolic link inside --out; other files there are left alone.
"""
import argparse
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--out', default=os.path.join(ROOT, 'docs', 'datasets'))
  args = p.parse_args()
  import numpy as np
  from ae_jax.configs import base
  from ae_jax import data, figures
  from ae_jax.workdir import figure_bytes, write_bytes

  def save(rows, names, name, title):
    path = os.path.join(args.out, name)
    write_bytes(path, figure_bytes(figures.image_rows(rows, names, title), name), args.out)

  def cfg(**kw):
    c = base.get_config().data
    for k, v in kw.items():
      c[k] = v
    return c

  wafer = data.load(cfg(name='wafer', num_examples=450, image_size=32))
  x = np.concatenate([wafer.train['image'], wafer.test['image']])
  y = np.concatenate([wafer.train['label'], wafer.test['label']])
  rows = [x[y == k][:5] for k in range(9)]
  save(rows, list(wafer.info.class_names), 'wafer.png',
       'wafer: five maps per WM-811K class (red off-wafer, green good, blue failing)')

  sprites = data.load(cfg(name='dsprites', num_examples=2000))
  xs, f = sprites.train['image'], sprites.info.factors[sprites.train['id']]
  rows = [xs[f[:, 0] == k][:8] for k in range(3)]
  save(rows, list(sprites.info.class_names), 'dsprites.png', 'dsprites: random factors per shape')

  for name, kw, n in (('digits', {}, 10), ('photos', {'image_size': 50, 'num_examples': 200}, 8),
                      ('faces', {}, 10)):
    ds = data.load(cfg(name=name, **kw))
    save([ds.train['image'][:n], ds.test['image'][:n]], ['train', 'test'], f'{name}.png',
         f'{name}: train and test examples, {ds.info.image_shape}')
  print('wrote', sorted(os.listdir(args.out)))


if __name__ == '__main__':
  main()
