"""Presets, parameter validation and the data-root rules."""

from __future__ import annotations

import dataclasses

import pytest

from sirr.config import PRESETS, ConfigError, get_preset, resolve
from sirr.data.root import DataRootError, find_data_root


def test_presets_are_the_four_named_ones_and_frozen():
    assert list(PRESETS) == ["smoke", "cpu", "demo", "paper"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["smoke"].device = "cuda"  # type: ignore[misc]


def test_paper_preset_holds_the_papers_schedules():
    p = get_preset("paper")
    assert (p.la.lr, p.la.fine_tune_lr, p.la.betas, p.la.batch_size) == (2e-4, 1e-4, (0.5, 0.99), 2)
    assert p.la.steps == 60 * 4000 // 2  # 60 epochs of 4000 pairs at batch 2
    assert (p.ts.lr_stage1, p.ts.lr_stage2, p.ts.lr_discriminator) == (2e-4, 2e-4, 2e-5)
    assert p.vgg_weights == "auto"


def test_smoke_is_cpu_and_uses_an_imagenet_vgg_without_download():
    p = get_preset("smoke")
    assert p.device == "cpu" and p.vgg_weights == "auto"  # torchvision's if cached, else the Oxford weights
    assert all(q.vgg_weights == "auto" for q in PRESETS.values())


@pytest.mark.parametrize("weights", ["auto", "imagenet", "oxford", "random"])
def test_every_vgg_weights_setting_is_accepted(weights):
    assert resolve("smoke", vgg_weights=weights).preset.vgg_weights == weights


def test_bad_vgg_weights_error_lists_the_choices():
    with pytest.raises(ConfigError, match=r"'auto', 'imagenet', 'oxford' or 'random', got 'places365'"):
        resolve("smoke", vgg_weights="places365")


def test_unknown_preset_names_the_valid_ones_and_suggests():
    with pytest.raises(ConfigError, match=r"unknown preset 'demoo'.*smoke, cpu, demo, paper.*Did you mean 'demo'"):
        get_preset("demoo")


@pytest.mark.parametrize("bad, match", [
    ({"sead": 3}, r"unknown parameter 'sead'"),
    ({"la__stepz": 3}, r"la has no field 'stepz'.*'steps'"),
    ({"las__steps": 3}, r"no section 'las'.*'la'"),
    ({"vgg_weights": "imagenett"}, r"vgg_weights must be"),
])
def test_misspelled_parameters_are_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        resolve("smoke", **bad)


def test_overrides_replace_only_what_they_name():
    run = resolve("smoke", seed=3, la__steps=7, vgg_weights="random")
    assert run.seed == 3 and run.preset.la.steps == 7
    assert run.preset.la.lr == PRESETS["smoke"].la.lr
    assert PRESETS["smoke"].la.steps != 7  # the preset itself is untouched


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ConfigError, match="seed"):
        resolve("smoke", seed=seed)


@pytest.mark.parametrize("override, match", [
    ({"la__steps": -1}, r"la\.steps must be an integer >= 0; got -1"),
    ({"la__steps": 2.5}, r"la\.steps must be an integer >= 0; got 2\.5"),
    ({"ts__stage2_steps": True}, r"ts\.stage2_steps must be an integer >= 0; got True"),
    ({"ts__batch_size": 0}, r"ts\.batch_size must be an integer >= 1; got 0"),
    ({"la__validate_every": -5}, r"la\.validate_every must be an integer >= 1"),
    ({"la__lr": 0}, r"la\.lr must be a positive learning rate; got 0"),
    ({"ts__lr_discriminator": -2e-5}, r"ts\.lr_discriminator must be a positive learning rate"),
])
def test_bad_counts_and_rates_are_one_clear_error(override, match):
    with pytest.raises(ConfigError, match=match):
        resolve("smoke", data_root="none", **override)


def test_zero_steps_in_one_phase_is_allowed():
    run = resolve("smoke", data_root="none", la__steps=0, la__fine_tune_steps=3, ts__stage2_steps=0)
    assert (run.preset.la.steps, run.preset.la.fine_tune_steps, run.preset.ts.stage2_steps) == (0, 3, 0)


def test_cuda_device_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve("smoke", device="cuda")


def test_data_root_precedence(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    monkeypatch.setenv("SIRR_DATA", str(b))
    assert find_data_root(a) == a.resolve()  # explicit beats the environment
    assert find_data_root(None) == b.resolve()
    monkeypatch.setenv("SIRR_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataRootError, match=r"\$SIRR_DATA"):
        find_data_root(None)
    with pytest.raises(DataRootError, match="data_root parameter"):
        find_data_root(tmp_path / "nope")


def test_run_config_records_everything_as_json():
    import json

    run = resolve("smoke", seed=2)
    d = json.loads(json.dumps(run.as_dict()))
    assert d["seed"] == 2 and d["preset"]["name"] == "smoke" and d["device"] == "cpu"
