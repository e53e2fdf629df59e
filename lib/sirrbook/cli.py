"""Command line: ``python -m sirr {info,book,bench,train,publish,claims,brightness,remove} ...``.

``python -m sirr`` is :mod:`sirr.__main__`, which calls :func:`main` here when it runs.

Each verb is a thin wrapper over a library function; errors the user can fix are printed as one
line (``sirr: error: ...``) with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import sys
from pathlib import Path

from sirrbook.book import run_book
from sirrbook.book.bench import run_bench
from sirrbook.train_cli import train_cli
from sirr.messages import repo_relative
from sirr.config import PRESETS, resolve
from sirr.data.datasets import DATASETS, TRAINING_SETS, find_dataset
from sirrbook.photos import benchmark_inventory
from sirr.data.pool import build_pool
from sirr.data.root import DatasetNotFoundError
from sirr.errors import SirrError
from sirr.messages import LOGGERS, show_messages
from sirr.methods import METHODS
from sirr.provenance import header
from sirrbook.remove import remove_cli


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="smoke", help=f"{' | '.join(PRESETS)} (default: smoke)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu | cuda | auto (default: the preset's)")
    p.add_argument("--data-root", default=None, help="data root (default: $SIRR_DATA, else ../shared/data)")
    p.add_argument("--results-dir", default=None, help="results folder (default: <repo>/results)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m sirr", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)

    i = sub.add_parser("info", help="print versions, device, commit, the data sets found and the training pool")
    i.add_argument("--data-root", default=None, help="data root (default: $SIRR_DATA, then ../shared/data; 'none' for none)")

    b = sub.add_parser("book", help="execute every notebook with papermill and build the HTML book")
    _common(b)
    b.add_argument("--build-dir", default=None, help="where executed notebooks and HTML go (default: <repo>/_build)")
    b.add_argument("--only", nargs="*", default=None, help="run only these notebooks (file names or stems)")
    b.add_argument("--no-html", action="store_true", help="execute the notebooks but do not build the HTML")
    b.add_argument("--retrain", action="store_true", help="retrain instead of reusing stored results")

    be = sub.add_parser("bench", help="time LA inference and a training step (fp32 eager vs the fastest path)")
    be.add_argument("--device", default="auto")
    be.add_argument("--sizes", nargs="*", default=None, help="HxW sizes, e.g. 256x256 400x540 1024x1024")
    be.add_argument("--repeats", type=int, default=None)
    be.add_argument("--out", default=None, help="write the JSON report here (default: results/bench/<device>.json)")
    be.add_argument("--no-train", action="store_true", help="skip the training-step benchmark")
    be.add_argument("--weights", default=None,
                    help="LA weights to time and check the fast paths on: a checkpoint, or 'random' "
                         "(default: the committed LA@cpu weights)")

    t = sub.add_parser("train", help="train one method at a preset (single process or under torchrun)")
    t.add_argument("method", choices=list(METHODS))
    _common(t)
    t.add_argument("--run-dir", default=None, help="checkpoints and logs (default: runs/<preset>/<method>/full/seed<seed>)")
    t.add_argument("--resume", action="store_true", help="resume from the last checkpoint in --run-dir")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="preset overrides, e.g. la__steps=10 vgg_weights=random")

    pb = sub.add_parser("publish", help="record, evaluate (with intervals against the identity baseline) and export "
                                        "a finished training as the book's committed results")
    pb.add_argument("method", choices=list(METHODS))
    _common(pb)
    pb.add_argument("--load-log", default=None, help="file of '<time> <load average>' lines sampled while it trained")

    c = sub.add_parser("claims", help="run the papers' claim experiments (chapter 07): every missing (arm, seed) run, "
                                      "each stored as soon as it finishes; --status only reports")
    c.add_argument("ids", nargs="*", default=None, help="claims to run, e.g. E3 E2 (default: all, in order)")
    _common(c)
    c.add_argument("--seeds", type=int, nargs="*", default=None, help="only these of the claims' pre-registered seeds")
    c.add_argument("--arms", nargs="*", default=None, help="only these arms (e.g. one arm per process)")
    c.add_argument("--status", action="store_true", help="print k of n runs done and any verdict; run nothing")
    c.add_argument("--park", action="store_true",
                   help="copy each unfinished run's last checkpoint and logs to results/<preset>/claims/<id>/<arm>/"
                        "<seed>.parked/ (to commit, so a fresh machine resumes it); run nothing")

    br = sub.add_parser("brightness", help="is a trained model removing reflections or only darkening? (chapter 6): "
                                           "a constant-gain baseline and a brightness-matched comparison on the real "
                                           "test sets, stored under results/<preset>/brightness/")
    br.add_argument("method", nargs="?", choices=list(METHODS), default="la")
    _common(br)
    br.add_argument("--retrain", action="store_true", help="recompute even where a stored study exists")

    r = sub.add_parser("remove", help="remove reflections from photos of any size and format")
    r.add_argument("photos", nargs="+", help="image files")
    r.add_argument("--out", required=True, help="output folder (never the inputs' own files)")
    r.add_argument("--method", choices=list(METHODS), default="la")
    r.add_argument("--checkpoint", default=None, help="a checkpoint of ours, or the LA authors' model.pth")
    r.add_argument("--device", default="auto")
    r.add_argument("--tile", type=int, default=None, help="tile side for photos too large to process at once")
    return ap


def _parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"sirr: error: --set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def _data_inventory(data_root) -> str:
    """What ``info`` says about the data: every benchmark (found vs the papers' counts), the real
    training pairs, and the training pool with what it left out."""
    lines = ["test sets (found / papers' count):"]
    for row in benchmark_inventory(data_root):
        paper = f" / {row['paper_count']}" if row["paper_count"] else ""
        note = f"  -- {row['missing']}" if row["missing"] else ""
        lines.append(f"  {row['name']:<18} {row['found']:>4}{paper}{note}")
    lines.append("real training pairs:")
    for name in TRAINING_SETS:
        try:
            n = len(find_dataset(name, data_root)[1])
            lines.append(f"  {name:<24} {n:>4}")
        except DatasetNotFoundError:
            lines.append(f"  {name:<24}    0  -- not found (published: {DATASETS[name].url})")
    lines.append(build_pool(data_root, verbose=False).summary())
    return "\n".join(lines)


def _configure_logging() -> None:
    """Show the library's INFO messages on stderr (:func:`sirr.messages.show_messages`) -- unless the caller
    (an application, pytest) already configured logging."""
    if logging.getLogger().handlers or any(logging.getLogger(n).handlers for n in LOGGERS):
        return
    show_messages(sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    try:
        if args.verb == "info":
            run = resolve("smoke", device="auto", data_root=args.data_root)
            print(header(run))
            print(_data_inventory(run.data_root_arg))
            return 0
        if args.verb == "book":
            out = run_book(preset=args.preset, seed=args.seed, device=args.device, data_root=args.data_root,
                           results_dir=args.results_dir, build_dir=args.build_dir, only=args.only,
                           html=not args.no_html, retrain=args.retrain)
            print(f"book: {out}")
            return 0
        if args.verb == "bench":
            run_bench(device=args.device, sizes=args.sizes, repeats=args.repeats, out=args.out,
                      train=not args.no_train, weights=args.weights)
            return 0
        if args.verb == "train":
            train_cli(method=args.method, preset=args.preset, seed=args.seed, device=args.device,
                      data_root=args.data_root, results_dir=args.results_dir, run_dir=args.run_dir,
                      resume=args.resume, overrides=_parse_sets(args.set))
            return 0
        if args.verb == "publish":
            import sirrbook.experiments as ex

            run = resolve(args.preset, seed=args.seed, device=args.device, data_root=args.data_root,
                          results_dir=args.results_dir)
            out = ex.publish(run, args.method, load_log=args.load_log)
            print(f"training record: {out['training']['steps']} steps")
            for name, by_metric in (out["evaluation"].get("vs_identity") or {}).items():
                p = by_metric.get("psnr_la")
                if p:
                    print(f"  {name:<18} {p['mean']:+.2f} dB [{p['low']:+.2f}, {p['high']:+.2f}] {p['verdict']}")
            if out["weights"]:
                print(f"weights: {out['weights']['path']}")
            return 0
        if args.verb == "claims":
            from sirrbook import claims

            run = resolve(args.preset, seed=args.seed, device=args.device, data_root=args.data_root,
                          results_dir=args.results_dir)
            for cid in args.ids or list(claims.CLAIMS):
                if args.park:
                    for p in claims.park(run, cid, seeds=args.seeds):
                        print(f"{cid} {p['arm']} seed {p['seed']}: parked at step {p['step']} in "
                              f"{repo_relative(p['path'])}")
                elif not args.status:
                    claims.run_claim(run, cid, seeds=args.seeds, arms=args.arms)
                s = claims.claim_summary(run, cid)
                p = s["progress"]
                parked = "".join(f"; {a} seed {sd} parked at step {st}" for (a, sd), st in p.get("parked", {}).items())
                print(f"{s['id']} ({s['source']}): {p['done']} of {p['total']} runs done{parked}; "
                      f"verdict: {s['verdict'] or 'none until every run is in'}")
            return 0
        if args.verb == "brightness":
            from sirrbook import brightness
            from sirrbook.viz.tables import DATASET_NAMES

            run = resolve(args.preset, seed=args.seed, device=args.device, data_root=args.data_root,
                          results_dir=args.results_dir, retrain=args.retrain)
            print(brightness.brightness_sentence(brightness.brightness_study(run, args.method), DATASET_NAMES))
            return 0
        if args.verb == "remove":
            remove_cli(photos=[Path(p) for p in args.photos], out=Path(args.out), method=args.method,
                       checkpoint=args.checkpoint, device=args.device, tile=args.tile)
            return 0
    except KeyboardInterrupt:
        print("sirr: interrupted", file=sys.stderr)
        return 130
    except (SirrError, ValueError, FileNotFoundError, FileExistsError, PermissionError, RuntimeError) as e:
        # One clear line for what the user can fix; SIRR_DEBUG=1 shows the traceback.
        if os.environ.get("SIRR_DEBUG"):
            raise
        print(f"sirr: error: {e}", file=sys.stderr)
        return 2
    return 1
