"""The location-aware network (LA, Dong et al. 2021): release architecture, ablation flags, release loading."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from sirr.models.location_aware import (
    LAPLACIAN_KERNEL,
    LocationAware,
    LocationAwareDiscriminator,
    LocationAwareInputError,
    MultiScaleLaplacian,
    ReleaseCheckpointError,
    count_flops,
    release_key_map,
)

RELEASE_PARAMETERS = 10_925_719
SPEC_KEYS = Path(__file__).resolve().parents[2] / "shared" / "spec" / "location-aware-official-checkpoint-keys.txt"


def n_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def image(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def lively(model: LocationAware, seed: int = 0) -> LocationAware:
    """Re-initialise with a larger std so that small changes in the forward show up clearly in T."""
    model.init_weights(std=0.08, generator=torch.Generator().manual_seed(seed))
    return model


@pytest.fixture(scope="module")
def release_spec() -> list[tuple[str, tuple[int, ...]]]:
    if not SPEC_KEYS.is_file():
        pytest.skip(f"spec file {SPEC_KEYS} not present")
    rows = []
    for line in SPEC_KEYS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape = line.split(" ", 1)
            rows.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return rows


@pytest.fixture(scope="module")
def release_state(release_spec) -> dict[str, torch.Tensor]:
    """A random state dict with exactly the release's keys and shapes (PReLU slopes 0.25)."""
    g = torch.Generator().manual_seed(7)
    return {k: torch.full(s, 0.25) if s == (1,) else 0.05 * torch.randn(s, generator=g) for k, s in release_spec}


# --- architecture ---------------------------------------------------------------------------------


def test_release_parameter_count_and_key_map_match_the_spec(release_spec):
    model = LocationAware()
    assert n_params(model) == RELEASE_PARAMETERS
    assert sum(math.prod(s) for _, s in release_spec) == RELEASE_PARAMETERS
    key_map = release_key_map()
    assert list(key_map) == [k for k, _ in release_spec]  # every release key, in checkpoint order
    own = model.state_dict()
    assert sorted(key_map.values()) == sorted(own)
    assert all(tuple(own[key_map[k]].shape) == s for k, s in release_spec)


def test_forward_odd_size_shapes_iterations_and_ranges():
    model = LocationAware()
    out = model(image(1, 3, 37, 45))
    assert len(out.transmissions) == len(out.reflections) == len(out.rcmaps) == 3
    for t, r, c, th, tq in zip(out.transmissions, out.reflections, out.rcmaps, out.transmissions_half,
                               out.transmissions_quarter):
        assert t.shape == r.shape == (1, 3, 37, 45)
        assert c.shape == (1, 1, 37, 45)
        assert th.shape == (1, 3, 19, 23) and tq.shape == (1, 3, 10, 12)
        assert 0.0 <= float(c.detach().min()) and float(c.detach().max()) <= 1.0
    assert out.transmission is out.transmissions[-1]


def test_batch_items_are_independent_and_tiny_images_work():
    model = lively(LocationAware()).eval()
    x = image(2, 3, 20, 27)
    with torch.no_grad():
        both = model(x).transmission
        first = model(x[:1]).transmission
        tiny = model(image(1, 3, 5, 3)).transmission  # too small to reflect-pad: replicate
    torch.testing.assert_close(both[:1], first, rtol=1e-4, atol=1e-5)
    assert tiny.shape == (1, 3, 5, 3)


def test_eval_clamps_outputs_train_does_not():
    model = LocationAware()
    with torch.no_grad():
        model.transmission_net.out_full.bias.fill_(2.0)  # push T above 1
    x = image(1, 3, 16, 16)
    with torch.no_grad():
        assert float(model.train()(x).transmission.max()) > 1.5
        assert float(model.eval()(x).transmission.max()) == 1.0
        model.clamp_outputs = False
        assert float(model.eval()(x).transmission.max()) > 1.5


@pytest.mark.parametrize(
    "bad",
    [torch.rand(3, 16, 16), torch.rand(1, 1, 16, 16), torch.rand(1, 4, 16, 16),
     torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.rand(1, 3, 0, 16)],
)
def test_bad_input_raises_value_error(bad):
    with pytest.raises(ValueError, match="LocationAware"):
        LocationAware()(bad)
    assert issubclass(LocationAwareInputError, ValueError)


def test_bad_option_raises():
    with pytest.raises(ValueError, match="tsm_weight"):
        LocationAware(tsm_weight="C")
    with pytest.raises(ValueError, match="gradient_filter"):
        LocationAware(gradient_filter="sobel")


def test_determinism_same_seed_same_model_and_output():
    x = image(1, 3, 24, 24)
    a = LocationAware(generator=torch.Generator().manual_seed(3))
    b = LocationAware(generator=torch.Generator().manual_seed(3))
    c = LocationAware(generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.equal(a.image_in.weight, c.image_in.weight)
    with torch.no_grad():
        assert torch.equal(a(x).transmission, b(x).transmission)


def test_init_weights_follows_the_paper():
    model = LocationAware()
    w = model.transmission_net.bottleneck[0].weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.002 and abs(float(w.mean())) < 0.001
    assert float(model.transmission_net.bottleneck[0].bias.detach().abs().max()) == 0.0
    k_l = torch.tensor(LAPLACIAN_KERNEL)
    assert torch.equal(model.laplacian_kernel.detach(), k_l.expand(6, 1, 3, 3))


# --- ablations (LA Table 2) -----------------------------------------------------------------------

ABLATIONS = {
    "w/o RDM & TSM": dict(use_rdm_tsm=False),
    "w/o TSM": dict(use_tsm=False),
    "w/o LSTM": dict(use_lstm=False),
    "C from I_ft": dict(rcmap_from="image_features"),
    "SLSM": dict(multiscale=False),
    "Fix MLSM": dict(learn_laplacian=False),
    "Edge": dict(gradient_filter="edge"),
    "RKI": dict(kernel_init="random", laplacian_grad_clip=None),
    "w/o GC": dict(laplacian_grad_clip=None),
    "TSM weight C (text)": dict(tsm_weight="c"),
    "G_T gets 1-C (text)": dict(stage2_rcmap="one_minus_c"),
}
PARAM_DELTA = {  # change of the total parameter count against the release
    "w/o RDM & TSM": -(54 + 32 * 24 * 9 + 32 + 1 + 6 * (2 * 32 * 32 * 9 + 2 * (16 * 32) + 16 + 32 + 1) + 1
                       + 32 * 32 * 9 + 32 + 32 * 9 + 1 + 4 * 64 * 32 * 9),
    "w/o LSTM": -(4 * (128 * 64 * 9 + 64)) + (64 * 64 * 9 + 64),
    "SLSM": -(32 * 18 * 9),
    "Edge": 54 + 32 * 24 * 9,
}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_ablation_builds_runs_backward_and_changes_what_it_should(name):
    flags = ABLATIONS[name]
    model = LocationAware(**flags)
    assert n_params(model) == RELEASE_PARAMETERS + PARAM_DELTA.get(name, 0)
    x = image(1, 3, 32, 40)
    out = model(x)
    assert out.transmission.shape == (1, 3, 32, 40) and len(out.rcmaps) == 3
    (out.transmission.mean() + out.reflection.mean() + out.rcmap.mean()).backward()
    assert model.transmission_net.out_full.weight.grad.abs().sum() > 0
    assert model.image_in.weight.grad.abs().sum() > 0
    if name not in PARAM_DELTA:  # same tensors: with the same weights the output must differ
        ref = lively(LocationAware())
        variant = LocationAware(**flags)
        variant.load_state_dict(ref.state_dict())
        with torch.no_grad():
            diff = (variant(x).transmission - ref(x).transmission).abs().max()
        if name in ("Fix MLSM", "w/o GC"):  # training-only differences: forward identical
            assert float(diff) == 0.0
        elif name == "RKI":  # same forward from the same weights; the difference is the init
            assert not torch.equal(LocationAware(**flags).laplacian_kernel, ref.laplacian_kernel)
        else:
            assert float(diff) > 1e-4, name


def test_ablation_specifics():
    no_rdm = LocationAware(use_rdm_tsm=False)
    assert no_rdm.mlsm is None and no_rdm.laplacian_kernel is None
    assert torch.all(no_rdm(image(1, 3, 16, 16)).rcmap == 0.5)
    fixed = LocationAware(learn_laplacian=False)
    assert not fixed.laplacian_kernel.requires_grad
    assert n_params(fixed, trainable_only=True) == RELEASE_PARAMETERS - 54
    fixed(image(1, 3, 16, 16)).transmission.sum().backward()
    assert fixed.laplacian_kernel.grad is None
    edge = LocationAware(gradient_filter="edge")
    assert edge.laplacian_kernel.shape == (12, 1, 3, 3) and edge.mlsm.out_channels == 48
    rki = LocationAware(kernel_init="random", generator=torch.Generator().manual_seed(0))
    assert abs(float(rki.laplacian_kernel.detach().std()) - 0.02) < 0.01
    assert LocationAware(multiscale=False).mlsm.out_channels == 6


def test_gradient_clip_hook_bounds_the_kernel_gradient():
    x = image(1, 3, 24, 32)
    clipped = LocationAware()
    free = LocationAware(laplacian_grad_clip=None)
    free.load_state_dict(clipped.state_dict())
    for model in (clipped, free):
        (1e3 * model(x).transmission.sum()).backward()
    assert float(free.laplacian_kernel.grad.norm()) > 1.0  # large without the hook ...
    assert float(clipped.laplacian_kernel.grad.norm()) == pytest.approx(0.25, rel=1e-4)  # ... rescaled with it
    other = clipped.image_in.weight.grad.norm()
    torch.testing.assert_close(other, free.image_in.weight.grad.norm())  # other parameters untouched
    twin = copy.deepcopy(clipped)  # e.g. an EMA copy keeps the clipping
    twin.zero_grad()
    (1e3 * twin(x).transmission.sum()).backward()
    assert float(twin.laplacian_kernel.grad.norm()) <= 0.25 + 1e-6


# --- MLSM, Eq. 4 ----------------------------------------------------------------------------------


def test_mlsm_standalone_scales_and_known_values():
    rows = torch.arange(32.0).view(1, 1, 32, 1).expand(1, 3, 32, 40) / 32  # f(i, j) = i / 32
    mlsm = MultiScaleLaplacian(channels=3)
    feats = mlsm(rows**2)
    assert feats.shape == (1, 12, 32, 40)  # [1/8, 1/4, 1/2, 1] x 3 channels
    full = feats[:, 9:, 2:-2, 2:-2]  # k_L on (i/32)^2 in the interior: -((i-1)^2 + (i+1)^2 - 2 i^2) / 32^2
    torch.testing.assert_close(full, torch.full_like(full, -2.0 / 32**2))
    checker = ((torch.arange(32).view(32, 1) + torch.arange(32).view(1, 32)) % 2).float().expand(1, 3, 32, 32)
    lap = mlsm(checker).detach()[..., 4:-4, 4:-4]  # the 1/2-scale resize averages the checkerboard flat: order [.., 1/2, 1]
    assert float(lap[:, 6:9].abs().max()) < 1e-5 and float(lap[:, 9:].abs().min()) == 4.0
    edge = MultiScaleLaplacian(channels=3, multiscale=False, gradient_filter="edge")
    cols = torch.arange(20.0).view(1, 1, 1, 20).expand(1, 3, 16, 20)
    d = edge(cols)[..., 1:-1, 1:-1]
    torch.testing.assert_close(d[:, 0::2], torch.full_like(d[:, 0::2], 2.0))  # d/dx, central difference [-1, 0, 1]
    torch.testing.assert_close(d[:, 1::2], torch.zeros_like(d[:, 1::2]))  # d/dy
    model_mlsm = LocationAware().mlsm
    assert model_mlsm(image(1, 3, 16, 16)).shape == (1, 12, 16, 16)
    with pytest.raises(ValueError, match=r"MultiScaleLaplacian: expected \(B, C<=6, H, W\), got \(1, 7, 16, 16\)"):
        model_mlsm(image(1, 7, 16, 16))


# --- the authors' release -------------------------------------------------------------------------


def test_release_round_trip(tmp_path, release_state):
    path = tmp_path / "model.pth"
    torch.save(release_state, path)
    loaded = LocationAware.from_release(path).eval()
    direct = LocationAware().eval()
    direct.load_state_dict({release_key_map()[k]: v for k, v in release_state.items()})
    x = image(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x).transmission, direct(x).transmission)
    exported = loaded.to_release_state_dict()
    assert list(exported) == list(release_state)
    assert all(torch.equal(exported[k], v) for k, v in release_state.items())
    nested = tmp_path / "nested.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in release_state.items()}, "epoch": 60}, nested)
    assert torch.equal(LocationAware.from_release(nested).laplacian_kernel, loaded.laplacian_kernel)
    with pytest.raises(ReleaseCheckpointError, match="release architecture"):
        LocationAware(multiscale=False).to_release_state_dict()


def _save(tmp_path: Path, obj) -> Path:
    path = tmp_path / "bad.pth"
    torch.save(obj, path)
    return path


def test_release_loading_rejects_bad_files(tmp_path, release_state, pickled_code):
    missing = dict(release_state)
    del missing["conv_o.0.bias"]
    with pytest.raises(ValueError, match=r"1 missing: conv_o\.0\.bias"):
        LocationAware.from_release(_save(tmp_path, missing))
    extra = dict(release_state, **{"foo.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"1 unexpected: foo\.weight"):
        LocationAware.from_release(_save(tmp_path, extra))
    wrong = dict(release_state, **{"conv1.0.weight": torch.zeros(64, 9, 5, 5)})
    with pytest.raises(ValueError, match=r"1 wrong shape: conv1\.0\.weight \(64, 9, 5, 5\)"):
        LocationAware.from_release(_save(tmp_path, wrong))
    two_stage_like = {"stage1.enc1.0.weight": torch.zeros(64, 3, 3, 3), "stage2.dec.weight": torch.zeros(3, 64, 3, 3)}
    with pytest.raises(ValueError, match="not the authors' Location-aware"):
        LocationAware.from_release(_save(tmp_path, two_stage_like))
    payload, ran = pickled_code
    with pytest.raises(ValueError, match="refusing to load pickled code"):
        LocationAware.from_release(_save(tmp_path, {"model": payload}))
    assert not ran.exists()
    with pytest.raises(ValueError, match="does not fit"):  # an ablated network cannot take the release
        LocationAware.from_release(_save(tmp_path, release_state), multiscale=False)
    with pytest.raises(FileNotFoundError, match="zdlarr"):
        LocationAware.from_release(tmp_path / "nope.pth")


# --- FLOPs, discriminator, devices -----------------------------------------------------------------


def test_count_flops_positive_and_linear_in_pixels():
    model = LocationAware()
    small, large = count_flops(model, 64, 64), count_flops(model, 128, 128)
    assert small["gflops_per_iteration"] > 0
    assert small["gflops_total"] == pytest.approx(3 * small["gflops_per_iteration"])
    assert large["gflops_total"] / small["gflops_total"] == pytest.approx(4.0, rel=0.02)
    assert count_flops(LocationAware(use_lstm=False), 64, 64)["gflops_total"] < small["gflops_total"]


def test_discriminator_shapes_conditional_and_backward():
    d = LocationAwareDiscriminator()
    t = image(2, 3, 64, 64).requires_grad_()
    logits = d(t)
    assert logits.shape == (2, 1, 6, 6)
    logits.mean().backward()
    assert t.grad is not None and t.grad.abs().sum() > 0
    dc = LocationAwareDiscriminator(conditional=True)
    assert n_params(dc) - n_params(d) == 3 * 64 * 4 * 4
    assert dc(t.detach(), image(2, 3, 64, 64, seed=1)).shape == (2, 1, 6, 6)
    with pytest.raises(ValueError, match="needs I"):
        dc(t)
    with pytest.raises(ValueError, match=">= 24"):
        d(image(1, 3, 16, 64))


def test_channels_last_and_cpu_bf16_autocast():
    model = lively(LocationAware()).eval()
    x = image(1, 3, 24, 32)
    with torch.no_grad():
        ref = model(x).transmission
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last)).transmission
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = model(x).transmission
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(bf).all() and bf.shape == ref.shape  # lively weights: finite only (see the CUDA test)


def test_cpu_bf16_autocast_passes_the_bench_rule_on_the_committed_weights():
    """bf16 is what ``sirr remove`` runs on CPUs with bf16: on trained weights its output stays within
    ``MIN_PSNR_DB`` of fp32 (random weights give either a flat output or one that flips, so they cannot show it)."""
    from sirr.methods import get_method
    from sirr.paths import REPO_ROOT
    from sirrbook.inference import MIN_PSNR_DB, output_psnr
    from sirrbook.weights import committed_weights

    found = committed_weights(REPO_ROOT / "results", "la", "cpu", 0)
    if found is None:
        pytest.skip("this checkout has no committed LA@cpu weights")
    model = get_method("la").load(found[0]).eval()
    smooth = torch.nn.functional.interpolate(image(1, 3, 8, 12), size=(48, 72), mode="bilinear")
    x = (0.6 * smooth + 0.4 * image(1, 3, 48, 72, seed=1)).clamp(0, 1)  # structure and texture
    with torch.no_grad():
        ref = model(x).transmission
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = model(x).transmission.float()
    assert float(ref.std()) > 0.05  # trained weights: the output follows the input
    db = output_psnr(bf, ref)  # None: identical
    assert db is None or db >= MIN_PSNR_DB, db


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_runs_under_bf16_autocast(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare fp32 with fp32, not TF32
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    # The paper's init (std 0.02), not ``lively``: at std 0.08 the activations grow by ~4x per layer and
    # the clamped outputs flip between 0 and 1 on rounding differences between CPU and cuDNN kernels.
    model = LocationAware(generator=torch.Generator().manual_seed(0)).eval()
    x = image(1, 3, 40, 56)
    with torch.no_grad():
        ref = model(x)
        gpu = model.cuda()
        out = gpu(x.cuda())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf = gpu(x.cuda().contiguous(memory_format=torch.channels_last)).transmission
    for a, b in zip(out.transmissions + out.rcmaps + out.reflections, ref.transmissions + ref.rcmaps + ref.reflections):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-3, atol=1e-4)
    assert bf.shape == ref.transmission.shape and torch.isfinite(bf).all()
    assert float((bf.float().cpu() - ref.transmission).abs().max()) < 5e-2
    gpu.train()
    (1e3 * gpu(x.cuda()).transmission.sum()).backward()
    assert float(gpu.laplacian_kernel.grad.norm()) <= 0.25 + 1e-5


def test_the_switches_are_one_frozen_dataclass_and_keywords_still_work():
    import dataclasses

    from sirr.models.location_aware import LocationAwareFlags

    flags = LocationAwareFlags(use_tsm=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        flags.use_tsm = True  # type: ignore[misc]
    a, b = LocationAware(flags), LocationAware(use_tsm=False)
    assert a.flags == b.flags == flags and a.config == b.config and a.config["clamp_outputs"] is True
    assert len(dataclasses.fields(LocationAwareFlags)) == 12
    with pytest.raises(ValueError, match="gradient_filter"):
        LocationAwareFlags(gradient_filter="sobel")
    with pytest.raises(TypeError, match="unknown switch"):
        LocationAware(use_tms=False)
