"""The intro's status table: one row per claim or number of each paper and where this book stands on it.

Written at build time from the results store (:func:`status_markdown`, staged as ``book/_generated/status.md``
and included by ``book/intro.md``), never typed. The statuses:

- ``reproduced``: our number equals the paper's (e.g. the released network's parameter count);
- ``agrees at CPU scale``: a claim experiment's interval lies on the paper's side;
- ``disagrees at CPU scale``: it lies on the other side;
- ``inconclusive``: the interval contains 0 (or a model is not clearly better than the input);
- ``not reached at this compute``: a paper number far above what the trained `cpu` model reaches;
- ``not run``: nothing stored yet (``k of n runs`` while an experiment fills in).
"""

from __future__ import annotations

import math
from pathlib import Path

from sirr import paper_numbers
from sirr.config import RunConfig, get_preset
from sirrbook.book.stored import pooled_mean
from sirrbook.results import load_result

__all__ = ["status_rows", "status_markdown", "chapter_verdict", "STATUS_GENERATED", "STATUSES"]

#: Where the staged book gets the generated table (relative to the staged root).
STATUS_GENERATED = Path("book") / "_generated" / "status.md"

STATUSES = ("reproduced", "agrees at CPU scale", "disagrees at CPU scale", "inconclusive",
            "not reached at this compute", "not run")

#: The three SIR² sets whose pooled images TS Table I's "SIR² average" is compared with.
SIR2 = ("sir2_postcard", "sir2_solidobject", "sir2_wild")

#: The chapter that trains each method (its rows are also shown there).
TRAINING_CHAPTER = {"la": "04_train_location_aware", "ts": "05_two_stage"}

_CLAIM_STATUS = {"agrees with the paper": "agrees at CPU scale", "disagrees": "disagrees at CPU scale",
                 "inconclusive at this scale": "inconclusive"}


def _verdict_status(verdict: str) -> str:
    """The status of a "better than the input" row from its paired interval's verdict."""
    return {"better": "agrees at CPU scale", "worse": "disagrees at CPU scale"}.get(verdict, "inconclusive")


def _cpu(results_dir: Path) -> RunConfig:
    return RunConfig(preset=get_preset("cpu"), results_dir=results_dir)


def _parameters_row() -> dict:
    from sirr.models.location_aware import LocationAware

    n = sum(p.numel() for p in LocationAware().parameters())
    paper = paper_numbers.LA_COST["parameters"]
    return {"paper": "LA", "claim or number": f"the released network has {paper_numbers.LA_COST['parameters_paper_rounded']} "
                                              "parameters",
            "ours": f"{n:,} parameters", "status": "reproduced" if n == paper else "not reached at this compute",
            "where": "03_location_aware_model", "also": ()}


def _model_rows(run: RunConfig, method: str, paper_label: str, paper_value: float, datasets: tuple[str, ...]) -> list[dict]:
    res = load_result(run, f"{method}/full", 0)
    number = f"{paper_label}: {paper_value:.2f} dB"
    also = (TRAINING_CHAPTER[method],)
    if res is None:
        return [{"paper": method.upper(), "claim or number": number, "ours": "—", "status": "not run",
                 "where": "06_evaluation", "also": also}]
    ours = pooled_mean(res, datasets, "psnr_la")  # every image of the sets, as the papers average them
    scored = math.isfinite(ours)
    rows = [{"paper": method.upper(), "claim or number": number,
             "ours": f"{ours:.2f} dB (`cpu` model of record, step {res.get('steps')})" if scored else "—",
             "status": ("not run" if not scored else "reproduced" if ours >= paper_value - 0.5
                        else "not reached at this compute"), "where": "06_evaluation", "also": also}]
    vs = (res.get("vs_identity") or {}).get("real20", {}).get("psnr_la")
    if vs:
        status = _verdict_status(vs["verdict"])
        rows.append({"paper": method.upper(), "claim or number": "removes reflections: better than the input on real20",
                     "ours": f"{vs['mean']:+.2f} dB [{vs['low']:+.2f}, {vs['high']:+.2f}] vs identity",
                     "status": status, "where": "06_evaluation", "also": also})
    return rows


#: The brightness study's claim as the status table states it (chapter 6 computes it; LA only).
BEYOND_BRIGHTNESS = ("removes reflections, not only darkens: better than the input with both at the ground "
                     "truth's brightness, all real photos")


def _brightness_row(run: RunConfig) -> dict:
    """LA's row for the brightness-matched comparison of chapter 6 (:mod:`sirrbook.brightness`), pooled over the
    real photos; ``not run`` without a stored study."""
    from sirrbook import brightness as B

    row = {"paper": "LA", "claim or number": BEYOND_BRIGHTNESS, "ours": "—", "status": "not run",
           "where": "06_evaluation", "also": (TRAINING_CHAPTER["la"],)}
    study = load_result(run, "brightness/la", 0)
    if study is None:
        return row
    d, g = B.pooled_difference(study, B.MATCHED), B.pooled_difference(study, B.MODEL_VS_GAIN)
    row["ours"] = (f"{d['mean']:+.2f} dB [{d['low']:+.2f}, {d['high']:+.2f}] over {d['n']} photos (`cpu` model; "
                   f"against a constant gain: {g['mean']:+.2f} dB, {g['verdict']})")
    row["status"] = _verdict_status(d["verdict"])
    return row


def status_rows(results_dir: str | Path) -> list[dict]:
    """The rows of the status table, from the stored results under ``results_dir``."""
    from sirrbook import claims
    from sirrbook.viz.claims import difference_text, measure_name

    run = _cpu(Path(results_dir))
    rows = [_parameters_row()]
    rows += _model_rows(run, "la", "LA Table 1, real20 PSNR", paper_numbers.LA_TABLE1["real20"]["psnr"], ("real20",))
    rows.append(_brightness_row(run))
    rows += _model_rows(run, "ts", "TS Table I, SIR² average PSNR", paper_numbers.TS_TABLE1["proposed"], SIR2)
    for cid in claims.CLAIMS:
        s = claims.claim_summary(run, cid)
        p = s["progress"]
        if s["verdict"]:
            status = _CLAIM_STATUS[s["verdict"]]
        else:
            status = "not run" if p["done"] == 0 else f"not run ({p['done']} of {p['total']} runs in)"
        prim = next((x["primary"] for x in s["contrasts"] if x.get("primary")), None)
        metric = claims.claim(cid).primary[1]
        measure = measure_name(metric)
        ours = f"Δ {measure} (paper's arm − other): {difference_text(prim)}" if prim and s["verdict"] else "—"
        rows.append({"paper": s["source"].split()[0], "claim or number": f"{cid}: {s['claim']}", "ours": ours,
                     "status": status, "where": "07_ablations", "short": f"{cid} ({s['source']})",
                     "also": (TRAINING_CHAPTER[claims.claim(cid).method],)})
    return rows


def status_markdown(results_dir: str | Path) -> str:
    """The status table as Markdown, each row linking to its chapter (for ``book/intro.md``)."""
    lines = ["| paper | claim or number | ours | status |", "| --- | --- | --- | --- |"]
    for r in status_rows(results_dir):
        claim = r["claim or number"].replace("|", "\\|")
        lines.append(f"| {r['paper']} | {claim} ({{doc}}`chapter <../notebooks/{r['where']}>`) | {r['ours']} | "
                     f"**{r['status']}** |")
    return "\n".join(lines) + "\n"


def chapter_verdict(run, chapter: str) -> str:
    """The opening verdict of a chapter (``chapter``: its notebook stem, e.g. ``"04_train_location_aware"``): the
    status rows that link to it, from the stored results, as one Markdown paragraph."""
    rows = [r for r in status_rows(run.results_dir) if chapter == r["where"] or chapter in r.get("also", ())]
    if not rows:
        return "**Verdict.** This chapter trains nothing; what it measures is computed on this page."
    parts = [f"{r.get('short') or r['claim or number']}: **{r['status']}**" + (f" ({r['ours']})" if r["ours"] != "—" else "")
             for r in rows]
    return "**Verdict, from the stored `cpu` results.** " + "; ".join(parts) + "."
