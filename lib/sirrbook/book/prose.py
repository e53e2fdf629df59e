"""What the chapters print beside the numbers: sentences, captions and markdown built from results.

Each function turns the numbers of :mod:`sirrbook.experiments` (tables, stored results and their
provenance) into text for chapters 06 (evaluation) and 07 (ablations), so that no sentence in the
book about a result is hand-written:

- :func:`preset_caveat` -- what the numbers at this preset can and cannot say (markdown);
- :func:`ordering_sentence` -- does our ordering of the ablation rows agree with the paper's
  (from :func:`sirrbook.experiments.ordering_agreement`);
- :func:`main_table_sentence` -- LA and TS against the input itself, per test set;
- :func:`results_provenance` / :func:`result_line` -- where the numbers came from (preset, device,
  commit, date, the stored JSON).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from sirr.config import RunConfig
from sirrbook.experiments import ordering_agreement
from sirr.messages import repo_relative
from sirrbook.viz.tables import DATASET_NAMES

__all__ = [
    "ordering_sentence",
    "preset_caveat",
    "results_provenance",
    "result_line",
    "main_table_sentence",
]


def ordering_sentence(df, agreement: dict | None = None, *, label_of: dict[str, str] | None = None) -> str:
    """One sentence, built from :func:`ordering_agreement`, on whether our row ordering agrees with the paper's."""
    ag = agreement or ordering_agreement(df)
    attrs = getattr(df, "attrs", {})
    labels = label_of or (dict(zip(df["variant"], df["label"])) if "label" in df and "variant" in df else {})
    lab = lambda k: labels.get(k, k)  # noqa: E731
    seeds = attrs.get("seeds", [])
    ds = attrs.get("dataset", "our test set")
    where = (f"on {DATASET_NAMES.get(ds, ds)} at the {attrs.get('preset', '?')} preset "
             f"({len(seeds)} seed{'s' if len(seeds) != 1 else ''})")
    if attrs.get("preset") in NOISE_PRESETS:
        return (f"No ordering is read from these rows: at the `{attrs['preset']}` preset each row is trained for a "
                "handful of steps, so the differences between rows are noise and any agreement with the paper's "
                "ordering would be chance. The comparison is drawn at `demo` and `paper`.")
    if ag["n"] < 2 or ag["pairs"] == 0:
        return (f"Ordering check {where}: fewer than two rows have both our number and a paper number "
                f"that differ ({ag.get('ties', 0)} tied pairs), so there is no ordering to compare.")
    frac = ag["pairs_agree"] / (ag["pairs"] + ag.get("ties", 0))  # ties count against agreement
    verdict = ("agrees with" if frac == 1 else "mostly agrees with" if frac >= 0.75 else
               "partly agrees with" if frac > 0.5 else "does not agree with")
    stats = []
    if not math.isnan(ag["spearman"]):
        stats.append(f"Spearman ρ = {ag['spearman']:+.2f}")
    if not math.isnan(ag["kendall"]):
        stats.append(f"Kendall τ = {ag['kendall']:+.2f}")
    stats.append(f"{ag['pairs_agree']} of {ag['pairs']} row pairs ordered alike"
                 + (f" ({ag['ties']} pairs tied, not counted)" if ag.get("ties") else ""))
    best = (f"the paper's best row ({lab(ag['paper_best'])}) is "
            + ("also our best" if ag["our_rank_of_paper_best"] == 1
               else f"number {ag['our_rank_of_paper_best']} of {ag['n']} in ours (our best: {lab(ag['our_best'])})"))
    return (f"Our ordering of the {ag['n']} rows by PSNR {where} {verdict} the paper's "
            f"({attrs.get('paper_column', ag['paper'])}): {', '.join(stats)}; {best}.")


#: Presets whose ablation rows train so few steps that their ordering is noise (no ordering sentence is drawn).
NOISE_PRESETS = ("smoke", "cpu")


def preset_caveat(run: RunConfig) -> str:
    """A markdown sentence on what the numbers at this preset can and cannot say."""
    ab = run.preset.ablation
    if run.preset.name == "smoke":
        return (f"**Smoke preset: these tables are plumbing checks.** Each row is trained for {ab.la_steps} LA steps "
                f"(TS: {ab.ts_stage1_steps} + {ab.ts_stage2_steps}) on a CPU and scored on "
                f"{run.preset.eval.max_images} small images, so the numbers and any agreement or disagreement "
                f"with the paper's ordering mean nothing; run the `demo` preset on a GPU for real numbers.")
    if run.preset.name == "demo":
        return (f"**Demo preset:** each row is trained for {ab.la_steps} LA steps (TS: {ab.ts_stage1_steps} + "
                f"{ab.ts_stage2_steps}), a small fraction of the papers' schedules, so the tables show early-training "
                f"effects of each change; orderings within the spread over seeds are not meaningful.")
    if run.preset.name == "cpu":
        return (f"**cpu preset: these rows are short runs.** Each row is trained for {ab.la_steps} LA steps "
                f"(TS: {ab.ts_stage1_steps} + {ab.ts_stage2_steps}) from scratch with one seed, far less than the "
                "40-minute full-model trainings of chapters 04 and 05, so the rows differ by noise; the `cpu` "
                "models themselves are scored in chapter 06.")
    return f"**{run.preset.name} preset:** the papers' schedules ({ab.la_steps} LA steps per row)."


def _prov_summary(provs: Sequence[dict]) -> str:
    provs = [p for p in provs if p]
    if not provs:
        return "no stored provenance"
    def uniq(key):
        return sorted({str(p.get(key)) for p in provs})
    created = sorted(str(p.get("created")) for p in provs if p.get("created"))
    when = f", created {created[0]} … {created[-1]}" if len(created) > 1 else (f", created {created[0]}" if created else "")
    commits = uniq("commit")
    mixed = (f" — **the rows come from {len(commits)} different commits**: the code may have changed between "
             "them; rerun with `retrain=True` to score every row with one commit") if len(commits) > 1 else ""
    return (f"{len(provs)} stored result(s): preset {'/'.join(uniq('preset'))}, device {'/'.join(uniq('device'))}, "
            f"commit {'/'.join(commits)}{when}{mixed}")


def results_provenance(df_or_results) -> str:
    """One line on where the numbers of a table (or a list of results) came from: preset, devices, commits, dates."""
    if isinstance(df_or_results, (list, tuple)):
        return _prov_summary([r.get("_provenance", {}) for r in df_or_results])
    return _prov_summary(getattr(df_or_results, "attrs", {}).get("provenance", []))


def result_line(result: dict) -> str:
    """One line for a stored result: experiment, seed, device, commit, steps, where the JSON is (relative to
    the repository root when inside it: the line ends up in the built book)."""
    p = result.get("_provenance", {})
    steps = result.get("steps")
    return (f"{result.get('method')}/{result.get('variant')}: seed {p.get('seed')}, preset {p.get('preset')}, "
            f"device {p.get('device')}, commit {p.get('commit')}"
            + (f", {steps} training steps" if steps is not None else "")
            + f" -> {repo_relative(result['_path']) if result.get('_path') else '?'}")


def main_table_sentence(la_df, run: RunConfig) -> str:
    """A sentence comparing LA and TS with the identity baseline on each set (computed, not hand-written)."""
    parts = []
    for _, row in la_df.iterrows():
        base = row.get("identity_psnr_la")
        bits = []
        for m, name in (("la", "LA"), ("ts", "TS")):
            v = row.get(f"{m}_psnr_la")
            if v is None or not np.isfinite(v) or base is None or not np.isfinite(base):
                continue
            bits.append(f"{name} {v - base:+.2f} dB")
        if bits:
            parts.append(f"{DATASET_NAMES.get(row['dataset'], row['dataset'])}: {', '.join(bits)}")
    if not parts:
        return "No method has scores yet."
    head = "PSNR (LA convention) relative to the input itself — " + "; ".join(parts) + "."
    if run.preset.name == "smoke":
        head += (" At the smoke preset the networks have trained for a handful of steps, so falling below the input "
                 "is expected: this checks the plumbing, not the methods.")
    return head
