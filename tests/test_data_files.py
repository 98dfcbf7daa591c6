"""The files users really have: image folders in every PIL mode and bit depth, with alpha,
EXIF orientation, hidden entries and decompression bombs; .npy files that are not arrays;
labels of any kind mapped to class indices; what inference.Trained accepts as images."""
import json
import logging
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from ae_jax import data
from ae_jax.errors import ConfigError, DataError


@pytest.fixture
def load_folder(tiny):
  """load_folder(path, **overrides) -> the dataset of a folder of images."""
  return lambda path, **kw: data.load(tiny(data__name='folder', data__path=str(path), **kw).data)


def _all(ds, key='image'):
  """Both splits, in id order."""
  ids = np.concatenate([ds.train['id'], ds.test['id']])
  values = np.concatenate([ds.train[key], ds.test[key]])
  return values[np.argsort(ids)]


def _save(im, path, **kw):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  im.save(path, **kw)


# ---- bit depth and modes -----------------------------------------------------------------


def _deep(mode, a):
  if mode == 'I;16B':  # only TIFF keeps the big-endian mode
    return Image.frombytes('I;16B', a.shape[::-1], a.astype('>u2').tobytes()), 'tif'
  if mode == 'I':
    return Image.fromarray(a.astype(np.int32)), 'tif'
  if mode == 'F':
    return Image.fromarray((a / 65535).astype(np.float32)), 'tif'
  return Image.fromarray(a.astype(np.uint16)), 'png'


@pytest.mark.parametrize('mode', ['I;16', 'I;16B', 'I', 'F'])
def test_deep_images_keep_their_scale_and_precision(tmp_path, mode, load_folder):
  rng = np.random.default_rng(0)
  # dark 16-bit scans: true mean 0.054, which clipping through convert('RGB') made 0.959
  truth = (rng.random((6, 12, 12)) * 0.108 * 65535).astype(np.uint16)
  for i, a in enumerate(truth):
    im, ext = _deep(mode, a)
    _save(im, str(tmp_path / f'{i}.{ext}'))
    assert Image.open(tmp_path / f'{i}.{ext}').mode == mode
  ds = load_folder(tmp_path, data__image_size=12)
  x = _all(ds)
  assert ds.info.image_shape == (12, 12, 1) and x.dtype == np.float32
  np.testing.assert_allclose(x[..., 0], truth / 65535, atol=1e-7)  # no 8-bit rounding
  assert abs(x.mean() - 0.054) < 0.002
  line = ds.info.describe()
  if mode == 'F':
    assert '6 of 6 images are 32-bit float (F), kept as float32' in line
  else:
    bits = 32 if mode == 'I' else 16
    assert f'6 of 6 images have {bits}-bit pixels' in line and 'divided by 65535' in line


def test_deep_images_out_of_range_name_the_file(tmp_path, load_folder):
  Image.fromarray(np.full((8, 8), 1000, np.int32)).save(tmp_path / 'a.tif')
  Image.fromarray(np.full((8, 8), 70000, np.int32)).save(tmp_path / 'big.tif')
  with pytest.raises(DataError, match=r'big\.tif: I pixels range over \[70000, 70000\]; '
                     r'expected 0\.\.65535 \(set data\.int_max'):
    load_folder(tmp_path, data__image_size=8)
  # a 12-bit camera: data.int_max gives the full scale
  Image.fromarray(np.full((8, 8), 4095, np.int32)).save(tmp_path / 'big.tif')
  ds = load_folder(tmp_path, data__image_size=8, data__int_max=4095)
  assert ds.train['image'].max() == 1.0 and 'divided by 4095 (data.int_max)' in ds.info.describe()
  os.remove(tmp_path / 'big.tif')
  Image.fromarray(np.full((8, 8), 2.5, np.float32)).save(tmp_path / 'f.tif')
  with pytest.raises(DataError, match=r'f\.tif: float \(F\) pixels range over \[2\.5, 2\.5\]'):
    load_folder(tmp_path, data__image_size=8)


def _cmyk():
  return Image.new('CMYK', (8, 8), (0, 255, 0, 0))


@pytest.mark.parametrize('mode,make,channels', [
    ('1', lambda: Image.fromarray(np.eye(8, dtype=bool)), 1),
    ('L', lambda: Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 3), 1),
    ('P', lambda: Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 3)
     .convert('RGB').quantize(16), 3),
    ('CMYK', _cmyk, 3),
    ('YCbCr', lambda: Image.new('RGB', (8, 8), (200, 30, 90)).convert('YCbCr'), 3),
])
def test_every_8bit_mode_reads_as_pil_shows_it(tmp_path, mode, make, channels, load_folder):
  im = make()
  assert im.mode == mode
  _save(im, str(tmp_path / 'a.tif'))
  _save(im, str(tmp_path / 'b.tif'))
  ds = load_folder(tmp_path, data__image_size=8)
  want = np.asarray(Image.open(tmp_path / 'a.tif').convert('RGB' if channels == 3 else 'L'))
  x = _all(ds)
  assert ds.info.image_shape == (8, 8, channels) and x.dtype == np.float32
  np.testing.assert_allclose(x[0], want.reshape(8, 8, channels) / 255, atol=1e-6)
  line = ds.info.describe()
  if mode == 'P':
    assert '2 of 2 images were paletted and were converted to RGB' in line
  if mode in ('CMYK', 'YCbCr'):
    assert f'2 of 2 images converted from {mode} to RGB' in line


def test_gray_images_in_a_colour_folder_become_rgb_and_say_so(tmp_path, load_folder):
  rng = np.random.default_rng(0)
  for i in range(3):
    Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(tmp_path / f'g{i}.png')
  for i in range(5):
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / f'c{i}.png')
  ds = load_folder(tmp_path, data__image_size=10)
  assert ds.info.image_shape == (10, 10, 3)
  assert '3 of 8 images were gray and were converted to RGB' in ds.info.describe()
  gray = np.asarray(Image.open(tmp_path / 'g0.png'))
  x = _all(ds)[5]  # files sort c0..c4, g0..g2: id 5 is g0
  np.testing.assert_allclose(x, np.repeat(gray[..., None], 3, -1) / 255, atol=1e-6)


# ---- alpha -------------------------------------------------------------------------------


def _alpha_folder(root):
  rgba = np.zeros((8, 8, 4), np.uint8)
  rgba[..., 0] = 255  # red ...
  rgba[:4, :, 3] = 255  # ... opaque in the top half, fully transparent below
  Image.fromarray(rgba).save(root / 'rgba.png')
  la = np.zeros((8, 8, 2), np.uint8)
  la[..., 1] = 128  # black at half opacity
  Image.fromarray(la, 'LA').save(root / 'la.png')
  p = Image.new('P', (8, 8), 1)
  p.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
  p.paste(0, (0, 0, 8, 4))  # blue top half, transparent (index 1) bottom half
  p.save(root / 'pal.png', transparency=1)
  assert Image.open(root / 'pal.png').mode == 'P'


@pytest.mark.parametrize('background,rgb', [('white', (1, 1, 1)), ('black', (0, 0, 0)),
                                            ('#336699', (0x33 / 255, 0x66 / 255, 0x99 / 255))])
def test_alpha_is_composited_onto_the_stated_background(tmp_path, background, rgb, load_folder):
  _alpha_folder(tmp_path)
  ds = load_folder(tmp_path, data__image_size=8, data__background=background)
  la, pal, rgba = _all(ds)  # files sort la, pal, rgba
  bg = np.asarray(rgb, np.float32)
  np.testing.assert_allclose(rgba[:4], np.broadcast_to([1, 0, 0], (4, 8, 3)), atol=1e-6)
  np.testing.assert_allclose(rgba[4:], np.broadcast_to(bg, (4, 8, 3)), atol=1 / 255)
  np.testing.assert_allclose(pal[:4], np.broadcast_to([0, 0, 1], (4, 8, 3)), atol=1e-6)
  np.testing.assert_allclose(pal[4:], np.broadcast_to(bg, (4, 8, 3)), atol=1 / 255)
  np.testing.assert_allclose(la, np.broadcast_to(bg * (1 - 128 / 255), (8, 8, 3)), atol=1 / 255)
  assert (f'3 of 3 images had transparency, composited onto {background} (data.background)'
          in ds.info.describe())


def test_gray_alpha_on_a_gray_background_stays_one_channel_and_bad_colours_are_named(
    tmp_path, load_folder):
  la = np.zeros((8, 8, 2), np.uint8)
  Image.fromarray(la, 'LA').save(tmp_path / 'la.png')  # fully transparent
  Image.fromarray(la, 'LA').save(tmp_path / 'lb.png')
  ds = load_folder(tmp_path, data__image_size=8)
  assert ds.info.image_shape == (8, 8, 1) and ds.train['image'].min() == 1.0  # white
  with pytest.raises(ConfigError, match=r"data.background='pink' is not a colour; expected "
                     r"'white', 'black' or a hex colour"):
    load_folder(tmp_path, data__image_size=8, data__background='pink')


def test_rgba_arrays_are_composited_too(tmp_path, tiny):
  x = np.zeros((10, 4, 4, 4), np.uint8)
  x[..., 0] = 255  # red, transparent
  np.save(tmp_path / 'x.npy', x)
  ds = data.load(tiny(data__name='npy', data__path=str(tmp_path / 'x.npy'),
                      data__background='black').data)
  assert ds.info.image_shape == (4, 4, 3) and ds.train['image'].max() == 0.0
  assert '4th channel taken as alpha and composited onto black' in ds.info.describe()


# ---- EXIF orientation ----------------------------------------------------------------------


def test_exif_orientation_is_applied_before_cropping(tmp_path, load_folder):
  shown = np.zeros((40, 20), np.uint8)  # a portrait photo as displayed: 20 wide, 40 tall
  shown[20:] = 255  # dark top half, light bottom half
  stored = Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
  assert stored.size == (40, 20)
  exif = Image.Exif()
  exif[0x0112] = 6  # "rotate 90° clockwise to display"
  for name in ('a.png', 'b.png'):
    stored.save(tmp_path / name, exif=exif.tobytes())
  ds = load_folder(tmp_path, data__image_size=20)
  x = _all(ds)[0, ..., 0]  # the centre 20x20 of the upright portrait
  np.testing.assert_array_equal(x[:10], 0.0)
  np.testing.assert_array_equal(x[10:], 1.0)
  assert '2 of 2 images rotated upright by their EXIF orientation' in ds.info.describe()


# ---- folder structure ----------------------------------------------------------------------


def _pngs(folder, n, size=(6, 6), seed=0):
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  for i in range(n):
    Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(os.path.join(folder,
                                                                                 f'{i}.png'))


def test_hidden_files_and_folders_are_never_data(tmp_path, load_folder):
  _pngs(tmp_path, 40)
  _pngs(tmp_path / '.ipynb_checkpoints', 1)  # one stray checkpoint made this "1 example"
  _pngs(tmp_path / '__MACOSX', 3)
  (tmp_path / '._0.png').write_bytes(b'\x00\x05\x16\x07AppleDouble')
  (tmp_path / '.DS_Store').write_bytes(b'\x00\x00\x00\x01Bud1')
  ds = load_folder(tmp_path, data__image_size=6)
  assert len(ds.train['id']) + len(ds.test['id']) == 40
  assert ds.info.class_names == () and set(_all(ds, 'label')) == {-1}
  assert ('hidden files and folders ignored: ._0.png, .ipynb_checkpoints/, __MACOSX/'
          in ds.info.describe())


def test_class_folders_empty_ones_hidden_ones_and_a_mix_with_top_level(tmp_path, load_folder):
  for c in ('cats', 'dogs'):
    _pngs(tmp_path / c, 4)
    (tmp_path / c / '._0.png').write_bytes(b'AppleDouble')
  (tmp_path / 'empty').mkdir()
  _pngs(tmp_path / '.ipynb_checkpoints', 2)
  ds = load_folder(tmp_path, data__image_size=6)
  assert ds.info.class_names == ('cats', 'dogs') and ds.info.num_classes == 2
  assert sorted(_all(ds, 'label').tolist()) == [0] * 4 + [1] * 4
  assert 'folders without images are not classes: empty/' in ds.info.describe()
  _pngs(tmp_path, 1)  # 0.png at the top level beside the class folders
  with pytest.raises(DataError, match=r'images both at the top level \(0\.png\) and in class '
                     r'subfolders \(cats/0\.png\)'):
    load_folder(tmp_path, data__image_size=6)


def test_a_folder_of_splits_points_at_the_class_level(tmp_path, load_folder):
  _pngs(tmp_path / 'train' / 'cats', 2)
  with pytest.raises(DataError, match=r'images are deeper \(e\.g\. train/cats/0\.png\): set '
                     'data.path to the folder whose subfolders are the classes'):
    load_folder(tmp_path, data__image_size=6)


# ---- unreadable files and decompression bombs --------------------------------------------


def test_decompression_bombs_are_one_line_and_skipping_is_one_log_line(tmp_path, monkeypatch,
                                                                       caplog, load_folder):
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)
  _pngs(tmp_path, 10, size=(8, 8))  # 64 pixels: fine
  Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / 'bomb.png')  # 400 > 2 x 100
  with pytest.raises(DataError) as e:
    load_folder(tmp_path, data__image_size=8)
  msg = str(e.value)
  assert msg.startswith(f'{tmp_path}/bomb.png: refused as a possible decompression bomb')
  assert 'skip_corrupt' in msg and '\n' not in msg
  Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / 'big.png')  # 144: PIL warns
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # no raw UserWarning with a source path
    with caplog.at_level(logging.WARNING, logger='ae_jax'):
      ds = load_folder(tmp_path, data__image_size=8, data__skip_corrupt=True)
  lines = [r.getMessage() for r in caplog.records]
  assert len(lines) == 2 and all('\n' not in line for line in lines)
  assert lines[0].startswith(f'{tmp_path}/big.png: Image size (144 pixels) exceeds limit')
  assert lines[1].startswith(f'skipping {tmp_path}/bomb.png: refused as a possible '
                             'decompression bomb')
  assert len(ds.train['id']) + len(ds.test['id']) == 11
  assert '1 unreadable image(s) skipped (data.skip_corrupt)' in ds.info.describe()


# ---- .npy files that are not arrays ------------------------------------------------------


def test_npy_of_random_bytes_and_object_arrays_are_named(tmp_path, tiny):
  junk = tmp_path / 'junk.npy'
  junk.write_bytes(np.random.default_rng(0).bytes(4096))
  with pytest.raises(DataError, match=r'junk\.npy: not a NumPy \.npy file \(no NPY header\); '
                     r'save arrays with np\.save$'):
    data.load(tiny(data__name='npy', data__path=str(junk)).data)
  objects = tmp_path / 'objects.npy'
  np.save(objects, np.array([np.zeros((4, 4)), 'a'], dtype=object), allow_pickle=True)
  with pytest.raises(DataError, match=r'objects\.npy: holds an object array .* ae_jax never '
                     r'unpickles \.npy files') as e:
    data.load(tiny(data__name='npy', data__path=str(objects)).data)
  assert 'allow_pickle' not in str(e.value)
  good = tmp_path / 'x.npy'
  np.save(good, np.zeros((10, 4, 4, 1), np.uint8))
  with pytest.raises(DataError, match=r'junk\.npy: not a NumPy \.npy file'):
    data.load(tiny(data__name='npy', data__path=str(good),
                   data__labels_path=str(junk)).data)
  npz = tmp_path / 'junk.npz'
  npz.write_bytes(b'\x80\x04junk' * 100)
  with pytest.raises(DataError, match=r'junk\.npz: not a NumPy \.npz archive \(no zip header\)'):
    data.load(tiny(data__name='npy', data__path=str(npz)).data)
  np.savez(tmp_path / 'obj.npz', images=np.zeros((10, 4, 4, 1)),
           labels=np.array(['a', 1] * 5, dtype=object))
  with pytest.raises(DataError, match=r"obj\.npz\['labels'\]: holds an object array"):
    data.load(tiny(data__name='npy', data__path=str(tmp_path / 'obj.npz')).data)


# ---- labels: one mapping, indices everywhere ---------------------------------------------


LABEL_KINDS = {
    'gapped': (np.array([1, 5], np.int64), ('1', '5')),
    'negative': (np.array([-3, -1, 2], np.int32), ('-3', '-1', '2')),
    'float': (np.array([0.5, 1.0, 2.25], np.float32), ('0.5', '1', '2.25')),
    'string': (np.array(['cat', 'dog'], '<U3'), ('cat', 'dog')),
    'bytes': (np.array([b'no', b'yes'], 'S3'), ('no', 'yes')),
    'bool': (np.array([False, True]), ('False', 'True')),
}


@pytest.mark.parametrize('kind', list(LABEL_KINDS))
def test_labels_of_any_kind_become_class_indices(tmp_path, kind, tiny):
  values, names = LABEL_KINDS[kind]
  labels = values[np.arange(30) % len(values)]
  np.savez(tmp_path / 'd.npz', images=np.zeros((30, 4, 4, 1), np.uint8), labels=labels)
  ds = data.load(tiny(data__name='npy', data__path=str(tmp_path / 'd.npz')).data)
  assert ds.info.class_names == names and ds.info.num_classes == len(values)
  assert ds.info.class_values.dtype == values.dtype
  np.testing.assert_array_equal(ds.info.class_values, values)
  got = _all(ds, 'label')
  assert got.dtype == np.int32 and set(got) == set(range(len(values)))
  np.testing.assert_array_equal(data.original_labels(got, ds.info.class_values), labels)
  record = json.loads(json.dumps(ds.info.label_record()))  # as model.json holds it
  np.testing.assert_array_equal(data.class_values_from(record), values)
  assert data.class_values_from(record).dtype == values.dtype


def test_nan_labels_are_named(tmp_path, tiny):
  labels = np.zeros(10)
  labels[3] = np.nan
  np.savez(tmp_path / 'd.npz', images=np.zeros((10, 4, 4, 1), np.uint8), labels=labels)
  with pytest.raises(DataError, match=r'd\.npz: labels contain NaN or inf \(first: image id 3\)'):
    data.load(tiny(data__name='npy', data__path=str(tmp_path / 'd.npz')).data)


def test_sources_with_unlabelled_examples_keep_minus_one(tmp_path, load_folder):
  _pngs(tmp_path, 5)
  ds = load_folder(tmp_path, data__image_size=6)
  assert ds.info.num_classes == 0 and set(_all(ds, 'label')) == {-1}
  assert data.original_labels(np.array([-1, 0]), np.array([0, 1], np.int64)).tolist() == [-1, 0]


# A tiny model on 8x8 images whose labels the user wrote in their own space; the images of
# each class differ (class i is brighter), so a wrong class shows in the pixels too.
@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny):
  """trained(kind) -> (workdir, label values, class of each image, images), trained once
  per label kind."""
  from ae_jax.train import train_and_evaluate
  runs = {}

  def get(kind):
    if kind not in runs:
      root = tmp_path_factory.mktemp(f'labels_{kind}')
      values, _ = LABEL_KINDS[kind]
      rng = np.random.default_rng(0)
      which = np.arange(48) % len(values)
      images = (rng.integers(0, 40, (48, 8, 8, 1)) + 60 * which[:, None, None, None])
      np.savez(root / 'd.npz', images=images.astype(np.uint8), labels=values[which])
      workdir = str(root / 'run')
      train_and_evaluate(tiny(data__name='npy', data__path=str(root / 'd.npz'),
                              train__num_epochs=1, train__batch_size=16), workdir)
      runs[kind] = (workdir, values, which, images)
    return runs[kind]
  return get


@pytest.mark.slow
@pytest.mark.parametrize('kind,name', [('gapped', '5'), ('negative', '-1'), ('float', '0.5'),
                                       ('string', 'dog')])
def test_generate_per_class_picks_the_named_class_and_writes_its_value(
    trained, tmp_path, capsys, kind, name):
  from ae_jax.inference import load
  from ae_jax.latent.__main__ import main as latent_main
  workdir, values, which, _ = trained(kind)
  m = load(workdir)
  assert m.class_names == LABEL_KINDS[kind][1]
  np.testing.assert_array_equal(m.class_values, values)
  latent_main(['generate', '--workdir', workdir, '--per-class', '3', f'--classes={name}',
               '--per-id', '2', '--out', str(tmp_path)])
  capsys.readouterr()
  k = m.class_names.index(name)
  ids = np.load(tmp_path / 'gen_ids.npy')
  assert len(ids) == 6 and set(which[ids]) == {k}  # only images of the named class
  gen_label = np.load(tmp_path / 'gen_label.npy')
  assert gen_label.dtype == values.dtype
  np.testing.assert_array_equal(gen_label, np.repeat(values[k], 6))


@pytest.mark.slow
def test_titles_show_names_and_old_model_json_still_loads(trained, tmp_path, capsys):
  from ae_jax.inference import load
  from ae_jax.latent import tools
  from ae_jax.latent.__main__ import main as latent_main
  workdir, values, which, _ = trained('gapped')
  src = tools.Source(load(workdir), workdir)
  one = int(np.flatnonzero(which == 0)[0])  # an image labelled 1
  _, labels = src.images([one])
  assert src.titles([one], labels) == [f'id {one}\n1']
  latent_main(['encode', '--workdir', workdir, '--out', str(tmp_path / 'e')])
  codes = np.load(tmp_path / 'e' / 'codes.npz')
  np.testing.assert_array_equal(codes['labels'], values[which[codes['ids']]])
  # model.json from before class_values: names only; generate takes values from the data
  path = os.path.join(workdir, 'model.json')
  with open(path) as f:
    record = json.load(f)
  old = {k: v for k, v in record.items() if k not in ('class_values', 'label_dtype')}
  try:
    with open(path, 'w') as f:
      json.dump(old, f)
    m = load(workdir)
    assert m.class_names == ('1', '5') and m.class_values is None
    latent_main(['generate', '--workdir', workdir, '--per-class', '2', '--classes', '5',
                 '--out', str(tmp_path / 'g')])
    capsys.readouterr()
    np.testing.assert_array_equal(np.load(tmp_path / 'g' / 'gen_label.npy'), [5] * 10)
  finally:
    with open(path, 'w') as f:
      json.dump(record, f)


# ---- what Trained.encode / reconstruct / decode accept -----------------------------------


@pytest.mark.slow
def test_inference_takes_what_the_loader_takes(trained):
  from ae_jax.inference import load
  workdir, _, _, images = trained('gapped')
  m = load(workdir)
  u8 = images[:5].astype(np.uint8)
  want, _ = m.encode(u8.astype(np.float32) / 255)
  for given in (u8, u8.astype(np.float64) / 255, u8[0].astype(np.float32) / 255,
                u8[..., 0].astype(np.float32) / 255):
    got, _ = m.encode(given)
    np.testing.assert_allclose(got, want[:len(got)], atol=1e-6)
  assert 0.1 < np.linalg.norm(want, axis=1).mean() < 20  # uint8 counted as 0..255 gave ~275
  np.testing.assert_allclose(m.reconstruct(u8), m.reconstruct(u8 / 255.0), atol=1e-6)
  binary = u8 > 100
  np.testing.assert_allclose(m.encode(binary)[0], m.encode(binary.astype(np.float32))[0])
  # an integer range the model's data used is read from model.json's storage
  m.storage = {'layout': 'NHWC', 'dtype': 'uint16', 'int_max': 4095}
  deep = np.rint(u8 / 255 * 4095).astype(np.uint16)
  np.testing.assert_allclose(m.encode(deep)[0], m.encode(deep / 4095.0)[0], atol=1e-6)
  bad_nan = u8 / 255.0
  bad_nan[1, 2, 3, 0] = np.nan
  for given, message in [
      (u8 * 2.0, (r'encode\(\): float images range over \[0, \d+\]; expected \[0, 1\] \(or '
                  r'uint8 0\.\.255; divide floats by 255\) \(first: image 0\)')),
      (bad_nan, r'encode\(\): images contain NaN or inf values \(first: image 1\)'),
      (np.zeros((2, 9, 9, 1)), (r'encode\(\): images of shape \(2, 9, 9, 1\) given; this '
                                r'model takes \(8, 8, 1\) \(H, W, C\) images')),
      (np.full((2, 8, 8, 1), 'a'), r'encode\(\): images of dtype <U1 given; expected uint8'),
      ([np.zeros((8, 8, 1)), np.zeros((4, 4, 1))], r'encode\(\): images: a list NumPy cannot'),
      (np.zeros((0, 8, 8, 1)), r'encode\(\): no images given'),
  ]:
    with pytest.raises(ConfigError, match=message) as e:
      m.encode(given)
    assert '\n' not in str(e.value)
  with pytest.raises(ConfigError, match=r'reconstruct\(\): integer images range over '
                     r'\[300, 300\]; expected 0\.\.255'):
    m.reconstruct(np.full((1, 8, 8, 1), 300, np.int64))
  with pytest.raises(ConfigError, match=r'decode\(\): codes contain NaN'):
    m.decode(np.full((1, 4), np.nan))
  with pytest.raises(ConfigError, match=r'decode\(\): codes of shape \(1, 5\) given'):
    m.decode(np.zeros((1, 5)))
