"""Location-aware single image reflection removal (Dong et al., ICCV 2021), the authors' released network.

Top-down: the blocks first (SE-residual, CBAM-residual, MLSM of Eq. 4, conv-LSTM, up-block, the
stage-2 contextual auto-encoder G_T), then :class:`LocationAware` (the recurrent network of Sec. 3,
Eq. 2-5), its output :class:`LocationAwareOutput`, the adversarial critic
:class:`LocationAwareDiscriminator` (Eq. 14), the release-checkpoint key mapping
(:func:`release_key_map`) and :func:`count_flops`.

The layers follow the authors' public inference release (paper: "Our code and the pre-trained model
can be found at https://github.com/zdlarr/Location-aware-SIRR"); the default construction has exactly
10,925,719 parameters and :meth:`LocationAware.from_release` loads their ``model.pth``. Where the
release differs from the paper's text (TSM weight, stage-2 RCMap channel) the release is the default
and the text is a constructor option. Every row of Table 2 is a constructor flag.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import pickle
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kornia
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sirr.errors import SirrError
from sirr.models.padding import pad_to_multiple
from sirr.models.release import release_key_map  # the authors' key names, kept apart from the network

__all__ = [
    "LocationAwareInputError",
    "ReleaseCheckpointError",
    "SEResidualBlock",
    "CBAMResidualBlock",
    "MultiScaleLaplacian",
    "ConvLSTMCell",
    "UpBlock",
    "ContextualAutoencoder",
    "LocationAwareOutput",
    "LocationAware",
    "LocationAwareFlags",
    "LocationAwareDiscriminator",
    "release_key_map",
    "count_flops",
    "LAPLACIAN_KERNEL",
    "RELEASE_URL",
]

#: Where the authors publish their code and ``model.pth`` (LA paper, abstract).
RELEASE_URL = "https://github.com/zdlarr/Location-aware-SIRR"

#: k_L of LA Sec. 3, the initial value of the MLSM kernel.
LAPLACIAN_KERNEL = ((0.0, -1.0, 0.0), (-1.0, 4.0, -1.0), (0.0, -1.0, 0.0))

HIDDEN_CHANNELS = 64  # conv-LSTM state h, c (release)


class LocationAwareInputError(SirrError, ValueError):
    """An input image batch the network cannot take (not (B, 3, H, W) floating point)."""


class ReleaseCheckpointError(SirrError, ValueError):
    """A file that is not the authors' Location-aware ``model.pth`` (or does not fit this network)."""


# ----------------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------------


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation channel gate (Hu et al.), as in the SE-ResBlocks of LA Eq. 5 / TSM."""

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * w[:, :, None, None]


class SEResidualBlock(nn.Module):
    """SE-ResBlock of the RDM (Eq. 5, PReLU inside) and TSM / image branch: x + 0.1·SE(conv(act(conv(x))))."""

    def __init__(self, channels: int = 32, prelu: bool = False, reduction: int = 2, res_scale: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.act = nn.PReLU() if prelu else nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.se = SqueezeExcitation(channels, reduction)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act(self.conv1(x)))  # (B, C, H, W)
        return x + self.res_scale * self.se(y)  # x + 0.1 · SE(y)


class ChannelAttention(nn.Module):
    """CBAM channel attention (Woo et al.): σ(MLP(avgpool x) + MLP(maxpool x)), one shared 1×1-conv MLP."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        mx = self.fc2(F.relu(self.fc1(F.adaptive_max_pool2d(x, 1))))
        return torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: σ(conv7×7([mean_c x, max_c x]))."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAMResidualBlock(nn.Module):
    """CBAM residual block of G_T (LA Eq. 3, "CBAM blocks after Conv and ReLU"): x + SA(CA(conv(relu(conv(x)))))."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.channel_attention = ChannelAttention(channels, reduction)
        self.spatial_attention = SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        y = y * self.channel_attention(y)  # CA: (B, C, 1, 1) gate
        y = y * self.spatial_attention(y)  # SA: (B, 1, H, W) gate
        return x + y


def _clip_kernel_grad(param: torch.Tensor, max_norm: float) -> None:
    """Post-accumulate-grad hook: rescale ``param.grad`` to L2 norm ≤ ``max_norm``."""
    torch.nn.utils.clip_grad_norm_(param, max_norm)


class MultiScaleLaplacian(nn.Module):
    """Multi-scale Laplacian sub-module MLSM, LA Eq. 4: Concat(L_ap(X_in), U↑_j(L_ap(X↓_j)) for j = 2, 4, 8).

    One learnable depthwise 3×3 kernel per channel (no bias), initialised to k_L and shared by all
    scales. Input is bilinearly resized by 1/8, 1/4, 1/2 (no antialiasing, as the release), filtered,
    resized back to the input size, and the four responses are concatenated as [1/8, 1/4, 1/2, 1] (the
    release's order; Eq. 4 lists the full-size response first, which changes only the channel order).
    ``MultiScaleLaplacian(channels=3)(img)`` gives the 12-channel Eq. 4 features of an RGB image; a
    module built for 6 channels also accepts a 3-channel tensor (using the first 3 channels' kernels).

    Options (LA Table 2): ``multiscale=False`` is SLSM (full scale only); ``gradient_filter="edge"``
    replaces k_L by the two partial-derivative kernels d/dx, d/dy per channel (central differences,
    ``kornia.filters.get_spatial_gradient_kernel2d("diff", 1)``); ``kernel_init="random"`` is RKI
    (normal(0, 0.02)); ``learnable=False`` is "Fix MLSM"; ``grad_clip`` rescales the kernel's
    accumulated gradient to that L2 norm after every backward (a post-accumulate-grad hook).
    """

    def __init__(
        self,
        channels: int = 6,
        multiscale: bool = True,
        gradient_filter: str = "laplacian",
        kernel_init: str = "laplacian",
        learnable: bool = True,
        grad_clip: float | None = None,
    ) -> None:
        super().__init__()
        _check_choice("gradient_filter", gradient_filter, ("laplacian", "edge"))
        _check_choice("kernel_init", kernel_init, ("laplacian", "random"))
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"MultiScaleLaplacian: grad_clip must be positive or None, got {grad_clip}")
        self.channels = channels
        self.multiscale = multiscale
        self.gradient_filter = gradient_filter
        self.kernel_init = kernel_init
        self.grad_clip = grad_clip
        self.filters_per_channel = 2 if gradient_filter == "edge" else 1
        self.scales = (8, 4, 2, 1) if multiscale else (1,)
        self.kernel = nn.Parameter(torch.empty(channels * self.filters_per_channel, 1, 3, 3), requires_grad=learnable)
        self._hooked: weakref.ref | None = None
        self.reset_kernel()
        self._ensure_grad_clip_hook()

    @property
    def out_channels(self) -> int:
        """Channels of the concatenated output (channels × filters per channel × scales)."""
        return self.channels * self.filters_per_channel * len(self.scales)

    def initial_kernel(self) -> torch.Tensor:
        """k_L per channel (or the d/dx, d/dy pair per channel for ``gradient_filter="edge"``)."""
        if self.gradient_filter == "edge":
            base = kornia.filters.get_spatial_gradient_kernel2d("diff", 1)  # (2, 3, 3): d/dx, d/dy
        else:
            base = torch.tensor(LAPLACIAN_KERNEL)[None]
        return base.to(self.kernel.device, self.kernel.dtype).repeat(self.channels, 1, 1).unsqueeze(1)

    @torch.no_grad()
    def reset_kernel(self, std: float = 0.02, generator: torch.Generator | None = None) -> None:
        """Set the kernel to k_L (LKI) or, with ``kernel_init="random"``, to normal(0, std) (RKI)."""
        if self.kernel_init == "random":
            nn.init.normal_(self.kernel, 0.0, std, generator=generator)
        else:
            self.kernel.copy_(self.initial_kernel())

    def _ensure_grad_clip_hook(self) -> None:
        # Registered once per Parameter object; a deepcopy (e.g. an EMA copy) gets a new Parameter
        # without tensor hooks, which the weak reference notices at the next forward.
        if self.grad_clip is None or not self.kernel.requires_grad:
            return
        if self._hooked is not None and self._hooked() is self.kernel:
            return
        self.kernel.register_post_accumulate_grad_hook(functools.partial(_clip_kernel_grad, max_norm=self.grad_clip))
        self._hooked = weakref.ref(self.kernel)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_hooked"] = None
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """LA Eq. 4: L_ap * x and up(L_ap * down_j x) for j = 2, 4, 8.

        In the order of ``self.scales`` (the release's [1/8, 1/4, 1/2, 1]).
        """
        if x.ndim != 4 or x.shape[1] > self.channels:
            raise LocationAwareInputError(
                f"MultiScaleLaplacian: expected (B, C<={self.channels}, H, W), "
                f"got {tuple(x.shape)}")
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():
            self._ensure_grad_clip_hook()
        c = x.shape[1]
        kernel = self.kernel[: c * self.filters_per_channel]
        h, w = x.shape[-2:]
        responses = []
        for s in self.scales:  # 8, 4, 2, 1; or 1 alone (single-scale SLSM)
            if s == 1:  # L_ap * x, one 3×3 kernel per channel
                responses.append(F.conv2d(x, kernel, padding=1, groups=c))
                continue
            size = (max(1, h // s), max(1, w // s))
            small = F.interpolate(x, size=size, mode="bilinear",
                                  align_corners=False)  # down_s x
            lap = F.conv2d(small, kernel, padding=1, groups=c)
            responses.append(F.interpolate(  # back to (H, W)
                lap, size=(h, w), mode="bilinear", align_corners=False))
        return torch.cat(responses, dim=1)  # (B, 4·C·filters, H, W) for Eq. 4


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM of stage 1 (LA Sec. 3, "LSTM block"): gates i, f, o = σ(conv), g = tanh(conv) on [x, h]."""

    def __init__(self, in_channels: int, hidden_channels: int = HIDDEN_CHANNELS) -> None:
        super().__init__()
        cat = in_channels + hidden_channels
        self.input_gate = nn.Conv2d(cat, hidden_channels, 3, padding=1)
        self.forget_gate = nn.Conv2d(cat, hidden_channels, 3, padding=1)
        self.cell_gate = nn.Conv2d(cat, hidden_channels, 3, padding=1)
        self.output_gate = nn.Conv2d(cat, hidden_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor,
                c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The four gate convolutions run as one convolution with their weights
        # stacked (same numbers, one pass over z; the parameters and
        # state-dict keys stay the release's).
        z = torch.cat([x, h], dim=1)
        gates = (self.input_gate, self.forget_gate, self.cell_gate,
                 self.output_gate)
        weight = torch.cat([g.weight for g in gates])
        bias = torch.cat([g.bias for g in gates])
        i, f, g, o = F.conv2d(z, weight, bias, padding=1).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # cell
        return torch.sigmoid(o) * torch.tanh(c), c  # (h, c), (B, 64, H, W)


class UpBlock(nn.Module):
    """×2 up-sampling of G_T's decoder: transposed conv 4×4/2, reflection-pad (1, 0, 1, 0), 2×2 avg-pool stride 1, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pad(self.deconv(x), (1, 0, 1, 0), mode="reflect")
        return F.relu(F.avg_pool2d(y, 2, stride=1))


class ContextualAutoencoder(nn.Module):
    """Stage 2, G_T of LA Eq. 3: contextual auto-encoder (Qian et al. [30]) with CBAM blocks.

    Input [I, T̂_{i−1}, R̂_i, RCMap channel] (10 ch); returns (T̂ at 1/4, T̂ at 1/2, T̂ full size), the
    three outputs that the multi-scale perceptual loss L_P (Eq. 10) compares with ground truth.
    Needs H, W divisible by 4.
    """

    def __init__(self, in_channels: int = 10) -> None:
        super().__init__()

        def conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation)

        self.conv_in = conv(in_channels, 64, k=5)
        self.cbam_full = nn.ModuleList([CBAMResidualBlock(64, 2)])
        self.down_half = conv(64, 128, stride=2)
        self.conv_half = conv(128, 128)
        self.cbam_half = nn.ModuleList([CBAMResidualBlock(128, 4) for _ in range(2)])
        self.down_quarter = conv(128, 256, stride=2)
        self.conv_quarter = nn.ModuleList([conv(256, 256) for _ in range(2)])
        self.cbam_quarter = nn.ModuleList([CBAMResidualBlock(256, 8) for _ in range(3)])
        self.dilated = nn.ModuleList([conv(256, 256, dilation=d) for d in (2, 4, 8, 16)])
        self.bottleneck = nn.ModuleList([conv(256, 256) for _ in range(2)])
        self.out_quarter = conv(256, 3)
        self.up_half = UpBlock(256, 128)
        self.conv_up_half = conv(128, 128)
        self.out_half = conv(128, 3)
        self.up_full = UpBlock(128, 64)
        self.conv_up_full = conv(64, 32)
        self.out_full = conv(32, 3)

    def forward(self, x: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """G_T, LA Eq. 3: [I, T̂_{i−1}, R̂_i, Ĉ_i] -> T̂_i at 1/4, 1/2, 1."""
        x = F.relu(self.conv_in(x))
        for block in self.cbam_full:
            x = block(x)
        skip_full = x
        x = F.relu(self.conv_half(F.relu(self.down_half(x))))
        for block in self.cbam_half:
            x = block(x)
        skip_half = x
        x = F.relu(self.down_quarter(x))
        for layer in self.conv_quarter:
            x = F.relu(layer(x))
        for block in self.cbam_quarter:
            x = block(x)
        for layer in (*self.dilated, *self.bottleneck):
            x = F.relu(layer(x))
        t_quarter = F.relu(self.out_quarter(x))  # (B, 3, H/4, W/4)
        x = F.relu(self.conv_up_half(self.up_half(x) + skip_half))
        t_half = F.relu(self.out_half(x))  # (B, 3, H/2, W/2)
        x = F.relu(self.conv_up_full(self.up_full(x) + skip_full))
        return t_quarter, t_half, F.relu(self.out_full(x))


# ----------------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------------


@dataclass
class LocationAwareOutput:
    """Per-iteration predictions of :class:`LocationAware` (lists of length N, iteration 1 first).

    ``rcmaps`` Ĉ_i (B, 1, H, W) in [0, 1]; ``reflections`` R̂_i and ``transmissions`` T̂_i (B, 3, H, W);
    ``transmissions_half`` / ``transmissions_quarter``: G_T's side outputs at ⌈H/2⌉×⌈W/2⌉ and
    ⌈H/4⌉×⌈W/4⌉ (for L_P, Eq. 10).
    """

    rcmaps: list[torch.Tensor] = field(default_factory=list)
    reflections: list[torch.Tensor] = field(default_factory=list)
    transmissions: list[torch.Tensor] = field(default_factory=list)
    transmissions_half: list[torch.Tensor] = field(default_factory=list)
    transmissions_quarter: list[torch.Tensor] = field(default_factory=list)

    @property
    def transmission(self) -> torch.Tensor:
        """The final transmission layer T̂_N."""
        return self.transmissions[-1]

    @property
    def reflection(self) -> torch.Tensor:
        """The final reflection layer R̂_N."""
        return self.reflections[-1]

    @property
    def rcmap(self) -> torch.Tensor:
        """The final reflection confidence map Ĉ_N."""
        return self.rcmaps[-1]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


@dataclass(frozen=True)
class LocationAwareFlags:
    """LA's switches: the release's choices by default ("Ours"), and one row of LA Table 2 each."""

    iterations: int = 3  # N, the recurrence's iterations (set in Sec. 5, as IBCLN's)
    tsm_weight: str = "one_minus_c"  # TSM weights f_Lap by 1 − Ĉ_i (release) or "c" (Ĉ_i)
    stage2_rcmap: str = "c"  # G_T reads Ĉ_i (release) or "one_minus_c" (1 − Ĉ_i, Eq. 3's text)
    use_rdm_tsm: bool = True  # False: "w/o RDM & TSM"
    use_tsm: bool = True  # False: "w/o TSM"
    use_lstm: bool = True  # False: "w/o LSTM"
    rcmap_from: str = "laplacian"  # "image_features": "Ĉ from I_ft"
    multiscale: bool = True  # False: "MLSM → SLSM"
    learn_laplacian: bool = True  # False: "Fix MLSM"
    gradient_filter: str = "laplacian"  # "edge": "Laplacian → Edge"
    kernel_init: str = "laplacian"  # "random": "LKI → RKI" (with laplacian_grad_clip=None)
    laplacian_grad_clip: float | None = 0.25  # None: "w/o GC in MLSM"

    def __post_init__(self) -> None:
        _check_choice("tsm_weight", self.tsm_weight, ("one_minus_c", "c"))
        _check_choice("stage2_rcmap", self.stage2_rcmap, ("c", "one_minus_c"))
        _check_choice("rcmap_from", self.rcmap_from, ("laplacian", "image_features"))
        _check_choice("gradient_filter", self.gradient_filter, ("laplacian", "edge"))
        _check_choice("kernel_init", self.kernel_init, ("laplacian", "random"))
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")


class LocationAware(nn.Module):
    """Location-aware SIRR network (LA Sec. 3, Fig. 2): N recurrent iterations of G_R (Eq. 2) then G_T (Eq. 3).

    Iteration i takes I and T̂_{i−1} (T̂_0 = I, conv-LSTM state h = c = 0, 64 ch):
    **G_R** — the image branch encodes X_in = [I, T̂_{i−1}]; the RDM feeds the MLSM features (Eq. 4)
    through SE-ResBlocks with PReLU and predicts the RCMap Ĉ_i = σ(Conv(f_Lap(X_out))) (Eq. 5); the
    TSM refines the Laplacian features and weights them by the RCMap; the conv-LSTM on [image features,
    suppressed features, h] gives h, from which R̂_i is predicted. **G_T** — the CBAM contextual
    auto-encoder maps [I, T̂_{i−1}, R̂_i, RCMap] to T̂_i (and its 1/2, 1/4 side outputs).

    Defaults are the authors' release (10,925,719 parameters; weights at
    https://github.com/zdlarr/Location-aware-SIRR, load with :meth:`from_release`). Two places where the
    release and the paper's text differ are options, release first:

    - ``tsm_weight``: ``"one_minus_c"`` (release: Laplacian features × (1 − Ĉ)) or ``"c"`` (text, TSM: × Ĉ).
    - ``stage2_rcmap``: ``"c"`` (release feeds Ĉ to G_T) or ``"one_minus_c"`` (text, Eq. 3: 1 − Ĉ).

    Ablations, one flag per row of LA Table 2 (defaults = "Ours"):

    - ``use_rdm_tsm=False`` — "w/o RDM & TSM": no MLSM, Laplacian branch or RCMap head; the LSTM sees
      the image features only and G_T gets a constant RCMap of 0.5 (returned in ``rcmaps``, no gradient).
    - ``use_tsm=False`` — "w/o TSM": the Laplacian features are not multiplied by the RCMap.
    - ``use_lstm=False`` — "w/o LSTM": the conv-LSTM becomes conv3×3(image + Laplacian features → 64)
      + ReLU; no state is carried between iterations.
    - ``rcmap_from="image_features"`` — "Ĉ from I_ft": the RCMap head reads the image-branch features
      of [I, T̂_{i−1}] (before the LSTM) instead of the Laplacian features; MLSM still feeds the TSM.
    - ``multiscale=False`` — "MLSM → SLSM": only the full-scale Laplacian (6 ch into the branch).
    - ``learn_laplacian=False`` — "Fix MLSM": the kernel is not fine-tuned (requires_grad False).
    - ``gradient_filter="edge"`` — "Laplacian → Edge": d/dx and d/dy difference kernels per channel
      (12 ch per scale) instead of k_L; still learnable and clipped like k_L.
    - ``kernel_init="random"`` — "LKI → RKI": kernel from normal(0, 0.02). The paper's RKI row also
      drops gradient clipping: combine with ``laplacian_grad_clip=None``.
    - ``laplacian_grad_clip=None`` — "w/o GC in MLSM". The paper's "gradient clipping (0.25)" is read as
      clipping the kernel's gradient norm: a hook rescales the accumulated gradient of the kernel to L2
      norm ≤ 0.25 after every backward (other parameters are untouched).

    Construction applies :meth:`init_weights` (normal(0, 0.02) weights, zero biases, kernel = k_L): the
    trainable initial state of the paper's training (Sec. 5); pass ``generator`` for a seeded init.
    Any H×W is accepted (reflect-padded to a multiple of 8, outputs cropped back). In eval mode with
    ``clamp_outputs`` every returned T̂_i (all scales) and R̂_i is clamped to [0, 1], as the release
    does after its loop; the unclamped T̂_i is what the next iteration reads, also as the release.
    """

    def __init__(
        self,
        flags: LocationAwareFlags | None = None,
        *,
        clamp_outputs: bool = True,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
        **switches: Any,
    ) -> None:
        super().__init__()
        # The 12 switches: a LocationAwareFlags, or any of its fields by name (LocationAware(use_tsm=False)).
        try:
            flags = dataclasses.replace(flags or LocationAwareFlags(), **switches)
        except TypeError:
            known = ", ".join(f.name for f in dataclasses.fields(LocationAwareFlags))
            raise TypeError(f"LocationAware: unknown switch in {sorted(switches)}; the switches are {known}") from None
        self.flags = flags
        iterations, tsm_weight, stage2_rcmap = flags.iterations, flags.tsm_weight, flags.stage2_rcmap
        use_rdm_tsm, use_tsm, use_lstm, rcmap_from = flags.use_rdm_tsm, flags.use_tsm, flags.use_lstm, flags.rcmap_from
        multiscale, learn_laplacian = flags.multiscale, flags.learn_laplacian
        gradient_filter, kernel_init = flags.gradient_filter, flags.kernel_init
        laplacian_grad_clip = flags.laplacian_grad_clip
        self.config: dict[str, Any] = {**dataclasses.asdict(flags), "clamp_outputs": clamp_outputs,
                                       "init_std": init_std}
        self.iterations = iterations
        self.tsm_weight, self.stage2_rcmap, self.rcmap_from = tsm_weight, stage2_rcmap, rcmap_from
        self.use_rdm_tsm, self.use_tsm, self.use_lstm = use_rdm_tsm, use_tsm, use_lstm
        self.clamp_outputs = clamp_outputs
        self.init_std = init_std

        # G_R, image branch on X_in = [I, T̂_{i-1}].
        self.image_in = nn.Conv2d(6, 32, 3, padding=1)
        self.image_blocks = nn.ModuleList([SEResidualBlock(32) for _ in range(6)])
        lstm_in = 32
        if use_rdm_tsm:
            # RDM: MLSM (Eq. 4) -> f_Lap (SE-ResBlocks with PReLU) -> RCMap head (Eq. 5).
            self.mlsm: MultiScaleLaplacian | None = MultiScaleLaplacian(
                6, multiscale, gradient_filter, kernel_init, learn_laplacian, laplacian_grad_clip
            )
            self.laplacian_in = nn.Conv2d(self.mlsm.out_channels, 32, 3, padding=1)
            self.laplacian_in_act = nn.PReLU()
            self.laplacian_blocks = nn.ModuleList([SEResidualBlock(32, prelu=True) for _ in range(3)])
            self.rcmap_head = nn.Sequential(
                nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid()
            )
            # TSM: three more SE-ResBlocks, then the RCMap weighting.
            self.suppression_blocks = nn.ModuleList([SEResidualBlock(32, prelu=True) for _ in range(3)])
            self.shared_prelu = nn.PReLU()  # one PReLU after each of the six Laplacian-branch blocks (release)
            lstm_in += 32
        else:
            self.mlsm = None
        if use_lstm:
            self.lstm = ConvLSTMCell(lstm_in, HIDDEN_CHANNELS)
        else:
            self.lstm_replacement = nn.Conv2d(lstm_in, HIDDEN_CHANNELS, 3, padding=1)
        self.reflection_head = nn.Sequential(
            nn.Conv2d(HIDDEN_CHANNELS, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 3, 3, padding=1), nn.ReLU()
        )
        # G_T (Eq. 3).
        self.transmission_net = ContextualAutoencoder(in_channels=10)
        self.init_weights(init_std, generator)

    @property
    def laplacian_kernel(self) -> nn.Parameter | None:
        """The MLSM kernel L_ap (learnable k_L, or the edge kernels), or None without an RDM."""
        return self.mlsm.kernel if self.mlsm is not None else None

    @torch.no_grad()
    def init_weights(self, std: float = 0.02, generator: torch.Generator | None = None) -> None:
        """LA Sec. 5 init: conv / transposed-conv / linear weights ~ normal(0, std), biases 0, MLSM kernel = k_L.

        (RKI: the kernel ~ normal(0, std) instead.) PReLU slopes keep PyTorch's 0.25. The paper says
        "variance 0.02"; like the pix2pix-style init it follows, 0.02 is used as the standard deviation.
        """
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, std, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.mlsm is not None:
            self.mlsm.reset_kernel(std, generator)

    # -- forward -----------------------------------------------------------------------------------

    def image_features(self, x_in: torch.Tensor) -> torch.Tensor:
        """I_ft: G_R's image branch, X_in (B, 6, H, W) -> (B, 32, H, W)."""
        feats = F.relu(self.image_in(x_in))
        for block in self.image_blocks:
            feats = F.relu(block(feats))
        return feats

    def detect(self, x_in: torch.Tensor, feats: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """RDM, LA Eq. 4-5: (Ĉ (B, 1, H, W), f_Lap (B, 32, H, W)) from X_in.

        Ĉ comes from the multi-scale Laplacian features f_Lap, or from I_ft
        (``feats``, computed when not given) for ``rcmap_from="image_features"``
        (Table 2's "Ĉ from I_ft").
        """
        if self.mlsm is None:
            raise LocationAwareInputError(
                "this LocationAware has no RDM (use_rdm_tsm=False)")
        lap = self.laplacian_in_act(self.laplacian_in(self.mlsm(x_in)))  # Eq. 4
        for block in self.laplacian_blocks:
            lap = self.shared_prelu(block(lap))  # f_Lap
        if self.rcmap_from == "laplacian":
            return self.rcmap_head(lap), lap  # Ĉ = σ(Conv(f_Lap)), Eq. 5
        if feats is None:
            feats = self.image_features(x_in)
        return self.rcmap_head(feats), lap  # Ĉ from I_ft

    def reflection_stage(
        self, I: torch.Tensor, T_prev: torch.Tensor, h: torch.Tensor,
        c: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """G_R, LA Eq. 2: (Ĉ_i, R̂_i, h, c) from I, T̂_{i−1} and the state."""
        x_in = torch.cat([I, T_prev], dim=1)  # X_in, (B, 6, H, W)
        feats = self.image_features(x_in)  # I_ft, (B, 32, H, W)
        if self.mlsm is not None:
            rcmap, lap = self.detect(x_in, feats)  # RDM: Ĉ_i and f_Lap
            for block in self.suppression_blocks:
                lap = self.shared_prelu(block(lap))
            if self.use_tsm:  # TSM: suppress where the transmission dominates
                one_minus_c = self.tsm_weight == "one_minus_c"
                lap = lap * (1.0 - rcmap if one_minus_c else rcmap)
            lstm_input = torch.cat([feats, lap], dim=1)  # (B, 64, H, W)
        else:
            rcmap = torch.full_like(I[:, :1], 0.5)
            lstm_input = feats
        if self.use_lstm:
            h, c = self.lstm(lstm_input, h, c)  # state carried across i
        else:
            h = F.relu(self.lstm_replacement(lstm_input))
        return rcmap, self.reflection_head(h), h, c  # R̂_i = head(h)

    def forward(self, I: torch.Tensor) -> LocationAwareOutput:
        """N iterations on I (B, 3, H, W) in [0, 1]: a LocationAwareOutput."""
        if I.ndim != 4 or I.shape[1] != 3:
            raise LocationAwareInputError(
                "LocationAware expects an RGB batch of shape (B, 3, H, W); "
                f"got {tuple(I.shape)} (add a batch dimension with x[None]; "
                "convert grey images to RGB)")
        if not I.is_floating_point():
            raise LocationAwareInputError(
                f"LocationAware expects float values in [0, 1]; got {I.dtype}")
        if I.shape[-1] == 0 or I.shape[-2] == 0 or I.shape[0] == 0:
            raise LocationAwareInputError(
                f"LocationAware got an empty batch or image: {tuple(I.shape)}")
        H, W = I.shape[-2:]
        half = (math.ceil(H / 2), math.ceil(W / 2))
        quarter = (math.ceil(H / 4), math.ceil(W / 4))
        x = pad_to_multiple(I, 8)  # reflect-padded; outputs cropped back
        b, _, hp, wp = x.shape
        h = x.new_zeros(b, HIDDEN_CHANNELS, hp, wp)  # LSTM state, zero at i = 1
        c = torch.zeros_like(h)
        clamp = self.clamp_outputs and not self.training
        out = LocationAwareOutput()
        T = x  # T̂_0 = I
        for _ in range(self.iterations):  # i = 1 .. N
            rcmap, R, h, c = self.reflection_stage(x, T, h, c)  # G_R, Eq. 2
            c_in = rcmap if self.stage2_rcmap == "c" else 1.0 - rcmap
            t_quarter, t_half, T = self.transmission_net(  # G_T, Eq. 3
                torch.cat([x, T, R, c_in], dim=1))
            if clamp:  # the returned estimates; the next i reads T unclamped
                T_out, R_out = T.clamp(0.0, 1.0), R.clamp(0.0, 1.0)
                half_out = t_half.clamp(0.0, 1.0)
                quarter_out = t_quarter.clamp(0.0, 1.0)
            else:
                T_out, R_out, half_out, quarter_out = T, R, t_half, t_quarter
            out.rcmaps.append(rcmap[..., :H, :W])
            out.reflections.append(R_out[..., :H, :W])
            out.transmissions.append(T_out[..., :H, :W])
            out.transmissions_half.append(half_out[..., : half[0], : half[1]])
            out.transmissions_quarter.append(
                quarter_out[..., : quarter[0], : quarter[1]])
        return out

    # -- the authors' release ------------------------------------------------------------------------

    @classmethod
    def from_release(cls, path: str | Path, map_location: str | torch.device = "cpu", **flags: Any) -> LocationAware:
        """Build the network (with ``flags``) and load the authors' ``model.pth`` (github.com/zdlarr/Location-aware-SIRR).

        Accepts a raw state dict or one nested under ``state_dict`` / ``model`` / ``netG`` / ``netG_T``,
        with or without a ``module.`` prefix. Loads with ``torch.load(weights_only=True)``; raises
        :class:`ReleaseCheckpointError` (a ValueError) for pickled code, for another model's
        checkpoint, and, in one message, for missing / unexpected keys and wrong shapes.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"release checkpoint {str(path)!r} does not exist; download model.pth from {RELEASE_URL}"
            )
        try:
            obj = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            raise ReleaseCheckpointError(
                f"{path}: refusing to load pickled code (torch.load weights_only=True failed: "
                f"{str(e).splitlines()[0][:200]})"
            ) from None
        except (RuntimeError, EOFError, OSError) as e:
            raise ReleaseCheckpointError(f"{path}: not a readable torch checkpoint ({str(e).splitlines()[0][:200]})") from None
        model = cls(**flags)
        model.load_release_state_dict(obj, source=str(path))
        return model

    def load_release_state_dict(self, obj: Any, source: str = "state dict") -> None:
        """Load a release-named state dict (see :meth:`from_release`) through :func:`release_key_map`."""
        state = _unwrap_state_dict(obj, source)
        key_map = release_key_map()
        if sum(k in key_map for k in state) < len(key_map) // 2:
            some = ", ".join(list(state)[:3])
            raise ReleaseCheckpointError(
                f"{source} is not the authors' Location-aware SIRR model.pth: {sum(k in key_map for k in state)} of "
                f"{len(key_map)} release keys found (its keys start: {some}); get it from {RELEASE_URL}"
            )
        own = self.state_dict()
        missing = [k for k in key_map if k not in state]
        unexpected = [k for k in state if k not in key_map]
        wrong = [
            f"{k} {tuple(v.shape)} (expected {tuple(own[key_map[k]].shape)})"
            for k, v in state.items()
            if k in key_map and key_map[k] in own and v.shape != own[key_map[k]].shape
        ]
        not_here = [k for k, ours in key_map.items() if k in state and ours not in own]
        problems = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong),
                             ("not in this (ablated) network", not_here)):
            if items:
                problems.append(f"{len(items)} {label}: {', '.join(items[:4])}{', ...' if len(items) > 4 else ''}")
        if problems:
            raise ReleaseCheckpointError(f"{source} does not fit LocationAware{self._flags_note()}: " + "; ".join(problems))
        mapped = {key_map[k]: v for k, v in state.items()}
        leftover = [k for k in own if k not in mapped]
        if leftover:
            raise ReleaseCheckpointError(
                f"{source}: this (ablated) LocationAware{self._flags_note()} has {len(leftover)} tensors the release "
                f"lacks: {', '.join(leftover[:4])}"
            )
        with torch.no_grad():
            for k, v in mapped.items():
                own[k].copy_(v)

    def to_release_state_dict(self) -> dict[str, torch.Tensor]:
        """This network's tensors under the release's key names, in the release's order (inverse of the mapping)."""
        own = self.state_dict()
        key_map = release_key_map()
        absent = [ours for ours in key_map.values() if ours not in own]
        if absent or len(own) != len(key_map) or self._flags_note():
            raise ReleaseCheckpointError(
                f"only the release architecture can be exported; this LocationAware{self._flags_note()} "
                f"lacks {', '.join(absent[:4]) or 'nothing'} and has {len(own) - len(key_map) + len(absent)} extra tensors"
            )
        return {rel: own[ours].detach().clone() for rel, ours in key_map.items()}

    def _flags_note(self) -> str:
        options = inspect.signature(LocationAware).parameters  # clamp_outputs, init_std: the constructor's own defaults
        defaults = {**dataclasses.asdict(LocationAwareFlags()),
                    **{k: options[k].default for k in ("clamp_outputs", "init_std")}}
        changed = {k: v for k, v in self.config.items() if defaults[k] != v}
        return f"({', '.join(f'{k}={v!r}' for k, v in changed.items())})" if changed else ""


def _unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: raw, or under state_dict/model/netG/netG_T; ``module.`` stripped."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "netG", "netG_T"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ReleaseCheckpointError(f"{source}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ReleaseCheckpointError(f"{source}: entries that are not named tensors: {', '.join(map(str, bad[:4]))}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


# ----------------------------------------------------------------------------------------------------
# Discriminator of Eq. 14 and FLOPs
# ----------------------------------------------------------------------------------------------------


class LocationAwareDiscriminator(nn.Module):
    """Multi-layer discriminator D of LA Eq. 14 (L_adv = −log D(T̂)); the paper gives no layers, so ours.

    Our choice: the pix2pix 70×70 PatchGAN — five 4×4 convs 3→64→128→256→512→1 (strides 2, 2, 2, 1,
    1), LeakyReLU 0.2, InstanceNorm after the 2nd-4th conv (``norm="none"`` drops it), patch logits
    (B, 1, h, w) for a BCE-with-logits GAN loss. Eq. 14 writes D(T, T̂); we read it as a discriminator
    that tells the real T from the predicted T̂, each scored alone (``conditional=False``, default,
    3-ch input). ``conditional=True`` scores the pair [I, T] (6 ch) instead, as in pix2pix; then
    pass ``I``. Weights ~ normal(0, 0.02), biases 0. Needs H, W ≥ 24.
    """

    def __init__(
        self,
        conditional: bool = False,
        base_channels: int = 64,
        norm: str = "instance",
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_choice("norm", norm, ("instance", "none"))
        self.conditional = conditional
        in_ch = 6 if conditional else 3
        widths = (base_channels, base_channels * 2, base_channels * 4, base_channels * 8)
        layers: list[nn.Module] = [nn.Conv2d(in_ch, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(cin, cout, 4, 2 if i < 2 else 1, 1, bias=norm == "none"))
            if norm == "instance":
                layers.append(nn.InstanceNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 1))
        self.layers = nn.Sequential(*layers)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, 0.0, init_std, generator=generator)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def forward(self, T: torch.Tensor, I: torch.Tensor | None = None) -> torch.Tensor:
        """Patch logits for transmission images ``T`` (and inputs ``I`` when conditional)."""
        if T.ndim != 4 or T.shape[1] != 3:
            raise LocationAwareInputError(f"LocationAwareDiscriminator expects (B, 3, H, W); got {tuple(T.shape)}")
        if min(T.shape[-2:]) < 24:
            raise LocationAwareInputError(f"LocationAwareDiscriminator needs H, W >= 24; got {tuple(T.shape[-2:])}")
        if self.conditional:
            if I is None or I.shape != T.shape:
                raise LocationAwareInputError("conditional LocationAwareDiscriminator needs I with the shape of T")
            T = torch.cat([I, T], dim=1)
        elif I is not None:
            raise LocationAwareInputError("this LocationAwareDiscriminator is not conditional; call it with T only")
        return self.layers(T)


def count_flops(model: LocationAware, height: int, width: int, batch: int = 1) -> dict[str, float | int | str]:
    """FLOPs of ``model``'s forward at height × width, counted by ``torch.utils.flop_counter.FlopCounterMode``.

    Convention: 1 multiply-accumulate = 2 FLOPs (FlopCounterMode's), convolutions / matmuls only
    (activations, pooling, interpolation and element-wise ops are not counted), at the size the network
    runs (padded to a multiple of 8). Counted on a "meta" copy built from ``model.config``, so no memory
    or time is spent. The paper quotes 111.63 GFLOPs per iteration without stating size or convention.
    """
    if height < 1 or width < 1 or batch < 1:
        raise ValueError(f"count_flops: height, width, batch must be >= 1; got {height}, {width}, {batch}")
    with torch.device("meta"):
        probe = LocationAware(**model.config)
    probe.eval()
    x = torch.zeros(batch, 3, height, width, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        probe(x)
    total = counter.get_total_flops()
    n = probe.iterations
    return {
        "height": height,
        "width": width,
        "padded_height": height + (-height) % 8,
        "padded_width": width + (-width) % 8,
        "batch": batch,
        "iterations": n,
        "gflops_total": total / 1e9,
        "gflops_per_iteration": total / n / 1e9,
        "gmacs_per_iteration": total / n / 2e9,
        "convention": "FLOPs = 2 x multiply-accumulates of convolutions and matmuls (torch FlopCounterMode)",
    }
