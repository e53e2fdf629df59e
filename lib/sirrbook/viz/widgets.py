"""Interactive explorers that still say something in the static book (no kernel, no internet).

Design
------
:func:`explorer` builds one ipywidgets box with three parts:

1. **controls** -- one widget per parameter (a list becomes a ``Dropdown``, a ``(min, max, step)``
   tuple an ``IntSlider``/``FloatSlider``, a ready-made widget is used as it is);
2. **live view** -- an ``Output`` widget showing ``render(**values)`` for the current values. The
   figure is put into the widget's ``outputs`` state directly (as a PNG display object), not through
   the kernel's output capture, so the current render is part of the *saved widget state* whether
   the notebook runs in JupyterLab, under papermill/nbclient, or in plain Python (tests);
3. **static renders** -- for each value set in ``static`` (default: none besides the live view) the
   figure is rendered once, at build time, into an ``Image`` widget (PNG bytes) with a caption
   listing its values; several sets go into a ``Tab``.

In the published book the notebook's widget state is embedded in the page and rendered by the
vendored ``@jupyter-widgets/html-manager`` (served from the book's own ``_static/``, loaded only
on pages that have widget state). A reader without a kernel therefore sees real controls, the
default render, and every pre-rendered static choice (switching tabs works without a kernel);
moving a control needs a live kernel (JupyterLab, or the notebook run locally). Renders are cached
by their values, so a static set equal to the defaults is drawn once.

Bad control specifications raise :class:`ExplorerError` (a ``ValueError``) naming the control.
"""

from __future__ import annotations

import base64
import io
import numbers
from typing import Any, Callable, Mapping, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt

from sirr.errors import SirrError

__all__ = ["explorer", "Explorer", "ExplorerError", "make_control", "figure_png"]


class ExplorerError(SirrError, ValueError):
    """A control specification, a static value set or a render result the explorer cannot use."""


def figure_png(fig, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards so notebooks do not also show it inline)."""
    if not hasattr(fig, "savefig"):
        raise ExplorerError(f"render() must return a matplotlib Figure, got {type(fig).__name__}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def make_control(name: str, spec):
    """One control widget from a spec: list of choices -> Dropdown; ``(min, max, step)`` or
    ``(min, max, step, default)`` of numbers -> IntSlider (all ints) or FloatSlider; a widget -> itself."""
    if isinstance(spec, w.ValueWidget) or isinstance(spec, w.DOMWidget) and hasattr(spec, "value"):
        if not getattr(spec, "description", ""):
            spec.description = name
        return spec
    if isinstance(spec, tuple) and len(spec) in (3, 4) and all(_is_number(v) for v in spec):
        lo, hi, step = spec[:3]
        value = spec[3] if len(spec) == 4 else lo
        if not lo < hi:
            raise ExplorerError(f"control {name!r}: slider needs min < max, got {spec!r}")
        if step <= 0:
            raise ExplorerError(f"control {name!r}: slider step must be > 0, got {step!r}")
        if not lo <= value <= hi:
            raise ExplorerError(f"control {name!r}: default {value!r} outside [{lo}, {hi}]")
        common = dict(min=lo, max=hi, step=step, value=value, description=name, continuous_update=False,
                      style={"description_width": "initial"})
        if all(isinstance(v, numbers.Integral) for v in spec):
            return w.IntSlider(**common)
        return w.FloatSlider(**{k: (float(v) if k in ("min", "max", "step", "value") else v) for k, v in common.items()},
                             readout_format=".3g")
    if isinstance(spec, tuple):
        raise ExplorerError(f"control {name!r}: unsupported spec {spec!r}; a tuple means a slider "
                            "(min, max, step[, default]) of numbers -- give choices as a list")
    if isinstance(spec, list):
        if len(spec) == 0:
            raise ExplorerError(f"control {name!r}: empty list of choices")
        return w.Dropdown(options=list(spec), description=name, style={"description_width": "initial"})
    raise ExplorerError(
        f"control {name!r}: unsupported spec {spec!r}; use a list of choices, a (min, max, step) tuple of "
        "numbers, or an ipywidgets widget")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _caption(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in values.items())


def _dropdown_values(ctrl) -> list:
    """The values (not labels) a Dropdown accepts."""
    out = []
    for opt in ctrl.options:
        out.append(opt[1] if isinstance(opt, tuple) and len(opt) == 2 else opt)
    return out


class Explorer(w.VBox):
    """An ipywidgets VBox: title, controls, live ``Output`` and the static renders (see module doc)."""

    def __init__(self, render, controls, static, title, dpi):
        self._render = render
        self._dpi = dpi
        self._cache: dict[str, bytes] = {}
        self.render_count = 0
        self.controls = {name: make_control(name, spec) for name, spec in controls.items()}
        self.output = w.Output(layout=w.Layout(min_height="120px"))
        self.static_images: list[tuple[dict, Any]] = []
        static_sets = [self._check_static(s) for s in (static or [])]
        children = []
        if title:
            children.append(w.HTML(f"<b>{title}</b>"))
        children.append(w.HBox(list(self.controls.values()), layout=w.Layout(flex_flow="row wrap")))
        children.append(self.output)
        if static_sets:
            boxes = []
            for vals in static_sets:
                img = w.Image(value=self._png(vals), format="png", layout=w.Layout(max_width="100%", width="auto"))
                self.static_images.append((vals, img))
                boxes.append(w.VBox([img, w.HTML(f"<small>{_caption(vals)}</small>")],
                                    layout=w.Layout(align_items="flex-start")))
            header = w.HTML("<small>Pre-rendered for the static book (moving a control needs a live "
                            "kernel):</small>")
            if len(boxes) == 1:
                children += [header, boxes[0]]
            else:
                tab = w.Tab(children=boxes)
                defaults = self.values()
                for i, vals in enumerate(static_sets):
                    changed = {k: v for k, v in vals.items() if v != defaults[k]}
                    tab.set_title(i, _caption(changed) if changed else "defaults")
                children += [header, tab]
        super().__init__(children)
        for ctrl in self.controls.values():
            ctrl.observe(lambda _change: self.update(), names="value")
        self.update(raise_errors=True)

    # -- values -------------------------------------------------------------------------
    def values(self) -> dict:
        """The controls' current values, by name."""
        return {name: ctrl.value for name, ctrl in self.controls.items()}

    def _check_static(self, s) -> dict:
        if not isinstance(s, Mapping):
            raise ExplorerError(f"static value sets must be dicts of control values, got {s!r}")
        unknown = set(s) - set(self.controls)
        if unknown:
            raise ExplorerError(f"static value set {dict(s)!r} names unknown controls {sorted(unknown)}; "
                                f"controls are {list(self.controls)}")
        vals = self.values()
        for k, v in s.items():
            ctrl = self.controls[k]
            if hasattr(ctrl, "options") and v not in _dropdown_values(ctrl):
                raise ExplorerError(f"static value {k}={v!r} is not one of the choices {_dropdown_values(ctrl)}")
            if hasattr(ctrl, "min") and hasattr(ctrl, "max") and _is_number(v) and not ctrl.min <= v <= ctrl.max:
                raise ExplorerError(f"static value {k}={v!r} is outside [{ctrl.min}, {ctrl.max}]")
            vals[k] = v
        return vals

    # -- rendering ----------------------------------------------------------------------
    def _png(self, vals: dict) -> bytes:
        key = repr(sorted(vals.items(), key=lambda kv: kv[0]))
        if key not in self._cache:
            self.render_count += 1
            self._cache[key] = figure_png(self._render(**vals), dpi=self._dpi)
        return self._cache[key]

    def update(self, raise_errors: bool = False) -> None:
        """Render the current values into the live view. Errors of a reader's later choices are shown
        there; the first render (at construction) raises, so a broken chapter fails when run."""
        vals = self.values()
        try:
            png = self._png(vals)
        except Exception as e:  # a live reader picked a combination render() rejects
            if raise_errors:
                raise
            self.output.outputs = ({"output_type": "stream", "name": "stderr",
                                    "text": f"render({_caption(vals)}) failed: {type(e).__name__}: {e}\n"},)
            return
        self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                "data": {"image/png": base64.b64encode(png).decode("ascii"),
                                         "text/plain": f"<figure: {_caption(vals)}>"}},)


def explorer(render: Callable[..., Any], controls: Mapping[str, Any] | Sequence, static: Sequence[Mapping] | None = None,
             title: str = "", *, dpi: int = 80):
    """An interactive explorer of ``render(**values)`` with a static fallback for the book.

    Parameters
    ----------
    render : callable
        ``render(**values)`` -> matplotlib Figure (it is closed after rendering to PNG).
    controls : dict
        name -> spec: a list of choices (``Dropdown``; ``(label, value)`` pairs allowed), a
        ``(min, max, step)`` or ``(min, max, step, default)`` tuple of numbers (``IntSlider`` when all
        are ints, else ``FloatSlider``), or an ipywidgets widget. A list of ``(name, spec)`` pairs
        is accepted too. Defaults: first choice / slider minimum (or the given default).
    static : list of dict, optional
        Value sets rendered once at build time and shown as PNG images with a caption of their
        values (a ``Tab`` when there are several). Missing keys take the defaults. ``None``/``[]``:
        no extra renders -- the live view's render of the defaults (saved in its state) is then the
        only static figure.
    title : str
        Bold title above the controls.

    Returns the explorer widget (an ipywidgets ``VBox``); leave it as the last expression of a cell
    (or ``display`` it). Its embedded state carries the controls, the default render and the static
    renders, so the static book shows them without a kernel (see the module docstring).

    Raises :class:`ExplorerError` (a ``ValueError``) for a bad control spec, a static set naming an
    unknown control or an invalid value, or a ``render`` that does not return a figure.
    """
    if isinstance(controls, Mapping):
        items = dict(controls)
    elif isinstance(controls, Sequence) and all(isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str)
                                                for c in controls):
        items = dict(controls)
    else:
        raise ExplorerError(f"controls must be a dict name -> spec, got {type(controls).__name__}")
    if not items:
        raise ExplorerError("explorer needs at least one control")
    if not callable(render):
        raise ExplorerError(f"render must be callable, got {type(render).__name__}")
    return Explorer(render, items, static, title, dpi)
