"""``sirrbook.remove`` and ``python -m sirr remove``: tiling, odd photos, never overwriting inputs, bad files, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sirrbook import remove as R


def _pointwise(x: torch.Tensor) -> torch.Tensor:
    return 0.25 + 0.5 * x**2


def _remover(fn=_pointwise, method="la") -> R.Remover:
    return R.Remover(method=method, fn=fn, device="cpu", checkpoint=None, source="test function")


def _png(path, arr, mode=None):
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "in"
    d.mkdir()
    _png(d / "rgb.png", rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
    _png(d / "grey.png", rng.integers(0, 256, (20, 9), dtype=np.uint8))
    _png(d / "rgba.png", rng.integers(0, 256, (11, 13, 4), dtype=np.uint8))
    _png(d / "one.png", np.array([[[200, 100, 50]]], dtype=np.uint8))
    Image.fromarray(rng.integers(0, 65536, (15, 17), dtype=np.uint16)).save(d / "deep.png")  # 16-bit grey
    pal = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).convert("P")
    pal.save(d / "palette.png")
    return d


# -- tiling ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,tile", [((300, 517), 128), ((129, 64), 64), ((65, 700), 96), ((64, 64), 32)])
def test_tiled_equals_untiled_for_pointwise_model(shape, tile):
    img = np.random.default_rng(1).random((*shape, 3), dtype=np.float32)
    whole = R.predict(_pointwise, img)
    tiled = R.predict_tiled(_pointwise, img, tile=tile)
    assert tiled.shape == img.shape and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    assert len(R.tile_grid(*shape, tile)) > 1


def test_tiled_equals_untiled_for_small_conv_net_and_is_close_with_little_overlap():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 3, 3, padding=1), torch.nn.Sigmoid())
    img = np.random.default_rng(2).random((150, 223, 3), dtype=np.float32)
    whole = R.predict(net, img)
    # receptive-field radius 3 <= overlap // 4: the tiles' own borders never reach the blend
    np.testing.assert_allclose(R.predict_tiled(net, img, tile=64, overlap=16), whole, atol=1e-5)
    thin = R.predict_tiled(net, img, tile=64, overlap=4)
    assert 1e-5 < np.abs(thin - whole).max() < 0.05  # seams visible but small


def test_tiles_cover_the_photo_with_at_least_the_overlap():
    for size, tile, ov in [(517, 128, 32), (1000, 512, 64), (513, 512, 64)]:
        starts = R._starts(size, tile, ov)
        assert starts[0] == 0 and starts[-1] + tile == size
        assert all(b - a <= tile - ov for a, b in zip(starts, starts[1:]))


def test_location_aware_tiled_is_close_to_whole():
    from sirr.models import LocationAware

    torch.manual_seed(0)
    model = LocationAware(iterations=1).eval()
    img = np.random.default_rng(3).random((32, 52, 3), dtype=np.float32)
    fn = lambda x: model(x).transmission  # noqa: E731
    assert len(R.tile_grid(32, 52, 32, 8)) == 2
    diff = np.abs(R.predict_tiled(fn, img, tile=32, overlap=8) - R.predict(fn, img))
    assert diff.mean() < 0.01


def test_bad_tile_sizes_are_refused():
    img = np.zeros((100, 100, 3), np.float32)
    with pytest.raises(ValueError, match="tile"):
        R.predict_tiled(_pointwise, img, tile=32, overlap=16)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        R.predict(_pointwise, np.zeros((4, 4), np.float32))


def test_automatic_tiling_above_the_pixel_budget(monkeypatch):
    calls = []

    def spy(x):
        calls.append(tuple(x.shape[-2:]))
        return _pointwise(x)

    img = np.random.default_rng(4).random((100, 120, 3), dtype=np.float32)
    out = R.run_on_image(spy, img, max_pixels=50 * 50)
    assert R.auto_tile(50 * 50) == 64 and len(calls) == len(R.tile_grid(100, 120, 64)) == 6
    assert all(c == (64, 64) for c in calls) and out.shape == img.shape
    calls.clear()
    R.run_on_image(spy, img, max_pixels=10**6, tile=100)
    assert calls == [(100, 100), (100, 100)]
    calls.clear()
    R.run_on_image(spy, img, max_pixels=10**6)
    assert calls == [(100, 120)]


def test_out_of_memory_retries_with_smaller_tiles():
    sizes = []

    def fussy(x):
        sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 80:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return _pointwise(x)

    img = np.random.default_rng(5).random((150, 150, 3), dtype=np.float32)
    np.testing.assert_allclose(R.run_on_image(fussy, img), R.predict(_pointwise, img), atol=1e-6)
    assert sizes[0] == 150 and max(sizes[-4:]) <= 80


# -- photos in, PNGs out ----------------------------------------------------------------------------


def test_odd_photos_all_come_out_with_their_size(photos, tmp_path):
    out = tmp_path / "out"
    report = R.remove_photos(photos, out, model=_remover(), progress=False)
    assert report.ok, report.failed
    names = sorted(p.name for _, p in report.written)
    assert names == ["deep_la.png", "grey_la.png", "one_la.png", "palette_la.png", "rgb_la.png", "rgba_la.png"]
    sizes = {p.name: Image.open(p).size for _, p in report.written}
    assert sizes["rgb_la.png"] == (53, 37) and sizes["one_la.png"] == (1, 1) and sizes["grey_la.png"] == (9, 20)
    one = np.asarray(Image.open(out / "one_la.png"), dtype=np.float32) / 255
    expected = 0.25 + 0.5 * (np.array([200, 100, 50]) / 255) ** 2
    np.testing.assert_allclose(one[0, 0], expected, atol=1 / 255)


def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    im = Image.fromarray(np.random.default_rng(12).integers(0, 256, (6, 10, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    im.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    report = R.remove_photos([tmp_path / "phone.jpg"], tmp_path / "o", model=_remover(), progress=False)
    assert Image.open(report.written[0][1]).size == (6, 10)  # (width, height): portrait, as displayed


def test_sixteen_bit_values_survive(tmp_path):
    arr = np.full((6, 7), 40000, dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I;16")
    ident = _remover(fn=lambda x: x)
    report = R.remove_photos([tmp_path / "d.png"], tmp_path / "o", model=ident, progress=False)
    got = np.asarray(Image.open(report.written[0][1]))
    assert got.shape == (6, 7, 3) and abs(int(got[0, 0, 0]) - round(40000 / 65535 * 255)) <= 1


def test_out_equal_to_input_folder_never_overwrites(tmp_path):
    rng = np.random.default_rng(6)
    a = _png(tmp_path / "a.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    # an input that is named like the output of another input, in the same folder
    b = _png(tmp_path / "a_la.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    before = b.read_bytes(), a.read_bytes()
    report = R.remove_photos([a, b], tmp_path, model=_remover(), progress=False)
    assert (b.read_bytes(), a.read_bytes()) == before
    assert [p.name for p, _ in report.failed] == ["a.png"]
    assert "would overwrite the input" in report.failed[0][1]
    assert [q.name for _, q in report.written] == ["a_la_la.png"]


def test_same_stem_twice_gets_two_outputs(tmp_path):
    rng = np.random.default_rng(7)
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    p1 = _png(tmp_path / "x" / "p.png", rng.integers(0, 256, (5, 5, 3), dtype=np.uint8))
    p2 = _png(tmp_path / "y" / "p.png", rng.integers(0, 256, (5, 5, 3), dtype=np.uint8))
    report = R.remove_photos([p1, p2], tmp_path / "o", model=_remover(), progress=False)
    assert len({q for _, q in report.written}) == 2


def test_corrupt_file_fails_alone(tmp_path, capsys):
    rng = np.random.default_rng(8)
    good = _png(tmp_path / "good.png", rng.integers(0, 256, (9, 9, 3), dtype=np.uint8))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    report = R.remove_photos([bad, good, empty], tmp_path / "o", model=_remover(), progress=False)
    assert [q.name for _, q in report.written] == ["good_la.png"]
    assert [p.name for p, _ in report.failed] == ["bad.jpg", "empty.png"]
    assert all("\n" not in m for _, m in report.failed)
    err = capsys.readouterr()
    assert "bad.jpg" in err.out + err.err


def test_out_that_is_a_file_is_refused(tmp_path):
    f = _png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FileExistsError, match="is a file"):
        R.remove_photos([f], f, model=_remover(), progress=False)


# -- weights -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release_checkpoint(tmp_path_factory):
    from sirr.models import LocationAware

    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    torch.manual_seed(0)
    torch.save(LocationAware().to_release_state_dict(), path)
    return path


def test_release_checkpoint_is_recognised(release_checkpoint):
    assert R.identify_checkpoint(release_checkpoint) == "la_release"
    rem = R.load_method("la", release_checkpoint, "cpu")
    assert rem.source.startswith("LA authors' release; ")  # and the precision it runs in
    out = R.predict(rem, np.random.default_rng(9).random((13, 21, 3), dtype=np.float32))
    assert out.shape == (13, 21, 3)
    with pytest.raises(R.CheckpointError, match="--method la"):
        R.load_method("ts", release_checkpoint, "cpu")


def test_pickled_code_and_junk_checkpoints_are_refused(tmp_path, pickled_code):
    payload, ran = pickled_code
    evil = tmp_path / "evil.pt"
    torch.save({"model": payload}, evil)
    with pytest.raises(R.CheckpointError, match="pickled code"):
        R.load_method("la", evil, "cpu")
    assert not ran.exists()
    junk = tmp_path / "junk.pt"
    torch.save({"weights": {"fc.weight": torch.zeros(2, 2)}}, junk)
    with pytest.raises(R.CheckpointError, match="neither"):
        R.load_method("la", junk, "cpu")
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(R.CheckpointError, match="not a readable"):
        R.identify_checkpoint(text)


def test_no_checkpoint_says_how_to_get_weights(tmp_path):
    with pytest.raises(R.NoCheckpointError, match="model.pth"):
        R.load_method("la", None, "cpu", runs_dir=tmp_path)
    with pytest.raises(R.NoCheckpointError, match="train ts"):
        R.load_method("ts", None, "cpu", runs_dir=tmp_path)


def test_newest_checkpoint_of_the_most_trained_preset_is_found(tmp_path):
    import os

    for preset, seed, name, t in [("smoke", 0, "final.pt", 300), ("demo", 0, "final.pt", 100),
                                  ("demo", 1, "final.pt", 200), ("demo", 2, "last.pt", 400)]:
        d = tmp_path / preset / "la" / "full" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / name).write_bytes(b"x")
        os.utime(d / name, (t, t))
    assert R.find_checkpoint("la", runs_dir=tmp_path) == tmp_path / "demo/la/full/seed1/final.pt"
    assert R.find_checkpoint("la", "smoke", runs_dir=tmp_path) == tmp_path / "smoke/la/full/seed0/final.pt"
    assert R.find_checkpoint("ts", runs_dir=tmp_path) is None


# -- the CLI -----------------------------------------------------------------------------------------


def test_cli_processes_the_good_photos_and_exits_2_on_a_bad_one(tmp_path, release_checkpoint, capsys):
    from sirr.__main__ import main

    rng = np.random.default_rng(10)
    good = _png(tmp_path / "good.png", rng.integers(0, 256, (17, 23, 3), dtype=np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    code = main(["remove", str(bad), str(good), "--out", str(out), "--checkpoint", str(release_checkpoint),
                 "--device", "cpu", "--tile", "16"])
    assert code == 2
    assert (out / "good_la.png").is_file() and not (out / "bad_la.png").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sirr: error: 1 of 2 photos failed") and "bad.png" in err[-1]


def test_cli_without_weights_is_one_line(tmp_path, capsys, monkeypatch):
    from sirr.__main__ import main

    monkeypatch.setattr(R, "_runs_dir", lambda: tmp_path / "runs")
    f = _png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    assert main(["remove", str(f), "--out", str(tmp_path / "o"), "--method", "ts"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no weights for method 'ts'" in err[0]
    assert not (tmp_path / "o" / "a_ts.png").exists()


def test_our_checkpoints_are_told_apart_by_contents(tmp_path):
    from sirr.models import LocationAware
    from sirr.train.engine import CHECKPOINT_FORMAT

    torch.manual_seed(0)
    model = LocationAware(iterations=1)
    la = tmp_path / "la_final.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "kind": "la", "step": 4,
                "model_kwargs": {"iterations": 1}, "model": model.state_dict()}, la)
    ts = tmp_path / "ts_final.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "kind": "ts", "model": {"stage1.head.weight": torch.zeros(1)}}, ts)
    assert R.identify_checkpoint(la) == "la" and R.identify_checkpoint(ts) == "ts"
    rem = R.load_method("la", la, "cpu")
    assert rem.source.startswith("sirr checkpoint (preset unknown); ") and rem.model.iterations == 1
    img = np.random.default_rng(11).random((9, 14, 3), dtype=np.float32)
    with torch.inference_mode():
        expected = model.eval()(torch.from_numpy(img).permute(2, 0, 1)[None]).transmission
    # fp32 paths agree to rounding; where this machine's bench chose bf16 for sirr remove, to bf16's precision
    tol = 3e-2 if "bf16" in rem.source else 1e-6
    np.testing.assert_allclose(R.predict(rem, img), expected[0].permute(1, 2, 0).numpy(), atol=tol)
    with pytest.raises(R.CheckpointError, match="use --method la"):
        R.load_method("ts", la, "cpu")
    with pytest.raises(R.CheckpointError, match="use --method ts"):
        R.load_method("la", ts, "cpu")


# -- the paper-figure functions of chapter 8 (drawing only; random images) ------------------------------


def test_paper_figure_functions_draw_every_panel():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sirr.models.two_stage import TwoStageOutput
    from sirrbook.book import paper_figures as pf

    g = torch.Generator().manual_seed(0)
    img = lambda c=3: torch.rand(1, c, 24, 32, generator=g)  # noqa: E731
    I, T, C = img(), img(), img(1)
    out = TwoStageOutput(b_initial=img(), residual=img() - 0.5, confidence=img(1), threshold=torch.tensor([0.5]),
                         edges_background=img(), edges_reflection=img(), b_final=img())
    figs = {
        "la_fig01": (pf.la_fig01(I, C, T, T), 4),
        "la_fig03": (pf.la_fig03(I, [T, T, T]), 4),
        "la_fig04": (pf.la_fig04([("a", I), ("b", T)], learned_kernel=torch.ones(3, 3)), 8),
        "la_fig05": (pf.la_fig05([(I, [C, C, C]), (T, [C, C])]), 7),
        "la_fig08": (pf.la_fig08(I, {"w/o TSM": T, "Ours": T}, T, ncols=4), 4),
        "la_fig09": (pf.la_fig09(I, {"RKI": (C, T), "Ours": (C, T)}, T), 6),
        "la_fig10": (pf.la_fig10(I, T, C), 6),
        "ts_fig01": (pf.ts_fig01(I, out, None, T), 8),
        "ts_fig03": (pf.ts_fig03([dict(input=I, b_initial=T, b_final=T, ground_truth=T, name="x")] * 2), 8),
        "ts_fig04": (pf.ts_fig04(I, T, T, box=(2, 3, 10, 10)), 3),
    }
    for name, (fig, panels) in figs.items():
        drawn = [ax for ax in fig.axes if ax.images]
        assert len(drawn) == panels, name
        plt.close(fig)
    # Fig. 10's masks follow LA Eq. 16's rule; Fig. 4's box search finds the changed square
    a = np.zeros((30, 40, 3), np.float32)
    b = a.copy()
    b[5:15, 20:30] = 1
    assert pf.largest_change_box(a, b, size=10) == (5, 20, 10, 10)
    rel = pf.relative_rcmap_target(torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 4, 4), 0.5))
    assert rel.shape == (1, 1, 4, 4) and rel.sum() == 0


def test_a_photo_the_model_fails_on_does_not_stop_the_others(tmp_path):
    def picky(x):
        if x.shape[-1] == 7:
            raise RuntimeError("Given groups=1, weight of size [32, 6, 3, 3], expected input ... (test)")
        return _pointwise(x)

    a = _png(tmp_path / "a.png", np.zeros((5, 7, 3), np.uint8))
    b = _png(tmp_path / "b.png", np.zeros((5, 8, 3), np.uint8))
    report = R.remove_photos([a, b], tmp_path / "o", model=_remover(picky), progress=False)
    assert [p.name for p, _ in report.failed] == ["a.png"] and "inference failed" in report.failed[0][1]
    assert [q.name for _, q in report.written] == ["b_la.png"]


@pytest.mark.parametrize("verdict,words", [("better", "better than the input"),
                                           ("no clear difference", "not clearly different from the input"),
                                           ("worse", "worse than the input")])
def test_committed_weights_line_reads_as_a_sentence_for_every_verdict(verdict, words):
    entry = {"path": "results/cpu/weights/la.fp16.pt", "preset": "cpu", "steps": 1200, "selected_step": 1200,
             "samples_seen": 2400, "crop": 128, "compute_fraction": 0.0025,
             "real20": {"n": 19, "max_side": 256,
                        "psnr_la": {"verdict": verdict, "mean": 0.59, "low": -0.71, "high": 1.04},
                        "ssim_la": {"verdict": "no clear difference", "mean": -0.003}}}
    line = R.committed_description(entry)
    assert f"it is {words} in PSNR (+0.59 dB, 95% interval -0.71 to +1.04)" in line
    assert "not clearly different from it in SSIM (-0.003)" in line
    assert "difference than" not in line and "preset cpu: 1200 steps, 2400 samples of 128 px" in line


def test_unknown_verdict_is_refused():
    from sirrbook.evaluation import verdict_phrase
    with pytest.raises(ValueError, match="unknown verdict 'maybe'"):
        verdict_phrase("maybe")
