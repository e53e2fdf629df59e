"""Data: the data root, published test-set layouts, robust image IO and reflection synthesis."""

import importlib

from sirr.data.root import DataRootError, DatasetNotFoundError, find_data_root

__all__ = [
    "DataRootError", "DatasetNotFoundError", "find_data_root",
    # sirr.data.images
    "ImageReadError", "OutputWouldOverwriteInput", "read_image", "image_size", "write_image", "to_tensor", "to_image",
    # sirr.data.datasets
    "DATASETS", "load_dataset", "available_datasets", "sample_photos", "natural_photos",
    "real_training_pairs", "Sample", "PairDataset",
    # sirr.data.pool
    "build_pool", "PhotoPool",
]

_LAZY = {
    "ImageReadError": "sirr.data.images", "OutputWouldOverwriteInput": "sirr.data.images",
    "read_image": "sirr.data.images", "image_size": "sirr.data.images", "write_image": "sirr.data.images",
    "to_tensor": "sirr.data.images", "to_image": "sirr.data.images",
    "DATASETS": "sirr.data.datasets", "load_dataset": "sirr.data.datasets",
    "available_datasets": "sirr.data.datasets", "sample_photos": "sirr.data.samples",
    "natural_photos": "sirr.data.pool", "build_pool": "sirr.data.pool", "PhotoPool": "sirr.data.pool",
    "real_training_pairs": "sirr.data.datasets", "Sample": "sirr.data.datasets", "PairDataset": "sirr.data.datasets",
}


def __getattr__(name):  # lazy, so `import sirr.data` stays cheap (no PIL/torch import)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sirr.data' has no attribute {name!r}")
