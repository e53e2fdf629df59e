"""Two-stage background recovery (Li & Lun, IEEE SPL 2019): U-Nets F1 and F2, the WGAN critic, and
the confidence-map edge split of TS Eq. 5-6.

Top-down: the blocks (encoder level, decoder level), :class:`UNet` (paper Sec. IV-A, Fig. 2a),
:class:`WGANDiscriminator` (Fig. 2b, Eq. 7-8), :class:`TwoStage` with its output
:class:`TwoStageOutput`, then the functions of Sec. III: :func:`gradient_magnitude`,
:func:`confidence_map` (Eq. 5), :func:`two_means_threshold` (the K = 2 clustering before Eq. 6),
:func:`edge_masks` / :func:`edge_sets` (Eq. 6) and :func:`ground_truth_edge_masks` /
:func:`ground_truth_edge_sets` (the release's stage-2 training inputs).

The paper gives the structure but not the widths; the widths, kernel sizes and the 4000-channel
bottleneck are the authors' release (github tingtianli/RM2S, ``models/unet_full_cat3.py``), see
:class:`UNet` for the one structural difference and the parameter count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from kornia.color import rgb_to_grayscale
from kornia.filters import filter2d, spatial_gradient
from torch import nn

from sirr.errors import SirrError
from sirr.models.padding import pad_to_multiple

__all__ = [
    "TwoStageInputError",
    "EncoderLevel",
    "DecoderLevel",
    "UNet",
    "WGANDiscriminator",
    "TwoStageOutput",
    "TwoStage",
    "TwoMeans",
    "gradient_magnitude",
    "confidence_map",
    "two_means_threshold",
    "edge_masks",
    "edge_sets",
    "ground_truth_edge_masks",
    "ground_truth_edge_sets",
    "RELEASE_EDGE_MARGINS",
    "ENCODER_WIDTHS",
    "DECODER_WIDTHS",
    "BOTTLENECK",
    "UNET_PARAMETERS",
    "UNET_PARAMETERS_STAGE2",
    "MULTIPLE",
    "PRESET_WIDTH_SCALE",
]

#: Release widths (``nef = ngf = 64``, ``nBottleneck = 4000``): encoder levels 1-5, decoder levels 2-6, level 6.
ENCODER_WIDTHS = (64, 64, 128, 256, 512)
DECODER_WIDTHS = (256, 128, 128, 64, 64)
BOTTLENECK = 4000
#: Parameters of :class:`UNet` with the defaults: F1 (3 input channels) and F2 (9 input channels, z = [I, E_B, E_R]).
UNET_PARAMETERS = 115_275_734
UNET_PARAMETERS_STAGE2 = 115_286_498
#: Width multiplier per preset used by :meth:`TwoStage.for_preset` (smoke: 1/8 — F1 1,804,670 parameters).
PRESET_WIDTH_SCALE = {"smoke": 0.125}
#: Six stride-2 levels: inputs are padded to a multiple of 2^6 and cropped back.
MULTIPLE = 64
#: The release's (c1, c2) margins of the edge split (``edge_masks``); "perceptual" equals Eq. 6 exactly.
RELEASE_EDGE_MARGINS = {"perceptual": (0.5, 0.5), "fidelity": (0.2, 0.8)}
#: skimage ``rgb2gray`` weights (ITU-R BT.709), as the release greys images before the Sobel filter.
_GREY = (0.2125, 0.7154, 0.0721)


class TwoStageInputError(SirrError, ValueError):
    """An input the two-stage networks or the confidence-map functions cannot take."""


def _check_image(x: Any, name: str, channels: int | tuple[int, ...] = 3) -> None:
    allowed = (channels,) if isinstance(channels, int) else channels
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] not in allowed:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        want = " or ".join(str(c) for c in allowed)
        raise TwoStageInputError(f"{name} expects a (B, {want}, H, W) tensor; got {shape}")
    if not x.is_floating_point():
        raise TwoStageInputError(f"{name} expects a floating-point image in [0, 1]; got dtype {x.dtype}")
    if x.numel() == 0:
        raise TwoStageInputError(f"{name} got an empty tensor of shape {tuple(x.shape)}")


# ----------------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------------


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, padding: int, act: nn.Module) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout), act]


class EncoderLevel(nn.Sequential):
    """Encoder level (paper: stride-2 conv, BatchNorm, ReLU; release ``down``).

    4×4 stride-2 conv keeping the width, then two 5×5 convs to
    ``out_channels``; every conv without bias and followed by BatchNorm and
    ReLU. Halves H and W.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        cin, cout = in_channels, out_channels
        super().__init__(
            # (B, cin, H, W) → (B, cin, H/2, W/2)
            *_conv_bn(cin, cin, 4, 2, 1, nn.ReLU(inplace=True)),
            # → (B, cout, H/2, W/2)
            *_conv_bn(cin, cout, 5, 1, 2, nn.ReLU(inplace=True)),
            *_conv_bn(cout, cout, 5, 1, 2, nn.ReLU(inplace=True)),
        )


class DecoderLevel(nn.Module):
    """Decoder level (paper: deconv + BatchNorm + LeakyReLU; release ``up``).

    Concatenates the encoder skip with the input ([skip, x]), 4×4 stride-2
    transposed conv keeping the width, then two 5×5 convs to
    ``out_channels``; no biases, each followed by BatchNorm and
    LeakyReLU(0.2). Doubles H and W.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        lrelu = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        cin, cout = in_channels, out_channels
        # (B, cin, H, W) → (B, cin, 2H, 2W)
        self.up = nn.ConvTranspose2d(cin, cin, 4, 2, 1, bias=False)
        self.convs = nn.Sequential(  # → (B, cout, 2H, 2W)
            nn.BatchNorm2d(cin), lrelu(),
            *_conv_bn(cin, cout, 5, 1, 2, lrelu()),
            *_conv_bn(cout, cout, 5, 1, 2, lrelu()),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([skip, x], dim=1)  # [skip, x]: (B, in_channels, H, W)
        return self.convs(self.up(x))  # (B, out_channels, 2H, 2W)


def _scaled(widths: Sequence[int], scale: float) -> tuple[int, ...]:
    return tuple(max(1, int(round(int(w) * scale))) for w in widths)


def _init_dcgan(module: nn.Module, std: float, generator: torch.Generator | None) -> None:
    """DCGAN initialisation: conv weights ~ N(0, std), BatchNorm scales ~ N(1, std), biases 0.

    Skipped on the ``meta`` device (shapes only, e.g. to count the parameters of the release widths).
    """
    if any(p.is_meta for p in module.parameters()):
        return
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, std, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, std, generator=generator)
                nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------------


class UNet(nn.Module):
    """The U-Net auto-encoder of both stages (TS Sec. IV-A, Fig. 2a): F1 (B_ini = F1(I), Eq. 2-4) and F2 (Eq. 7).

    Paper: "the encoder contains 6 levels of stride-two convolutional layers, followed by batch
    normalization layer and ReLU. The decoder part consists of also 6 levels of deconvolutional
    layer, followed by batch normalization layer and leaky ReLU", with skip concatenation at each
    level. Widths are the release's (the paper gives none):

    - levels 1-5: :class:`EncoderLevel` to ``widths`` = 64, 64, 128, 256, 512;
    - level 6 (bottleneck): 4×4 stride-2 conv to ``bottleneck`` = 4000 channels + BatchNorm + ReLU,
      undone by a 4×4 stride-2 transposed conv back to 512 + BatchNorm + LeakyReLU(0.2);
    - decoder levels: :class:`DecoderLevel` on [skip, x] to ``decoder_widths`` = 256, 128, 128, 64, 64;
    - head: 5×5 conv to ``out_channels`` (no bias), then a Sigmoid (the release applies it outside).

    With the defaults F1 has exactly 115,275,734 parameters (:data:`UNET_PARAMETERS`; F2 with 9 input
    channels 115,286,498), the same count as the release's network: the one structural difference is
    the bottleneck, which the release makes an unpadded 4×4 conv (8×8 → 5×5 at 256², so inputs need
    sides divisible by 32 and ≥ 128); ours is the paper's sixth stride-2 level (padding 1, 8×8 → 4×4),
    which keeps the network fully convolutional. ``width_scale`` multiplies every width and the
    bottleneck (rounded; :meth:`TwoStage.for_preset` uses 1/8 at ``smoke``). Any H×W is accepted:
    padded right/bottom to a multiple of 64 (reflect, or replicate where a side is too small to
    reflect) and cropped back, so a 97×131 input gives a 97×131 output. In training mode BatchNorm needs more than one value at the
    bottleneck: a single image padded to 64×64 raises :class:`TwoStageInputError` (use a batch ≥ 2,
    a larger input or ``eval()``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        widths: Sequence[int] = ENCODER_WIDTHS,
        decoder_widths: Sequence[int] = DECODER_WIDTHS,
        bottleneck: int = BOTTLENECK,
        width_scale: float = 1.0,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not width_scale > 0:
            raise ValueError(f"UNet: width_scale must be positive; got {width_scale}")
        widths, decoder_widths = _scaled(widths, width_scale), _scaled(decoder_widths, width_scale)
        bottleneck = _scaled((bottleneck,), width_scale)[0]
        if len(widths) != 5 or len(decoder_widths) != 5:
            raise ValueError(
                f"UNet has 5 encoder levels plus the bottleneck level: widths and decoder_widths need 5 values each; "
                f"got {widths} and {decoder_widths}"
            )
        if min(widths + decoder_widths + (bottleneck, in_channels, out_channels)) < 1:
            raise ValueError("UNet widths, bottleneck and channel counts must be positive")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.config: dict[str, Any] = dict(
            in_channels=in_channels, out_channels=out_channels, widths=widths, decoder_widths=decoder_widths,
            bottleneck=bottleneck, width_scale=1.0, init_std=init_std,
        )
        ins = (in_channels,) + widths[:-1]
        self.encoder = nn.ModuleList(EncoderLevel(cin, cout) for cin, cout in zip(ins, widths))
        self.bottleneck = nn.Sequential(*_conv_bn(widths[-1], bottleneck, 4, 2, 1, nn.ReLU(inplace=True)))
        self.bottleneck_up = nn.Sequential(
            nn.ConvTranspose2d(bottleneck, widths[-1], 4, 2, 1, bias=False),
            nn.BatchNorm2d(widths[-1]),
            nn.LeakyReLU(0.2, inplace=True),
        )
        skips = widths[::-1]  # level 5's output joins first
        x_in = (widths[-1],) + decoder_widths[:-1]
        self.decoder = nn.ModuleList(
            DecoderLevel(s + x, cout) for s, x, cout in zip(skips, x_in, decoder_widths)
        )
        self.head = nn.Conv2d(decoder_widths[-1], out_channels, 5, 1, 2, bias=False)
        _init_dcgan(self, init_std, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) → (B, out_channels, H, W) in (0, 1)."""
        _check_image(x, "UNet", self.in_channels)
        h, w = x.shape[-2:]
        # padded (reflect/replicate) to (B, C, H', W'), H', W' multiples of 64
        x = pad_to_multiple(x, MULTIPLE)
        b, _, hp, wp = x.shape
        if self.training and b * (hp // MULTIPLE) * (wp // MULTIPLE) == 1:
            raise TwoStageInputError(
                f"UNet in training mode got one {h}x{w} image, which leaves "
                "a single value per channel at the 1x1 bottleneck where "
                "BatchNorm needs more: use a batch of >= 2, sides > 64, "
                "or model.eval()"
            )
        skips = []
        for level in self.encoder:  # levels 1-5
            x = level(x)  # (B, widths[i], H'/2^(i+1), W'/2^(i+1))
            skips.append(x)
        # level 6: (B, bottleneck, H'/64, W'/64),
        # then back up to (B, widths[-1], H'/32, W'/32)
        x = self.bottleneck_up(self.bottleneck(x))
        for level, skip in zip(self.decoder, reversed(skips)):  # [skip, x]
            x = level(x, skip)  # (B, decoder_widths[i], H'/2^(4-i), W'/2^(4-i))
        y = torch.sigmoid(self.head(x))  # (B, out_channels, H', W') in (0, 1)
        return y[..., :h, :w]  # cropped back: (B, out_channels, H, W)


class WGANDiscriminator(nn.Module):
    """The WGAN critic D of TS Eq. 7-8 (paper Fig. 2b): six stride-2 blocks to one raw score per image.

    "Six blocks of stride-two convolutional layers, batch normalization layers and leaky ReLU": 4×4
    stride-2 convs to 64, 128, 256, 512, 512, 512 channels (``width`` × 1, 2, 4, 8, 8, 8), no biases,
    LeakyReLU(0.2), BatchNorm from the second block on (the release's ``_netlocalD``, DCGAN-style,
    has none after the first). A final 4×4 unpadded conv maps the 4×4 map to the score; other sizes
    are average-pooled to 4×4 first (identity at 256², the release's size), so any H, W ≥ 64 works.
    Returns shape (B,), no sigmoid (WGAN); train it with :func:`sirr.losses.critic_loss` and
    :func:`sirr.losses.clip_critic_weights`.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.config: dict[str, Any] = dict(in_channels=in_channels, width=width, init_std=init_std)
        widths = [width * m for m in (1, 2, 4, 8, 8, 8)]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += _conv_bn(cin, cout, 4, 2, 1, nn.LeakyReLU(0.2, inplace=True))
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.score = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)
        _init_dcgan(self, init_std, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Critic scores D(x), shape (B,), for images x (B, 3, H, W) with H, W ≥ 64."""
        _check_image(x, "WGANDiscriminator", self.in_channels)
        if min(x.shape[-2:]) < MULTIPLE:
            raise TwoStageInputError(
                f"WGANDiscriminator needs H, W >= 64 (six stride-2 blocks); got {tuple(x.shape[-2:])}: crop larger"
            )
        return self.score(self.pool(self.blocks(x))).flatten()


@dataclass
class TwoStageOutput:
    """Everything :meth:`TwoStage.forward` computes (TS Sec. II-III, paper Fig. 1).

    ``b_initial`` B_ini = F1(I) (B, 3, H, W); ``residual`` I − B_ini (Fig. 1f); ``confidence`` C_rf of
    Eq. 5 (B, 1, H, W); ``threshold`` ξ per image (B,) from the 2-means split; ``edges_background`` E_B
    and ``edges_reflection`` E_R of Eq. 6 (I masked, (B, 3, H, W)); ``b_final`` B_final = F2([I, E_B,
    E_R]) (Fig. 1h). ``centres`` (B, 2) are the cluster centres (low, high); ``background_mask`` and
    ``reflection_mask`` (B, 1, H, W, bool) the edge sets as masks.
    """

    b_initial: torch.Tensor
    residual: torch.Tensor
    confidence: torch.Tensor
    threshold: torch.Tensor
    edges_background: torch.Tensor
    edges_reflection: torch.Tensor
    b_final: torch.Tensor
    centres: torch.Tensor | None = None
    background_mask: torch.Tensor | None = None
    reflection_mask: torch.Tensor | None = None

    @property
    def transmission(self) -> torch.Tensor:
        """The recovered background, B_final (the name the LA model uses)."""
        return self.b_final


class TwoStage(nn.Module):
    """Two-stage reflection removal (TS Sec. II-III): F1 → confidence map and edge split → F2, plus the critic D.

    - ``stage1`` (F1, :class:`UNet`, 3 → 3): B_ini = F1(I), trained with L_ini = L_rec + L_FR (Eq. 2-4).
    - Confidence map C_rf (Eq. 5, :func:`confidence_map`) from I and B_ini; 2-means on its non-zero
      values (:func:`two_means_threshold`) gives ξ; E_B, E_R = I masked by C_rf < ξ, C_rf > ξ (Eq. 6,
      :func:`edge_sets`). ``c1``/``c2`` switch to the release's margins (see :func:`edge_masks`).
    - ``stage2`` (F2, :class:`UNet`, 9 → 3): B_final = F2(z) with z = [I, E_B, E_R] (paper and release;
      B_ini is not an input of F2), trained with L_2 (Eq. 7).
    - ``discriminator`` (D, :class:`WGANDiscriminator`): the WGAN critic of Eq. 7-8.

    The confidence map and edge split run without gradient (they are hard masks): B_final's gradient
    reaches F2 only, as the paper trains the stages one after the other. ``widths``,
    ``decoder_widths``, ``bottleneck`` and ``width_scale`` (a multiplier on all of them and on the
    critic's width) go to both U-Nets; :meth:`for_preset` picks the scale per preset. Pass a
    ``generator`` for a seeded initialisation. ``config`` holds the constructor arguments (for
    checkpoints: ``TwoStage(**model.config)`` rebuilds the same network).
    """

    def __init__(
        self,
        widths: Sequence[int] = ENCODER_WIDTHS,
        decoder_widths: Sequence[int] = DECODER_WIDTHS,
        bottleneck: int = BOTTLENECK,
        discriminator_width: int = 64,
        width_scale: float = 1.0,
        eps: float = 1e-7,
        mask_threshold: float = 1.0,
        ksize: int = 5,
        c1: float | None = None,
        c2: float | None = None,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if (c1 is None) != (c2 is None):
            raise ValueError("give both c1 and c2 (the release's margins) or neither (the paper's Eq. 6 threshold)")
        self.config: dict[str, Any] = dict(
            widths=tuple(widths), decoder_widths=tuple(decoder_widths), bottleneck=bottleneck,
            discriminator_width=discriminator_width, width_scale=width_scale, eps=eps, mask_threshold=mask_threshold, ksize=ksize,
            c1=c1, c2=c2, init_std=init_std,
        )
        self.eps, self.mask_threshold, self.ksize, self.c1, self.c2 = eps, mask_threshold, ksize, c1, c2
        unet = dict(widths=widths, decoder_widths=decoder_widths, bottleneck=bottleneck, width_scale=width_scale,
                    init_std=init_std, generator=generator)
        self.stage1 = UNet(3, 3, **unet)
        self.stage2 = UNet(9, 3, **unet)
        self.discriminator = WGANDiscriminator(3, _scaled((discriminator_width,), width_scale)[0], init_std, generator)

    @classmethod
    def for_preset(cls, preset: Any, **kwargs: Any) -> TwoStage:
        """The network for a preset (a :class:`sirr.config.Preset`, a RunConfig or a preset name).

        Widths follow ``preset.ts.width_scale`` when the preset has one, else :data:`PRESET_WIDTH_SCALE`
        (``smoke``: 1/8 of the release's widths so CPU runs take seconds; others: the release's).
        ``kwargs`` override anything.
        """
        preset = getattr(preset, "preset", preset)
        name = preset if isinstance(preset, str) else getattr(preset, "name", "")
        scale = getattr(getattr(preset, "ts", None), "width_scale", None)
        kwargs.setdefault("width_scale", scale if scale is not None else PRESET_WIDTH_SCALE.get(name, 1.0))
        return cls(**kwargs)

    def initial(self, I: torch.Tensor) -> torch.Tensor:
        """B_ini = F1(I) (TS Eq. 2-4): the stage-1 background estimate, (B, 3, H, W)."""
        _check_image(I, "TwoStage.initial")
        return self.stage1(I)

    def refine(
        self, I: torch.Tensor, b_initial: torch.Tensor | None, e_b: torch.Tensor, e_r: torch.Tensor
    ) -> torch.Tensor:
        """B_final = F2(z), z = [I, E_B, E_R] (TS Sec. III, Eq. 7).

        ``b_initial`` is not part of z (paper and release); it is accepted (or None) so callers pass
        the whole stage-1 state, and only its shape is checked.
        """
        _check_image(I, "TwoStage.refine")
        for name, t in (("e_b", e_b), ("e_r", e_r)) + ((("b_initial", b_initial),) if b_initial is not None else ()):
            if not isinstance(t, torch.Tensor) or t.shape != I.shape:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise TwoStageInputError(f"TwoStage.refine: {name} must have I's shape {tuple(I.shape)}; got {shape}")
        return self.stage2(torch.cat([I, e_b, e_r], dim=1))

    @torch.no_grad()
    def split(self, I: torch.Tensor, b_initial: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 5-6 for a batch: ``confidence``, ``threshold`` (B,), ``centres`` (B, 2), the masks and E_B, E_R."""
        conf = confidence_map(I, b_initial, eps=self.eps, mask_threshold=self.mask_threshold, ksize=self.ksize)
        splits = [two_means_threshold(c) for c in conf]
        background, reflection = edge_masks(conf, splits, c1=self.c1, c2=self.c2)
        e_b, e_r = I * background, I * reflection
        return dict(
            confidence=conf,
            threshold=torch.tensor([s.threshold for s in splits], dtype=I.dtype, device=I.device),
            centres=torch.tensor([[s.low, s.high] for s in splits], dtype=I.dtype, device=I.device),
            background_mask=background, reflection_mask=reflection, edges_background=e_b, edges_reflection=e_r,
        )

    def forward(self, I: torch.Tensor) -> TwoStageOutput:
        """Run both stages on I (B, 3, H, W) in [0, 1]; see :class:`TwoStageOutput`."""
        b_initial = self.initial(I)
        parts = self.split(I, b_initial.detach().float().to(I.dtype))
        b_final = self.refine(I, b_initial, parts["edges_background"], parts["edges_reflection"])
        return TwoStageOutput(b_initial=b_initial, residual=I - b_initial, b_final=b_final, **parts)


# ----------------------------------------------------------------------------------------------------
# Confidence map and edge split (TS Sec. III)
# ----------------------------------------------------------------------------------------------------


def _sobel_kernels_5x5() -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's 5×5 Sobel kernels: binomial smoothing (1, 4, 6, 4, 1) ⊗ derivative (−1, −2, 0, 2, 1)."""
    smooth = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64)
    deriv = torch.tensor([-1.0, -2.0, 0.0, 2.0, 1.0], dtype=torch.float64)
    kx = torch.outer(smooth, deriv)
    return kx, kx.T.contiguous()


def gradient_magnitude(x: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """Sobel gradient magnitude G of TS Eq. 5: sqrt(gx² + gy²) of the grey image, (B, 1, H, W).

    As the release: RGB is greyed with skimage's ``rgb2gray`` weights (0.2125, 0.7154, 0.0721), values
    stay in [0, 1], the Sobel kernels are OpenCV's unnormalised 5×5 ones (``ksize=5``; ``ksize=3``
    uses kornia's unnormalised 3×3 Sobel), borders reflected as OpenCV does (reflect-101). A unit
    step edge has magnitude 48 with ``ksize=5`` (4 with ``ksize=3``), so the paper's threshold
    "magnitude larger than 1" keeps steps of about 1/48 and more. One-channel input is used as grey.
    """
    _check_image(x, "gradient_magnitude", (1, 3))
    if ksize not in (3, 5):
        raise ValueError(f"gradient_magnitude: ksize must be 3 or 5 (Sobel aperture); got {ksize}")
    x = x.double()  # float64 (one channel, cheap) so flat regions give exactly 0, not convolution round-off
    grey = rgb_to_grayscale(x, torch.tensor(_GREY, device=x.device, dtype=x.dtype)) if x.shape[1] == 3 else x
    if ksize == 3:
        g = spatial_gradient(grey, mode="sobel", order=1, normalized=False)  # (B, 1, 2, H, W)
        gx, gy = g[:, :, 0], g[:, :, 1]
    else:
        kx, ky = (k.to(x.device)[None] for k in _sobel_kernels_5x5())
        border = "reflect" if min(grey.shape[-2:]) > 2 else "replicate"
        gx, gy = filter2d(grey, kx, border_type=border), filter2d(grey, ky, border_type=border)
    return torch.sqrt(gx * gx + gy * gy).float()


def confidence_map(
    I: torch.Tensor,
    b_initial: torch.Tensor,
    eps: float = 1e-7,
    mask_threshold: float = 1.0,
    ksize: int = 5,
) -> torch.Tensor:
    """Reflection-gradient confidence C_rf of TS Eq. 5, (B, 1, H, W):

    C_rf = log(G_{I−B_ini} / (G_{B_ini} + ε) + 1) · M,   M = [G_I > 1],

    G from :func:`gradient_magnitude` (5×5 Sobel), ε = 1e-7 (release). High
    where I − B_ini has a strong gradient that B_ini lacks (a reflection
    edge), low where B_ini keeps the edge (a background edge whose
    attenuated copy is in the residual), 0 off the mask.
    """
    _check_image(I, "confidence_map (I)")
    if not isinstance(b_initial, torch.Tensor) or b_initial.shape != I.shape:
        shape = (tuple(b_initial.shape) if isinstance(b_initial, torch.Tensor)
                 else type(b_initial).__name__)
        raise TwoStageInputError(
            "confidence_map: b_initial must have I's shape "
            f"{tuple(I.shape)}; got {shape}")
    if eps <= 0:
        raise ValueError(f"confidence_map: eps must be positive; got {eps}")
    I, b_initial = I.float(), b_initial.float()
    g_res = gradient_magnitude(I - b_initial, ksize)  # G_{I−B_ini}
    g_ini = gradient_magnitude(b_initial, ksize)  # G_{B_ini}: (B, 1, H, W)
    mask = gradient_magnitude(I, ksize) > mask_threshold  # M = [G_I > 1]
    return torch.log(g_res / (g_ini + eps) + 1.0) * mask  # C_rf, TS Eq. 5


class TwoMeans(NamedTuple):
    """Exact 2-means split of the non-zero confidence values (TS Sec. III, K = 2; release ``KMeans``).

    ``low`` and ``high`` are the cluster centres (the release's TH2, TH1), ``threshold`` ξ = their
    midpoint (the K-means decision boundary used in Eq. 6), ``count`` the number of values clustered.
    """

    threshold: float
    low: float
    high: float
    count: int

    def margins(self, c1: float, c2: float) -> tuple[float, float]:
        """The release's thresholds: (reflection above TH1 − c1(TH1 − TH2), background below TH2 + c2(TH1 − TH2))."""
        gap = self.high - self.low
        return self.high - c1 * gap, self.low + c2 * gap


def two_means_threshold(
    values: torch.Tensor | np.ndarray | Sequence[float],
) -> TwoMeans:
    """Globally optimal 2-means of the non-zero ``values``: ξ of TS Eq. 6.

    ``values`` may have any shape. In 1-D an optimal 2-clustering splits the
    sorted values into a prefix and a suffix, so sorting and prefix sums try
    every split in O(n log n): the split maximising k·μ_low² + (n−k)·μ_high²
    (equivalently minimising the within-cluster sum of squares) wins, the
    first on ties; splits only between distinct values. Deterministic, no
    iterations or random restarts (the release runs sklearn's ``KMeans``, a
    local search, on the same values). Zeros are ignored (off the mask M);
    no non-zero values gives ``TwoMeans(0, 0, 0, 0)``, a single distinct
    value low = high = ξ.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        raise ValueError("two_means_threshold: values contain NaN or infinity")
    v = np.sort(v[v != 0])  # non-zero values (zeros: off M), ascending
    n = int(v.size)
    if n == 0:
        return TwoMeans(0.0, 0.0, 0.0, 0)
    if v[0] == v[-1]:
        return TwoMeans(float(v[0]), float(v[0]), float(v[0]), n)
    shift = v.mean()
    # sums of the k lowest (shifted), k = 1..n-1: (n-1,)
    prefix = np.cumsum(v - shift)[:-1]
    total = float(np.sum(v - shift))
    k = np.arange(1, n, dtype=np.float64)
    # k·μ_low² + (n−k)·μ_high² of every split (of the shifted values)
    score = prefix**2 / k + (total - prefix) ** 2 / (n - k)
    score[v[1:] == v[:-1]] = -np.inf  # split only between distinct values
    best = int(np.argmax(score)) + 1  # the first maximum: k lowest are "low"
    low, high = float(v[:best].mean()), float(v[best:].mean())
    return TwoMeans((low + high) / 2.0, low, high, n)  # ξ = the midpoint


def _per_image(values: Any, batch: int, name: str) -> torch.Tensor:
    if isinstance(values, (TwoMeans, int, float)):
        values = [values] * batch
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
        values = values * batch if len(values) == 1 else values
    values = list(values)
    if len(values) != batch:
        raise TwoStageInputError(f"edge_masks: {name} needs one value per image ({batch}); got {len(values)}")
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


def edge_masks(
    confidence: torch.Tensor,
    split: TwoMeans | float | Sequence[TwoMeans] | Sequence[float] | torch.Tensor,
    c1: float | None = None,
    c2: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Background and reflection edge masks of TS Eq. 6, each (B, 1, H, W) bool.

    Paper (``c1 = c2 = None``): E_R where C_rf > ξ, E_B where C_rf < ξ, with ξ from ``split`` (a
    :class:`TwoMeans`, a number, or one per image). Release (``c1``, ``c2`` and ``split`` TwoMeans):
    reflection where C_rf > TH1 − c1(TH1 − TH2), background where C_rf < TH2 + c2(TH1 − TH2); its
    c1 = c2 = 0.5 is exactly Eq. 6, (0.2, 0.8) favours background fidelity
    (:data:`RELEASE_EDGE_MARGINS`). Both sets lie where C_rf ≠ 0, i.e. inside the strong-gradient set
    E_I = M (a pixel of M with G_{I−B_ini} exactly 0 has C_rf = 0 and is left out, as the release does).
    """
    if not isinstance(confidence, torch.Tensor) or confidence.ndim != 4 or confidence.shape[1] != 1:
        shape = tuple(confidence.shape) if isinstance(confidence, torch.Tensor) else type(confidence).__name__
        raise TwoStageInputError(f"edge_masks expects a (B, 1, H, W) confidence map; got {shape}")
    if (c1 is None) != (c2 is None):
        raise ValueError("edge_masks: give both c1 and c2 (release margins) or neither (paper threshold)")
    batch = confidence.shape[0]
    splits = [split] * batch if isinstance(split, (TwoMeans, int, float)) else split
    if c1 is None:
        th = [s.threshold if isinstance(s, TwoMeans) else s for s in splits]  # type: ignore[union-attr]
        above = below = _per_image(th, batch, "split")
    else:
        if not all(isinstance(s, TwoMeans) for s in splits):  # type: ignore[union-attr]
            raise TwoStageInputError("edge_masks: the release margins c1, c2 need TwoMeans splits (the two centres)")
        pairs = [s.margins(c1, c2) for s in splits]  # type: ignore[union-attr]
        above = _per_image([p[0] for p in pairs], batch, "split")
        below = _per_image([p[1] for p in pairs], batch, "split")
    c = confidence.double()
    above = above.to(c.device)[:, None, None, None]
    below = below.to(c.device)[:, None, None, None]
    nonzero = c != 0
    return nonzero & (c < below), nonzero & (c > above)


def edge_sets(
    I: torch.Tensor,
    confidence: torch.Tensor,
    split: TwoMeans | float | Sequence[TwoMeans] | Sequence[float] | torch.Tensor,
    c1: float | None = None,
    c2: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """E_B, E_R of TS Eq. 6: the image I masked by the background / reflection edge masks (:func:`edge_masks`).

    Returns two (B, 3, H, W) tensors, the stage-2 inputs beside I (z = [I, E_B, E_R]).
    """
    _check_image(I, "edge_sets (I)")
    if confidence.shape[0] != I.shape[0] or confidence.shape[-2:] != I.shape[-2:]:
        raise TwoStageInputError(
            f"edge_sets: confidence {tuple(confidence.shape)} does not match I {tuple(I.shape)} in batch and size"
        )
    background, reflection = edge_masks(confidence, split, c1, c2)
    return I * background, I * reflection


def ground_truth_edge_masks(
    I: torch.Tensor, T: torch.Tensor, R: torch.Tensor, threshold: float = 0.5, ksize: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Background and reflection edge masks from ground truth, (B, 1, H, W) bool each (the release's F2 training).

    E = [G(I) > 0.5]; background where G(T) > G(R), reflection where G(T) < G(R) (G:
    :func:`gradient_magnitude`). Not in the paper, whose path (also the release's at test time) is
    :func:`confidence_map` → :func:`edge_masks`.
    """
    _check_image(I, "ground_truth_edge_masks (I)")
    for name, t in (("T", T), ("R", R)):
        if not isinstance(t, torch.Tensor) or t.shape != I.shape:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise TwoStageInputError(f"ground truth edges: {name} must have I's shape {tuple(I.shape)}; got {shape}")
    with torch.no_grad():
        edges = gradient_magnitude(I, ksize) > threshold
        g_t, g_r = gradient_magnitude(T, ksize), gradient_magnitude(R, ksize)
        return edges & (g_t > g_r), edges & (g_t < g_r)


def ground_truth_edge_sets(
    I: torch.Tensor, T: torch.Tensor, R: torch.Tensor, threshold: float = 0.5, ksize: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage-2 training inputs E_B, E_R built from ground truth, as the release trains F2 (not in the paper).

    I masked by :func:`ground_truth_edge_masks`; two (B, 3, H, W) tensors, the same layout as
    :func:`edge_sets` gives at test time.
    """
    background, reflection = ground_truth_edge_masks(I, T, R, threshold, ksize)
    return I * background, I * reflection
