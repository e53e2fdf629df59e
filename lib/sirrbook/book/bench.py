"""``python -m sirr bench``: LA inference (3 iterations) and one training step, timed on this device.

For each size it times the straightforward path (fp32, eager, NCHW, ``torch.no_grad``) and faster
paths that must give the same answer:

- CPU: channels_last memory format under ``torch.inference_mode`` (oneDNN convolutions without
  layout reorders; the model's conv-LSTM already runs its four gates as one convolution) with freed
  activation buffers reused instead of page-faulted afresh (:func:`reuse_freed_memory`), and, only
  when asked (``compile=True`` or ``SIRR_BENCH_COMPILE=1``), ``torch.compile`` with inductor and
  weight freezing — on the shared 2-core machine it took 1-2 minutes to compile per size and its
  gain was not clear through the noise, so it is off by default there.
- CUDA: fp32 channels_last, bf16 autocast + channels_last, and the same under ``torch.compile``
  (cuDNN autotuning on, as for fixed-size inference).

It reports the median (and min, and every time) of ``repeats`` timed calls after warm-up, the
speed-up over fp32 eager, the max abs difference of each path's final transmission from the fp32
eager one (fp32 paths must agree to :data:`FP32_TOLERANCE`; bf16 paths are reported against
:data:`BF16_TOLERANCE`), FLOPs per iteration (:func:`sirr.models.location_aware.count_flops`), a
torch.profiler summary of where the time goes, the machine's load while it ran, and writes a JSON
report with provenance to ``results/bench/<device-slug>.json`` (rewritten after every size, so an
interrupted run keeps what it measured).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from sirr.atomic import atomic_write_text
from sirr.config import REPO_ROOT, resolve_device
from sirr.data.images import to_tensor
from sirr.data.samples import sample_photos
from sirrbook.inference import (
    MIN_PSNR_DB,
    bench_report_path,
    cpu_model,
    device_slug,
    output_psnr,
    paths_here,
    reuse_freed_memory,
)
from sirr.losses import LocationAwareLoss, VGG19Features
from sirr.messages import repo_relative
from sirr.methods import get_method
from sirr.models.location_aware import LocationAware, count_flops
from sirr.provenance import device_name, provenance
from sirr.train.engine import cpu_has_native_bf16
from sirrbook.weights import committed_weights, sha256_file

#: The benchmarked method (``Method.benchmarked``): every path runs the network through its ``predict``.
LA = get_method("la")

__all__ = [
    "run_bench",
    "time_fn",
    "inference_paths",
    "profile_inference",
    "device_slug",
    "read_bench",
    "reuse_freed_memory",
    "DEFAULT_SIZES",
    "FP32_TOLERANCE",
    "BF16_TOLERANCE",
    "GOALS",
]

DEFAULT_SIZES = ("256x256", "400x540", "1024x1024")

#: Max abs difference (images in [0, 1]) an fp32 path may show against fp32 eager.
FP32_TOLERANCE = 1e-4
#: bf16 paths are expected to stay within this of fp32 eager (reported, a few bf16 ulps of [0, 1]).
BF16_TOLERANCE = 5e-2

#: Issue 3's speed goals: (device type, size, seconds per image).
GOALS = {"cpu": ("400x540", 8.0), "cuda": ("400x540", 0.008)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], object], device: str, repeats: int, warmup: int = 1,
            cpu_times: list | None = None) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls (CUDA synchronised).

    If ``cpu_times`` is a list, the process CPU seconds (user + system, all threads) of each call are
    appended to it: on a shared machine they say what the call cost when the wall clock cannot.
    """
    if repeats < 1:
        raise ValueError(f"time_fn: repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - c0)
    return out


def _parse_size(s: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(s, tuple):
        h, w = s
    else:
        try:
            h, w = (int(v) for v in str(s).lower().split("x"))
        except ValueError:
            raise ValueError(f"bench size {s!r} is not of the form HxW, e.g. 400x540") from None
    if h < 8 or w < 8:
        raise ValueError(f"bench size {s!r}: height and width must be at least 8")
    return h, w


def _compile_default(device: str) -> bool:
    env = os.environ.get("SIRR_BENCH_COMPILE")
    if env is not None:
        return env not in ("", "0", "false", "no")
    return device.startswith("cuda")


def inference_paths(model, device: str, compile: bool | None = None) -> dict[str, dict]:
    """The inference paths to compare, reference first: name -> dict(fn, dtype, tolerance, note).

    ``model`` is an eval-mode :class:`~sirr.models.LocationAware` on ``device``; each ``fn`` takes an
    NCHW fp32 batch and returns the final transmission as fp32. Paths other than the reference put
    the model in channels_last (which does not change its parameters' values, only their strides).
    """
    compile = _compile_default(device) if compile is None else compile
    cuda = device.startswith("cuda")
    eager = model
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def run_eager(x):
        if not cuda:
            reuse_freed_memory(False)
        with torch.no_grad():
            return LA.predict(eager, x)

    def run_cl(x):
        if not cuda:
            reuse_freed_memory(True)
        with torch.inference_mode():
            return LA.predict(fast, x.contiguous(memory_format=torch.channels_last))

    paths = {
        "fp32 eager": dict(fn=run_eager, dtype="fp32", tolerance=0.0, note="reference: NCHW, torch.no_grad"),
        "fp32 channels_last": dict(fn=run_cl, dtype="fp32", tolerance=FP32_TOLERANCE,
                                   note="channels_last, torch.inference_mode"
                                        + ("" if cuda else ", freed buffers reused (reuse_freed_memory)")),
    }
    if compile:
        if not cuda:
            # Only for the compile path: importing inductor is slow and most runs never need it.
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True  # constant-fold weights: oneDNN prepacking + conv/pointwise fusion
        compiled = torch.compile(fast, dynamic=False)

        def run_compiled(x):
            if not cuda:
                reuse_freed_memory(True)
            with torch.inference_mode():
                return LA.predict(compiled, x.contiguous(memory_format=torch.channels_last))

        if not cuda:
            paths["fp32 channels_last compiled"] = dict(
                fn=run_compiled, dtype="fp32", tolerance=FP32_TOLERANCE,
                note="torch.compile (inductor, freezing), channels_last, inference_mode")
    if "bf16 autocast channels_last" in paths_here(device):  # CUDA, or a CPU with native bf16
        kind = "cuda" if cuda else "cpu"

        def run_bf16(x):
            if not cuda:
                reuse_freed_memory(True)
            with torch.inference_mode(), torch.autocast(kind, dtype=torch.bfloat16):
                return LA.predict(fast, x.contiguous(memory_format=torch.channels_last)).float()

        paths["bf16 autocast channels_last"] = dict(fn=run_bf16, dtype="bf16", tolerance=BF16_TOLERANCE,
                                                    note="torch.autocast(bfloat16), channels_last")
    if cuda:
        if compile:
            def run_bf16_compiled(x):
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                    return LA.predict(compiled, x.contiguous(memory_format=torch.channels_last)).float()

            paths["bf16 autocast channels_last compiled"] = dict(
                fn=run_bf16_compiled, dtype="bf16", tolerance=BF16_TOLERANCE,
                note="torch.compile (inductor) + autocast(bfloat16), channels_last")
            # At these sizes the GPU waits on kernel launches (~1000 small kernels per forward), so
            # replaying the whole forward as one CUDA graph is where the remaining time goes.
            graphed = torch.compile(copy.deepcopy(fast), mode="reduce-overhead", dynamic=False)

            def run_bf16_graphed(x):
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                    return LA.predict(graphed, x.contiguous(memory_format=torch.channels_last)).float()

            paths["bf16 autocast channels_last compiled cudagraphs"] = dict(
                fn=run_bf16_graphed, dtype="bf16", tolerance=BF16_TOLERANCE,
                note="torch.compile(mode='reduce-overhead': CUDA graphs) + autocast(bfloat16), channels_last")
    return paths


def profile_inference(model, x: torch.Tensor, fn: Callable | None = None, top: int = 12) -> list[dict]:
    """torch.profiler summary of one forward: the ``top`` ops by self time (op, self_s, share, calls)."""
    cuda = x.is_cuda
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    fn = fn or (lambda: model(x))
    with torch.inference_mode():
        fn()
        _sync(str(x.device))
        with profile(activities=acts) as prof:
            fn()
            _sync(str(x.device))
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr, 0) > 0]
    total = sum(getattr(e, attr) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    return [
        {"op": e.key, "self_s": getattr(e, attr) / 1e6, "share": getattr(e, attr) / total, "calls": e.count}
        for e in events[:top]
    ]


def _conditions() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_1_5_15": list(load)}


def _write(report: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")


def run_bench(
    device: str = "auto",
    sizes=None,
    repeats: int | None = None,
    out: str | os.PathLike | None = None,
    train: bool = True,
    print_fn=print,
    *,
    compile: bool | None = None,
    train_size: str = "256x256",
    profile: str | None | bool = True,
    iterations: int = 3,
    weights: str | os.PathLike | None = None,
) -> dict:
    """Time LA inference at ``sizes`` on ``device`` (each path) and one training step; write the JSON report.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
        sizes: ``"HxW"`` strings (default :data:`DEFAULT_SIZES`).
        repeats: timed calls per path (median reported); default 10 on CUDA, 3 on CPU.
        out: JSON path (default ``results/bench/<device-slug>.json``).
        train: also time one training step (forward, LA Eq. 15 without L_adv, backward, Adam) at
            ``train_size``, batch 2.
        compile: add ``torch.compile`` paths (default: on CUDA yes, on CPU only with
            ``SIRR_BENCH_COMPILE=1``).
        profile: profile one forward of the fastest correct path at this size (``True``: 400x540 if
            measured, else the largest size; ``False``/``None``: no profile).
        iterations: N of the network (the paper's 3).
        weights: the LA weights to time and to check the fast paths on: a checkpoint path, ``"random"``
            (random init: timing only, and then no ``remove_path`` is chosen), or ``None`` for the book's
            committed LA@cpu weights (random init when there are none).
    Returns:
        The report (also written to ``out``).
    """
    dev = resolve_device(device)
    parsed = [_parse_size(s) for s in (sizes or DEFAULT_SIZES)]
    repeats = repeats or (10 if dev.startswith("cuda") else 3)
    if repeats < 1:
        raise ValueError(f"bench: repeats must be >= 1, got {repeats}")
    path = Path(out) if out else bench_report_path(dev)
    cuda = dev.startswith("cuda")
    old_benchmark = torch.backends.cudnn.benchmark
    if cuda:
        torch.backends.cudnn.benchmark = True

    model, weights_info = _bench_model(weights, iterations, dev)
    n_params = sum(p.numel() for p in model.parameters())
    compile_on = _compile_default(dev) if compile is None else compile
    report: dict = {
        "what": (f"LA inference ({iterations} iterations, batch 1, {weights_info['what']}, on a sample photo "
                 "resized to each size) and one training step"),
        "weights": weights_info,
        "selection_rule": (f"fastest path whose output scores at least {MIN_PSNR_DB:g} dB PSNR against the fp32 "
                           "eager output (fp32 paths also within the fp32 tolerance); chosen for sirr remove only "
                           "when measured on trained weights"),
        "device": device_name(dev) if cuda else
        f"{device_name(dev)}, {cpu_model()} ({torch.backends.cpu.get_cpu_capability()})",
        "device_slug": device_slug(dev),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "repeats": repeats,
        "statistic": "median of repeats after warm-up",
        "iterations": iterations,
        "parameters": n_params,
        "compile": compile_on,
        "compile_note": (None if compile_on or cuda else
                         "torch.compile skipped on CPU by default (set SIRR_BENCH_COMPILE=1): on the shared "
                         "2-core machine inductor took 1-2 min to compile; without weight freezing it was no "
                         "faster than channels_last eager, with freezing one noisy run was ~1.4x faster "
                         "(not confirmed on a quiet machine)"),
        "tolerances": {"fp32": FP32_TOLERANCE, "bf16": BF16_TOLERANCE},
        "conditions": {"start": _conditions()},
        "inference": [],
        "fastest": {},
        "goal": None,
        "provenance": provenance(),
    }
    print_fn(f"LA inference, {iterations} iterations, {device_name(dev)}, median of {repeats} "
             f"(load {report['conditions']['start']['loadavg_1_5_15'][0]:.2f}); {weights_info['what']}"
             + ("" if weights_info["trained"] else ": timing only, no path is chosen for sirr remove"))
    paths = inference_paths(model, dev, compile=compile_on)
    try:
        for h, w in parsed:
            size = f"{h}x{w}"
            x = _bench_input(h, w).to(dev)
            gflops = count_flops(model, h, w)["gflops_per_iteration"]
            ref = None
            rows = []
            for name, spec in paths.items():
                fn = spec["fn"]
                try:
                    y = fn(x).float()  # also the first warm-up call
                    cpu_times: list[float] = []
                    times = time_fn(lambda: fn(x), dev, repeats, warmup=2 if "compiled" in name else 0,
                                    cpu_times=cpu_times)
                except (RuntimeError, torch.OutOfMemoryError) as e:  # e.g. out of memory at 1024² on a small GPU
                    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    report["inference"].append({"size": size, "path": name, "error": msg})
                    print_fn(f"  {size:<9} {name:<38} failed: {msg}")
                    if cuda:
                        torch.cuda.empty_cache()
                    continue
                ref = y if ref is None else ref
                diff = float((y - ref).abs().max())
                db = output_psnr(y, ref)  # None: identical to fp32 eager
                med = statistics.median(times)
                row = {
                    "size": size, "path": name, "dtype": spec["dtype"], "note": spec["note"],
                    "median_s": med, "min_s": min(times), "times_s": times,
                    "median_cpu_s": statistics.median(cpu_times),
                    "max_abs_diff": diff, "tolerance": spec["tolerance"], "psnr_vs_fp32_db": db,
                    "correct": name == "fp32 eager" or ((db is None or db >= MIN_PSNR_DB)
                                                        and (spec["dtype"] != "fp32" or diff <= spec["tolerance"])),
                    "gflops_per_iteration": gflops,
                    "achieved_gflops_per_s": gflops * iterations / med if med > 0 else None,
                }
                rows.append(row)
                report["inference"].append(row)
                close = "identical" if db is None else f"{db:.1f} dB"
                print_fn(f"  {size:<9} {name:<38} {med * 1e3:10.1f} ms (cpu {row['median_cpu_s']:.2f} s)  "
                         f"max|dT| {diff:.2e}, vs fp32 {close}{'' if row['correct'] else '  (rejected)'}")
                del y
            if rows:
                base = next((r for r in rows if r["path"] == "fp32 eager"), None)
                ok = [r for r in rows if r["correct"]]
                best = min(ok, key=lambda r: r["median_s"])
                report["fastest"][size] = {
                    "path": best["path"], "median_s": best["median_s"],
                    "speedup_vs_fp32_eager": (base["median_s"] / best["median_s"]) if base else None,
                    "max_abs_diff": best["max_abs_diff"], "psnr_vs_fp32_db": best["psnr_vs_fp32_db"],
                }
                print_fn(f"  {size:<9} fastest correct: {best['path']} "
                         f"({report['fastest'][size]['speedup_vs_fp32_eager'] or float('nan'):.2f}x fp32 eager)")
            _write(report, path)
        kind = "cuda" if cuda else "cpu"
        goal_size, goal_s = GOALS[kind]
        if goal_size in report["fastest"]:
            got = report["fastest"][goal_size]["median_s"]
            report["goal"] = {"size": goal_size, "seconds": goal_s, "measured_s": got, "met": got <= goal_s,
                              "path": report["fastest"][goal_size]["path"]}
            if not cuda:
                report["release_ratio_goal"] = _release_ratio(report, goal_size)
        report["remove_path"] = _remove_path(report, goal_size)
        if report["remove_path"]:
            print_fn(f"  sirr remove on this device: {report['remove_path']['path']}")
        if profile:
            measured = [s for s in report["fastest"]]
            psize = (("400x540" if "400x540" in measured else (measured[-1] if measured else None))
                     if profile is True else str(profile))
            if psize in report["fastest"]:
                h, w = _parse_size(psize)
                x = _bench_input(h, w).to(dev)
                best = report["fastest"][psize]["path"]
                fn = paths[best]["fn"]
                report["profile"] = {"size": psize, "path": best,
                                     "top_ops": profile_inference(model, x, fn=lambda: fn(x))}
                top = ", ".join(f"{r['op']} {r['share']:.0%}" for r in report["profile"]["top_ops"][:5])
                print_fn(f"  profile {psize} ({best}): {top}")
        if train:
            report["train_step"] = _bench_train_step(dev, repeats, print_fn, train_size)
            if not cuda:  # the cpu preset's step (batch 2, 128 px) in each fp32 memory format: which one trains faster
                report["train_steps"] = [_bench_train_step(dev, repeats, print_fn, "128x128", channels_last=cl)
                                         for cl in (False, True)]
    finally:
        if cuda:
            torch.backends.cudnn.benchmark = old_benchmark
    report["conditions"]["end"] = _conditions()
    _write(report, path)
    report["path"] = str(path)
    print_fn(f"report: {path}")
    return report


def _bench_model(weights, iterations: int, dev: str) -> tuple[torch.nn.Module, dict]:
    """The LA network to time and a description of its weights (``trained``, ``what``, ``path``, ``sha256``)."""
    if weights is None:
        committed = committed_weights(REPO_ROOT / "results", "la", "cpu", 0)
        if committed is not None:
            weights = committed[0]
    if weights is None or str(weights) == "random":
        torch.manual_seed(0)
        model = LocationAware(iterations=iterations)
        info = {"trained": False, "what": "random init weights (seed 0)", "path": None, "sha256": None}
    else:
        path = Path(weights)
        model = get_method("la").load(path, device="cpu")
        model.iterations = iterations
        shown = repo_relative(path)
        meta = getattr(model, "checkpoint_meta", {}) or {}
        preset = ((meta.get("config") or {}).get("preset") or {}).get("name")
        info = {"trained": True, "what": f"trained weights {shown} (preset {preset or 'unknown'})", "path": shown,
                "sha256": sha256_file(path), "preset": preset, "steps": meta.get("step")}
    return model.to(dev).eval(), info


def _bench_input(h: int, w: int) -> torch.Tensor:
    """The first packaged sample photo resized to ``h`` x ``w``: a real image, so that the fast paths are checked
    on the activations a photo gives (random noise would not exercise the trained RCMap)."""
    _, photo = sample_photos()[0]
    x = to_tensor(photo)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True,
                                           align_corners=False).clamp(0, 1)


def _release_ratio(report: dict, size: str) -> dict:
    """Issue 12's CPU goal: the fastest path at most 0.33x the authors' release code's time at 400x540."""
    eager = next((r for r in report["inference"] if r.get("size") == size and r.get("path") == "fp32 eager"
                  and "median_s" in r), None)
    best = report["fastest"][size]
    ratio = best["median_s"] / eager["median_s"] if eager else None
    return {"size": size, "ratio_goal": 0.33, "measured_ratio_vs_fp32_eager": ratio,
            "met": ratio is not None and ratio <= 0.33,
            "reference": ("fp32 eager stands in for the release: the authors' code cannot run offline here; the "
                          "issue measured the two 2% apart on one machine (10.4 s vs 10.2 s at 400x544)"),
            "note": None if cpu_has_native_bf16() else
            "this CPU has no native bf16 (AVX-512 BF16 / AMX), so only fp32 paths run; the 0.33x goal needs bf16"}


def _remove_path(report: dict, size: str) -> dict | None:
    """What ``sirr remove`` uses on this device: the fastest accepted path at ``size`` (else the largest size
    measured), when the weights were trained; ``None`` on random weights."""
    if not report["fastest"] or not report["weights"].get("trained"):
        return None
    at = size if size in report["fastest"] else list(report["fastest"])[-1]
    best = report["fastest"][at]
    return {"path": best["path"], "size": at, "psnr_vs_fp32_db": best["psnr_vs_fp32_db"],
            "speedup_vs_fp32_eager": best["speedup_vs_fp32_eager"],
            "weights": {k: report["weights"][k] for k in ("trained", "path", "sha256")}}


def _bench_train_step(dev: str, repeats: int, print_fn, size: str = "256x256", channels_last: bool = True) -> dict:
    """One LA generator step (forward, Eq. 15 without the adversarial term, backward, Adam) at ``size``, batch 2,
    with the network and its input in channels_last (or the default contiguous format)."""
    h, w = _parse_size(size)
    cuda = dev.startswith("cuda")
    torch.manual_seed(0)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = LocationAware().to(dev).train().to(memory_format=fmt)
    vgg_log = logging.getLogger("sirr.losses.vgg")
    level = vgg_log.level
    vgg_log.setLevel(logging.ERROR)  # random weights on purpose: no "offline fallback" warning in the bench's output
    try:
        vgg = VGG19Features(weights="random").to(dev)  # timing only: the weights' values do not matter
    finally:
        vgg_log.setLevel(level)
    loss_fn = LocationAwareLoss(vgg, use_adversarial=False).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.99))
    g = torch.Generator().manual_seed(2)
    T, R = torch.rand(2, 3, h, w, generator=g).to(dev), torch.rand(2, 3, h, w, generator=g).to(dev) * 0.3
    alpha = torch.full((2,), 0.9, device=dev)
    I = (alpha.view(-1, 1, 1, 1) * T + R).clamp(0, 1)
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            out = model(I.contiguous(memory_format=fmt))
            loss = loss_fn(out, I, T, R, alpha)["total"]
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))

    times = time_fn(step, dev, max(2, repeats // 2) if cuda else max(1, min(repeats, 2)))
    row = {"size": f"{h}x{w}", "batch": 2, "median_s": statistics.median(times), "times_s": times,
           "amp": "bf16 autocast" if cuda else "fp32", "memory_format": "channels_last" if channels_last else "contiguous",
           "loss": "LA Eq. 15 without L_adv (VGG-19 random weights: timing only)",
           "finite": all(map(lambda v: v == v and abs(v) != float("inf"), losses))}
    if cuda:
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print_fn(f"LA training step, {h}x{w}, batch 2 ({row['amp']}, {row['memory_format']}): "
             f"{row['median_s'] * 1e3:.1f} ms")
    return row


def read_bench(results_dir: str | os.PathLike | None = None) -> list[dict]:
    """Every stored bench report under ``<results>/bench/*.json`` (sorted by file name); [] if none."""
    folder = Path(results_dir) / "bench" if results_dir else REPO_ROOT / "results" / "bench"
    reports = []
    for p in sorted(folder.glob("*.json")):
        try:
            rep = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rep, dict) and "inference" in rep:
            rep["path"] = str(p)
            reports.append(rep)
    return reports
