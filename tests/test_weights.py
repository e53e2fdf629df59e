"""Committed weights: fp16 export with a manifest entry, sha256 checks, the remover's defaults, training records
and the chapters' stored-results helpers."""

import dataclasses
import logging
import math

import numpy as np
import pytest
import torch

import sirr.remove as remove
from sirr import experiments as ex
from sirr.book import stored
from sirr.config import resolve
from sirr.methods import get_method
from sirr.results import load_manifest
from sirr.weights import committed_weights, export_weights


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    """A smoke LA training with a tiny time budget and a validation set, in a private results folder."""
    tmp = tmp_path_factory.mktemp("w")
    run = resolve("smoke", data_root="none", results_dir=tmp / "results", la__time_budget_s=1e-3,
                  validation__photos=4, validation__size=64)
    res = get_method("la").train(run, run_dir=tmp / "run", resume=False, progress=False)
    return run, res


def test_la_time_budget_ends_each_phase_after_one_step_and_resume_is_a_no_op(budget_run):
    run, res = budget_run
    assert res.progress["phase_steps"] == {"train": 1, "fine_tune": 1}
    assert res.progress["phases_out_of_time"] == ["fine_tune", "train"]
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


def test_evaluation_table_and_beats_identity_sentence(tmp_path):
    run = resolve("smoke", data_root="none", results_dir=tmp_path / "results")
    cpu = stored.stored_run(run)
    from sirr.results import save_result

    def scores(psnr):
        return {"scores": {"real20": {"n": 3, "psnr_la": psnr, "ssim_la": 0.8, "lpips": 0.2},
                           "sir2_wild": {"n": 3, "psnr_la": psnr - 5, "ssim_la": 0.7}}}

    save_result(stored.stored_run(run, seed=0), "baseline/identity", scores(20.0))
    save_result(cpu, "la/full", scores(21.0))
    save_result(cpu, "ts/full", {"scores": {"real20": {"n": 3, "psnr_la": 19.0}, "sir2_wild": {"n": 3, "psnr_la": 16.0}}})
    df = stored.evaluation_table(run)
    assert df.loc["Zhang et al. real20", ("la", "psnr")] == 21.0
    assert df.loc["Zhang et al. real20", ("LA paper", "psnr")] == 23.338
    assert np.isnan(df.loc["Zhang et al. real20", ("TS paper", "psnr")])
    assert df.loc["SIR² Wild", ("TS paper", "psnr")] == 23.01
    la_s, ts_s = stored.beats_identity_sentence(df, "la"), stored.beats_identity_sentence(df, "ts")
    assert "beats" in la_s and "+1.00 dB" in la_s and "does not" not in la_s
    assert "does not on" in ts_s and "SIR² Wild (+1.00 dB)" in ts_s and "real20 (-1.00 dB)" in ts_s
    shown = stored.evaluation_display(df)
    assert shown.loc["Zhang et al. real20", ("LA ours", "PSNR")] == "21.00"
    assert shown.loc["Zhang et al. real20", ("TS ours", "LPIPS ↓")] == "—"
    assert stored.evaluation_table(resolve("smoke", data_root="none", results_dir=tmp_path / "none")) is None


def test_validation_sentence_says_rising_or_flat():
    def rec(values):
        return {"validation": [{"step": 10 * (i + 1), "val_psnr": v, "val_identity_psnr": 20.0}
                               for i, v in enumerate(values)]}

    rising = stored.validation_sentence(rec([15.0, 16.0, 17.0, 18.0, 19.0, 19.5]), "la")
    assert "still rising" in rising and "-0.50 dB against the identity" in rising and "step 60" in rising
    flat = stored.validation_sentence(rec([15.0, 16.0, 15.9, 16.1, 16.0, 15.95]), "ts")
    assert "flat or noisy" in flat and "best 16.10 at step 40" in flat
    assert "No stored validation" in stored.validation_sentence(None, "la")


def test_width_sentence_reports_each_width():
    res = {"seconds_each": 480.0, "crop": 96, "batch_size": 4, "_provenance": {"seed": 0, "commit": "abc"},
           "rows": [{"width_scale": 1.0, "stage1_parameters": 115_000_000, "steps": 40, "samples_seen": 160,
                     "validation": [{"step": 40, "val_psnr": 11.5, "val_identity_psnr": 16.3}],
                     "load_average": {"one_minute_mean": 2.01}},
                    {"width_scale": 0.25, "stage1_parameters": 7_200_000, "steps": 400, "samples_seen": 1600,
                     "validation": [{"step": 100, "val_psnr": 14.0, "val_identity_psnr": 16.3},
                                    {"step": 400, "val_psnr": 13.8, "val_identity_psnr": 16.3}]}]}
    s = stored.width_sentence(res)
    assert "In 8 minutes" in s and "widths × 1 (115.0M parameters): 40 steps, 160 samples, last validation 11.50" in s
    assert "last validation 13.80 dB (best 14.00)" in s and "identity baseline scores 16.30 dB" in s
    assert "load average 2.01" in s
    assert "wider network scores -2.30 dB against the narrower one, with 10.0× fewer steps" in s
    assert "narrower network learns faster" in s
    assert stored.width_sentence(None) == "No stored width comparison."
