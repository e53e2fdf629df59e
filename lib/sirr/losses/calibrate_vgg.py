"""Calibrate the per-layer divisors of the Oxford VGG-19 features (:data:`sirr.losses.vgg.OXFORD_FEATURE_DIVISORS`).

Method (our own calibration; stated in :mod:`sirr.losses.vgg` too). Over the first 8 BSDS500 ``val``
photos (sorted by name, resized to 192x128 with PIL's bicubic filter), measure the mean |feature| after
ReLU of every convolution of the Oxford VGG-19 on its own input (BGR, 0-255, minus the mean pixel). The
divisor of a layer is that mean over the torchvision reference mean of the same layer:
:data:`TORCHVISION_REFERENCE` (exact torchvision VGG-16 on ImageNet-normalised input, measured on the
same photos, spec ``offline-vgg.md``) for conv1_2 .. conv5_2; the other layers take a reference
interpolated log-linearly in convolution depth (conv1_1 = 0 ... conv5_4 = 15) between the two nearest
referenced layers, held constant before conv1_2 and after conv5_2. torchvision's VGG-19 itself is not
available offline, so VGG-16's conv k_2 stands in for VGG-19's.

Regenerate the constants (prints the table and a literal to paste into ``vgg.py``)::

    .venv/bin/python -m sirr.losses.calibrate_vgg [--photos DIR]
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sirr.data.root import find_data_root
from sirr.losses.vgg import VGG19_LAYER_INDEX, VGG19Features

__all__ = [
    "TORCHVISION_REFERENCE",
    "default_photo_dir",
    "load_photos",
    "reference_means",
    "feature_means",
    "calibrate",
]

#: Mean |feature| after ReLU of torchvision's exact ImageNet VGG-16 on normalised input, 8 BSDS500 val photos
#: at 192x128 (spec ``offline-vgg.md``).
TORCHVISION_REFERENCE: dict[str, float] = {
    "conv1_2": 0.574, "conv2_2": 0.929, "conv3_2": 1.499, "conv4_2": 0.959, "conv5_2": 0.544,
}  # fmt: skip
PHOTO_SIZE = (192, 128)  # (width, height), as the spec's table
PHOTO_COUNT = 8


def default_photo_dir() -> Path | None:
    """``<data root>/BSR/BSDS500/data/images/val``, or None when there is no data root or no such folder."""
    root = find_data_root(None)
    folder = None if root is None else root / "BSR" / "BSDS500" / "data" / "images" / "val"
    return folder if folder is not None and folder.is_dir() else None


def load_photos(
    folder: str | os.PathLike, count: int = PHOTO_COUNT, size: tuple[int, int] = PHOTO_SIZE
) -> torch.Tensor:
    """The first ``count`` JPEGs of ``folder`` (sorted by name), resized to ``size`` = (W, H) with PIL's bicubic filter.

    Returns (N, 3, H, W) RGB in [0, 1].
    """
    files = sorted(Path(folder).glob("*.jpg"))[:count]
    if not files:
        raise FileNotFoundError(f"no .jpg photos in {folder}")
    arrays = [np.array(Image.open(f).convert("RGB").resize(size, Image.BICUBIC), dtype=np.float32) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0


def reference_means() -> dict[str, float]:
    """torchvision-scale target mean |feature| of every VGG-19 convolution (references + log-linear interpolation)."""
    names = list(VGG19_LAYER_INDEX)
    known = [names.index(n) for n in TORCHVISION_REFERENCE]
    logs = [math.log(v) for v in TORCHVISION_REFERENCE.values()]
    return {n: float(math.exp(np.interp(k, known, logs))) for k, n in enumerate(names)}


@torch.no_grad()
def feature_means(net: VGG19Features, photos: torch.Tensor) -> dict[str, float]:
    """Mean |feature| per tapped layer of ``net`` over ``photos`` (one photo at a time, averaged over photos)."""
    sums = np.zeros(len(net.layers))
    for photo in photos:
        sums += [f.abs().mean().item() for f in net(photo[None])]
    return dict(zip(net.layers, (sums / len(photos)).tolist()))


def calibrate(folder: str | os.PathLike | None = None, digits: int = 4) -> dict[str, dict[str, float]]:
    """Raw Oxford means (after and before ReLU), references and divisors per layer, for the photos in ``folder``."""
    folder = folder if folder is not None else default_photo_dir()
    if folder is None:
        raise FileNotFoundError("no BSDS500 val photos: pass --photos DIR or set $SIRR_DATA")
    photos = load_photos(folder)
    layers = tuple(VGG19_LAYER_INDEX)
    post = feature_means(VGG19Features(layers, weights="oxford", rescale=False, after_relu=True), photos)
    pre = feature_means(VGG19Features(layers, weights="oxford", rescale=False, after_relu=False), photos)
    ref = reference_means()
    divisors = {n: float(f"{post[n] / ref[n]:.{digits}g}") for n in layers}
    return {"oxford_after_relu": post, "oxford_pre_relu": pre, "reference": ref, "divisor": divisors}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=None, help="folder of BSDS500 val photos (default: data root's)")
    args = parser.parse_args(argv)
    result = calibrate(args.photos)
    print(f"{'layer':8} {'Oxford |f| ReLU':>16} {'pre-ReLU':>10} {'reference':>10} {'divisor':>9}")
    for n in VGG19_LAYER_INDEX:
        mark = "" if n in TORCHVISION_REFERENCE else " (interpolated)"
        print(
            f"{n:8} {result['oxford_after_relu'][n]:16.2f} {result['oxford_pre_relu'][n]:10.2f} "
            f"{result['reference'][n]:10.3f} {result['divisor'][n]:9.4g}{mark}"
        )
    print("\nOXFORD_FEATURE_DIVISORS: dict[str, float] = {")
    blocks: dict[str, list[str]] = {}
    for n, d in result["divisor"].items():
        blocks.setdefault(n[4], []).append(f'"{n}": {d!r}')
    for items in blocks.values():
        print("    " + ", ".join(items) + ",")
    print("}  # fmt: skip")


if __name__ == "__main__":
    main()
