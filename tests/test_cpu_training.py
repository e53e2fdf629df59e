"""The `cpu` preset's machinery: schedules in steps (the same batches on any machine), precision fixed by the
preset, a time guard that marks a run truncated, the shared validation set, its scores and the best checkpoint."""

import math

import numpy as np
import pytest
import torch

from sirr.config import ConfigError, resolve
from sirr.methods import get_method
from sirr.metrics import psnr
from sirr.train.engine import load_checkpoint, read_metrics, resolve_precision
from sirr.train.validation import ValidationSet, held_out_validation, hold_out, split_for_validation
from sirrbook.weights import export_weights


def test_precision_choices():
    assert resolve_precision("fp32", "cpu").autocast is False
    bf = resolve_precision("bf16", "cpu")
    assert (bf.autocast, bf.channels_last) == (True, True)
    assert resolve_precision("bf16", "cuda").channels_last is False
    assert resolve_precision("auto", "cpu").autocast is False  # fp32 on every CPU: the same model everywhere
    assert resolve_precision("auto", "cuda").autocast is True
    with pytest.raises(ValueError, match="precision must be"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="la.precision"):
        resolve("smoke", data_root="none", la__precision="half")
    with pytest.raises(ConfigError, match="time_budget_s"):
        resolve("smoke", data_root="none", ts__time_budget_s=0)


def test_bf16_prepare_makes_channels_last():
    x = torch.rand(1, 3, 8, 8)
    y = resolve_precision("bf16", "cpu").prepare(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(memory_format=torch.channels_last)


def test_cpu_preset_is_defined_by_steps_in_fp32():
    p = resolve("cpu", data_root="none").preset
    assert p.la.time_budget_s is None and p.ts.time_budget_s is None  # no wall-clock budget: steps decide
    assert (p.la.batch_size, p.la.crop, p.la.precision) == (2, 128, "fp32")
    assert p.la.fine_tune_lr < p.la.lr and p.la.fine_tune_steps > 0  # the paper's second, lower rate
    assert p.la.steps > 0 and p.ts.stage1_steps > 0 and p.ts.precision == "fp32"
    assert p.la.iterations == 3 and p.validation.photos >= 48
    assert p.eval.subset == "scenes" and p.eval.max_images is None
    with pytest.raises(ConfigError, match="eval.subset"):
        resolve("cpu", data_root="none", eval__subset="first20")


def test_hold_out_is_disjoint_and_order_free():
    photos = [(f"p{i:02d}", np.zeros((4, 4, 3), np.uint8)) for i in range(20)]
    train, held = hold_out(photos, 5)
    names = lambda xs: {n for n, _ in xs}  # noqa: E731
    assert len(held) == 5 and len(train) == 15 and not names(train) & names(held)
    assert names(hold_out(photos[::-1], 5)[1]) == names(held)
    assert hold_out(photos, 0) == (photos, [])
    with pytest.raises(ValueError, match="at least 2 must remain"):
        hold_out(photos, 19)


def test_validation_identity_score_is_psnr_of_the_input():
    rng = np.random.default_rng(0)
    photos = [(f"p{i}", rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)) for i in range(4)]
    v = ValidationSet(photos, "la", 64)
    want = np.mean([psnr(i.permute(1, 2, 0).numpy(), t.permute(1, 2, 0).numpy(), "la") for i, t in zip(v.I, v.T)])
    assert math.isclose(v.identity_psnr, want, rel_tol=1e-6)
    s = v.score(lambda x: x)
    assert math.isclose(s["val_psnr"], s["val_identity_psnr"], abs_tol=1e-3)
    assert v.score(lambda x: torch.zeros_like(x))["val_psnr"] < s["val_psnr"]


def test_held_out_validation_is_what_training_holds_out():
    """The trainer, the claims and the brightness study all take their validation triples from one function."""
    rng = np.random.default_rng(1)
    photos = [(f"p{i:02d}", rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)) for i in range(12)]
    run = resolve("smoke", data_root="none", validation__photos=4, validation__size=64, validation__recipe="ts")
    train, vs = held_out_validation(run, photos)
    said: list[str] = []
    train2, vs2 = split_for_validation(run, photos, "cpu", 25, said.append)
    assert [n for n, _ in train] == [n for n, _ in train2] and len(train) == 8
    assert vs.names == vs2.names
    assert not {n for n, _ in train} & set(vs.names) and (vs.recipe, vs.size, len(vs)) == ("ts", 64, 4)
    assert torch.equal(vs.I, vs2.I) and torch.equal(vs.T, vs2.T)  # the same triples, drawn with the fixed seed
    assert said == [f"validation: 4 photos held out of the training pool, 4 TS triples at 64 px (identity PSNR "
                    f"{vs.identity_psnr:.2f} dB, SSIM {vs.identity_ssim:.3f}), scored every 25 steps"]
    none = resolve("smoke", data_root="none", validation__photos=0)
    assert held_out_validation(none, photos) == (photos, None)


@pytest.mark.parametrize("method", ["la", "ts"])
def test_time_guard_truncates_a_run_and_resume_finishes_it(tmp_path, method):
    """A guard far below one step: one step, then the run stops, is marked truncated everywhere and writes no
    final.pt; resuming without the guard does the rest of the preset's steps."""
    over = dict(validation__photos=4, validation__size=64, la__validate_every=1000, ts__validate_every=1000)
    run = resolve("smoke", data_root="none", la__time_budget_s=1e-3, ts__time_budget_s=1e-3, **over)
    m = get_method(method)
    r = m.train(run, run_dir=tmp_path, resume=False, progress=False)
    assert r.truncated and r.steps == 1 and r.progress["truncated"] is True
    assert not (tmp_path / "final.pt").exists() and r.checkpoint == tmp_path / "last.pt"
    ck = load_checkpoint(tmp_path / "last.pt", method)
    assert ck["truncated"] is True and ck["step"] == 1
    df = read_metrics(tmp_path)
    assert df["truncated"].fillna(False).astype(bool).any()
    assert "TRUNCATED" in (tmp_path / "train.log").read_text()
    with pytest.raises(ValueError, match="unfinished or truncated"):  # never committed as the preset's model
        export_weights(tmp_path / "last.pt", run)
    full = resolve("smoke", data_root="none", **over)
    done = m.train(full, run_dir=tmp_path, resume=True, progress=False)
    cfg = getattr(full.preset, method)
    want = cfg.steps + cfg.fine_tune_steps if method == "la" else cfg.stage1_steps + cfg.stage2_steps
    assert not done.truncated and done.steps == want and done.resumed_from == 1
    assert load_checkpoint(tmp_path / "final.pt", method)["truncated"] is False


def test_best_checkpoint_holds_the_best_validation_score(tmp_path):
    run = resolve("smoke", data_root="none", validation__photos=4, validation__size=64, la__validate_every=2)
    r = get_method("la").train(run, run_dir=tmp_path, resume=False, progress=False)
    df = read_metrics(tmp_path)
    val = df[df["validation"].fillna(False).astype(bool)]
    assert len(val) >= 3 and r.best is not None
    top = val.loc[val["val_psnr"].idxmax()]
    assert r.best["step"] == int(top["step"]) and r.best["val_psnr"] == pytest.approx(float(top["val_psnr"]))
    best = load_checkpoint(r.best_checkpoint, "la")
    assert best["best_validation"]["step"] == r.best["step"] and best["step"] == r.best["step"]
    assert "val_ssim" in val and (val["val_identity_ssim"] > 0).all()
    # best.pt's weights, scored again on the same held-out triples, give the recorded best score
    from sirr.data.pool import natural_photos

    _, vs = held_out_validation(run, natural_photos(run.data_root_arg, verbose=False))
    model = get_method("la").load(r.best_checkpoint).eval()
    with torch.no_grad():
        again = vs.score(lambda x: model(x).transmission)
    assert again["val_psnr"] == pytest.approx(r.best["val_psnr"], abs=2e-4)


@pytest.mark.parametrize("method", ["la", "ts"])
def test_the_same_preset_draws_the_same_batches_at_any_speed(tmp_path, method):
    """1 and 2 threads run at different speeds; the schedule is in steps, so both draw identical batches."""
    run = resolve("smoke", data_root="none")
    before = torch.get_num_threads()
    states, losses = [], []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            r = get_method(method).train(run, run_dir=tmp_path / f"t{threads}", resume=False, progress=False)
            df = read_metrics(r.run_dir)
            states.append(list(zip(df["step"], df["data_state"])))
            losses.append(df["total"].to_numpy())
    finally:
        torch.set_num_threads(before)
    assert states[0] == states[1] and len(states[0]) >= 4
    assert len({s for _, s in states[0]}) == len(states[0])  # the stream moves on at every logged step
    # the same first batch and initialisation give the same first loss up to float rounding (later losses drift
    # apart by the thread count's different reduction order, amplified by TS's hard edge masks and WGAN)
    np.testing.assert_allclose(losses[0][0], losses[1][0], rtol=1e-4)
