import numpy as np
import pytest

from ae_jax import data
from ae_jax.data import wafer
from ae_jax.errors import ConfigError, DataError
from conftest import tiny_config


def test_digits_are_real_images_in_unit_range_with_ids_preserved():
  ds = data.load(tiny_config().data)
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


def test_split_is_deterministic_and_seeded():
  a = data.split(100, 0.25, 0)
  b = data.split(100, 0.25, 0)
  c = data.split(100, 0.25, 1)
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[1], c[1])
  assert len(a[1]) == 25 and np.all(np.diff(a[0]) > 0)


def test_resize_and_channels():
  cfg = tiny_config(data__image_size=16, data__channels=3).data
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


def test_wafer_rendering():
  ds = data.load(tiny_config(data__name='wafer', data__num_examples=60, data__image_size=20).data)
  x = ds.train['image']
  assert ds.info.image_shape == (20, 20, 3) and ds.info.class_names[0] == 'Center'
  np.testing.assert_array_equal(x.sum(-1), 1.0)  # one-hot
  gray = data.load(tiny_config(data__name='wafer', data__num_examples=60,
                               data__wafer__render='gray').data)
  assert gray.info.image_shape == (26, 26, 1)
  assert set(np.unique(gray.train['image'])) == {0.0, 0.5, 1.0}


def test_unknown_dataset_and_bad_arrays_are_named():
  with pytest.raises(ConfigError, match="data.name='nope'"):
    data.load(tiny_config(data__name='nope').data)
  bad = np.zeros((3, 4, 4, 1), np.float32)
  bad[1, 0, 0, 0] = np.nan
  with pytest.raises(DataError, match='image 1 contains NaN'):
    data.check_images(bad, 'x.npy')
  with pytest.raises(DataError, match='empty'):
    data.check_images(np.zeros((0, 4, 4, 1)), 'x.npy')
