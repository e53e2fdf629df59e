"""sirrbook.viz.explorer: controls from specs, live render into an Output, static PNG renders in the state."""

from __future__ import annotations

import base64

import pytest

ipywidgets = pytest.importorskip("ipywidgets")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sirrbook.viz import explorer  # noqa: E402
from sirrbook.viz.widgets import ExplorerError, make_control  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, **values):
        self.calls.append(values)
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([0, 1], [0, values.get("alpha", 1)])
        ax.set_title(str(values))
        return fig


CONTROLS = {"image": ["a", "b"], "scale": (1, 8, 1), "alpha": (0.8, 1.0, 0.05)}


def test_controls_from_specs():
    assert isinstance(make_control("x", ["a", "b"]), ipywidgets.Dropdown)
    s = make_control("n", (1, 8, 1))
    assert isinstance(s, ipywidgets.IntSlider) and (s.min, s.max, s.value) == (1, 8, 1)
    f = make_control("alpha", (0.8, 1.0, 0.05, 0.9))
    assert isinstance(f, ipywidgets.FloatSlider) and f.value == pytest.approx(0.9)
    own = ipywidgets.Checkbox(value=True)
    assert make_control("flag", own) is own and own.description == "flag"


def test_builds_and_renders_defaults_once_with_static_images():
    render = Recorder()
    ex = explorer(render, CONTROLS, static=[{}, {"image": "b", "scale": 4}], title="Demo")
    # the defaults (first choice / slider minimum) are rendered once: live view and first static set share it
    assert render.calls[0] == {"image": "a", "scale": 1, "alpha": 0.8}
    assert len(render.calls) == 2 and render.calls[1] == {"image": "b", "scale": 4, "alpha": 0.8}
    # live view: the Output widget's state holds the PNG itself
    (out,) = ex.output.outputs
    assert base64.b64decode(out["data"]["image/png"]).startswith(PNG_MAGIC)
    # static renders: Image widgets with PNG bytes, in a Tab titled by what differs from the defaults
    assert [v for v, _ in ex.static_images] == render.calls
    assert all(bytes(img.value).startswith(PNG_MAGIC) and img.format == "png" for _, img in ex.static_images)
    tab = [c for c in ex.children if isinstance(c, ipywidgets.Tab)][0]
    assert tab.titles == ("defaults", "image = b, scale = 4")
    # captions name the values
    html = [c.value for box in tab.children for c in box.children if isinstance(c, ipywidgets.HTML)]
    assert html[1] == "<small>image = b, scale = 4, alpha = 0.8</small>"


def test_moving_a_control_rerenders_the_live_view():
    render = Recorder()
    ex = explorer(render, CONTROLS)
    # no static sets: the live view's default render is the only figure, no Tab
    assert ex.static_images == [] and not any(isinstance(c, ipywidgets.Tab) for c in ex.children)
    assert render.calls == [{"image": "a", "scale": 1, "alpha": 0.8}]
    ex.controls["scale"].value = 3
    assert render.calls[-1] == {"image": "a", "scale": 3, "alpha": 0.8}
    assert "scale = 3" in ex.output.outputs[0]["data"]["text/plain"]
    ex.controls["scale"].value = 1  # cached: no new render
    assert len(render.calls) == 2


def test_embedded_state_contains_the_static_pngs():
    ex = explorer(Recorder(), CONTROLS, static=[{"image": "b"}])
    state = ipywidgets.Widget.get_manager_state(widgets=[ex, *ex.children, *[img for _, img in ex.static_images]])
    images = [s for s in state["state"].values() if s["model_name"] == "ImageModel"]
    assert images and all(s.get("buffers") for s in images)
    assert base64.b64decode(images[0]["buffers"][0]["data"]).startswith(PNG_MAGIC)


def test_render_errors_show_in_the_live_view_not_as_exceptions():
    def render(image, scale):
        if scale > 2:
            raise ValueError("too big")
        return Recorder()(image=image, scale=scale)

    ex = explorer(render, {"image": ["a"], "scale": (1, 4, 1)})
    ex.controls["scale"].value = 3
    assert ex.output.outputs[0]["output_type"] == "stream"
    assert "ValueError: too big" in ex.output.outputs[0]["text"]


@pytest.mark.parametrize("controls, match", [
    ({"x": (1, 2)}, "unsupported spec"),
    ({"x": "abc"}, "unsupported spec"),
    ({"x": []}, "empty list"),
    ({"x": (5, 1, 1)}, "min < max"),
    ({"x": (0.0, 1.0, 0.0)}, "step must be > 0"),
    ({"x": (0, 10, 1, 11)}, "outside"),
    ({"x": 3.5}, "unsupported spec"),
    ({}, "at least one control"),
    ("not a dict", "must be a dict"),
])
def test_bad_control_specs_raise(controls, match):
    with pytest.raises(ExplorerError, match=match):
        explorer(Recorder(), controls)


def test_bad_static_sets_and_renders_raise():
    with pytest.raises(ExplorerError, match="unknown controls"):
        explorer(Recorder(), CONTROLS, static=[{"colour": 1}])
    with pytest.raises(ExplorerError, match="not one of the choices"):
        explorer(Recorder(), CONTROLS, static=[{"image": "z"}])
    with pytest.raises(ExplorerError, match="outside"):
        explorer(Recorder(), CONTROLS, static=[{"scale": 99}])
    with pytest.raises(ExplorerError, match="must return a matplotlib Figure"):
        explorer(lambda **v: 42, CONTROLS)
    assert issubclass(ExplorerError, ValueError)
