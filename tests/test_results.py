"""Results store: exact paths, round trip with provenance, reuse vs retrain, atomic writes, checkpoint manifest."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os

import numpy as np
import pytest

import sirrbook.results as results
from sirr.config import resolve
from sirrbook.results import (
    CheckpointTooLarge,
    ResultsError,
    load_image,
    load_manifest,
    load_or_compute,
    load_result,
    load_results,
    register_checkpoint,
    result_path,
    save_result,
)


@pytest.fixture
def run(tmp_path):
    return resolve("smoke", seed=0, data_root="none", results_dir=tmp_path / "results")


def test_path_layout(run, tmp_path):
    assert result_path(run, "ablations/la/no_lstm") == tmp_path / "results/smoke/ablations/la/no_lstm/0.json"
    assert result_path(run, "x", seed=3).name == "3.json"


@pytest.mark.parametrize("bad", ["", "../escape", "a//b", "a/./b", "sp ace", "/abs/../x"])
def test_bad_experiment_names(run, bad):
    with pytest.raises(ResultsError, match="bad experiment name"):
        result_path(run, bad)


def test_bad_seed(run):
    with pytest.raises(ResultsError, match="seed"):
        result_path(run, "x", seed=-1)


def test_round_trip_with_provenance_and_images(run, tmp_path):
    payload = {"psnr": np.float32(21.5), "n": np.int64(3), "inf": math.inf, "table": np.arange(3),
               "nested": {"a": [1.0, 2.0]}}
    img = np.zeros((600, 300, 3), np.float32)
    img[:, :150] = 1.0
    p = save_result(run, "eval/identity", payload, images={"example 1": img, "skip": None})
    assert p == tmp_path / "results/smoke/eval/identity/0.json"
    assert (p.parent / "0_example_1.png").exists()
    rec = json.loads(p.read_text())
    assert rec["preset"] == "smoke" and rec["seed"] == 0 and rec["experiment"] == "eval/identity"
    assert {"commit", "versions", "device", "preset"} <= set(rec["provenance"]) and rec["created"].endswith("+00:00")
    assert rec["config"]["preset"]["name"] == "smoke"
    back = load_result(run, "eval/identity")
    assert back["psnr"] == 21.5 and back["n"] == 3 and back["inf"] == math.inf and back["table"] == [0, 1, 2]
    assert back["nested"] == {"a": [1.0, 2.0]}
    assert back["_provenance"]["preset"] == "smoke" and back["_path"] == str(p)
    small = load_image(back, "example 1")
    assert max(small.shape[:2]) == results.IMAGE_MAX_SIDE and small[0, 0, 0] == 1.0 and small[0, -1, 0] == 0.0
    with pytest.raises(KeyError, match="no image 'nope'"):
        load_image(back, "nope")
    assert load_result(run, "eval/other") is None


def test_resaving_a_loaded_result_does_not_nest_provenance(run):
    save_result(run, "exp", {"v": 1})
    again = load_result(run, "exp")
    again["v"] = 2
    save_result(run, "exp", again)
    rec = load_result(run, "exp", full=True)
    assert rec["payload"] == {"v": 2}


def test_payload_must_be_dict(run):
    with pytest.raises(ResultsError, match="must be a dict"):
        save_result(run, "x", [1, 2])


def test_load_results_all_seeds_sorted(run):
    for s in (2, 0, 10):
        save_result(run, "abl/a", {"psnr": 20.0 + s}, seed=s)
    (run.results_dir / "smoke/abl/a/notes.json").write_text("{}")  # not a seed file: ignored
    rs = load_results(run, "abl/a")
    assert [r["_seed"] for r in rs] == [0, 2, 10]
    vals = [r["psnr"] for r in rs]
    assert np.mean(vals) == pytest.approx(24.0)
    assert load_results(run, "abl/none") == []


def test_load_or_compute_reuses_then_retrains(run, caplog):
    caplog.set_level(logging.INFO)
    calls = []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    a = load_or_compute(run, "exp", compute)
    b = load_or_compute(run, "exp", compute)
    assert a["value"] == b["value"] == 1 and len(calls) == 1
    out = caplog.text
    assert "computed and stored" in out and "read stored result" in out and "preset smoke" in out
    c = load_or_compute(dataclasses.replace(run, retrain=True), "exp", compute)
    assert c["value"] == 2 and len(calls) == 2
    assert load_result(run, "exp")["value"] == 2  # the retrained result replaced the stored one


def test_load_or_compute_saves_images_from_callable(run):
    imgs = {}

    def compute():
        imgs["out"] = np.full((4, 4, 3), 0.5, np.float32)
        return {"ok": True}

    r = load_or_compute(run, "with_images", compute, images=lambda: imgs)
    assert "out" in r["_images"] and load_image(r, "out").shape == (4, 4, 3)


def test_other_preset_not_reused(run, tmp_path):
    save_result(run, "exp", {"v": 1})
    demo = resolve("demo", device="cpu", data_root="none", results_dir=tmp_path / "results")
    assert load_result(demo, "exp") is None


def test_corrupt_result_file(run, caplog):
    caplog.set_level(logging.INFO)
    p = result_path(run, "exp")
    p.parent.mkdir(parents=True)
    p.write_text('{"payload": {"v": 1')  # a half-written file from some other tool
    with pytest.raises(ResultsError, match="not valid JSON.*retrain=True"):
        load_result(run, "exp")
    r = load_or_compute(run, "exp", lambda: {"v": 2})
    assert r["v"] == 2 and "recomputing" in caplog.text


def test_crash_mid_write_leaves_no_file(run, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(os, "fsync", boom)  # the temporary file exists and holds the text, not yet renamed
    with pytest.raises(RuntimeError, match="killed"):
        save_result(run, "exp", {"v": 1})
    p = result_path(run, "exp")
    assert not p.exists() and list(p.parent.iterdir()) == []


def test_crash_in_replace_keeps_old_result(run, monkeypatch):
    save_result(run, "exp", {"v": 1})

    def boom(*a, **k):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="power cut"):
        save_result(run, "exp", {"v": 2})
    monkeypatch.undo()
    assert load_result(run, "exp")["v"] == 1
    assert [p.name for p in result_path(run, "exp").parent.iterdir()] == ["0.json"]


def test_register_checkpoint(run, tmp_path):
    ck = tmp_path / "results/smoke/checkpoints/la.pt"
    ck.parent.mkdir(parents=True)
    ck.write_bytes(b"weights" * 100)
    e = register_checkpoint(ck, run, "la/full")
    assert e["sha256"] == hashlib.sha256(ck.read_bytes()).hexdigest()
    assert e["preset"] == "smoke" and e["bytes"] == 700 and e["commit"]
    assert e["path"] == "results/smoke/checkpoints/la.pt"
    m = load_manifest(run)
    assert m["checkpoints"]["la/full"]["sha256"] == e["sha256"]
    assert (tmp_path / "results/checkpoints.json").exists()
    register_checkpoint(ck, run, "ts/full")
    assert set(load_manifest(run)["checkpoints"]) == {"la/full", "ts/full"}


def test_register_checkpoint_refuses_large_and_missing(run, tmp_path):
    big = tmp_path / "big.pt"
    with open(big, "wb") as f:  # sparse: 26 MB without writing 26 MB
        f.truncate(26 * 1024 * 1024)
    with pytest.raises(CheckpointTooLarge, match=r"big\.pt.*26\.0 MB.*25 MB.*fp16"):
        register_checkpoint(big, run, "big")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        register_checkpoint(tmp_path / "nope.pt", run, "nope")
    assert load_manifest(run) == {"checkpoints": {}}
