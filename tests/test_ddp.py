"""torchrun + DistributedDataParallel on the CPU (gloo): both ranks end identical, only rank 0 writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sirr.train import load_checkpoint

TESTS = Path(__file__).resolve().parent

_SCRIPT = textwrap.dedent(
    """
    import hashlib, os, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import torch
    from test_train import photos, tiny_run
    from sirr.config import resolve
    from sirr.train import train_location_aware, train_two_stage

    rank = int(os.environ["RANK"])
    method, out = sys.argv[1], Path(sys.argv[2])

    def digest(state):
        h = hashlib.sha256()
        for k, v in state.items():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    # Each rank gets its own run folder so that a file written by rank 1 would show up.
    run_dir = out / f"{{method}}_rank{{rank}}"
    if method == "la":
        result = train_location_aware(tiny_run(), run_dir, photos=photos(), steps=2, fine_tune_steps=0,
                                      progress=False)
    else:
        result = train_two_stage(resolve("smoke", ts__crop=64), run_dir, photos=photos(), stage1_steps=1,
                                 stage2_steps=2, progress=False)
    assert not torch.distributed.is_initialized()  # the engine destroyed the group it created
    (out / f"{{method}}_hash{{rank}}.txt").write_text(digest(result.model.state_dict()))
    """
)


def torchrun(script: Path, *args: str, log: Path) -> None:
    # One training per launch: re-creating the default process group inside one torchrun worker reuses
    # the agent store's keys of the destroyed group (a PyTorch limitation), so each method gets its own.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), *args],
        env=env, capture_output=True, text=True, timeout=600,
    )
    log.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["la", "ts"])
def test_two_gloo_processes_end_with_identical_weights_and_only_rank0_writes(tmp_path, method):
    script = tmp_path / "ddp_train.py"
    script.write_text(_SCRIPT.format(tests=str(TESTS)))
    torchrun(script, method, str(tmp_path), log=tmp_path / "torchrun.log")
    h0, h1 = ((tmp_path / f"{method}_hash{r}.txt").read_text() for r in (0, 1))
    assert h0 == h1, "the two ranks ended with different weights"
    assert not (tmp_path / f"{method}_rank1").exists(), "rank 1 wrote into its run folder"
    written = sorted(p.name for p in (tmp_path / f"{method}_rank0").iterdir())
    assert written == ["final.pt", "last.pt", "metrics.jsonl", "train.log"]
    ck = load_checkpoint(tmp_path / f"{method}_rank0" / "last.pt", method)
    assert ck["world_size"] == 2
    # each rank drew its own synthetic stream: synthesizer seeded seed + rank
    assert [r["synthesizer"]["seed"] for r in ck["per_rank"]] == [0, 1]
    assert "rank 0 of 2" in (tmp_path / f"{method}_rank0" / "train.log").read_text()
