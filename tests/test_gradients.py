"""Edge map E (CEILNet) and normalised absolute Laplacian L (LA Fig. 4) on tiny constructed images."""

from __future__ import annotations

import pytest
import torch

from sirr.gradients import (
    LAPLACIAN_KERNEL,
    GradientMapError,
    edge_map,
    laplacian_map,
    multiscale_responses,
    region_energy,
)


def step(s: int = 12, at: int = 6, lo: float = 0.2, hi: float = 0.7) -> torch.Tensor:
    x = torch.full((2, 3, s, s), lo)
    x[..., at:] = hi
    return x


def ramp(s: int = 12) -> torch.Tensor:
    return torch.linspace(0, 1, s).expand(1, 3, s, s).contiguous()


@pytest.mark.parametrize("fn", [edge_map, laplacian_map])
def test_step_edge_peaks_at_edge_and_is_zero_on_flat(fn):
    m = fn(step())
    assert m.shape == (2, 1, 12, 12)
    col = m[0, 0].mean(dim=0)
    assert set(col.argsort(descending=True)[:2].tolist()) == {5, 6}  # the two columns either side of the step
    assert col[5].item() == pytest.approx(1.0) and col[6].item() == pytest.approx(1.0)
    assert m[0, 0, :, :5].abs().max().item() == 0.0 and m[0, 0, :, 7:].abs().max().item() == 0.0


def test_step_edge_known_unnormalised_values():
    # bound normalisation keeps magnitudes: a 0.5 step in 3 channels gives E = 3 * 0.5 / 2 / 6 on either side
    assert edge_map(step(), "bound")[0, 0, 3, 5].item() == pytest.approx(3 * 0.25 / 6)
    # Laplacian: |4x - neighbours| = 0.5 on either side of the step, 3 channels, bound 12
    assert laplacian_map(step(), "bound")[0, 0, 3, 6].item() == pytest.approx(3 * 0.5 / 12)


def test_ramp_laplacian_vanishes_inside_edge_map_constant():
    r = ramp()
    L = laplacian_map(r, "bound")[0, 0]
    assert L[:, 1:-1].abs().max().item() < 1e-6  # second derivative of a linear ramp
    E = edge_map(r)[0, 0]
    inner = E[:, 1:-1]
    torch.testing.assert_close(inner, torch.ones_like(inner))  # constant slope: constant edge map
    torch.testing.assert_close(E[:, 0], torch.full((12,), 0.5))  # one missing neighbour at the border (CEILNet)


@pytest.mark.parametrize("fn", [edge_map, laplacian_map])
@pytest.mark.parametrize("normalize", ["max", "bound"])
def test_range_and_flat_image(fn, normalize):
    x = torch.rand(3, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    m = fn(x, normalize)
    assert m.shape == (3, 1, 16, 20)
    assert m.min() >= 0 and m.max() <= 1
    if normalize == "max":
        torch.testing.assert_close(m.amax(dim=(1, 2, 3)), torch.ones(3))
    assert fn(torch.full((1, 3, 8, 8), 0.3), normalize).abs().max().item() == 0.0


def test_laplacian_bound_is_reached_by_an_isolated_bright_pixel():
    x = torch.zeros(1, 3, 7, 7)
    x[..., 3, 3] = 1
    assert laplacian_map(x, "bound")[0, 0, 3, 3].item() == pytest.approx(1.0)
    assert LAPLACIAN_KERNEL.sum().item() == 0


def test_custom_kernel_and_errors():
    x = step()
    edge_kernel = torch.tensor([[0.0, 0.0, 0.0], [0.0, -1.0, 1.0], [0.0, 0.0, 0.0]])  # forward x-derivative
    m = laplacian_map(x, kernel=edge_kernel)
    assert m[0, 0, 3, 5].item() == pytest.approx(1.0) and m[0, 0, 3, 6].item() == 0.0
    with pytest.raises(GradientMapError, match=r"\(B, C, H, W\)"):
        edge_map(torch.rand(3, 8, 8))
    with pytest.raises(GradientMapError, match="normalize"):
        laplacian_map(x, "l2")


def test_edge_map_equals_ceilnet_compute_edge():
    """Transcription of CEILNet's computeEdge.lua (zero-filled one-sided gradients, averaged, summed over channels)."""
    x = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(1))
    xg1, xg2, yg1, yg2 = (torch.zeros_like(x) for _ in range(4))
    xg1[..., :-1] = x[..., 1:] - x[..., :-1]
    xg2[..., 1:] = x[..., 1:] - x[..., :-1]
    yg1[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    yg2[..., 1:, :] = x[..., 1:, :] - x[..., :-1, :]
    ref = ((xg1.abs() + xg2.abs()) / 2).sum(1, keepdim=True) + ((yg1.abs() + yg2.abs()) / 2).sum(1, keepdim=True)
    torch.testing.assert_close(edge_map(x, "bound"), ref / 6)


def test_multiscale_responses_and_region_energy():
    from sirr.models.location_aware import MultiScaleLaplacian

    x = step(s=64, at=32)
    resp = multiscale_responses(x, MultiScaleLaplacian(channels=3))
    assert resp.shape == (2, 4, 64, 64)
    mask = torch.zeros(2, 1, 64, 64, dtype=torch.bool)
    mask[..., 28:36] = True  # a band around the step
    e = region_energy(resp, mask, border=8)
    assert e.shape == (2, 4, 2)
    assert (e[..., 0] > 0).all()
    assert e[0, 3, 1].item() == pytest.approx(0.0, abs=1e-6)  # full scale: nothing away from the step
    assert (e[..., 0] > e[..., 1]).all()
    with pytest.raises(GradientMapError, match="does not match"):
        region_energy(resp, mask[..., :32])


def test_layer_response_ratio_linearity_and_blur_suppression():
    from sirr.gradients import layer_response_ratio
    from sirr.models.location_aware import MultiScaleLaplacian

    mlsm = MultiScaleLaplacian(channels=3)
    T = step(s=64, at=32)
    # the same layer on both sides: ratio exactly 1 at every scale, NaN outside an all-True mask
    r = layer_response_ratio(T, T.clone(), mlsm, border=8)
    assert r.shape == (2, 4, 2)
    torch.testing.assert_close(r[..., 0], torch.ones(2, 4))
    assert torch.isnan(r[..., 1]).all()
    # a blurred copy as R: the full-scale Laplacian suppresses it much more than the 1/8 scale does
    from sirr.data.synthesis import gaussian_blur

    R = gaussian_blur(T.transpose(-1, -2).contiguous(), torch.full((2,), 4.0))
    r = layer_response_ratio(T, R, mlsm, border=8)[..., 0]
    assert (r[:, 3] < 0.5).all() and (r[:, 0] > 2 * r[:, 3]).all()
    with pytest.raises(GradientMapError, match="same shape"):
        layer_response_ratio(T, R[..., :32], mlsm)
