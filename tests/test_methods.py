"""The Method interface: one way to ask either method for its variants, run folder, model and prediction."""

from __future__ import annotations

import pytest
import torch

from sirr.config import resolve
from sirr.methods import METHODS, UnknownMethodError, get_method, method_of_checkpoint
from sirr.train.location_aware import la_step
from sirr.train.two_stage import ts_step


def test_both_methods_and_clear_errors():
    assert set(METHODS) == {"la", "ts"} and get_method("LA") is METHODS["la"]
    assert METHODS["la"].step is la_step and METHODS["ts"].step is ts_step
    with pytest.raises(UnknownMethodError, match="unknown method 'lx'; choose one of la, ts"):
        get_method("lx")
    with pytest.raises(UnknownMethodError, match="unknown LA variant 'wo_tms'.*Did you mean 'wo_tsm'"):
        METHODS["la"].variant("wo_tms")
    assert METHODS["ts"].variant("wo_adversarial").train_kwargs == {"use_adversarial": False}


def test_one_run_folder_scheme():
    run = resolve("smoke", seed=2, data_root="none")
    for m in METHODS.values():
        d = m.run_dir(run, "full")
        assert d.parts[-5:] == ("smoke", m.name, "full", "nodata", "seed2")
        assert m.checkpoint(run) == d / "final.pt"


def test_trained_without_training_is_none_then_train_load_predict(tmp_path, monkeypatch):
    import sirr.methods as M

    monkeypatch.setattr(M, "default_run_dir", lambda run, method, variant="full": tmp_path / method / variant)
    run = resolve("smoke", data_root="none")
    la = get_method("la")
    assert la.trained(run, "wo_tsm", train_missing=False) is None
    res = la.train(run, "wo_tsm")
    assert res.run_dir == tmp_path / "la" / "wo_tsm" and res.steps == run.preset.ablation.la_steps
    assert method_of_checkpoint(res.checkpoint) is la
    model = la.trained(run, "wo_tsm", train_missing=False)
    with torch.inference_mode():
        out = la.predict(model, torch.rand(1, 3, 40, 48))
    assert out.shape == (1, 3, 40, 48) and torch.isfinite(out).all()
