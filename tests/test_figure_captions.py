"""``sirrbook.viz.save_figure`` shows each figure once with a numbered caption, stamps smoke-weight figures,
and the chapter figures use one colour map (with a colour bar) per quantity."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import base64  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import sirr.config  # noqa: E402
from sirrbook.viz import figures  # noqa: E402
from sirrbook.viz import style  # noqa: E402

DATA_URI = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(autouse=True)
def _fresh():
    figures.reset_figure_numbers()
    yield
    figures.reset_figure_numbers()
    plt.close("all")


@pytest.fixture
def shown(monkeypatch):
    """Pretend to run inside IPython and capture what save_figure displays: a list of (html, plain)."""
    out = []
    monkeypatch.setattr(figures, "_ipython_active", lambda: True)
    monkeypatch.setattr(figures, "_display_html", lambda html, plain: out.append((html, plain)))
    return out


def run_of(tmp_path, preset="smoke"):
    return sirr.config.resolve(preset, results_dir=tmp_path / "results", data_root="none", device="cpu")


def small_figure(seed: int = 0):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.imshow(np.random.default_rng(seed).random((12, 18)), cmap="gray", vmin=0, vmax=1)
    ax.set_title("a panel")
    return fig


def pixels(png: bytes) -> np.ndarray:
    return plt.imread(io.BytesIO(png), format="png")


# ------------------------------------------------------------------ caption, number, HTML


def test_figures_are_numbered_per_chapter_and_keep_their_number(tmp_path, shown):
    run = run_of(tmp_path)
    a = figures.save_figure(small_figure(), "04_vgg_first_layer", run=run, caption="First.", figures_dir=tmp_path)
    figures.save_figure(small_figure(), "04_loss_curves", run=run, caption="Second.", figures_dir=tmp_path)
    figures.save_figure(small_figure(), "05_fig1_steps", run=run, caption="Other chapter.", figures_dir=tmp_path)
    figures.save_figure(small_figure(), "04_vgg_first_layer", run=run, caption="First again.", figures_dir=tmp_path)
    assert len(shown) == 4  # one output per save
    numbers = [re.search(r"<figcaption[^>]*><strong>Figure ([\d.]+)</strong>", h).group(1) for h, _ in shown]
    assert numbers == ["4.1.", "4.2.", "5.1.", "4.1."]
    html, plain = shown[0]
    assert html.startswith('<figure class="sirr-figure" id="fig-04_vgg_first_layer"')
    assert plain.startswith("Figure 4.1. First. [preset smoke, seed 0")
    # the caption shown is the sidecar's caption
    meta = json.loads((tmp_path / "04_vgg_first_layer.json").read_text())
    assert shown[-1][1] == f"Figure 4.1. {meta['caption']}" and "First again." in meta["caption"]
    assert isinstance(a, Path) and a == tmp_path / "04_vgg_first_layer.png"


def test_data_uri_is_the_saved_png_and_figure_is_closed(tmp_path, shown):
    fig = small_figure()
    png = figures.save_figure(fig, "06_scores", run=run_of(tmp_path), caption="Scores.", figures_dir=tmp_path)
    (html, _), = shown
    data = base64.b64decode(DATA_URI.search(html).group(1))
    assert data == png.read_bytes()
    assert 'style="max-width:100%' in html
    assert not plt.fignum_exists(fig.number)  # a following plt.show() draws nothing twice
    assert png._sirr_displayed  # and IPython prints no local path for the returned Path


def test_caption_is_html_escaped_and_backticks_become_code(tmp_path, shown):
    cap = 'Stored `cpu` run: ours < paper & "quotes" <script>x</script>'
    figures.save_figure(small_figure(), "04_x", run=None, caption=cap, figures_dir=tmp_path)
    (html, _), = shown
    figcaption = re.search(r"<figcaption[^>]*>(.*)</figcaption>", html).group(1)
    assert "<code>cpu</code>" in figcaption
    assert "ours &lt; paper &amp;" in figcaption
    assert "<script>" not in html and "&lt;script&gt;" in figcaption
    alt = re.search(r'alt="([^"]*)"', html).group(1)
    assert "&lt;" in alt and "&quot;quotes&quot;" in alt and "<" not in alt


def test_outside_ipython_nothing_is_displayed(tmp_path, monkeypatch):
    def boom(*a):
        raise AssertionError("displayed outside IPython")

    monkeypatch.setattr(figures, "_display_html", boom)
    monkeypatch.setattr(figures, "_ipython_active", lambda: False)
    fig = small_figure()
    png = figures.save_figure(fig, "04_x", caption="c", figures_dir=tmp_path)
    assert png.is_file() and (tmp_path / "04_x.json").is_file()
    assert plt.fignum_exists(fig.number)  # scripts keep their figure
    assert figures.save_figure(small_figure(), "04_y", caption="c", figures_dir=tmp_path, display=False).is_file()


def test_real_ipython_shell_gets_one_html_output(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    try:
        assert figures._ipython_active()
        with capture_output() as cap:
            figures.save_figure(small_figure(), "04_real", caption="Real <shell>.", figures_dir=tmp_path)
        assert len(cap.outputs) == 1
        html = cap.outputs[0].data["text/html"]
        assert "<strong>Figure 4.1.</strong> Real &lt;shell&gt;." in html
        assert base64.b64decode(DATA_URI.search(html).group(1)) == (tmp_path / "04_real.png").read_bytes()
    finally:
        InteractiveShell.clear_instance()
        del shell


def test_caption_for_names_preset_seed_and_weights(tmp_path):
    run = run_of(tmp_path)
    cap = figures.caption_for(run, "Text.", weights="smoke checkpoint, 40 steps")
    assert cap.startswith("Text. [preset smoke, seed 0, weights: smoke checkpoint, 40 steps, device cpu")
    assert figures.caption_for(None, "Only text.") == "Only text."
    assert figures.caption_for(None, "T.", weights="w") == "T. [weights: w]"


# ------------------------------------------------------------------ the smoke stamp


def test_smoke_weights_are_stamped_and_data_figures_are_not(tmp_path):
    smoke = run_of(tmp_path)
    data_png = figures.save_figure(small_figure(), "02_data", run=smoke, caption="d", figures_dir=tmp_path)
    data_again = figures.save_figure(small_figure(), "02_data2", run=smoke, caption="d", figures_dir=tmp_path)
    fig = small_figure()
    stamped = figures.save_figure(fig, "04_trained", run=smoke, caption="t", figures_dir=tmp_path,
                                  weights="smoke checkpoint (40 steps)")
    flagged = figures.save_figure(small_figure(), "04_trained2", run=smoke, caption="t", figures_dir=tmp_path,
                                  trained=True)
    assert [t.get_text() for t in fig.texts] == [figures.SMOKE_STAMP_TEXT]
    a, b = pixels(data_png.read_bytes()), pixels(data_again.read_bytes())
    np.testing.assert_array_equal(a, b)  # same figure, same pixels: the comparison below means something
    s = pixels(stamped.read_bytes())
    assert s.shape == a.shape and np.abs(s - a).max() > 0.3 and (np.abs(s - a).max(-1) > 0.05).mean() > 0.02
    np.testing.assert_array_equal(s, pixels(flagged.read_bytes()))
    assert json.loads((tmp_path / "04_trained.json").read_text())["smoke_stamp"] is True
    meta = json.loads((tmp_path / "02_data.json").read_text())
    assert meta["smoke_stamp"] is False and meta["weights"] is None
    # re-saving a stamped figure does not stamp it twice
    figures.save_figure(fig, "04_trained", run=smoke, caption="t", figures_dir=tmp_path, weights="w")
    assert len(fig.texts) == 1


def test_other_presets_are_not_stamped(tmp_path):
    demo = SimpleNamespace(**{**vars(run_of(tmp_path)), "preset": SimpleNamespace(name="demo", vgg_weights="auto")})
    fig = small_figure()
    png = figures.save_figure(fig, "04_demo", run=demo, caption="t", figures_dir=tmp_path, weights="demo weights")
    assert not fig.texts
    assert "weights: demo weights" in json.loads((tmp_path / "04_demo.json").read_text())["caption"]
    assert png.is_file()


# ------------------------------------------------------------------ colour maps, colour bars, titles


def _la_output(n: int = 3, h: int = 24, w: int = 36):
    g = torch.Generator().manual_seed(0)
    return SimpleNamespace(transmissions=[torch.rand(1, 3, h, w, generator=g) for _ in range(n)],
                           rcmaps=[torch.rand(1, 1, h, w, generator=g) for _ in range(n)],
                           reflections=[torch.rand(1, 3, h, w, generator=g) for _ in range(n)])


def _cmaps(fig) -> list[str]:
    return [im.get_cmap().name for ax in fig.axes for im in ax.images if im.get_array().ndim == 2]


def test_rcmap_and_error_panels_share_colour_maps_and_have_colour_bars():
    from sirrbook.viz import location_aware as laviz

    I = torch.rand(1, 3, 24, 36)
    grid = laviz.iteration_grid(I, _la_output(), title="a very long title " * 8)
    assert _cmaps(grid) == [style.CMAP_RCMAP] * 3
    bars = [ax for ax in grid.axes if hasattr(ax, "_colorbar")]
    assert len(bars) == 3
    assert "\n" in grid.get_suptitle()  # long titles are wrapped
    one = laviz.iteration_figure(I, _la_output(), 2)
    assert _cmaps(one) == [style.CMAP_RCMAP, style.CMAP_ERROR]
    assert len([ax for ax in one.axes if hasattr(ax, "_colorbar")]) == 2


def test_ts_confidence_uses_its_colour_map():
    from sirr.models.two_stage import TwoStage, two_means_threshold
    from sirrbook.viz import two_stage as tsviz

    model = TwoStage(width_scale=0.125).eval()
    I = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(I)
    fig = tsviz.fig1_panels(I, out, two_means_threshold(out.confidence[0]))
    assert _cmaps(fig) == [style.CMAP_CONFIDENCE]
    assert len(fig.axes) == 9  # 8 panels + the C_rf colour bar


def test_colour_bar_is_as_tall_as_its_image():
    fig, ax = plt.subplots(figsize=(4, 4), layout="constrained")
    style.map_panel(ax, np.random.rand(10, 40), style.CMAP_RCMAP, "wide map", vmin=0, vmax=1)
    fig.canvas.draw()
    cax = [a for a in fig.axes if hasattr(a, "_colorbar")][0]
    img, bar = ax.get_position(), cax.get_position()
    assert bar.height == pytest.approx(img.height, rel=0.05) and bar.x0 >= img.x1


def test_wrap_title_never_breaks_mathtext():
    t = style.wrap_title("final $B_{final} = F_2([I, E_B, E_R])$ of the second stage", 12)
    assert "\n" in t and any("$B_{final} = F_2([I, E_B, E_R])$" in line for line in t.split("\n"))
    assert all(line.count("$") % 2 == 0 for line in t.split("\n"))


def test_ordering_plot_labels_on_y_axis_without_overlap():
    from sirrbook.viz.tables import ordering_plot

    labels = ["Full model", "w/o RDM & TSM", "w/o TSM", "w/o conv-LSTM", "Ĉ from I_ft",
              "L_C^B & RKI (relative kernel initialisation, long label)", "w/o multiscale", "L_C → L_C^B"]
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"label": labels, "n_seeds": 3, "psnr_la_mean": 14 + rng.random(8),
                       "psnr_la_std": rng.random(8) * 0.2,
                       "paper_psnr": [24.1, 23.2, 23.6, 23.5, 23.8, 23.9, 23.0, np.nan]})
    df.attrs.update(seeds=[0, 1, 2], paper_column="SIR² average")
    fig = ordering_plot(df, title="LA Table 2 (network structure): ours vs paper")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    ticks = [t for t in ax.get_yticklabels() if t.get_text()]
    assert sorted(t.get_text().replace("\n", " ") for t in ticks) == sorted(labels)
    boxes = sorted((t.get_window_extent(renderer) for t in ticks), key=lambda b: b.y0)
    assert all(lo.y1 <= hi.y0 + 0.5 for lo, hi in zip(boxes, boxes[1:]))  # no two labels overlap
    assert ticks[-1].get_text() == "Full model"  # the paper's best row is on top


def test_every_changed_figure_draws_with_constrained_layout(tmp_path):
    from sirrbook.viz import location_aware as laviz
    from sirrbook.viz import tables
    from sirrbook.viz import two_stage as tsviz
    from sirrbook.viz.training import training_curves

    metrics = pd.DataFrame({"step": [1, 2, 3, 4], "phase": ["pretrain", "pretrain", "finetune", "finetune"],
                            "total": [1.0, 0.6, 0.5, 0.4], "rcmap": [0.3, 0.2, 0.2, 0.1],
                            "validation": [False, True, False, True], "val_psnr": [np.nan, 20.0, np.nan, 21.0],
                            "val_identity_psnr": [np.nan, 19.0, np.nan, 19.0]})
    scores = pd.DataFrame({"dataset": ["sir2_postcard", "real20"], "identity_psnr_la": [20.0, 18.0],
                           "la_psnr_la": [21.0, 19.0], "ts_psnr_la": [20.5, 18.5], "paper_la_psnr": [24.0, np.nan]})
    img = torch.rand(1, 3, 20, 28)
    figs = [
        laviz.loss_curves(metrics, title="LA training losses " * 6),
        training_curves(metrics, title="stored cpu training " * 8),
        tsviz.training_curves(metrics.drop(columns=["validation"]), title="TS"),
        tsviz.initial_vs_final([("a photo with a very long name indeed", img, img, img)]),
        tables.scores_plot(scores, title="PSNR by test set " * 5),
        figures.image_grid([img, img], ["input $I$ and a long title to wrap", "LA $\\hat{T}_N$"], suptitle="s"),
    ]
    for k, fig in enumerate(figs):
        assert fig.get_layout_engine() is not None and type(fig.get_layout_engine()).__name__ == \
            "ConstrainedLayoutEngine"
        figures.save_figure(fig, f"99_draw_{k}", figures_dir=tmp_path, display=False)


def test_a_smoke_weight_figure_is_a_collapsed_pipeline_check_line_not_a_figure(tmp_path, shown):
    smoke = run_of(tmp_path)
    png = figures.save_figure(small_figure(), "04_outputs", run=smoke, caption="Outputs.", figures_dir=tmp_path,
                              trained=True)
    figures.save_figure(small_figure(), "04_data", run=smoke, caption="Data.", figures_dir=tmp_path)
    (check, plain), (data_html, data_plain) = shown
    assert check.startswith('<details class="sirr-pipeline-check">') and "<figure" not in check
    assert plain.startswith("pipeline check: 04_outputs") and png.is_file()  # still written, for CI
    assert data_plain.startswith("Figure 4.1.")  # a data figure is numbered as if the check were not there


def test_smoke_scores_are_a_pipeline_check_line_and_other_scores_a_table(tmp_path, shown, monkeypatch):
    import pandas as pd

    shown_tables = []
    monkeypatch.setattr("IPython.display.display", lambda x, *a, **k: shown_tables.append(x))
    df = pd.DataFrame({"psnr": [20.0]})
    figures.show_scores(df, run_of(tmp_path), "ch04 scores")
    assert shown[-1][1].startswith("pipeline check: ch04 scores") and not shown_tables
    demo = SimpleNamespace(**{**vars(run_of(tmp_path)), "preset": SimpleNamespace(name="demo", vgg_weights="auto")})
    figures.show_scores(df, demo, "ch04 scores")
    assert shown_tables == [df]


def test_provenance_and_details_collapse_into_one_line_under_a_short_caption(tmp_path):
    assert figures.split_caption("Curves by step. [preset cpu, seed 0, commit abc]") == (
        "Curves by step.", "preset cpu, seed 0, commit abc")
    assert figures.split_caption("No bracket here.") == ("No bracket here.", "")
    html_text = figures.figure_html(b"\x89PNG\r\n\x1a\n", "04_x", "4.1", "Curves. [preset cpu, seed 0]",
                                    details="800 steps, 0.17% of the paper's compute.")
    caption = html_text.split("<figcaption", 1)[1]
    assert caption.index("Curves.") < caption.index("<details") and "800 steps" in caption.split("<details", 1)[1]
    assert 'alt="Curves."' in html_text  # the alt text is the caption's text, not its provenance


def test_training_curves_name_each_phase_with_its_learning_rate():
    from sirrbook.viz.training import training_curves

    metrics = pd.DataFrame({"step": [1, 2, 3, 4], "phase": ["train", "train", "fine_tune", "fine_tune"],
                            "lr": [2e-4, np.nan, 1e-4, np.nan], "total": [1.0, np.nan, 0.5, np.nan],
                            "validation": [False, True, False, True], "val_psnr": [np.nan, 20.0, np.nan, 21.0],
                            "val_identity_psnr": [np.nan, 19.0, np.nan, 19.0]})
    fig = training_curves(metrics)
    loss_ax, val_ax = fig.axes
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["training, lr 2e-4", "fine-tuning, lr 1e-4"]
    assert "network (fine-tuning, lr 1e-4)" in [t.get_text() for t in val_ax.get_legend().get_texts()]
    plt.close(fig)
