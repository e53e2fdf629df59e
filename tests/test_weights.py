"""Committed weights: fp16 export with a manifest entry, sha256 checks, the remover's defaults, training records
and the chapters' stored-results helpers."""

import dataclasses
import logging
import math

import numpy as np
import pytest
import torch

import sirrbook.remove as remove
from sirrbook import experiments as ex
from sirrbook.book import stored
from sirr.config import resolve
from sirr.methods import get_method
from sirrbook.results import load_manifest
from sirrbook.weights import committed_weights, export_weights


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    """A smoke LA training with a validation set, in a private results folder."""
    tmp = tmp_path_factory.mktemp("w")
    run = resolve("smoke", data_root="none", results_dir=tmp / "results", la__steps=1, la__fine_tune_steps=1,
                  validation__photos=4, validation__size=64)
    res = get_method("la").train(run, run_dir=tmp / "run", resume=False, progress=False)
    return run, res


def test_a_finished_run_resumes_as_a_no_op(budget_run):
    run, res = budget_run
    assert res.progress["phase_steps"] == {"train": 1, "fine_tune": 1} and not res.truncated
    assert res.progress["samples_seen"] == 2 * run.preset.la.batch_size
    ck = torch.load(res.checkpoint, weights_only=True)
    assert ck["phase"] == "done" and ck["phase_steps"] == res.progress["phase_steps"]
    df = ex.train.read_metrics(res.run_dir)
    assert df["validation"].fillna(False).astype(bool).sum() == 2  # scored at the end of each phase
    again = get_method("la").train(run, run_dir=res.run_dir, resume=True, progress=False)
    assert again.steps == res.steps == 2 and again.resumed_from == 2


def test_export_is_fp16_smaller_and_reloads_close_to_fp32(budget_run):
    run, res = budget_run
    entry = export_weights(res.checkpoint, run, extra={"note": "test"})
    path = run.results_dir.parent / entry["path"]
    assert path.name == "la-smoke-seed0.fp16.pt" and entry["note"] == "test"
    assert entry["bytes"] < 0.6 * res.checkpoint.stat().st_size  # no optimiser, half the bytes per weight
    assert entry["steps"] == res.steps and entry["samples_seen"] == res.progress["samples_seen"]
    assert entry["parameters"] == 10_925_719
    sd = torch.load(path, weights_only=True)["model"]
    assert {v.dtype for v in sd.values() if v.is_floating_point()} == {torch.float16}
    fp32, fp16 = get_method("la").load(res.checkpoint), get_method("la").load(path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        d = (fp32(x).transmission - fp16(x).transmission).abs().max()
    assert 0 < d < 5e-3
    assert load_manifest(run)["checkpoints"]["la-smoke-seed0"]["sha256"] == entry["sha256"]


def test_committed_weights_are_checked_against_the_manifest(budget_run):
    run, res = budget_run
    export_weights(res.checkpoint, run)
    found = committed_weights(run, "la", "smoke", 0)
    assert found is not None and found[0].is_file()
    assert committed_weights(run, "ts", "smoke", 0) is None
    with open(found[0], "ab") as fh:  # damaged (or an LFS pointer): refused, not silently used
        fh.write(b"x")
    with pytest.raises(ValueError, match="sha256 differs"):
        committed_weights(run, "la", "smoke", 0)
    export_weights(res.checkpoint, run)  # restore for the other tests


def test_export_refuses_a_run_of_another_preset(budget_run):
    run, res = budget_run
    with pytest.raises(ValueError, match="preset 'smoke'"):
        export_weights(res.checkpoint, dataclasses.replace(run, preset=resolve("cpu", data_root="none").preset))


def test_remover_defaults_to_committed_weights_and_warns_on_smoke(budget_run, monkeypatch, caplog):
    run, res = budget_run
    entry = export_weights(res.checkpoint, run, extra={"compute_fraction": 1e-6})
    monkeypatch.setattr(remove, "committed_weights",
                        lambda *a, **k: (run.results_dir.parent / entry["path"], {**entry, "preset": "cpu"}))
    r = remove.load_method("la")
    assert "committed weights" in r.source and "0.0001% of the paper's training compute" in r.source
    caplog.set_level(logging.WARNING)
    r2 = remove.load_method("la", checkpoint=res.checkpoint)
    assert "preset smoke" in r2.source and "smoke" in caplog.text and "not a trained reflection remover" in caplog.text


def test_remover_never_picks_smoke_runs_by_itself(tmp_path):
    (tmp_path / "smoke" / "la" / "full" / "nodata" / "seed0").mkdir(parents=True)
    (tmp_path / "smoke" / "la" / "full" / "nodata" / "seed0" / "final.pt").write_bytes(b"")
    assert remove.find_checkpoint("la", runs_dir=tmp_path) is None
    assert remove.find_checkpoint("la", "smoke", runs_dir=tmp_path) is not None


def test_training_record_and_stored_helpers(budget_run):
    run, res = budget_run
    rec = ex.training_record(run, "la", run_dir=res.run_dir, extra={"load_average": {"one_minute_mean": 2.01}})
    assert rec["steps"] == res.steps and rec["crop"] == run.preset.la.crop
    want = res.progress["samples_seen"] * 64 * 64 / (60 * 4000 * 256 * 256)
    assert math.isclose(rec["compute_fraction"], want)
    assert len(rec["validation"]) >= 1 and rec["validation"][-1]["val_identity_psnr"] > 10
    stored_rec = stored.stored_training(run, "la", preset="smoke")
    line = stored.scale_line(stored_rec, "la", preset="smoke")
    assert f"{rec['phase_steps']['train']} train steps" in line and "load average 2.01" in line and "60 epochs" in line
    df = stored.stored_metrics(run, "la", preset="smoke")
    assert df is not None and df["validation"].fillna(False).astype(bool).sum() == len(rec["validation"])
    assert stored.stored_training(run, "ts", preset="smoke") is None
    assert "No stored TS training" in stored.scale_line(None, "ts", preset="smoke")


def test_evaluation_table_and_verdicts_from_paired_intervals(tmp_path):
    run = resolve("smoke", data_root="none", results_dir=tmp_path / "results")
    cpu = stored.stored_run(run)
    from sirrbook.results import save_result

    names = [f"im{i}" for i in range(10)]
    base = np.linspace(15.0, 24.0, 10)

    def scores(shift, jitter):
        per = list(base + shift + jitter)
        return {"scores": {"real20": {"n": 10, "psnr_la": float(np.mean(per)), "ssim_la": 0.8, "lpips": 0.2,
                                      "per_image": {"image": names, "psnr_la": per, "ssim_la": [0.8] * 10}},
                           "sir2_wild": {"n": 10, "psnr_la": float(np.mean(per)) - 5, "ssim_la": 0.7}}}

    wiggle = np.array([1, -1] * 5) * 0.3
    save_result(stored.stored_run(run, seed=0), "baseline/identity", scores(0.0, 0.0))
    save_result(cpu, "la/full", scores(1.0, wiggle))  # clearly better
    save_result(cpu, "ts/full", scores(0.0, 3 * wiggle))  # mean 0: no clear difference
    df = stored.evaluation_table(run)
    assert df.loc["Zhang et al. real20", ("la", "psnr")] == pytest.approx(20.5)
    assert df.loc["Zhang et al. real20", ("LA paper", "psnr")] == 23.338
    assert np.isnan(df.loc["Zhang et al. real20", ("TS paper", "psnr")])
    la = stored.stored_verdicts(run, "la")
    ts = stored.stored_verdicts(run, "ts")
    assert list(la.index) == ["Zhang et al. real20"]  # only sets with per-image scores are compared
    assert la.loc["Zhang et al. real20", "PSNR verdict"] == "better" and la.loc["Zhang et al. real20", "n"] == 10
    assert ts.loc["Zhang et al. real20", "PSNR verdict"] == "no clear difference"
    assert la.loc["Zhang et al. real20", "SSIM verdict"] == "no clear difference"  # identical SSIM
    s_la, s_ts = stored.verdict_sentence(la, "la"), stored.verdict_sentence(ts, "ts")
    assert s_la.startswith("In PSNR, LA is better than the input on Zhang et al. real20 (+1.00 dB")
    assert "not clearly different" in s_ts
    shown = stored.verdicts_display(la)
    assert shown.loc["Zhang et al. real20", "ΔPSNR"].endswith("better (10/10)")
    assert stored.stored_verdicts(resolve("smoke", data_root="none", results_dir=tmp_path / "none"), "la") is None
