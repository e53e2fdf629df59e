"""``sirrbook.book.bench``: a tiny bench run writes a complete report; the fast paths agree with fp32 eager."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from sirrbook.book import bench
from sirr.models.location_aware import LocationAware


def test_tiny_bench_writes_a_valid_report(tmp_path):
    out = tmp_path / "bench" / "cpu.json"
    lines = []
    rep = bench.run_bench("cpu", sizes=["32x48"], repeats=1, out=out, train=False, print_fn=lines.append,
                          compile=False, profile=True, weights="random")
    stored = json.loads(out.read_text())
    assert not list(out.parent.glob("*.tmp"))  # atomic write left nothing behind
    for key in ("device", "device_slug", "repeats", "iterations", "parameters", "inference", "fastest",
                "provenance", "conditions", "profile", "tolerances"):
        assert key in stored, key
    assert stored["device"].startswith("cpu") and stored["repeats"] == 1 and stored["iterations"] == 3
    assert stored["parameters"] == 10_925_719
    assert "commit" in stored["provenance"] and "loadavg_1_5_15" in stored["conditions"]["end"]
    paths = {r["path"]: r for r in stored["inference"]}
    from sirrbook.inference import paths_here

    # fp32 everywhere; bf16 only where this CPU computes in bf16 (AVX-512 BF16 / AMX)
    assert set(paths) == set(paths_here("cpu")) and {"fp32 eager", "fp32 channels_last"} <= set(paths)
    for r in paths.values():
        assert r["size"] == "32x48" and r["median_s"] > 0 and len(r["times_s"]) == 1 and r["median_cpu_s"] > 0
        assert r["gflops_per_iteration"] > 0
    assert paths["fp32 eager"]["max_abs_diff"] == 0.0
    assert paths["fp32 channels_last"]["max_abs_diff"] <= bench.FP32_TOLERANCE
    assert paths["fp32 channels_last"]["correct"]
    assert paths["fp32 eager"]["psnr_vs_fp32_db"] is None  # identical to itself
    assert stored["fastest"]["32x48"]["path"] in paths
    assert stored["weights"]["trained"] is False and stored["remove_path"] is None  # random init: no choice
    assert "random init weights" in lines[0] and "no path is chosen for sirr remove" in lines[0]  # said, not silent
    assert stored["goal"] is None  # 400x540 not measured
    assert stored["profile"]["top_ops"] and stored["profile"]["top_ops"][0]["self_s"] > 0
    assert rep["path"] == str(out) and any("fastest correct" in line for line in lines)
    assert bench.read_bench(tmp_path)[0]["device_slug"] == stored["device_slug"]


def _trained_checkpoint(tmp_path):
    """A LA checkpoint with non-random weights, written as sirr.train writes checkpoints."""
    from sirr.train.engine import CHECKPOINT_FORMAT, atomic_torch_save

    torch.manual_seed(3)
    model = LocationAware()
    path = tmp_path / "la.pt"
    atomic_torch_save({"format": CHECKPOINT_FORMAT, "kind": "la", "model_kwargs": {}, "model": model.state_dict(),
                       "step": 7, "config": {"preset": {"name": "cpu"}}}, path)
    return path


def test_bench_on_trained_weights_records_the_path_sirr_remove_uses(tmp_path, monkeypatch):
    from sirrbook import inference

    ckpt = _trained_checkpoint(tmp_path)
    out = tmp_path / "bench" / f"{inference.device_slug('cpu')}.json"
    rep = bench.run_bench("cpu", sizes=["24x32"], repeats=1, out=out, train=False, print_fn=lambda s: None,
                          compile=False, profile=False, weights=ckpt)
    assert rep["weights"]["trained"] and rep["weights"]["sha256"] and rep["weights"]["steps"] == 7
    rows = {r["path"]: r for r in rep["inference"]}
    assert rows["fp32 channels_last"]["psnr_vs_fp32_db"] is None or rows["fp32 channels_last"]["psnr_vs_fp32_db"] > 60
    choice = rep["remove_path"]
    assert choice["path"] == rep["fastest"]["24x32"]["path"] and choice["size"] == "24x32"
    # sirr remove reads that choice for this device ...
    monkeypatch.setattr(inference, "REPO_ROOT", tmp_path / "nowhere")
    precision, why = inference.precision_for("cpu", bench_dir=out.parent)
    assert precision == inference.PATHS[choice["path"]] and "sirr bench" in why
    # ... and falls back to resolve_precision('auto') without a report or with one on random weights
    precision, why = inference.precision_for("cpu", bench_dir=tmp_path / "empty")
    assert "no bench report" in why
    rep = bench.run_bench("cpu", sizes=["24x32"], repeats=1, out=out, train=False, print_fn=lambda s: None,
                          compile=False, profile=False, weights="random")
    assert inference.chosen_path("cpu", bench_dir=out.parent) is None


def test_a_path_far_from_fp32_is_rejected(tmp_path, monkeypatch):
    """A path whose output is below 40 dB of fp32 eager is never the fastest, however fast it is."""
    real = bench.inference_paths

    def with_a_bad_path(model, device, compile=None):
        paths = real(model, device, compile=compile)
        paths["broken fast"] = dict(fn=lambda x: torch.full_like(x, 0.5), dtype="bf16",
                                    tolerance=bench.BF16_TOLERANCE, note="test: instant and wrong")
        return paths

    monkeypatch.setattr(bench, "inference_paths", with_a_bad_path)
    rep = bench.run_bench("cpu", sizes=["24x32"], repeats=1, out=tmp_path / "b.json", train=False,
                          print_fn=lambda s: None, compile=False, profile=False, weights="random")
    rows = {r["path"]: r for r in rep["inference"]}
    assert rows["broken fast"]["psnr_vs_fp32_db"] < bench.MIN_PSNR_DB and not rows["broken fast"]["correct"]
    assert rep["fastest"]["24x32"]["path"] != "broken fast"


def test_channels_last_path_matches_eager_on_an_odd_size():
    torch.manual_seed(0)
    model = LocationAware().eval()
    paths = bench.inference_paths(model, "cpu", compile=False)
    x = torch.rand(1, 3, 25, 35)
    ref = paths["fp32 eager"]["fn"](x)
    fast = paths["fp32 channels_last"]["fn"](x)
    assert fast.shape == ref.shape == (1, 3, 25, 35)
    assert float((fast - ref).abs().max()) < 1e-4
    # the fast path works on its own copy: the model keeps its parameters and keys
    assert sum(p.numel() for p in model.parameters()) == 10_925_719
    assert list(model.state_dict()) == list(LocationAware().state_dict())


@pytest.mark.parametrize("bad", ["400", "400x", "axb", "4x4"])
def test_bad_size_is_one_clear_error(bad, tmp_path):
    with pytest.raises(ValueError, match="bench size"):
        bench.run_bench("cpu", sizes=[bad], repeats=1, out=tmp_path / "x.json", train=False, print_fn=lambda s: None)


def test_time_fn_and_slug():
    calls = []
    times = bench.time_fn(lambda: calls.append(1), "cpu", repeats=3, warmup=2)
    assert len(times) == 3 and len(calls) == 5 and all(t >= 0 for t in times)
    with pytest.raises(ValueError, match="repeats"):
        bench.time_fn(lambda: None, "cpu", repeats=0)
    slug = bench.device_slug("cpu")
    assert slug.startswith("cpu-") and slug.endswith("threads") and " " not in slug


@pytest.mark.slow
def test_training_step_timing_is_recorded(caplog):
    with caplog.at_level(logging.WARNING):
        row = bench._bench_train_step("cpu", 1, lambda s: None, "64x64")
    assert row["size"] == "64x64" and row["batch"] == 2 and row["amp"] == "fp32"
    assert row["finite"] and row["median_s"] > 0 and len(row["times_s"]) == 1
    assert "random weights: timing only" in row["loss"]  # said in the report, so the bench does not warn
    assert not [r for r in caplog.records if "RANDOM weights" in r.getMessage()]
    assert logging.getLogger("sirr.losses.vgg").level == logging.NOTSET  # the logger is left as it was


def test_read_bench_without_reports_is_empty(tmp_path):
    assert bench.read_bench(tmp_path) == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bench_bf16_and_compiled_paths(tmp_path):
    rep = bench.run_bench("cuda", sizes=["64x96"], repeats=2, out=tmp_path / "cuda.json", train=True,
                          print_fn=lambda s: None, train_size="64x64")
    paths = {r["path"]: r for r in rep["inference"] if "error" not in r}
    assert {"fp32 eager", "fp32 channels_last", "bf16 autocast channels_last",
            "bf16 autocast channels_last compiled"} <= set(paths)
    assert paths["bf16 autocast channels_last"]["max_abs_diff"] < bench.BF16_TOLERANCE
    assert paths["bf16 autocast channels_last compiled"]["max_abs_diff"] < bench.BF16_TOLERANCE
    assert rep["train_step"]["amp"] == "bf16 autocast" and rep["train_step"]["finite"]


def test_cost_table_is_one_row_per_size_without_gaps(tmp_path):
    from sirrbook.viz.location_aware import cost_sentences, cost_table

    rep = bench.run_bench("cpu", sizes=["24x32", "16x16"], repeats=1, out=tmp_path / "c.json", train=False,
                          print_fn=lambda s: None, compile=False, profile=False, weights=_trained_checkpoint(tmp_path))
    table = cost_table([rep], paper_seconds=0.068)
    assert list(table["size"]) == ["24x32", "16x16", "400x540"]  # two sizes, then the paper's row
    assert not table.isna().any().any()
    assert "weights" not in table and "commit" not in table  # conditions go below the table, which fits the page
    said = cost_sentences([rep])
    assert "measured on weights trained for 7 steps, load average " in said  # which weights the paths were checked on
    assert "sirr remove` runs in" in said
