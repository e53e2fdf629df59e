"""Frozen VGG-19 feature extractor shared by both papers' perceptual terms.

LA Eq. 10 (L_P) and TS Eq. 3, 4, 7 (L_rec, L_FR, L_2) compare VGG-19 features at the layers
``conv1_2 .. conv5_2``. The two papers read "conv k_2" differently:

* **LA** follows Zhang et al. [57], whose TensorFlow VGG names the *ReLU output* of a convolution
  ``conv k_2``; use ``after_relu=True`` (the default).
* **TS**'s release takes the convolution output *before* BatchNorm/ReLU (VGG-19-BN, pre-activation);
  use ``after_relu=False`` (see :func:`sirr.losses.two_stage.two_stage_vgg`).

Weights come from torchvision's weights API (``VGG19_Weights.IMAGENET1K_V1``, cached in the torch hub
directory). When they cannot be had, construction raises :class:`VGGWeightsUnavailable`; the only
fallback is the explicit ``weights="random"``, which is seeded, logged and flagged (``is_fallback``).
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import urllib.error
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import cfgs, make_layers

__all__ = ["VGG19Features", "VGGWeightsUnavailable", "VGG19_LAYER_INDEX", "IMAGENET_MEAN", "IMAGENET_STD"]

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
_DOWNLOAD_TIMEOUT_S = 20.0


class VGGWeightsUnavailable(RuntimeError):
    """The ImageNet VGG-19 weights are neither in the torch hub cache nor downloadable."""


def _imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of torchvision's ImageNet VGG-19: hub cache first, then a download."""
    weights = VGG19_Weights.IMAGENET1K_V1
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
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


class VGG19Features(nn.Module):
    """Frozen VGG-19 returning the features of ``layers`` (inputs RGB in [0, 1], (B, 3, H, W)).

    Args:
        layers: convolution names (``"conv1_2"`` ...), returned in this order.
        weights: ``"imagenet"`` (torchvision weights API; raises :class:`VGGWeightsUnavailable`
            offline) or ``"random"`` (same architecture, seeded He init; logged and ``is_fallback``).
        seed: seed of the ``torch.Generator`` used by ``weights="random"``.
        normalize: apply ImageNet mean/std inside (the TS release feeds [0, 1] unnormalised).
        after_relu: take each layer after its ReLU (LA, Zhang et al. naming) or the raw
            convolution output (TS release: before BatchNorm).
    """

    def __init__(
        self,
        layers: Sequence[str] = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2"),
        weights: str = "imagenet",
        seed: int = 0,
        normalize: bool = True,
        after_relu: bool = True,
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYER_INDEX]
        if not layers or unknown:
            raise ValueError(
                f"VGG19Features: unknown layers {unknown or '(none given)'}; choose from {list(VGG19_LAYER_INDEX)}"
            )
        if weights not in ("imagenet", "random"):
            raise ValueError(f'VGG19Features: weights must be "imagenet" or "random", got {weights!r}')
        self.layers = tuple(layers)
        self.weights = weights
        self.after_relu = after_relu
        self.normalize = normalize
        self.is_fallback = weights == "random"
        self._taps = {VGG19_LAYER_INDEX[name] + int(after_relu): i for i, name in enumerate(self.layers)}
        full = make_layers(cfgs["E"])
        for index, module in enumerate(full):  # in-place ReLUs would overwrite tapped conv outputs
            if isinstance(module, nn.ReLU):
                full[index] = nn.ReLU(inplace=False)
        self.features = full[: max(self._taps) + 1]
        if weights == "imagenet":
            state = _imagenet_state_dict()
            kept = {k: v for k, v in state.items() if int(k.split(".")[0]) < len(self.features)}
            self.features.load_state_dict(kept)
        else:
            generator = torch.Generator().manual_seed(seed)
            for module in self.features:
                if isinstance(module, nn.Conv2d):  # torchvision's VGG init, drawn from our generator
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                    nn.init.zeros_(module.bias)
            logger.warning(
                "VGG-19 with RANDOM weights (offline fallback, seed %d): perceptual/feature losses are not the "
                "papers' ImageNet VGG-19; label results accordingly.",
                seed,
            )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
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
        if self.normalize:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: list[torch.Tensor | None] = [None] * len(self.layers)
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self._taps:
                out[self._taps[index]] = x
        return out  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return (
            f"layers={self.layers}, weights={self.weights!r}, after_relu={self.after_relu}, normalize={self.normalize}"
        )
