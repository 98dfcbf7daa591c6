"""MNIST-family IDX files (data.name='idx'): the published split, labels, ids and class
names; recognition by the label files' digests; every malformed file as one line naming
it; streaming; the Fashion-MNIST config; its sample-quality classifier. The tests write
their own tiny IDX files: none needs the Debian package (one reads it where installed)."""
import gzip
import logging
import os
import struct

import numpy as np
import pytest

from ae_jax import config_lib, data, schema
from ae_jax.configs import base
from ae_jax.data import idx, sources
from ae_jax.errors import ConfigError, DataError
from ae_jax.main import main as ae_main


def _cfg(path, **overrides):
  """config.data of the base config reading IDX files at `path`."""
  config = base.get_config()
  config.data.name, config.data.path = 'idx', str(path)
  for key, value in overrides.items():
    config_lib.set_value(config, key.replace('__', '.'), value)
  return config.data


# ---- loading -------------------------------------------------------------------------------


@pytest.mark.parametrize('gz', [True, False])
@pytest.mark.parametrize('layout', ['flat', 'raw', 'torchvision_root', 'torchvision_dataset'])
def test_idx_files_load_with_their_own_split_labels_ids_and_shapes(tmp_path, gz, layout,
                                                                  idx_folder):
  where = {'flat': 'd', 'raw': 'd/raw', 'torchvision_root': 'd/FashionMNIST/raw',
           'torchvision_dataset': 'd/FashionMNIST/raw'}[layout]
  arrays = idx_folder(tmp_path / where, gz=gz)
  path = tmp_path / ('d/FashionMNIST' if layout == 'torchvision_dataset' else 'd')
  ds = data.load(_cfg(path))
  (xtr, ytr), (xte, yte) = arrays['train'], arrays['test']
  assert ds.train['image'].shape == (40, 28, 28, 1) and ds.test['image'].shape == (20, 28, 28, 1)
  np.testing.assert_array_equal(ds.train['image'][..., 0], xtr / np.float32(255))
  np.testing.assert_array_equal(ds.test['image'][..., 0], xte / np.float32(255))
  np.testing.assert_array_equal(ds.train['label'], ytr)
  np.testing.assert_array_equal(ds.test['label'], yte)
  # ids: the training file's images 0..N-1, the test file's N..N+M-1, in file order
  np.testing.assert_array_equal(ds.train['id'], np.arange(40))
  np.testing.assert_array_equal(ds.test['id'], np.arange(40, 60))
  info = ds.info
  assert info.class_names == tuple(str(i) for i in range(10)) and info.num_classes == 10
  assert info.published == '' and info.storage == {'layout': 'NHW', 'dtype': 'uint8',
                                                   'int_max': 255}
  assert info.describe() == (f'data: {tmp_path / where}: 40 train / 20 test images (the '
                             "files' train/t10k split), 28x28x1 (used as stored; device tier)")
  images, labels = data.by_ids(ds, [3, 45])
  np.testing.assert_array_equal(images[:, ..., 0], np.stack([xtr[3], xte[5]]) / np.float32(255))
  np.testing.assert_array_equal(labels, [ytr[3], yte[5]])


def test_kaggles_dotted_file_names_load_and_uncompressed_files_win(tmp_path, idx_folder, write_idx):
  arrays = idx_folder(tmp_path, gz=True)
  os.rename(tmp_path / 'train-images-idx3-ubyte.gz', tmp_path / 'train-images.idx3-ubyte.gz')
  # an uncompressed copy beside the .gz is the one read (memory-mapped)
  write_idx(tmp_path / 't10k-images-idx3-ubyte', arrays['test'][0][::-1])
  files = idx.open_folder(str(tmp_path))
  assert files.train.images_path.endswith('train-images.idx3-ubyte.gz')
  assert files.test.images_path == str(tmp_path / 't10k-images-idx3-ubyte')
  np.testing.assert_array_equal(files.test.images, arrays['test'][0][::-1])


def test_uncompressed_files_are_memory_mapped_and_gzipped_ones_read_once(tmp_path, write_idx):
  x = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
  plain, _ = idx.read(write_idx(tmp_path / 'a-idx3-ubyte', x), 3)
  packed, content = idx.read(write_idx(tmp_path / 'a-idx3-ubyte.gz', x), 3)
  assert isinstance(plain, np.memmap) and not isinstance(packed, np.memmap)
  assert content == gzip.decompress((tmp_path / 'a-idx3-ubyte.gz').read_bytes())
  np.testing.assert_array_equal(plain, x)
  np.testing.assert_array_equal(packed, x)


def test_files_are_recognised_by_their_label_digests_and_shapes(tmp_path, idx_folder, write_idx,
                                                               recognised):
  arrays = idx_folder(tmp_path / 'fm', gz=False)
  recognised(arrays)
  ds = data.load(_cfg(tmp_path / 'fm'))
  assert ds.info.published == 'fashion_mnist'
  assert ds.info.class_names == ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                                 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
  assert ds.info.describe().startswith(
      f'data: {tmp_path / "fm"} (Fashion-MNIST): 40 train / 20 test images (the published '
      'train/test split), 28x28x1')
  # one label changed: other files, indices as class names
  labels = arrays['test'][1].copy()
  labels[0] = (labels[0] + 1) % 10
  write_idx(tmp_path / 'fm' / 't10k-labels-idx1-ubyte', labels)
  files = idx.open_folder(str(tmp_path / 'fm'))
  assert files.published is None and files.class_names == tuple('0123456789')


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(idx.DEBIAN_FASHION_MNIST),
                    reason='the Debian package dataset-fashion-mnist is not installed')
def test_the_debian_fashion_mnist_files_are_recognised():
  files = idx.open_folder(idx.DEBIAN_FASHION_MNIST)
  assert files.published is not None and files.published.name == 'fashion_mnist'
  assert files.train.images.shape == (60000, 28, 28) and files.test.images.shape == (10000, 28, 28)
  assert files.train.labels[:5].tolist() == [9, 0, 0, 3, 0]
  assert np.bincount(files.train.labels).tolist() == [6000] * 10
  assert np.bincount(files.test.labels).tolist() == [1000] * 10


def test_a_torchvision_root_with_two_datasets_is_ambiguous(tmp_path, idx_folder):
  idx_folder(tmp_path / 'MNIST' / 'raw')
  idx_folder(tmp_path / 'FashionMNIST' / 'raw')
  with pytest.raises(DataError, match='IDX files in several folders') as e:
    data.load(_cfg(tmp_path))
  assert 'FashionMNIST/raw' in str(e.value) and 'MNIST/raw' in str(e.value)
  assert data.load(_cfg(tmp_path / 'MNIST')).info.num_train == 40


def test_test_fraction_is_ignored_with_one_line(tmp_path, caplog, idx_folder):
  idx_folder(tmp_path)
  assert schema.base_config().data.test_fraction == sources.DEFAULT_TEST_FRACTION
  with caplog.at_level(logging.WARNING, logger='ae_jax'):
    data.load(_cfg(tmp_path))
  assert not caplog.records
  with caplog.at_level(logging.WARNING, logger='ae_jax'):
    ds = data.load(_cfg(tmp_path, data__test_fraction=0.5))
  assert [r.getMessage() for r in caplog.records] == [
      'data.test_fraction=0.5 is ignored: IDX files keep their own train/test split '
      '(40 / 20 images)']
  assert (ds.info.num_train, ds.info.num_test) == (40, 20)


@pytest.mark.parametrize('gz', [True, False])
def test_a_large_idx_file_streams_the_same_images(tmp_path, gz, idx_folder):
  idx_folder(tmp_path, num_train=300, num_test=10, gz=gz)
  resident = data.load(_cfg(tmp_path))
  streamed = data.load(_cfg(tmp_path, data__device_max_mb=0.1))  # 300 x 28 x 28 x 4 B > 0.1 MB
  assert resident.info.tier == 'device' and streamed.info.tier == 'stream'
  source = streamed.train['image']
  assert isinstance(source, data.StreamSource) and source.shape == (300, 28, 28, 1)
  order = np.random.default_rng(0).permutation(300)[:64]  # an epoch's batch: unsorted rows
  np.testing.assert_array_equal(source.read(order), resident.train['image'][order])
  np.testing.assert_array_equal(streamed.test['image'], resident.test['image'])
  forced = data.load(_cfg(tmp_path, data__tier='stream')).train['image']
  np.testing.assert_array_equal(forced.read(np.arange(300)), resident.train['image'])


# ---- bad files -----------------------------------------------------------------------------


def _damage(folder, kind):
  """Break one file of a good folder -> the path the message must name."""
  labels_path = os.path.join(folder, 'train-labels-idx1-ubyte.gz')
  images_path = os.path.join(folder, 't10k-images-idx3-ubyte.gz')
  content = gzip.decompress(open(images_path, 'rb').read())
  if kind == 'missing':
    os.remove(labels_path)
    return os.path.join(folder, 'train-labels-idx1-ubyte')
  if kind == 'count':  # an IDX file of 39 labels
    with gzip.open(labels_path, 'wb') as f:
      f.write(bytes([0, 0, 8, 1]) + struct.pack('>I', 39) + bytes(39))
    return labels_path
  bad = {'magic': b'\x08\x03' + content[2:],
         'type': content[:2] + b'\x0d' + content[3:],  # float32
         'rank': content[:3] + b'\x02' + content[4:8] + struct.pack('>I', 20 * 28) +
                 content[16:],
         'truncated': content[:-5],
         'trailing': content + b'\x00'}.get(kind)
  if kind == 'gzip':
    with open(images_path, 'wb') as f:
      f.write(gzip.compress(content)[:-20])  # a download cut short
    return images_path
  if kind == 'plain_truncated':  # an uncompressed file, memory-mapped
    os.remove(images_path)
    images_path = images_path[:-3]
    with open(images_path, 'wb') as f:
      f.write(content[:1000])
    return images_path
  with gzip.open(images_path, 'wb') as f:
    f.write(bad)
  return images_path


BAD = [('magic', 'wrong magic number 0x0803'), ('type', 'type byte 0x0d (float32); expected 0x08'),
       ('rank', '2 dimensions; expected 3'),
       ('truncated', 'truncated: 15675 bytes of data after the header, which declares '
                     '20x28x28 = 15680'),
       ('plain_truncated', 'truncated: 984 bytes of data'),
       ('trailing', '1 bytes after the 20x28x28 array'),
       ('gzip', 'not a readable gzip file'),
       ('count', '39 labels, but'), ('missing', "missing (the train split's labels)")]


@pytest.mark.parametrize('kind,expected', BAD)
def test_each_malformed_file_is_one_line_naming_it(tmp_path, kind, expected, idx_folder):
  idx_folder(tmp_path)
  where = _damage(str(tmp_path), kind)
  with pytest.raises(DataError) as e:
    data.load(_cfg(tmp_path))
  message = str(e.value)
  assert '\n' not in message and message.startswith(where), message
  assert expected in message, message


def test_a_bad_file_exits_2_through_the_cli_and_leaves_the_workdir_alone(tmp_path, capsys,
                                                                        idx_folder, tree_digest):
  idx_folder(tmp_path / 'files')
  _damage(str(tmp_path / 'files'), 'type')
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'notes.txt').write_text('mine\n')
  before = tree_digest(workdir)
  with pytest.raises(SystemExit) as e:
    ae_main(['--config', 'fashion_mnist_vae', '--workdir', str(workdir),
             f'--config.data.path={tmp_path / "files"}', '--config.progress=False'])
  err = capsys.readouterr().err.strip()
  assert e.value.code == 2, err
  assert err.count('\n') == 0 and err.startswith('error: ') and 'Traceback' not in err, err
  assert f'{tmp_path / "files" / "t10k-images-idx3-ubyte.gz"}: IDX type byte 0x0d' in err
  after = tree_digest(workdir)
  assert {k: after.get(k) for k in before} == before  # the workdir's files byte-identical
  # nothing of a run either: only the lock and the empty figures/ every start makes
  assert set(after) - set(before) <= {'.lock', 'figures'}, after


def test_the_fashion_mnist_config_names_apt_get_when_its_folder_is_missing(tmp_path):
  config = config_lib.load('fashion_mnist_vae', [])
  assert config.data.name == 'idx' and config.data.path == '/usr/share/datasets/fashion-mnist'
  missing = tmp_path / 'fashion-mnist'
  config = config_lib.load('fashion_mnist_vae', [f'--config.data.path={missing}'])
  with pytest.raises(DataError) as e:
    data.load(config.data)
  message = str(e.value)
  assert '\n' not in message and message.startswith(f'{missing}: no such folder'), message
  assert '`apt-get install dataset-fashion-mnist`' in message
  with pytest.raises(DataError, match='no IDX files'):
    data.load(_cfg(tmp_path))  # a folder without any


# ---- the sample-quality classifier ---------------------------------------------------------


def test_sample_quality_picks_the_classifier_of_recognised_files(tmp_path, monkeypatch, idx_folder,
                                                                 recognised):
  from ae_jax.metrics import sample_quality as sq
  arrays = idx_folder(tmp_path / 'fm')
  cfg = _cfg(tmp_path / 'fm')
  unknown = data.load(cfg)
  with pytest.raises(ConfigError, match='not recognised as one of .*Fashion-MNIST'):
    sq.classifier_dataset(unknown.info, cfg)
  recognised(arrays)
  known = data.load(cfg)
  assert sq.classifier_dataset(known.info, cfg) == ('fashion_mnist', str(tmp_path / 'fm'))
  digits = data.DatasetInfo(name='digits', image_shape=(8, 8, 1), num_classes=10,
                             class_names=tuple('0123456789'))
  assert sq.classifier_dataset(digits, cfg) == ('digits', '')
  monkeypatch.setenv('AE_JAX_CACHE', str(tmp_path / 'cache'))
  monkeypatch.setattr(sq, '_MEMO', {})
  with pytest.raises(ConfigError, match='fashion_mnist classifier is trained from'):
    sq.classifier('fashion_mnist')  # nothing cached, and no files named
  with pytest.raises(ConfigError, match='these IDX files are not mnist'):
    sq.classifier('mnist', source=str(tmp_path / 'fm'))


@pytest.mark.slow
def test_fashion_mnist_sample_fd_is_scored_in_its_classifiers_feature_space(tmp_path,
                                                                            idx_folder, tiny,
                                                                            recognised):
  """Tiny Fashion-MNIST-like files (recognised through a Published entry of their own
  digests): the classifier trains from their training split, scores its accuracy on their
  test split, is cached under fashion_mnist, and the run's fd_classifier uses it."""
  from ae_jax.metrics import sample_quality as sq
  from ae_jax.train import train_and_evaluate
  arrays = idx_folder(tmp_path / 'fm', num_train=200, num_test=100)
  recognised(arrays)  # the classifier: in tmp_path/cache, 150 steps
  ds = data.load(_cfg(tmp_path / 'fm'))
  name, source = sq.classifier_dataset(ds.info, _cfg(tmp_path / 'fm'))
  real = ds.test['image']
  s = sq.score(name, real[:50], real[50:], source=source)
  assert s['feature_space'] == f'fashion_mnist-classifier 28x28x1 v{sq.VERSION}'
  clf = sq.classifier('fashion_mnist')
  assert not clf.loaded and clf.num_classes == 10
  # its accuracy is on the files' test split, recomputed here from its logits
  test_images = arrays['test'][0][..., None] / np.float32(255)
  assert clf.accuracy == pytest.approx(
      np.mean(clf.logits(test_images).argmax(-1) == arrays['test'][1]))
  assert clf.accuracy > 0.9  # ten bars at ten columns: separable
  assert sorted(os.listdir(tmp_path / 'cache' / 'classifiers')) == [
      f'fashion_mnist_28x28x1_v{sq.VERSION}.json', f'fashion_mnist_28x28x1_v{sq.VERSION}.msgpack']
  # a run on the files scores its samples there (the cached classifier: no other appears)
  config = tiny(data__name='idx', data__path=str(tmp_path / 'fm'), train__num_epochs=1,
                       train__batch_size=50, eval__num_samples=64,
                       eval__metrics=('loss', 'fd_classifier', 'precision', 'recall'))
  summary = train_and_evaluate(config, str(tmp_path / 'run'))
  member = summary['members'][0]['eval']
  assert np.isfinite(member['fd_classifier']) and member['fd_classifier'] > 0
  assert 0 <= member['precision'] <= 1 and 0 <= member['recall'] <= 1
  assert len(os.listdir(tmp_path / 'cache' / 'classifiers')) == 2
