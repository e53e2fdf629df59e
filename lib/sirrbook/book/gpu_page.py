"""The timing sections of the "Reproduce on a GPU" page, written from the stored reports at build time.

:func:`time_tables` reads the ``python -m sirr bench`` reports under ``results/bench/`` and the stored
``cpu`` training records, and renders the measured times and the per-chapter estimates derived from
them as Markdown; :func:`sirrbook.book.build.stage_book` writes it to ``book/_generated/gpu_times.md`` in the
staged copy, which ``book/gpu.md`` includes. No time on that page is typed by hand.
"""

from __future__ import annotations

from pathlib import Path

from sirrbook.book.bench import read_bench
from sirr.config import PRESETS, RunConfig, get_preset
from sirr.models.two_stage import PRESET_WIDTH_SCALE
from sirr.registry import LA_TABLE2_VARIANTS, LA_TABLE3_VARIANTS, TS_VARIANTS
from sirrbook.results import load_result
from sirrbook.viz.tables import rate

__all__ = ["time_tables", "preset_table", "GENERATED", "PRESETS_GENERATED"]

#: Where the staged book gets the generated Markdown (relative to the staged root).
GENERATED = Path("book") / "_generated" / "gpu_times.md"
PRESETS_GENERATED = Path("book") / "_generated" / "presets.md"


def _s(v: float) -> str:
    return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _precision(p: str) -> str:
    return {"auto": "bf16 autocast on a GPU, fp32 on the CPU"}.get(p, p)


def _la_cell(p) -> str:
    la = p.la
    steps = f"{la.steps:,} steps at lr {rate(la.lr)}"
    if la.fine_tune_steps:
        steps += f", then {la.fine_tune_steps:,} fine-tuning steps at lr {rate(la.fine_tune_lr)}"
    pick = "; best-validation checkpoint" if p.validation.photos else ""
    return f"{steps}; batch {la.batch_size}, {la.crop} px crops, {_precision(la.precision)}{pick}"


def _ts_cell(p) -> str:
    ts = p.ts
    scale = ts.width_scale if ts.width_scale is not None else PRESET_WIDTH_SCALE.get(p.name)
    widths = "the release's widths" if scale in (None, 1.0) else f"widths × {scale:g}"
    return (f"{ts.stage1_steps:,} + {ts.stage2_steps:,} steps (stage 1 + stage 2); batch {ts.batch_size}, "
            f"{ts.crop} px crops, {widths}, {_precision(ts.precision)}")


def _eval_cell(p) -> str:
    e = p.eval
    which = {"all": "every image", "scenes": "every image of the small sets, every scene of SIR² (declared subset)"}
    n = f"the first {e.max_images} images per set" if e.max_images else which.get(e.subset, e.subset)
    side = f"longer side ≤ {e.max_side} px" if e.max_side else "full size"
    return f"{n}, {side}" + (", LPIPS" if e.lpips else "") + "; paired 95% intervals against identity"


def _ablation_cell(p) -> str:
    a = p.ablation
    return (f"{len(a.seeds)} seed{'s' * (len(a.seeds) > 1)}; LA rows {a.la_steps:,} steps, TS rows "
            f"{a.ts_stage1_steps:,} + {a.ts_stage2_steps:,}")


def preset_table() -> str:
    """Markdown: what each preset of :data:`sirr.config.PRESETS` trains and scores, read from the presets
    themselves (so the GPU page can never disagree with ``python -m sirr train``), then each preset's own
    description."""
    names = list(PRESETS)
    rows = [("device", lambda p: {"cpu": "CPU", "cuda": "GPU (`cuda`)"}.get(p.device, p.device)),
            ("LA (chapter 4)", _la_cell), ("TS (chapter 5)", _ts_cell),
            ("evaluation (chapters 4, 5, 6)", _eval_cell), ("ablation rows (chapter 7)", _ablation_cell)]
    out = ["| | " + " | ".join(f"`{n}`" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    out += [f"| {label} | " + " | ".join(cell(PRESETS[n]) for n in names) + " |" for label, cell in rows]
    out += [""] + [f"- **`{n}`**: {PRESETS[n].description}" for n in names]
    n_la = len(set(LA_TABLE2_VARIANTS) | set(LA_TABLE3_VARIANTS))
    out += ["", "On a GPU, training synthesises its mixtures on the device and runs in bf16 autocast "
                f'(`precision="auto"`). Chapter 7 trains {n_la} LA rows (LA Tables 2 and 3, with the shared "ours" '
                f"row counted once) and {len(TS_VARIANTS)} TS rows, each from scratch and once per seed."]
    return "\n".join(out) + "\n"


def _training_record(results_dir: Path, method: str) -> dict | None:
    """The stored ``cpu`` training record of ``method`` (:func:`sirrbook.results.load_result`), or None."""
    return load_result(RunConfig(preset=get_preset("cpu"), results_dir=results_dir), f"training/{method}", seed=0)


def _inference_rows(rep: dict) -> list[str]:
    eager = {r["size"]: r["median_s"] for r in rep["inference"] if r.get("path") == "fp32 eager" and "median_s" in r}
    sizes = list(rep.get("fastest", {}))
    rows = []
    if eager:
        rows.append(f"| LA inference, {rep['iterations']} iterations, batch 1, fp32 eager | "
                    f"{' / '.join(s.replace('x', ' × ') for s in sizes if s in eager)} | "
                    f"{' / '.join(_s(eager[s]) for s in sizes if s in eager)} |")
    for s in sizes:
        best = rep["fastest"][s]
        rows.append(f"| LA inference, fastest accepted path ({best['path']}) | {s.replace('x', ' × ')} | "
                    f"{_s(best['median_s'])} |")
    return rows


def time_tables(results_dir: str | Path) -> str:
    """Markdown: measured GPU and CPU times (with the files they come from) and per-chapter estimates."""
    results_dir = Path(results_dir)
    reports = read_bench(results_dir)
    gpu = [r for r in reports if str(r.get("device_slug", "")).startswith("cuda")]
    cpu = [r for r in reports if str(r.get("device_slug", "")).startswith("cpu")]
    out: list[str] = []
    step_s = None
    for rep in gpu:
        out += [f"**Measured, {rep['device']}** (`results/bench/{Path(rep['path']).name}`, median of "
                f"{rep['repeats']} after warm-up, commit {str(rep.get('provenance', {}).get('commit', ''))[:10]}):",
                "", "| what | size | time |", "| --- | --- | --- |"]
        t = rep.get("train_step")
        if t:
            step_s = step_s or t["median_s"]
            out.append(f"| one LA training step ({t.get('loss', 'generator losses')}; {t.get('amp')}, "
                       f"{t.get('memory_format', '')}) | {t['size'].replace('x', ' × ')}, batch {t.get('batch', 2)} | "
                       f"{_s(t['median_s'])} |")
        out += _inference_rows(rep) + [""]
    for rep in cpu:
        t = rep.get("train_step")
        fast = rep.get("fastest", {}).get("400x540")
        bits = []
        if t:
            bits.append(f"one LA training step at {t['size'].replace('x', ' × ')}, batch {t.get('batch', 2)}, "
                        f"{t.get('amp')}: {_s(t['median_s'])}")
        if fast:
            bits.append(f"LA inference at 400 × 540: {_s(fast['median_s'])} ({fast['path']})")
        if bits:
            out += [f"**Measured, {rep['device']}** (`results/bench/{Path(rep['path']).name}`): "
                    + "; ".join(bits) + ".", ""]
    la, ts = _training_record(results_dir, "la"), _training_record(results_dir, "ts")
    if la or ts:
        parts = []
        for name, rec in (("LA", la), ("TS", ts)):
            if rec:
                phases = " + ".join(str(n) for n in (rec.get("phase_steps") or {}).values() if n)
                minutes = sum((rec.get("phase_seconds") or {}).values()) / 60
                parts.append(f"{name} {phases} steps (batch {rec.get('batch_size')}, {rec.get('crop')} px) in "
                             f"{minutes:.0f} min")
        out += ["**Measured, the committed `cpu` trainings** (`results/cpu/training/`): " + "; ".join(parts) + ".",
                ""]
    out += ["No TS training step, TS inference, LPIPS scoring or whole chapter has been timed on a GPU.", ""]
    if step_s is None:
        out.append("No GPU bench report is stored, so no chapter time is estimated here; run "
                   "`python -m sirr bench --device cuda` and rebuild the book.")
        return "\n".join(out) + "\n"
    demo, paper = PRESETS["demo"], PRESETS["paper"]
    n_la_rows = len(set(LA_TABLE2_VARIANTS) | set(LA_TABLE3_VARIANTS))

    def la_train(p) -> int:
        return p.la.steps + p.la.fine_tune_steps

    def ablation(p) -> int:
        return n_la_rows * len(p.ablation.seeds) * p.ablation.la_steps

    out += [f"**Estimated, from the GPU step above.** Each estimate is a step count of the preset "
            f"(`sirr.config.PRESETS`) times the measured {_s(step_s)} per LA step. It is a **lower bound**: it "
            "leaves out the discriminator update (the bench step has no L_adv), data synthesis, validation, "
            "checkpoint writes and evaluation. `python -m sirr bench --device cuda` measures the step on your GPU.",
            "", "| chapter | `demo` | `paper` |", "| --- | --- | --- |",
            "| 1, 2 | no training | no training |"]
    out.append(f"| 3 (trains LA when the book runs in order) | {la_train(demo):,} steps ≈ "
               f"**{_duration(la_train(demo) * step_s)}** | {la_train(paper):,} steps ≈ "
               f"**{_duration(la_train(paper) * step_s)}** |")
    out.append("| 4, 6, 8, 9 | loads the trained models; inference only (see the inference times above) | same |")
    out.append(f"| 5 (trains TS) | {demo.ts.stage1_steps:,} + {demo.ts.stage2_steps:,} steps at batch "
               f"{demo.ts.batch_size}: not measured | {paper.ts.stage1_steps:,} + {paper.ts.stage2_steps:,} steps: "
               "not measured |")
    out.append(f"| 7 (ablations) | LA: {n_la_rows} rows × {len(demo.ablation.seeds)} seeds × "
               f"{demo.ablation.la_steps:,} steps ≈ **{_duration(ablation(demo) * step_s)}**; TS: "
               f"{len(TS_VARIANTS)} rows, not measured | LA: {n_la_rows} × {len(paper.ablation.seeds)} × "
               f"{paper.ablation.la_steps:,} steps ≈ **{_duration(ablation(paper) * step_s)}** on one GPU; TS: "
               "not measured |")
    cpu_step = next((r["train_step"]["median_s"] for r in cpu if r.get("train_step")), None)
    if cpu_step:
        out += ["", f"For comparison, the `demo` LA training would take {la_train(demo):,} × {_s(cpu_step)} ≈ "
                    f"{_duration(la_train(demo) * cpu_step)} on the two CPU cores (estimate from the CPU bench step)."]
    return "\n".join(out) + "\n"
