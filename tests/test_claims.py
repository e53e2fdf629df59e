"""The claim experiments (chapter 07): measures with known values, the seed-paired interval, verdicts, storage."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from sirrbook import claims
from sirr.config import ValidationConfig, resolve
from sirrbook.evaluation import seed_paired_difference
from sirrbook.results import save_result


def _run(tmp_path):
    run = resolve("smoke", results_dir=str(tmp_path / "results"), data_root="none")
    return dataclasses.replace(run, preset=dataclasses.replace(run.preset, validation=ValidationConfig(photos=4, size=32)))


# -- measures ---------------------------------------------------------------------------------------


def test_true_rcmap_recovers_the_confidence_that_composed_the_image():
    g = torch.Generator().manual_seed(0)
    T = 0.2 + 0.8 * torch.rand(2, 3, 8, 8, generator=g)
    R = 0.3 * torch.rand(2, 3, 8, 8, generator=g)
    c = torch.rand(2, 1, 8, 8, generator=g)
    I = (1 - c) * T + R  # LA Eq. 7 with the true confidence c
    assert torch.allclose(claims.true_rcmap(I, T, R), c, atol=1e-5)


def test_rcmap_auc_is_one_for_a_perfect_ranking_and_zero_for_the_reverse():
    T = torch.full((1, 3, 8, 8), 0.8)
    R = torch.zeros_like(T)
    c = torch.zeros(1, 1, 8, 8)
    c[..., :4] = 0.9  # left half reflection-dominated
    I = (1 - c) * T + R
    assert claims.rcmap_auc(c, I, T, R) == [pytest.approx(1.0)]
    assert claims.rcmap_auc(1 - c, I, T, R) == [pytest.approx(0.0)]
    assert math.isnan(claims.rcmap_auc(c, T, T, R)[0])  # no reflection-dominated pixel: no ranking


def _edges():
    T = torch.zeros(1, 3, 32, 32)
    T[..., :, 16:] = 0.8  # one vertical background edge
    R = torch.zeros_like(T)
    R[..., 16:, :] = 0.5  # one horizontal reflection edge
    return T, R, (T + R).clamp(0, 1)


def test_edge_energies_separate_the_two_layers():
    T, R, I = _edges()
    assert claims.reflection_edge_energy(I, I, T, R) == [pytest.approx(1.0)]
    assert claims.reflection_edge_energy(T, I, T, R)[0] < 0.05  # the background alone has no reflection edge
    assert claims.background_edge_energy(T, T, R) == [pytest.approx(1.0)]
    assert claims.background_edge_energy(R, T, R)[0] < 0.05
    assert claims.sharpness(T, T) == [pytest.approx(1.0)]
    assert claims.sharpness(torch.full_like(T, 0.5), T)[0] < 1e-3  # flat: no gradient (kornia adds a tiny eps)


# -- statistics and verdicts ------------------------------------------------------------------------


def test_seed_paired_difference_counts_seed_to_seed_variation():
    rng = np.random.default_rng(0)
    one = seed_paired_difference([rng.normal(1.0, 0.1, 50)])
    assert one["n_seeds"] == 1 and one["low"] > 0.9 and one["high"] < 1.1
    split = seed_paired_difference([np.full(50, 1.0), np.full(50, -1.0)])
    assert split["low"] <= -0.9 and split["high"] >= 0.9  # two seeds that disagree: the interval spans both
    assert split["seed_means"] == [1.0, -1.0]
    nan = seed_paired_difference([[math.nan, 2.0, 2.0]])
    assert nan["n"] == 2 and nan["mean"] == 2.0
    assert math.isnan(seed_paired_difference([])["mean"])


@pytest.mark.parametrize("low,high,expect,verdict", [
    (0.2, 1.0, +1, "agrees with the paper"), (-1.0, -0.2, +1, "disagrees"), (-1.0, -0.2, -1, "agrees with the paper"),
    (-0.1, 0.3, +1, "inconclusive at this scale"), (math.nan, math.nan, +1, "inconclusive at this scale")])
def test_verdict_follows_the_interval_and_the_predicted_sign(low, high, expect, verdict):
    assert claims._verdict(low, high, expect) == verdict
    assert verdict in claims.VERDICTS


def test_every_claim_is_pre_registered_with_arms_seeds_and_a_measured_primary():
    run = resolve("cpu")
    for cid, c in claims.CLAIMS.items():
        assert c.id == cid and len(c.arms) >= 2 and len(c.seeds) >= 2 and c.expect in (-1, 1)
        assert c.primary[0] in c.measures and c.steps(run) > 0
        assert len({a.name for a in c.arms}) == len(c.arms)
    assert claims.claim("E1").steps(run) == run.preset.la.steps
    assert claims.claim("e4").steps(run) == run.preset.ts.stage1_steps + run.preset.ts.stage2_steps
    with pytest.raises(claims.ClaimError, match="unknown claim"):
        claims.claim("E9")
    with pytest.raises(claims.ClaimError, match="no arm"):
        claims.claim("E1").arm("wo_pixel")


def test_a_seed_outside_the_registration_is_refused(tmp_path):
    with pytest.raises(claims.ClaimError, match="pre-registered"):
        claims.claim_run(_run(tmp_path), "E3", "with_fr", 7)
    with pytest.raises(claims.ClaimError, match=r"E1: seed\(s\) 7 not pre-registered; its seeds are 0, 1, 2"):
        claims.run_claim(_run(tmp_path), "E1", seeds=[1, 7], verbose=False)  # refused before any run starts


def _fake(run, cid, arm, seed, values):
    save_result(dataclasses.replace(run, seed=seed), f"claims/{cid}/{arm}",
                {"claim": cid, "arm": arm, "seed": seed, "measures": {"validation": {"rcmap_auc": values}}}, seed=seed)


def test_no_verdict_until_every_run_is_in_then_one_from_the_interval(tmp_path):
    run = _run(tmp_path)
    c = claims.claim("E2")
    _fake(run, "E2", "laplacian", 0, [0.9, 0.8, 0.85])
    _fake(run, "E2", "edge", 0, [0.6, 0.5, 0.55])
    part = claims.claim_summary(run, "E2")
    assert part["progress"]["done"] == 2 and part["progress"]["total"] == len(c.arms) * len(c.seeds)
    assert part["verdict"] is None and all(x["verdict"] is None for x in part["contrasts"])
    assert part["contrasts"][0]["primary"]["mean"] == pytest.approx(0.3)  # a partial difference is still shown
    for s in c.seeds:
        _fake(run, "E2", "laplacian", s, [0.9, 0.8, 0.85])
        _fake(run, "E2", "edge", s, [0.6, 0.5, 0.55])
        _fake(run, "E2", "image_features", s, [0.95, 0.9, 0.92])
    full = claims.claim_summary(run, "E2")
    by_other = {x["other"]: x for x in full["contrasts"]}
    assert by_other["edge"]["verdict"] == "agrees with the paper"
    assert by_other["image_features"]["verdict"] == "disagrees"
    assert by_other["image_features"]["differences"]["validation/rcmap_auc"]["direction"] == "reference lower"
    assert full["verdict"] == "disagrees"  # one contrast against the paper decides the whole claim
    assert claims.claim_progress(run, "E2")["missing"] == []
    from sirrbook.viz.claims import claim_sentence

    said = claim_sentence(full)  # the verdict line names where its numbers were made
    assert said.startswith("**E2: disagrees.**") and f"device {full['devices'][0]}" in said
    assert full["devices"] and "commit " in said


def _parked_setup(tmp_path, monkeypatch, part_bytes=8000):
    run = _run(tmp_path)
    rdir = tmp_path / "run"
    rdir.mkdir()
    torch.save({"step": 3, "w": torch.arange(5000.0)}, rdir / "last.pt")
    (rdir / "metrics.jsonl").write_text('{"step": 3}\n')
    monkeypatch.setattr(claims, "_run_dir", lambda run, c, arm: rdir)
    monkeypatch.setattr(claims, "PARK_PART_BYTES", part_bytes)
    return run, rdir


def test_an_unfinished_run_is_parked_in_parts_and_counted(tmp_path, monkeypatch):
    run, rdir = _parked_setup(tmp_path, monkeypatch)
    assert claims.park(run, "E2") == []  # detector runs take minutes: nothing of theirs is parked
    parked = claims.park(run, "E1", seeds=[1])
    assert [(p["arm"], p["seed"], p["step"]) for p in parked] == [("full", 1, 3), ("wo_ssim", 1, 3)]
    d = claims.parked_dir(run, "E1", "full", 1)
    assert d == tmp_path / "results" / "smoke" / "claims" / "E1" / "full" / "1.parked"
    size = (rdir / "last.pt").stat().st_size
    parts = sorted(d.glob("last.pt.*"))
    assert len(parts) == math.ceil(size / 8000) >= 3 and all(p.stat().st_size <= 8000 for p in parts)
    assert b"".join(p.read_bytes() for p in parts) == (rdir / "last.pt").read_bytes()
    assert (d / "metrics.jsonl").read_text() == '{"step": 3}\n'
    assert not list(d.parent.glob(".*"))  # no temporary left beside it
    prog = claims.claim_progress(run, "E1")
    assert prog["parked"] == {("full", 1): 3, ("wo_ssim", 1): 3} and prog["done"] == 0
    from sirrbook.viz.claims import claim_sentence

    assert "full seed 1 at step 3, wo_ssim seed 1 at step 3" in claim_sentence(claims.claim_summary(run, "E1"))
    torch.save({"step": 5, "w": torch.zeros(10)}, rdir / "last.pt")  # parking again replaces the old parts
    claims.park(run, "E1", seeds=[1])
    assert [p.name for p in d.glob("last.pt.*")] == ["last.pt.000"] and claims.parked_step(run, "E1", "full", 1) == 5


def test_a_parked_run_is_restored_only_where_no_checkpoint_is_and_only_when_whole(tmp_path, monkeypatch):
    run, rdir = _parked_setup(tmp_path, monkeypatch)
    claims.park(run, "E1", seeds=[1])
    fresh = tmp_path / "fresh"
    assert claims.unpark(run, "E1", "full", 1, fresh)
    assert (fresh / "last.pt").read_bytes() == (rdir / "last.pt").read_bytes()
    assert torch.load(fresh / "last.pt", weights_only=True)["step"] == 3
    assert (fresh / "metrics.jsonl").is_file()
    torch.save({"step": 9}, rdir / "last.pt")
    mine = (rdir / "last.pt").read_bytes()
    assert not claims.unpark(run, "E1", "full", 1, rdir)  # a run folder's own checkpoint is never replaced
    assert (rdir / "last.pt").read_bytes() == mine
    assert not claims.unpark(run, "E1", "full", 0, tmp_path / "other")  # nothing parked for seed 0
    d = claims.parked_dir(run, "E1", "wo_ssim", 1)
    part = d / "last.pt.001"
    part.write_bytes(part.read_bytes()[:-1] + b"\0")
    with pytest.raises(claims.ClaimError, match="SHA-256 differs"):
        claims.unpark(run, "E1", "wo_ssim", 1, tmp_path / "broken")
    assert not (tmp_path / "broken" / "last.pt").exists()
    part.unlink()
    with pytest.raises(claims.ClaimError, match=r"incomplete: last.pt.001 missing"):
        claims.unpark(run, "E1", "wo_ssim", 1, tmp_path / "broken")


@pytest.mark.slow
def test_an_rdm_run_trains_stores_and_is_read_back(tmp_path):
    run = _run(tmp_path)
    parked = claims.parked_dir(run, "E2", "laplacian", 0)
    parked.mkdir(parents=True)  # a stale parked folder: the finished result removes it
    (parked / "parked.json").write_text('{"step": 1}')
    assert claims.claim_progress(run, "E2")["parked"] == {("laplacian", 0): 1}
    rec = claims.claim_run(run, "E2", "laplacian", 0)
    assert not parked.exists() and claims.claim_progress(run, "E2")["parked"] == {}
    auc = rec["measures"]["validation"]["rcmap_auc"]
    assert len(auc) == 4 and rec["steps"] == run.preset.la.steps and rec["trained_parameters"] > 0
    assert rec["curve_rdm"][-1]["step"] == run.preset.la.steps
    again = claims.claim_run(run, "E2", "laplacian", 0)  # stored: read, not retrained
    assert again["measures"] == rec["measures"] and again["_path"] == rec["_path"]
    assert claims.claim_progress(run, "E2")["done"] == 1
    assert {"rcmap_0", "true_rcmap_0"} <= set(rec["_images"])


def test_loss_shares_weight_each_term_by_its_lambda():
    import pandas as pd

    m = pd.DataFrame({"phase": ["train", "train"], "comp": [1.0, 1.0], "perceptual": [1.0, 1.0], "mix": [1.0, 1.0],
                      "adv": [-1.0, -1.0], "total": [1.0, 1.0]})
    shares = claims.la_loss_shares(m)  # λ = 0.4, 0.2, 0.4, 0.01 on equal magnitudes
    assert shares["λ4 L_adv"] == pytest.approx(0.01 / 1.01) and sum(shares.values()) == pytest.approx(1.0)
    ts = pd.DataFrame({"phase": ["stage1", "stage2"], "rec": [9.0, 1.0], "adv": [0.0, 1.0], "total": [9.0, 1.0]})
    s2 = claims.ts_stage2_loss_shares(ts)  # only the stage-2 row counts; λ4 = 0.05
    assert s2["−λ4 D(F2(z))"] == pytest.approx(0.05 / 1.05)


def test_every_table_row_is_either_tested_or_given_a_reason():
    from sirr.registry import TABLES

    for table, (_, variants, _) in TABLES.items():
        for row in variants:
            tested = claims.TESTED_BY.get((table, row))
            assert (tested in claims.CLAIMS) != bool(claims.untested_reason(table, row))
    assert claims.paper_gaps(__import__("sirr").paper_numbers.LA_TABLE3, "ours") == [0.0, 0.0, 0.0]


@pytest.mark.slow
def test_pipeline_check_leaves_no_result_behind(tmp_path):
    run = resolve("smoke", results_dir=str(tmp_path / "results"), data_root="none")
    line = claims.pipeline_check(run)
    assert "read back identically" in line and "not evidence" in line
    assert not (tmp_path / "results").exists()


def test_a_claim_with_one_arm_in_still_gets_a_table_of_its_means(tmp_path):
    from sirrbook.viz.claims import claim_frame

    run = _run(tmp_path)
    _fake(run, "E2", "laplacian", 0, [0.9, 0.8])  # no other arm of any seed yet: no paired difference
    frame = claim_frame(claims.claim_summary(run, "E2"))
    assert frame is not None and frame["laplacian"].iloc[0] == pytest.approx(0.85)
    assert claim_frame(claims.claim_summary(_run(tmp_path / "empty"), "E2")) is None


def test_the_claim_table_puts_the_deciding_measure_first_and_drops_a_constant_place(tmp_path):
    from sirrbook.viz.claims import claim_frame, claim_table, registration_markdown

    run = _run(tmp_path)
    for arm, auc, loss in (("laplacian", [0.9, 0.8], [0.01, 0.02]), ("edge", [0.6, 0.7], [0.03, 0.02])):
        save_result(run, f"claims/E2/{arm}", {"claim": "E2", "arm": arm, "seed": 0, "measures": {
            "validation": {"rcmap_loss": loss, "rcmap_auc": auc}}}, seed=0)  # the primary measure listed last
    summary = claims.claim_summary(run, "E2")
    frame = claim_frame(summary)
    assert list(frame["measure"]) == ["★ RCMap AUC", "L_Ĉ (Eq. 8)\u00a0↓"]  # the primary first, and only it starred
    assert "on" not in frame.columns  # every E2 measure is on the held-out triples: said once, in the caption
    assert [d.split(" [")[0] for d in frame["Δ vs edge"]] == ["+0.200", "-0.01000"]  # L_Ĉ to 5 decimals
    assert "held-out" in claim_table(summary).caption
    md = registration_markdown(run)
    assert [line.split("**")[1] for line in md.splitlines()] == list(claims.CLAIMS)


def test_coverage_lists_every_paper_row_once_with_reasons_as_notes(tmp_path):
    from sirr.registry import TABLES
    from sirrbook.viz.claims import coverage_markdown

    md = coverage_markdown(_run(tmp_path))
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith(("| paper table", "| ---"))]
    assert len(rows) == sum(len(variants) for _, variants, _ in TABLES.values())
    letters = {line.split("not tested (")[1][0] for line in rows if "not tested (" in line}
    notes = [line for line in md.splitlines() if line.startswith("- (")]
    assert sorted(n[3] for n in notes) == sorted(letters)  # each reason once, each used letter explained
    assert any("E3:" in line for line in rows)


def test_cli_parks_and_reports_then_refuses_an_unknown_arm_in_one_line(tmp_path, monkeypatch, capsys):
    from sirrbook.cli import main

    _parked_setup(tmp_path, monkeypatch)
    common = ["claims", "E1", "--preset", "smoke", "--data-root", "none", "--results-dir", str(tmp_path / "results")]
    assert main([*common, "--park", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "E1 full seed 2: parked at step 3 in " in out and "wo_ssim seed 2 parked at step 3" in out
    assert "0 of 6 runs done" in out and "seed 1" not in out
    assert main([*common, "--arms", "wo_pixel"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "E1 has no arm 'wo_pixel'; valid: full, wo_ssim" in err[0]


def test_the_curve_figure_says_how_many_seeds_each_line_stands_for(tmp_path):
    import matplotlib.pyplot as plt

    from sirrbook.viz.claims import claim_figure

    run = _run(tmp_path)
    assert claim_figure(run, "E1") is None  # nothing stored yet
    for arm, seeds in (("full", (0, 1)), ("wo_ssim", (0,))):
        for s in seeds:
            curve = [{"step": k, "val_psnr": 18.0 + k / 100 + s, "val_identity_psnr": 19.5} for k in (50, 100)]
            save_result(dataclasses.replace(run, seed=s), f"claims/E1/{arm}", {"claim": "E1", "arm": arm, "seed": s,
                        "measures": {}, "curve": curve}, seed=s)
    fig = claim_figure(run, "E1")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["full loss (paper) (mean of 2 seeds)", "w/o L_SSIM (1 seed)", "identity (input) 19.50 dB"]
    assert ax.lines[0].get_ydata().tolist() == pytest.approx([19.0, 19.5])  # the mean over seeds 0 and 1
    assert len(ax.collections) == 1  # a min-max band only where there are two seeds or more
    plt.close(fig)
