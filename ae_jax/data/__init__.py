"""Datasets -> float32 NHWC images in [0, 1] plus metadata. Never imports models.

`load(config.data)` returns a `Dataset` whose `train` and `test` are dicts with
`image`, `label` [N] (-1 where unlabelled) and `id` [N], the example's index in the
source dataset, which the split preserves so users can name images by id.

Two tiers: small data is materialised as one float32 array (the trainer puts it on the
device and scans epochs over it); data over `data.device_max_mb` (or with
`data.tier='stream'`) stays where it is, a `StreamSource` that reads and preprocesses
one batch at a time (memory-mapped arrays, per-item readers), prefetched by the trainer.
The test split is always materialised.

Modules, top to bottom: `loading` (split, tier, `load`, `by_ids`) -> `sources` (the
`data.name` registry) -> the sources' readers (`files`: .npy/.npz, `folder`: image folders,
`wm811k`, `idx`: MNIST-family IDX files, and the generators `wafer`, `dsprites`,
`skimage_sets`) -> `labels`, `preprocess` -> `records` (the record types), `pixels`.
`stream` prefetches a `StreamSource`'s batches for the trainer.
"""
from ae_jax.data.labels import class_values_from, label_classes, label_text, original_labels
from ae_jax.data.loading import by_ids, load, split
from ae_jax.data.pixels import BACKGROUNDS, composite, parse_background
from ae_jax.data.preprocess import (center_crop, check_images, convert_channels, integer_scale,
                                    resize, to_storage, to_unit_float)
from ae_jax.data.records import Dataset, DatasetInfo, Raw, StreamSource
from ae_jax.data.shapes import photographic
from ae_jax.data.sources import SOURCES, TFDS_NAMES

__all__ = [
    'BACKGROUNDS', 'SOURCES', 'TFDS_NAMES', 'Dataset', 'DatasetInfo', 'Raw', 'StreamSource',
    'by_ids', 'center_crop', 'check_images', 'class_values_from', 'composite',
    'convert_channels', 'integer_scale', 'label_classes', 'label_text', 'load',
    'original_labels', 'parse_background', 'photographic', 'resize', 'split', 'to_storage',
    'to_unit_float',
]
