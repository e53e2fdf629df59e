"""Resume is exact: an interrupted (even SIGKILLed) run, resumed, ends with the uninterrupted run's weights bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sirr.train import load_checkpoint, read_metrics, train_location_aware, train_two_stage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import assert_bitwise_equal, photos, tiny_run  # noqa: E402


def everything(path) -> dict[str, torch.Tensor]:
    """Model, discriminator and optimiser tensors of a last.pt, flattened."""
    ck = load_checkpoint(path)
    out = {}
    for part in ("model", "discriminator"):
        out.update({f"{part}.{k}": v for k, v in ck.get(part, {}).items()})
    for part in ("optimizer", "optimizer_d", "optimizer_stage1", "optimizer_stage2"):
        for pid, st in ck.get(part, {}).get("state", {}).items():
            out.update({f"{part}.{pid}.{k}": v for k, v in st.items() if isinstance(v, torch.Tensor)})
    return out


def test_la_resume_across_the_fine_tuning_switch_is_bitwise_exact(tmp_path):
    run = tiny_run(la__checkpoint_every=100)
    full = train_location_aware(run, tmp_path / "full", photos=photos(), steps=1, fine_tune_steps=2, progress=False)
    # "Interrupted" after 2 steps (the schedule's first fine-tuning step), then resumed to 3.
    part = train_location_aware(run, tmp_path / "part", photos=photos(), steps=1, fine_tune_steps=1, progress=False)
    assert part.steps == 2
    resumed = train_location_aware(run, tmp_path / "part", photos=photos(), steps=1, fine_tune_steps=2, progress=False)
    assert resumed.resumed_from == 2 and resumed.steps == 3
    assert_bitwise_equal(everything(full.run_dir / "last.pt"), everything(resumed.run_dir / "last.pt"))
    df = read_metrics(resumed.run_dir)
    assert list(df["step"]) == [1, 2, 3]
    assert list(df["phase"]) == ["train", "fine_tune", "fine_tune"]
    assert df["total"].tolist() == read_metrics(full.run_dir)["total"].tolist()


def test_ts_resume_across_the_stage_switch_is_bitwise_exact(tmp_path):
    from sirr.config import resolve

    run = resolve("smoke", ts__crop=64, ts__checkpoint_every=100)
    full = train_two_stage(run, tmp_path / "full", photos=photos(), stage1_steps=2, stage2_steps=2, progress=False)
    part = train_two_stage(run, tmp_path / "part", photos=photos(), stage1_steps=2, stage2_steps=1, progress=False)
    resumed = train_two_stage(run, tmp_path / "part", photos=photos(), stage1_steps=2, stage2_steps=2, progress=False)
    assert part.steps == 3 and resumed.resumed_from == 3
    assert_bitwise_equal(everything(full.run_dir / "last.pt"), everything(resumed.run_dir / "last.pt"))
    assert list(read_metrics(resumed.run_dir)["phase"]) == ["stage1", "stage1", "stage2", "stage2"]


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import torch
    import sirr.train.engine as engine
    from sirr.atomic import atomic_write
    from test_train import photos, tiny_run
    from sirr.train import train_location_aware

    KILL_AT, WHEN = {kill_at!r}, {when!r}
    real_save = engine.atomic_torch_save

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def hooked(obj, path):  # the checkpoint hook: every checkpoint the session writes goes through it
        if obj.get("step") != KILL_AT or not str(path).endswith("last.pt"):
            return real_save(obj, path)
        if WHEN == "while writing":  # the temporary file is written and flushed, not yet renamed to last.pt
            atomic_write(path, lambda fh: (torch.save(obj, fh), fh.flush(), die()))
        real_save(obj, path)
        die()  # after writing: last.pt of step KILL_AT is on disk

    engine.atomic_torch_save = hooked
    run = tiny_run(la__checkpoint_every=1, la__log_every=1)
    train_location_aware(run, {run_dir!r}, photos=photos(), steps=2, fine_tune_steps=2, progress=False)
    """
)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tiny_run(la__checkpoint_every=1, la__log_every=1)
    return train_location_aware(run, tmp_path_factory.mktemp("ref"), photos=photos(), steps=2, fine_tune_steps=2,
                                progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at, when", [(1, "after writing"), (3, "while writing")])
def test_sigkill_at_a_checkpoint_then_resume_equals_an_uninterrupted_run(tmp_path, uninterrupted, kill_at, when):
    """The child kills itself (SIGKILL) at a checkpoint: right after step 1's ``last.pt`` is on disk, or while
    step 3's is being written (before the rename: ``last.pt`` still holds step 2, a temporary file lies beside it).
    Resumed, the run ends with the uninterrupted run's weights bit for bit."""
    run = tiny_run(la__checkpoint_every=1, la__log_every=1)
    run_dir = tmp_path / "killed"
    code = _CHILD.format(tests=str(Path(__file__).resolve().parent), run_dir=str(run_dir), kill_at=kill_at,
                         when=when)
    child = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONUNBUFFERED": "1"},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    killed_at = load_checkpoint(run_dir / "last.pt", "la")["step"]
    assert killed_at == (kill_at if when == "after writing" else kill_at - 1)
    assert any(p.name.endswith(".tmp") for p in run_dir.iterdir()) == (when == "while writing")
    resumed = train_location_aware(run, run_dir, photos=photos(), steps=2, fine_tune_steps=2, progress=False)
    assert resumed.resumed_from == killed_at
    assert_bitwise_equal(everything(uninterrupted.run_dir / "last.pt"), everything(run_dir / "last.pt"))
    assert list(read_metrics(run_dir)["step"]) == [1, 2, 3, 4]
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
