"""Photos that ship inside installed packages: the training pool and test-set fallback when there is no data root."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sirr.data.images import read_image, to_uint8

__all__ = ["sample_photos"]

_SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def sample_photos() -> list[tuple[str, np.ndarray]]:
    """Natural colour photos shipped inside installed packages, as ``(name, uint8 HxWx3)``.

    scikit-image (astronaut, coffee, chelsea, rocket), scikit-learn (china, flower) and matplotlib
    (grace_hopper) -- 7 photos, no network needed. Packages that are missing are skipped.
    """
    out: list[tuple[str, np.ndarray]] = []
    try:
        import skimage.data as skd  # optional sample photos: a missing package is skipped

        for n in _SKIMAGE_PHOTOS:
            try:
                a = np.asarray(getattr(skd, n)())
            except Exception:  # noqa: BLE001 - a data file missing from this install
                continue
            if a.ndim == 3 and a.shape[2] >= 3:
                out.append((f"skimage_{n}", np.ascontiguousarray(a[..., :3], dtype=np.uint8)))
    except ImportError:  # pragma: no cover
        pass
    try:
        # optional, and slow to import (about 1 s)
        from sklearn.datasets import load_sample_images

        s = load_sample_images()
        for fn, a in zip(s.filenames, s.images):
            out.append((f"sklearn_{Path(fn).stem}", np.ascontiguousarray(a, dtype=np.uint8)))
    except Exception:  # noqa: BLE001  # pragma: no cover
        pass
    try:
        import matplotlib.cbook as cbook  # optional sample photo

        p = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        out.append(("matplotlib_grace_hopper", to_uint8(read_image(p))))
    except Exception:  # noqa: BLE001  # pragma: no cover
        pass
    return out
