"""The `cpu` preset's machinery: precision choice, time budgets that stop at a step boundary, the
held-out validation set and its scores in the metrics file."""

import math

import numpy as np
import pytest
import torch

from sirr.config import ConfigError, resolve
from sirr.methods import get_method
from sirr.metrics import psnr
from sirr.train.engine import cpu_has_native_bf16, load_checkpoint, read_metrics, resolve_precision, split_budget
from sirr.train.validation import ValidationSet, hold_out


def test_precision_choices():
    assert resolve_precision("fp32", "cpu").autocast is False
    bf = resolve_precision("bf16", "cpu")
    assert (bf.autocast, bf.channels_last) == (True, True)
    assert resolve_precision("bf16", "cuda").channels_last is False
    assert resolve_precision("auto", "cpu").autocast is cpu_has_native_bf16()
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


def test_split_budget():
    assert split_budget(None, [3, 4]) == [None, None]
    assert split_budget(2400, [100_000, 0]) == [2400.0, 0.0]
    assert split_budget(100, [1, 3]) == [25.0, 75.0]


def test_cpu_preset_is_the_issue_scale():
    p = resolve("cpu", data_root="none").preset
    assert p.la.time_budget_s == p.ts.time_budget_s == 2400
    assert p.ts.width_scale == 0.25 and p.la.iterations == 3
    assert p.validation.photos > 0


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


@pytest.mark.parametrize("method", ["ts"])  # LA: the same checks on tests/test_weights.py's budgeted run
def test_time_budget_stops_each_phase_at_a_step_boundary_and_resumes(tmp_path, method):
    """A budget far below one step: every phase takes exactly one step, records it, and a resume is a no-op."""
    over = dict(la__time_budget_s=1e-3, ts__time_budget_s=1e-3, validation__photos=4, validation__size=64,
                la__validate_every=1000, ts__validate_every=1000)
    run = resolve("smoke", data_root="none", **over)
    m = get_method(method)
    r = m.train(run, run_dir=tmp_path, resume=False, progress=False)
    phases = r.progress["phase_steps"]
    ran = {k: v for k, v in phases.items() if v}
    assert set(ran.values()) == {1}, phases
    assert r.steps == len(ran)
    assert r.progress["samples_seen"] == r.steps * getattr(run.preset, method).batch_size
    ck = load_checkpoint(tmp_path / "final.pt", method)
    assert ck["phase_steps"] == phases and ck["phase"] == "done"
    df = read_metrics(tmp_path)
    val = df[df["validation"].fillna(False).astype(bool)]
    assert len(val) == len(ran)  # scored at the end of each phase
    assert (val["val_identity_psnr"] > 10).all() and val["val_psnr"].notna().all()
    again = m.train(run, run_dir=tmp_path, resume=True, progress=False)
    assert again.steps == r.steps and again.resumed_from == r.steps
