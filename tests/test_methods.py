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
    with pytest.raises(UnknownMethodError) as e:
        get_method("lx")
    assert (e.value.name, e.value.valid, e.value.closest) == ("lx", ("la", "ts"), None)
    with pytest.raises(UnknownMethodError) as e:
        METHODS["la"].variant("wo_tms")
    assert (e.value.name, e.value.closest) == ("wo_tms", "wo_tsm") and e.value.valid[0] == "full"
    assert set(e.value.valid) == {"full", *METHODS["la"].variants} and "wo_tsm" in str(e.value)
    assert METHODS["ts"].variant("wo_adversarial").train_kwargs == {"use_adversarial": False}


def test_every_library_error_derives_from_one_base():
    """SirrError is the base of every error class of both packages, each also a built-in exception."""
    import ast
    import importlib
    from pathlib import Path

    import sirr
    from sirr.errors import SirrError

    lib = Path(sirr.__file__).parent.parent
    found = []
    for path in sorted(lib.glob("sirr*/**/*.py")):
        mod = ".".join(path.relative_to(lib).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Unavailable", "TooLarge", "Input")):
                found.append((mod, node.name))
    assert len(found) >= 20
    builtin = (ValueError, TypeError, KeyError, LookupError, RuntimeError, OSError, ImportError, MemoryError)
    for mod, name in found:
        cls = getattr(importlib.import_module(mod), name)
        assert isinstance(cls, type) and issubclass(cls, SirrError), f"{mod}.{name} does not derive from SirrError"
        if cls is not SirrError:  # so that `except ValueError` and the like still catch it
            assert issubclass(cls, builtin), f"{mod}.{name} derives from no built-in exception besides Exception"


def test_the_method_answers_what_callers_used_to_branch_on():
    la, ts = METHODS["la"], METHODS["ts"]
    assert (la.benchmarked, la.commits_weights, bool(la.release_url)) == (True, True, True)
    assert (ts.benchmarked, ts.commits_weights, ts.release_url) == (False, False, None)
    assert la.variant("full").label == "Ours (full schedule)" and ts.variant("full").label == "Proposed (full schedule)"
    assert la.width_scale({}, None) is None and la.flops_ratio(0.5) == 1.0
    run = resolve("smoke", data_root="none")
    assert ts.width_scale({"width_scale": 0.25}, run.preset) == 0.25 and 0 < ts.flops_ratio(0.25) < 0.25
    T = torch.rand(1, 3, 64, 64)
    for m in (la, ts):
        terms = m.probe_terms(run)(T, T)
        assert terms and all(abs(v) < 1e-6 for k, v in terms.items() if "L_FR" not in k), (m.name, terms)


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
