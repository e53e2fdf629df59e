"""Chapter 05's ten-minute experiment (sirrbook.lesson): F2 trained alone from ideal edges, scored as it learns."""

from __future__ import annotations

import pytest
import torch

from sirr.config import resolve
from sirrbook import lesson
from sirrbook.results import load_image


@pytest.fixture(scope="module")
def smoke_record(tmp_path_factory):
    run = resolve("smoke", data_root="none", device="cpu", results_dir=tmp_path_factory.mktemp("results"))
    return run, lesson.edges_to_background(run, progress=False, verbose=False)


def test_the_smoke_lesson_scores_every_few_steps_and_stores_its_pictures(smoke_record):
    run, rec = smoke_record
    recipe = lesson.lesson_recipe(run)
    assert [row["step"] for row in rec["curve"]] == [0, 2, 4] == list(range(0, recipe.steps + 1, recipe.evaluate_every))
    assert rec["curve"][0]["loss"] is None and all(row["loss"] > 0 for row in rec["curve"][1:])
    assert all(5 < row["psnr"] < 40 and 0 < row["ssim"] <= 1 for row in rec["curve"])
    assert 5 < rec["identity_psnr"] < 40 and len(rec["held_out"]) == recipe.held_out
    assert rec["recipe"]["steps"] == recipe.steps and rec["f2_parameters"] > 0
    for name in ("input", "edges", "before", "after", "truth"):
        img = load_image(rec, f"{name}_0")
        assert img.shape == (recipe.crop, recipe.crop, 3)
    assert rec["curve"][0]["psnr"] != rec["curve"][-1]["psnr"]  # the four steps changed F2


def test_a_second_call_reads_the_stored_run(smoke_record, monkeypatch):
    run, rec = smoke_record
    monkeypatch.setattr(lesson, "stage2_generator_loss", lambda *a, **k: pytest.fail("trained again"))
    again = lesson.edges_to_background(run, progress=False, verbose=False)
    assert again["curve"] == rec["curve"]


def test_the_lesson_is_deterministic(smoke_record, tmp_path):
    run, rec = smoke_record
    other = resolve("smoke", data_root="none", device="cpu", results_dir=tmp_path)
    assert lesson.edges_to_background(other, progress=False, verbose=False)["curve"] == rec["curve"]


def test_without_edges_f2_sees_only_the_input():
    g = torch.Generator().manual_seed(0)
    I, T = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    R = (I - T).clamp(0, 1)
    z = lesson._edges(I, T, R, "none")
    assert z.shape == (2, 9, 16, 16) and torch.equal(z[:, :3], I) and not z[:, 3:].any()
    z_gt = lesson._edges(I, T, R, "ground_truth")
    assert torch.equal(z_gt[:, :3], I) and z_gt[:, 3:].any()
    on_edges = z_gt[:, 3:6] != 0
    assert torch.equal(z_gt[:, 3:6][on_edges], I[on_edges])  # E_B is I on its background edges


@pytest.mark.parametrize("kwargs, match", [({"edges": "sobel"}, "edges must be one of ground_truth, none"),
                                           ({"recipe": lesson.EdgeLesson(steps=0)}, "steps >= 1")])
def test_bad_arguments_are_one_clear_error(kwargs, match, tmp_path):
    from sirr.errors import SirrError

    run = resolve("smoke", data_root="none", device="cpu", results_dir=tmp_path)
    with pytest.raises(lesson.LessonError, match=match) as e:
        lesson.edges_to_background(run, progress=False, **kwargs)
    assert isinstance(e.value, SirrError)


def test_validation_set_scores_a_ready_output_and_refuses_a_wrong_shape():
    from sirr.train.validation import ValidationSet

    photos = [(f"p{i}", torch.rand(40, 40, 3).numpy()) for i in range(3)]
    vs = ValidationSet(photos, "ts", 32)
    assert vs.score_output(vs.I) == pytest.approx((vs.identity_psnr, vs.identity_ssim))
    assert vs.score_output(vs.T)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one output per triple"):
        vs.score_output(vs.I[:2])


def test_the_lesson_figure_draws_the_curve_and_one_row_per_example(smoke_record):
    from sirrbook.viz.two_stage import edge_lesson_figure

    _, rec = smoke_record
    fig = edge_lesson_figure(rec)
    curve_ax = fig.axes[0]
    assert len(curve_ax.lines) == 2  # F2 and the identity line
    assert list(curve_ax.lines[0].get_xdata()) == [row["step"] for row in rec["curve"]]
    assert len(fig.axes) == 1 + 5 * lesson.lesson_recipe(resolve("smoke")).examples
