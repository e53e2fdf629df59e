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
from sirr.registry import LA_TABLE2_VARIANTS, LA_TABLE3_VARIANTS, TS_VARIANTS
from sirrbook.results import load_result

__all__ = ["time_tables", "GENERATED"]

#: Where the staged book gets the generated Markdown (relative to the staged root).
GENERATED = Path("book") / "_generated" / "gpu_times.md"


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
