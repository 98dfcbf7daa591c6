import sys

import numpy as np
import pytest

from ae_jax import data
from ae_jax.data import wafer
from ae_jax.errors import ConfigError, DataError


def test_digits_are_real_images_in_unit_range_with_ids_preserved(tiny):
  ds = data.load(tiny().data)
  assert ds.info.image_shape == (8, 8, 1) and ds.info.num_classes == 10
  train, test = ds.train, ds.test
  assert train['image'].dtype == np.float32
  assert 0.0 <= train['image'].min() and train['image'].max() == 1.0
  assert len(train['id']) + len(test['id']) == 1797
  assert not set(train['id']) & set(test['id'])
  assert abs(len(test['id']) / 1797 - 0.2) < 0.01
  from sklearn.datasets import load_digits
  d = load_digits()
  i = int(test['id'][3])  # the id points back at the source example
  np.testing.assert_allclose(test['image'][3, ..., 0], d.images[i] / 16.0)
  assert test['label'][3] == d.target[i]


def test_digits_are_sklearns_read_without_importing_it(monkeypatch):
  from sklearn.datasets import load_digits
  d = load_digits()
  from ae_jax.data import sources
  # the file is read where it lies: with sklearn.datasets unimportable the table still loads
  monkeypatch.setitem(sys.modules, 'sklearn.datasets', None)
  table = sources._digits_table()
  np.testing.assert_array_equal(table[:, :64], d.data)
  np.testing.assert_array_equal(table[:, 64], d.target)
  # and where the file is not, load_digits gives the same table
  monkeypatch.undo()
  monkeypatch.setattr(sources.os.path, 'isfile', lambda path: False)
  np.testing.assert_array_equal(sources._digits_table(), table)


def test_split_is_deterministic_and_seeded():
  a = data.split(100, 0.25, 0)
  b = data.split(100, 0.25, 0)
  c = data.split(100, 0.25, 1)
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[1], c[1])
  assert len(a[1]) == 25 and np.all(np.diff(a[0]) > 0)


def test_resize_and_channels(tiny):
  cfg = tiny(data__image_size=16, data__channels=3).data
  ds = data.load(cfg)
  assert ds.info.image_shape == (16, 16, 3)
  np.testing.assert_array_equal(ds.train['image'][..., 0], ds.train['image'][..., 2])


def test_wafer_maps_follow_wm811k_convention():
  maps, labels = wafer.generate(90, 26, 'uniform', seed=0)
  assert maps.shape == (90, 26, 26) and set(np.unique(maps)) == {0, 1, 2}
  assert np.bincount(labels).tolist() == [10] * 9
  r = np.hypot(*np.mgrid[0:26, 0:26] - 12.5) / 13
  assert (maps[:, r > 1.0] == 0).all() and (maps[:, r <= 1.0] > 0).all()
  m2, l2 = wafer.generate(90, 26, 'uniform', seed=0)
  np.testing.assert_array_equal(maps, m2)
  fail = lambda name: (maps[labels == wafer.CLASS_NAMES.index(name)] == 2).mean()
  assert fail('Near-full') > 0.5 > fail('Random') > fail('none')
  # Centre failures sit in the middle, Edge-Ring failures near the rim.
  center = maps[labels == 0]
  assert (center[:, r < 0.2] == 2).mean() > 0.6
  ring = maps[labels == wafer.CLASS_NAMES.index('Edge-Ring')]
  assert (ring[:, (r > 0.9) & (r <= 1.0)] == 2).mean() > (ring[:, r < 0.5] == 2).mean() + 0.3


def test_wafer_wm811k_balance_is_dominated_by_none():
  _, labels = wafer.generate(2000, 16, 'wm811k', seed=0)
  assert np.bincount(labels, minlength=9)[8] / 2000 > 0.7


def test_wafer_rendering(tiny):
  ds = data.load(tiny(data__name='wafer', data__num_examples=60, data__image_size=20).data)
  x = ds.train['image']
  assert ds.info.image_shape == (20, 20, 3) and ds.info.class_names[0] == 'Center'
  np.testing.assert_array_equal(x.sum(-1), 1.0)  # one-hot
  gray = data.load(tiny(data__name='wafer', data__num_examples=60,
                        data__wafer__render='gray').data)
  assert gray.info.image_shape == (26, 26, 1)
  assert set(np.unique(gray.train['image'])) == {0.0, 0.5, 1.0}


def test_unknown_dataset_and_bad_arrays_are_named(tiny):
  with pytest.raises(ConfigError, match="data.name='nope'"):
    data.load(tiny(data__name='nope').data)
  bad = np.zeros((3, 4, 4, 1), np.float32)
  bad[1, 0, 0, 0] = np.nan
  with pytest.raises(DataError, match='image 1 contains NaN'):
    data.check_images(bad, 'x.npy')
  with pytest.raises(DataError, match='empty'):
    data.check_images(np.zeros((0, 4, 4, 1)), 'x.npy')


# ---- embedded datasets -----------------------------------------------------------------

from ae_jax.data import dsprites, skimage_sets  # noqa: E402


def test_dsprites_follow_the_factor_definition():
  assert dsprites.SIZES == (3, 6, 40, 32, 32)
  np.testing.assert_allclose(dsprites.SCALES, np.linspace(0.5, 1, 6))
  images, factors = dsprites.generate(300, seed=3)
  assert images.shape == (300, 64, 64) and set(np.unique(images)) <= {0, 1}
  assert len({tuple(f) for f in factors}) == 300  # distinct combinations
  again, f2 = dsprites.generate(300, seed=3)
  np.testing.assert_array_equal(images, again)
  # Area grows with the square of scale and does not depend on position.
  a, _ = dsprites.generate(ranges={'shape': (0, 0), 'orientation': (0, 0), 'scale': (0, 0),
                                   'pos_x': (0, 0), 'pos_y': (0, 0)})
  b, _ = dsprites.generate(ranges={'shape': (0, 0), 'orientation': (0, 0), 'scale': (5, 5),
                                   'pos_x': (31, 31), 'pos_y': (31, 31)})
  assert abs(b.sum() / a.sum() - 4.0) < 0.3
  # Moving pos_x moves the sprite right.
  left, _ = dsprites.generate(ranges={'shape': (2, 2), 'scale': (3, 3), 'orientation': (0, 0),
                                      'pos_x': (0, 0), 'pos_y': (10, 10)})
  right, _ = dsprites.generate(ranges={'shape': (2, 2), 'scale': (3, 3), 'orientation': (0, 0),
                                       'pos_x': (31, 31), 'pos_y': (10, 10)})
  cols = np.arange(64)
  assert (right[0].sum(0) @ cols) / right[0].sum() > (left[0].sum(0) @ cols) / left[0].sum() + 30
  # The three shapes differ at the same factors.
  s3, _ = dsprites.generate(ranges={'scale': (5, 5), 'orientation': (3, 3), 'pos_x': (9, 9),
                                    'pos_y': (9, 9)})
  assert len({x.tobytes() for x in s3}) == 3


def test_dsprites_through_load_with_factor_ranges(tiny):
  ds = data.load(tiny(data__name='dsprites', data__num_examples=200,
                      data__dsprites__shape=(1, 2), data__dsprites__scale=(5, 5)).data)
  assert ds.info.image_shape == (64, 64, 1) and ds.info.class_names == dsprites.SHAPES
  assert set(np.unique(ds.train['image'])) == {0.0, 1.0}  # binary sprites stay binary
  f = ds.info.factors
  assert f.shape == (200, 5) and set(f[:, 0]) <= {1, 2} and set(f[:, 1]) == {5}
  np.testing.assert_array_equal(ds.train['label'], f[ds.train['id'], 0])
  with pytest.raises(ConfigError, match='scale range'):
    data.load(tiny(data__name='dsprites', data__dsprites__scale=(0, 9)).data)


def test_photo_patches_never_overlap_between_train_and_test(tiny):
  images, labels, is_test, names, boxes = skimage_sets.photo_patches(32, 200, 0.2, 0)
  assert images.shape == (200, 32, 32, 3) and is_test.sum() == 40
  assert 'astronaut' in names and len(names) >= 4
  for k in range(len(names)):
    tr = boxes[(labels == k) & ~is_test]
    te = boxes[(labels == k) & is_test]
    if len(tr) and len(te):
      assert tr[:, 1].max() + 32 <= te[:, 1].min()  # train patches end before test ones start
  ds = data.load(tiny(data__name='photos', data__image_size=24, data__num_examples=50).data)
  assert ds.info.image_shape == (24, 24, 3) and len(ds.test['id']) == 10


def test_faces_are_lfw_subset(tiny):
  ds = data.load(tiny(data__name='faces').data)
  assert ds.info.image_shape == (25, 25, 1) and ds.info.class_names == ('non-face', 'face')
  assert len(ds.train['id']) + len(ds.test['id']) == 200
  assert 0.1 < ds.train['image'].mean() < 0.9


# ---- user files ------------------------------------------------------------------------


def _npy(tmp_path, array, name='x.npy'):
  path = str(tmp_path / name)
  np.save(path, array)
  return path


@pytest.mark.parametrize('layout', ['nhwc_uint8', 'nchw_float', 'gray_3d'])
def test_npy_layouts_and_dtypes(tmp_path, layout, tiny):
  rng = np.random.default_rng(0)
  base = rng.integers(0, 256, (40, 12, 12, 3)).astype(np.uint8)
  array = {'nhwc_uint8': base, 'nchw_float': base.transpose(0, 3, 1, 2).astype(np.float32) / 255,
           'gray_3d': base[..., 0]}[layout]
  ds = data.load(tiny(data__name='npy', data__path=_npy(tmp_path, array)).data)
  want = base[..., :1] if layout == 'gray_3d' else base
  assert ds.info.image_shape == want.shape[1:]
  i = int(ds.train['id'][5])
  np.testing.assert_allclose(ds.train['image'][5], want[i] / 255.0, atol=1e-6)


def test_binary_uint8_files_are_detected_and_int_max_overrides(tmp_path, tiny):
  x = (np.random.default_rng(0).random((20, 6, 6, 1)) > 0.5).astype(np.uint8)  # dSprites-style
  ds = data.load(tiny(data__name='npy', data__path=_npy(tmp_path, x)).data)
  assert set(np.unique(ds.train['image'])) == {0.0, 1.0}
  ds = data.load(tiny(data__name='npy', data__path=_npy(tmp_path, x),
                      data__int_max=255).data)
  assert ds.train['image'].max() == pytest.approx(1 / 255)


def test_npz_with_labels_and_ids_and_separate_label_file(tmp_path, tiny):
  x = np.random.default_rng(0).random((30, 8, 8, 1)).astype(np.float32)
  path = str(tmp_path / 'd.npz')
  np.savez(path, images=x, labels=np.arange(30) % 3, ids=np.arange(100, 130))
  ds = data.load(tiny(data__name='npy', data__path=path).data)
  assert set(ds.train['id']) | set(ds.test['id']) == set(range(100, 130))
  np.testing.assert_array_equal(ds.train['label'], (ds.train['id'] - 100) % 3)
  lab = _npy(tmp_path, np.arange(30) % 2, 'labels.npy')
  ds2 = data.load(tiny(data__name='npy', data__path=path, data__labels_path=lab).data)
  np.testing.assert_array_equal(ds2.train['label'], (ds2.train['id'] - 100) % 2)


def _png(path, array):
  from PIL import Image
  Image.fromarray(array).save(path)


def test_image_folder_with_classes_resize_and_corrupt_files(tmp_path, caplog, tiny):
  rng = np.random.default_rng(0)
  for cls in ('cats', 'dogs'):
    (tmp_path / cls).mkdir()
    for i in range(6):
      _png(tmp_path / cls / f'{i}.png', rng.integers(0, 256, (20, 30, 3)).astype(np.uint8))
  ds = data.load(tiny(data__name='folder', data__path=str(tmp_path),
                      data__image_size=16).data)
  assert ds.info.image_shape == (16, 16, 3) and ds.info.class_names == ('cats', 'dogs')
  assert sorted(np.concatenate([ds.train['label'], ds.test['label']]).tolist()) == [0] * 6 + [1] * 6
  (tmp_path / 'dogs' / 'broken.png').write_bytes(b'not an image')
  with pytest.raises(DataError, match=r'broken\.png: cannot read this image.*skip_corrupt'):
    data.load(tiny(data__name='folder', data__path=str(tmp_path), data__image_size=16).data)
  with caplog.at_level('WARNING', logger='ae_jax'):
    ds = data.load(tiny(data__name='folder', data__path=str(tmp_path), data__image_size=16,
                        data__skip_corrupt=True).data)
  assert [r.getMessage().split(':')[0] for r in caplog.records] == [
      f'skipping {tmp_path}/dogs/broken.png']
  assert '1 unreadable image(s) skipped (data.skip_corrupt)' in ds.info.describe()
  assert len(ds.train['id']) + len(ds.test['id']) == 12


def _lswmd(tmp_path):
  import pandas as pd
  rng = np.random.default_rng(0)
  maps = [rng.integers(0, 3, (rng.integers(20, 40), rng.integers(20, 40))).astype(np.uint8)
          for _ in range(12)]
  types = [np.array([['Center']]), np.array([['none']]), np.array([]), np.array([['Scratch']])] * 3
  df = pd.DataFrame({'waferMap': maps, 'dieSize': [100.0] * 12, 'lotName': ['lot1'] * 12,
                     'waferIndex': np.arange(12.0),
                     'trianTestLabel': [np.array([['Training']])] * 12,
                     'failureType': types})
  path = str(tmp_path / 'LSWMD.pkl')
  df.to_pickle(path)
  return path, maps


def test_wm811k_pickle_needs_opt_in_then_loads(tmp_path, tiny):
  path, maps = _lswmd(tmp_path)
  with pytest.raises(ConfigError, match='runs code.*allow_pickle=True'):
    data.load(tiny(data__name='wm811k', data__path=path).data)
  ds = data.load(tiny(data__name='wm811k', data__path=path, data__allow_pickle=True,
                      data__image_size=16, data__wafer__render='gray').data)
  assert ds.info.image_shape == (16, 16, 1) and ds.info.class_names[0] == 'Center'
  labels = np.concatenate([ds.train['label'], ds.test['label']])
  assert sorted(labels.tolist()) == sorted([0, 8, -1, 7] * 3)
  assert set(np.unique(ds.train['image'])) <= {0.0, 0.5, 1.0}  # nearest neighbour keeps values
  i = int(ds.train['id'][0])
  m = maps[i]
  ys = (np.arange(16) * m.shape[0] / 16).astype(int)
  xs = (np.arange(16) * m.shape[1] / 16).astype(int)
  np.testing.assert_array_equal(ds.train['image'][0, ..., 0] * 2, m[np.ix_(ys, xs)])
  dropped = data.load(tiny(data__name='wm811k', data__path=path, data__allow_pickle=True,
                           data__wm811k_unlabeled='drop').data)
  assert len(dropped.train['id']) + len(dropped.test['id']) == 9


@pytest.mark.parametrize('name,kw,shape', [
    ('mnist', {}, (28, 28, 1)), ('fashion_mnist', {}, (28, 28, 1)), ('cifar10', {}, (32, 32, 3)),
    ('celeb_a', {'data__crop': 148, 'data__image_size': 64}, (64, 64, 3)),
])
def test_tfds_through_data_source_with_mock_data(name, kw, shape, tiny):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=10):
    ds = data.load(tiny(data__name=name, **kw).data)
  assert ds.info.image_shape == shape
  assert len(ds.train['id']) == 10 and len(ds.test['id']) == 10
  assert not set(ds.train['id']) & set(ds.test['id'])
  assert 0.0 <= ds.train['image'].min() and ds.train['image'].max() <= 1.0


# ---- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize('make,message', [
    (lambda t: str(t / 'missing.npy'), 'missing.npy: no such file or folder'),
    (lambda t: (t / 'x.csv').write_text('1,2') and str(t / 'x.csv'),
     "unsupported extension '.csv'"),
    (lambda t: _npy(t, np.zeros((4, 5))), r'has shape \(4, 5\); expected \[N, H, W, C\]'),
    (lambda t: _npy(t, np.array([['a']] * 4)), 'dtype <U1 is not numeric'),
    (lambda t: _npy(t, np.full((4, 6, 6, 1), np.nan, np.float32)), 'NaN or inf'),
    (lambda t: _npy(t, np.zeros((0, 6, 6, 1), np.float32)), 'the dataset is empty'),
    (lambda t: _npy(t, np.full((4, 6, 6, 1), 200.0, np.float32)),
     r'range over \[200, 200\]; expected \[0, 1\]'),
])
def test_bad_arrays_name_the_file_and_the_problem(tmp_path, make, message, tiny):
  path = make(tmp_path)
  with pytest.raises(DataError, match=message):
    data.load(tiny(data__name='npy', data__path=path).data)


def test_labels_of_another_length_are_named(tmp_path, tiny):
  x = _npy(tmp_path, np.zeros((10, 4, 4, 1), np.uint8))
  lab = _npy(tmp_path, np.zeros(7), 'lab.npy')
  with pytest.raises(DataError, match=r'lab.npy: labels have shape \(7,\) but there are 10 images'):
    data.load(tiny(data__name='npy', data__path=x, data__labels_path=lab).data)


def test_images_smaller_than_the_crop_or_model_need(tmp_path, tiny):
  x = _npy(tmp_path, np.zeros((10, 8, 8, 1), np.uint8))
  with pytest.raises(DataError, match='smaller than data.crop=16'):
    data.load(tiny(data__name='npy', data__path=x, data__crop=16).data)
  from ae_jax.training import prepare
  with pytest.raises(ConfigError, match='image size 8 is too small for 4 conv layers'):
    prepare(tiny(data__name='npy', data__path=x, model__arch='conv',
               model__conv__channels=(4, 4, 4, 4), train__batch_size=4))


def test_missing_path_for_file_datasets_is_a_config_error(tiny):
  with pytest.raises(ConfigError, match='data.path is empty'):
    data.load(tiny(data__name='npy').data)


# ---- tiers -----------------------------------------------------------------------------


def test_large_memmapped_data_streams_and_bad_rows_are_found_in_stream(tmp_path, tiny):
  x = np.random.default_rng(0).random((50, 6, 6, 1)).astype(np.float32)
  assert 36 in data.split(50, 0.1, 1)[0]  # a training example ...
  x[36, 0, 0, 0] = np.nan  # ... so only reading its batch can find it
  path = _npy(tmp_path, x)
  ds = data.load(tiny(data__name='npy', data__path=path, data__tier='stream',
                      data__test_fraction=0.1, data__split_seed=1).data)
  assert ds.info.tier == 'stream' and isinstance(ds.train['image'], data.StreamSource)
  good = np.flatnonzero(ds.train["id"] != 36)[:4]
  np.testing.assert_allclose(ds.train['image'].read(good), x[ds.train['id'][good]], atol=1e-6)
  bad = np.flatnonzero(ds.train["id"] == 36)
  with pytest.raises(DataError,
                     match=r'x.npy: images contain NaN or inf values \(first: image id 36\)'):
    ds.train['image'].read(bad)


def test_auto_tier_streams_above_the_limit(tiny):
  small = data.load(tiny().data)
  big = data.load(tiny(data__device_max_mb=0.1).data)
  assert small.info.tier == 'device' and big.info.tier == 'stream'
  idx = np.array([3, 0, 7])
  np.testing.assert_array_equal(big.train['image'].read(idx), small.train['image'][idx])
