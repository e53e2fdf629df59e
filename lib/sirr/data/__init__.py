"""Data: the data root, published test-set layouts, robust image IO and reflection synthesis."""

from sirr.data.root import DataRootError, DatasetNotFoundError, find_data_root

__all__ = ["DataRootError", "DatasetNotFoundError", "find_data_root"]
