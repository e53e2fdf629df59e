"""The experiment registry (every paper row), the results-store round trip and the ablation tables."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sirrbook import experiments as ex
from sirr import paper_numbers
from sirrbook.book import prose
from sirr.config import resolve


# ---------------------------------------------------------------------------------------------------
# Registry: every paper row has a variant, with flags the model / loss actually accept
# ---------------------------------------------------------------------------------------------------


def test_la_table2_variants_cover_every_paper_row_in_order():
    assert list(ex.LA_TABLE2_VARIANTS) == list(paper_numbers.LA_TABLE2)


def test_la_table3_variants_cover_every_paper_row_in_order():
    assert list(ex.LA_TABLE3_VARIANTS) == list(paper_numbers.LA_TABLE3)


def test_ts_variants_cover_table1_rows_of_the_method_and_the_lfr_ablation():
    method_rows = {k for k in paper_numbers.TS_TABLE1 if k not in ("CEILNet", "PLNet")}
    assert method_rows <= set(ex.TS_VARIANTS)
    assert ex.TS_VARIANTS["wo_feature_reduction"].train_kwargs == {"use_feature_reduction": False}
    assert ex.TS_VARIANTS["wo_adversarial"].train_kwargs == {"use_adversarial": False}


def test_every_la_variant_builds_the_model_and_loss_it_names():
    import inspect

    from sirr.losses import LocationAwareLoss
    from sirr.models import LocationAware

    import dataclasses

    from sirr.models.location_aware import LocationAwareFlags

    model_params = {f.name for f in dataclasses.fields(LocationAwareFlags)}  # the 12 switches, one per Table 2 row
    loss_params = set(inspect.signature(LocationAwareLoss).parameters)
    for v in ex.LA_VARIANTS.values():
        assert set(v.model_kwargs) <= model_params, v.name
        assert set(v.loss_kwargs) <= loss_params, v.name
    # Every ablation row differs from "ours", and no two rows are the same run.
    keys = [(tuple(sorted(v.model_kwargs.items())), tuple(sorted(v.loss_kwargs.items())))
            for v in ex.LA_VARIANTS.values()]
    assert len(set(keys)) == len(keys)
    assert ex.LA_VARIANTS["ours"].model_kwargs == {} and ex.LA_VARIANTS["ours"].loss_kwargs == {}
    assert ex.LA_TABLE3_VARIANTS["lc_to_lcb"].loss_kwargs == {"rcmap_loss": "bce"}


def test_default_model_flags_are_the_ours_row():
    """A Table 2 flag equal to the model default would silently train "ours" again."""
    import dataclasses

    from sirr.models.location_aware import LocationAwareFlags

    defaults = dataclasses.asdict(LocationAwareFlags())
    for v in ex.LA_TABLE2_VARIANTS.values():
        for k, val in v.model_kwargs.items():
            if v.name == "lki_to_rki" and k == "laplacian_grad_clip":
                continue
            assert defaults[k] != val, (v.name, k)


def test_unknown_variant_and_table_raise_with_the_valid_names():
    """One variant lookup (Method.variant) and one error for it, wherever the name comes in; every library error
    derives from SirrError."""
    from sirr.errors import SirrError
    from sirr.methods import UnknownMethodError

    run = resolve("smoke", data_root="none")
    for call in (lambda: ex.experiment(run, "la", "wo_tms", 0),
                 lambda: ex.trained_model(run, "la", "wo_tms")):
        with pytest.raises(UnknownMethodError) as e:
            call()
        assert (e.value.name, e.value.closest) == ("wo_tms", "wo_tsm") and "wo_tsm" in e.value.valid
    with pytest.raises(ex.ExperimentError, match="unknown table 'la4'.*la2") as e:
        ex.ablation_table(run, "la4", seeds=(0,), results={})
    assert isinstance(e.value, SirrError) and isinstance(e.value, ValueError)


# ---------------------------------------------------------------------------------------------------
# Ordering agreement
# ---------------------------------------------------------------------------------------------------


def _df(ours, paper):
    import pandas as pd

    return pd.DataFrame({"variant": [f"r{i}" for i in range(len(ours))], "label": [f"Row {i}" for i in range(len(ours))],
                         "psnr_la_mean": ours, "paper_psnr": paper})


def test_ordering_agreement_identical_and_reversed_orders():
    same = ex.ordering_agreement(_df([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]))
    assert same["spearman"] == pytest.approx(1.0) and same["kendall"] == pytest.approx(1.0)
    assert same["pairs_agree"] == same["pairs"] == 6
    assert same["paper_best"] == "r3" and same["our_rank_of_paper_best"] == 1
    rev = ex.ordering_agreement(_df([4.0, 3.0, 2.0, 1.0], [10.0, 20.0, 30.0, 40.0]))
    assert rev["spearman"] == pytest.approx(-1.0) and rev["pairs_agree"] == 0
    assert rev["our_rank_of_paper_best"] == 4


def test_ordering_agreement_skips_rows_without_paper_numbers():
    ag = ex.ordering_agreement(_df([1.0, 2.0, 5.0], [10.0, 20.0, float("nan")]))
    assert ag["n"] == 2 and ag["pairs"] == 1 and ag["pairs_agree"] == 1


def test_ordering_sentence_says_agrees_or_not():
    df = _df([1.0, 2.0, 3.0], [10.0, 20.0, 30.0])
    df.attrs.update(dataset="ceilnet_synthetic", preset="demo", seeds=[0, 1, 2], paper_column="sir2_psnr")
    s = prose.ordering_sentence(df)
    assert "agrees with" in s and "not" not in s and "3 of 3 row pairs" in s and "also our best" in s
    df.attrs["preset"] = "smoke"  # a few steps per row: noise, so no ordering is read from it
    smoke = prose.ordering_sentence(df)
    assert "No ordering is read" in smoke and "agrees" not in smoke
    s2 = prose.ordering_sentence(_df([3.0, 2.0, 1.0], [10.0, 20.0, 30.0]))
    assert "does not agree" in s2 and "Row 2" in s2
    s3 = prose.ordering_sentence(_df([1.0], [10.0]))
    assert "no ordering to compare" in s3


def test_results_provenance_says_when_rows_come_from_different_commits():
    one = prose.results_provenance([{"_provenance": {"preset": "demo", "commit": "aaa", "device": "cuda"}}] * 2)
    two = prose.results_provenance([{"_provenance": {"preset": "demo", "commit": c, "device": "cuda"}}
                                    for c in ("aaa", "bbb")])
    assert "different commits" not in one
    assert "2 different commits" in two and "aaa/bbb" in two


# ---------------------------------------------------------------------------------------------------
# Results-store round trip with a counting fake trainer
# ---------------------------------------------------------------------------------------------------


class _Halve(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        return SimpleNamespace(transmission=x * self.w)


@pytest.fixture
def tiny_run(tmp_path):
    return resolve("smoke", data_root="none", results_dir=tmp_path / "results", eval__max_images=2,
                   eval__max_side=48)


@pytest.fixture
def counting_trainer(monkeypatch, tmp_path):
    import sirr.methods
    import sirr.train

    calls = []

    def fake_train(run, run_dir=None, **kw):
        calls.append({"seed": run.seed, "run_dir": run_dir, **kw})
        return SimpleNamespace(model=_Halve(), run_dir=run_dir, checkpoint=None, metrics_path=None,
                               steps=kw.get("steps") or 0, losses={})

    monkeypatch.setattr(sirr.methods, "train_location_aware", fake_train)  # Method.train calls it
    monkeypatch.setattr(sirr.methods, "default_run_dir",
                        lambda run, method, variant="full": tmp_path / "runs" / method / variant / f"seed{run.seed}")
    return calls


def test_experiment_round_trips_through_the_store_without_retraining(tiny_run, counting_trainer):
    r1 = ex.experiment(tiny_run, "la", "wo_tsm", seed=1)
    assert len(counting_trainer) == 1
    call = counting_trainer[0]
    assert call["seed"] == 1 and call["model_kwargs"] == {"use_tsm": False}
    assert call["steps"] == tiny_run.preset.ablation.la_steps
    scores = r1["scores"][ex.FALLBACK_DATASET]
    assert scores["n"] == 2 and set(ex.METRICS) - {"lpips"} <= set(scores)
    assert "lpips" not in scores  # smoke: eval.lpips is off
    assert 0 < scores["psnr_la"] < 40 and 0 < scores["ssim_la"] < 1
    stored = list((tiny_run.results_dir / "smoke" / "nodata" / "la" / "wo_tsm").glob("1.json"))
    assert stored, "result JSON not written under results/<preset>/la/<variant>/"

    r2 = ex.experiment(tiny_run, "la", "wo_tsm", seed=1)
    assert len(counting_trainer) == 1, "second call retrained instead of reading the store"
    assert r2["scores"][ex.FALLBACK_DATASET]["psnr_la"] == pytest.approx(scores["psnr_la"])

    import dataclasses

    ex.experiment(dataclasses.replace(tiny_run, retrain=True), "la", "wo_tsm", seed=1)
    assert len(counting_trainer) == 2, "retrain=True did not recompute"


def test_ablation_table_shape_columns_and_spread(tiny_run, counting_trainer):
    df = ex.ablation_table(tiny_run, "la3", seeds=(0, 1))
    assert len(counting_trainer) == len(ex.LA_TABLE3_VARIANTS) * 2
    assert list(df["variant"]) == list(paper_numbers.LA_TABLE3)
    for m in ex.METRICS:
        assert f"{m}_mean" in df and f"{m}_std" in df
    assert (df["n_seeds"] == 2).all()
    assert df.loc[df["variant"] == "wo_ssim", "paper_sir2_psnr"].item() == pytest.approx(15.653)
    assert df.attrs["dataset"] == ex.FALLBACK_DATASET and df.attrs["seeds"] == [0, 1]
    # The fake model is deterministic: same numbers for every seed, so zero spread.
    assert np.allclose(df["psnr_la_std"], 0.0)
    # A second table over the same rows reads the store ("ours" is shared by Tables 2 and 3).
    n = len(counting_trainer)
    ex.ablation_table(tiny_run, "la3", seeds=(0, 1))
    assert len(counting_trainer) == n

    from sirrbook.viz.tables import ablation_display, to_markdown

    disp = ablation_display(df)
    assert list(disp.columns[:2]) == ["row (paper)", "seeds"]
    assert "paper SIR² PSNR" in disp.columns and "ours PSNR (LA conv.)" in disp.columns
    assert " ± " in disp["ours PSNR (LA conv.)"].iloc[0]
    assert to_markdown(disp).startswith("| row (paper)")


def test_identity_baseline_and_main_tables(tiny_run):
    ident = ex.identity_experiment(tiny_run)
    s = ident["scores"][ex.FALLBACK_DATASET]
    assert s["ssim_la"] < 1 and math.isfinite(s["psnr_la"])
    la_df, ts_df = ex.main_tables(tiny_run, identity=ident)
    assert list(la_df["dataset"]) == [ex.FALLBACK_DATASET]
    assert la_df["identity_psnr_la"].item() == pytest.approx(s["psnr_la"])
    assert math.isnan(la_df["la_psnr_la"].item())
    assert list(ts_df["paper_psnr"].iloc[:4]) == list(paper_numbers.TS_TABLE1.values())


def test_mean_std_formatting():
    from sirrbook.viz.tables import fmt, mean_std

    assert mean_std(23.1234, 0.314) == "23.12 ± 0.31"
    assert mean_std(0.9, float("nan"), 3) == "0.900"
    assert fmt(float("nan")) == "—" and fmt(float("inf")) == "∞"


class _TwoStages(torch.nn.Module):
    """B_ini = I / 4, B_final = I / 2: two outputs that score differently."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def initial(self, x):
        return x * self.w / 2

    def forward(self, x):
        return SimpleNamespace(b_final=x * self.w)


def test_one_experiment_scores_every_output_of_a_method_with_stages(tiny_run, monkeypatch, tmp_path):
    """The one experiment() asks the method what to score: TS gets B_final and B_ini, each against identity."""
    import sirr.methods

    calls = []

    def fake_train(run, run_dir=None, **kw):
        calls.append(kw)
        return SimpleNamespace(model=_TwoStages(), run_dir=run_dir, steps=7, losses={})

    monkeypatch.setattr(sirr.methods, "train_two_stage", fake_train)
    monkeypatch.setattr(sirr.methods, "default_run_dir",
                        lambda run, method, variant="full": tmp_path / "runs" / method / variant / f"seed{run.seed}")
    r = ex.experiment(tiny_run, "ts", "wo_adversarial", seed=0)
    (call,) = calls
    assert call["use_adversarial"] is False
    assert (call["stage1_steps"], call["stage2_steps"]) == (tiny_run.preset.ablation.ts_stage1_steps,
                                                            tiny_run.preset.ablation.ts_stage2_steps)
    final, initial = r["scores"][ex.FALLBACK_DATASET], r["scores_initial"][ex.FALLBACK_DATASET]
    assert final["psnr_la"] != pytest.approx(initial["psnr_la"])
    assert set(r["vs_identity"]) == set(r["vs_identity_initial"]) and r["vs_identity_initial"]
    assert r["method"] == "ts" and r["train_kwargs"] == {"use_adversarial": False} and r["steps"] == 7
    assert "model_kwargs" not in r  # a TS row changes no LA flags


def test_stored_result_missing_a_test_set_is_completed(tiny_run, counting_trainer, monkeypatch):
    """A result stored without some wanted test set (e.g. computed with no data root) gets it added."""
    ex.experiment(tiny_run, "la", "wo_lstm", seed=0)
    assert len(counting_trainer) == 1
    real = ex._wanted
    monkeypatch.setattr(ex, "_wanted", lambda run, names=None: [ex.FALLBACK_DATASET, "extra_set"])
    monkeypatch.setattr(ex, "evaluation_datasets",
                        lambda run, names=None: {n: ex._fallback_dataset(run) for n in names})
    r = ex.experiment(tiny_run, "la", "wo_lstm", seed=0, verbose=False)
    # No checkpoint under runs/ (the fake trainer writes none): recomputed once, on both sets.
    assert len(counting_trainer) == 2
    assert set(r["scores"]) == {ex.FALLBACK_DATASET, "extra_set"}
    ex.experiment(tiny_run, "la", "wo_lstm", seed=0, verbose=False)
    assert len(counting_trainer) == 2
    monkeypatch.setattr(ex, "_wanted", real)


def test_ordering_agreement_counts_ties_separately():
    ag = ex.ordering_agreement(_df([5.0, 5.0, 6.0], [10.0, 20.0, 30.0]))
    assert ag["ties"] == 1 and ag["pairs"] == 2 and ag["pairs_agree"] == 2
    s = prose.ordering_sentence(_df([5.0, 5.0], [10.0, 20.0]))
    assert "no ordering to compare" in s and "1 tied" in s


def test_ts_stage1_study_trains_each_arm_for_equal_steps_and_is_read_back(tmp_path):
    run = resolve("smoke", seed=0, data_root="none", results_dir=tmp_path, validation__photos=4,
                  validation__size=64)
    out = ex.ts_stage1_study(run, "vgg_input", steps=3, validate_every=2, verbose=False)
    rows = {r["arm"]: r for r in out["rows"]}
    assert set(rows) == {"imagenet_normalised", "raw_01"}
    assert all(r["steps"] == 3 and [v["step"] for v in r["validation"]] == [2, 3] for r in rows.values())
    assert rows["imagenet_normalised"]["vgg_normalize"] is True and rows["raw_01"]["vgg_normalize"] is False
    # same seed, same batches, same initialisation: only the VGG input differs, so the losses differ
    assert rows["imagenet_normalised"]["final_losses"]["fr"] != rows["raw_01"]["final_losses"]["fr"]
    assert (tmp_path / "smoke" / "ts_stage1" / "vgg_input" / "0.json").is_file()
    again = ex.ts_stage1_study(run, "vgg_input", steps=3, validate_every=2, verbose=False)
    assert again["rows"] == out["rows"]  # read back, not retrained
    with pytest.raises(ex.ExperimentError, match="unknown TS stage-1 study"):
        ex.ts_stage1_study(run, "depth")



def test_identity_comparison_matches_images_by_name_and_gives_a_verdict():
    names = [f"im{i}" for i in range(12)]
    base = np.linspace(15, 25, 12)
    ident = {"scores": {"real20": {"per_image": {"image": names, "psnr_la": list(base),
                                                 "lpips": [0.3] * 12}}}}
    order = names[::-1]  # the model's file lists the same images in another order
    model = {"scores": {"real20": {"per_image": {"image": order,
                                                 "psnr_la": [base[names.index(n)] + 1.0 + 0.01 * i
                                                             for i, n in enumerate(order)],
                                                 "lpips": [0.35] * 12}}}}
    cmp = ex.identity_comparison(model, ident)["real20"]
    assert cmp["psnr_la"]["verdict"] == "better" and cmp["psnr_la"]["n_better"] == 12
    assert cmp["psnr_la"]["mean"] == pytest.approx(1.055, abs=1e-6)
    assert cmp["lpips"]["verdict"] == "worse" and cmp["lpips"]["n_better"] == 0
    assert "ssim_la" not in cmp  # not scored: not compared


def test_publish_records_scores_with_intervals_and_exports_the_best_checkpoint(tmp_path):
    import shutil

    from sirr.methods import get_method

    run = resolve("smoke", seed=11, data_root="none", results_dir=tmp_path / "results", validation__photos=4,
                  validation__size=64, la__validate_every=2)  # seed 11: a run folder no chapter uses
    with pytest.raises(ex.ExperimentError, match="no finished LA run"):
        ex.publish(dataclasses.replace(run, seed=12), "la")
    rdir = get_method("la").run_dir(run)
    try:
        res = get_method("la").train(run, resume=False, progress=False)
        load_log = tmp_path / "load.txt"
        load_log.write_text("2026-12-06T15:00:00Z 1.9\n2026-12-06T15:00:30Z 2.1\nnot a line\n")
        out = ex.publish(run, "la", load_log=load_log, verbose=False)
        assert out["training"]["load_average"]["one_minute_mean"] == 2.0
        assert out["training"]["best_validation"]["step"] == res.best["step"]
        ev = out["evaluation"]
        assert ev["selected"]["checkpoint"] == "best.pt" and ev["selected"]["step"] == res.best["step"]
        (dname, cmp), = ev["vs_identity"].items()  # smoke without a data root: the one fallback set
        assert cmp["psnr_la"]["n"] == ev["scores"][dname]["n"]
        assert cmp["psnr_la"]["verdict"] in ("better", "worse", "no clear difference")
        w = out["weights"]
        assert w["checkpoint"] == "best.pt" and w["selected_step"] == res.best["step"] and w["steps"] == res.steps
        exported = torch.load(tmp_path / w["path"], weights_only=True)["model"]  # the file, not only its label
        best = torch.load(res.best_checkpoint, weights_only=True)["model"]
        assert set(exported) == set(best)
        for k, v in best.items():
            if v.is_floating_point():
                assert torch.equal(exported[k], v.half()), k
        again = ex.publish(run, "la", verbose=False)  # repeatable: the same scores from the same checkpoint
        assert again["evaluation"]["scores"][dname]["psnr_la"] == pytest.approx(ev["scores"][dname]["psnr_la"])
    finally:
        shutil.rmtree(rdir, ignore_errors=True)


def test_loss_probe_scores_perturbed_ground_truths_with_each_term():
    run = resolve("smoke", data_root="none")
    la = ex.loss_probe(run, "la", n=3, size=64)
    assert list(la.index) == list(ex.PROBE_PERTURBATIONS)
    assert (la.loc["ground truth"].abs() < 1e-6).all()  # T̂ = T costs nothing
    for p in ("darker (x0.8)", "hue shifted (+0.5 rad)"):  # every LA term penalises a colour shift
        assert (la.loc[p] > 1e-4).all(), (p, la.loc[p])
    raw = ex.loss_probe(run, "ts", n=3, size=64, vgg_normalize=False)
    norm = ex.loss_probe(run, "ts", n=3, size=64, vgg_normalize=True)
    fr = "L_FR (Eq. 4, λ3 = 3)"
    assert raw.loc["black", fr] < raw.loc["ground truth", fr]  # L_FR alone prefers a featureless image
    assert raw.loc["ground truth", "total"] < raw.loc["black", "total"]  # the whole L_ini does not
    assert not np.isclose(raw.loc["ground truth", fr], norm.loc["ground truth", fr])
    from sirr.methods import UnknownMethodError

    with pytest.raises(UnknownMethodError) as e:
        ex.loss_probe(run, "xx")
    assert e.value.name == "xx" and e.value.valid == ("la", "ts")


def test_breakable_table_keeps_every_value_and_marks_the_table():
    import pandas as pd

    from sirrbook.viz import tables

    df = pd.DataFrame({"published at": ["https://example.org/a/very/long/path_without_spaces"], "n": [3]})
    html = tables.breakable(df).data
    assert 'class="dataframe sirr-breakable"' in html
    assert "https://example.org/a/very/long/path_without_spaces" in html and "<td>3</td>" in html
    assert "<th></th>" not in html  # no index column
