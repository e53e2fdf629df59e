"""Reflection removal on your own photos: any size and format, overlapping tiles for large ones.

``python -m sirr remove PHOTO... --out DIR [--method la|ts] [--checkpoint PATH] [--device D] [--tile N]``
reads each photo robustly (:func:`sirr.data.images.read_image`: EXIF orientation, grey, RGBA,
palette, 16-bit), removes the reflection with the LA network (Dong et al., ICCV 2021: the final
transmission T̂_N) or the two-stage method (Li & Lun, IEEE SPL 2019: B_final), and writes
``DIR/<stem>_<method>.png`` atomically -- never over an input.

Weights: ``--checkpoint`` is a checkpoint written by :mod:`sirr.train` (LA or TS) or the LA
authors' released ``model.pth`` (github.com/zdlarr/Location-aware-SIRR); which one is detected from
the file's contents. Without ``--checkpoint`` the LA network uses the weights committed with the book
(``results/cpu/weights/la-cpu-seed0.fp16.pt``: the ``cpu`` preset, a 40-minute CPU training; the
command says so, with their real20 score), and otherwise the newest finished training under ``runs/``
of the ``paper``, ``demo`` or ``cpu`` preset; if there is none, a clear error says how to get weights
-- random weights are never used silently, and ``smoke`` weights (a few steps) only when named with
``--checkpoint``, with a warning.

Photos with more than ``max_pixels`` pixels (or any photo when ``tile`` is given) go through the
network in overlapping ``tile``×``tile`` pieces whose outputs are blended with raised-cosine weights
(:func:`predict_tiled`), so only one tile's activations are in memory at a time. Tiling is an
engineering addition of this book, not part of either paper.
"""

from __future__ import annotations

import logging
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from sirr.config import REPO_ROOT, resolve_device
from sirr.data.datasets import available_datasets, load_dataset
from sirrbook.photos import real_reflection_photos
from sirr.data.images import IMAGE_EXTENSIONS, read_image, write_image
from sirrbook.evaluation import verdict_phrase
from sirrbook.inference import inference_precision, reuse_freed_memory
from sirr.errors import SirrError
from sirr.messages import repo_relative
from sirr.methods import METHODS as _BY_NAME
from sirr.methods import get_method
from sirr.models.location_aware import release_key_map
from sirr.train.engine import CheckpointError  # shared with training
from sirrbook.weights import committed_weights

__all__ = [
    "DEFAULT_TILE",
    "MAX_PIXELS",
    "CheckpointError",
    "NoCheckpointError",
    "Remover",
    "RemovalReport",
    "find_checkpoint",
    "identify_checkpoint",
    "load_method",
    "predict",
    "predict_tiled",
    "run_on_image",
    "tile_grid",
    "auto_tile",
    "output_path",
    "collect_photos",
    "example_photos",
    "remove_photos",
    "remove_cli",
]

log = logging.getLogger(__name__)

#: Side of a tile when a photo is processed in pieces.
DEFAULT_TILE = 512
#: Photos with more pixels than this are tiled automatically (about 1 MP; the LA network needs roughly
#: 1 GiB of activations per megapixel in fp32 inference).
MAX_PIXELS = 1024 * 1024
METHODS = tuple(_BY_NAME)
PRESET_ORDER = ("paper", "demo", "cpu")  # most-trained first; smoke weights are never picked without --checkpoint


class NoCheckpointError(SirrError, FileNotFoundError):
    """No ``--checkpoint`` given and no trained checkpoint under ``runs/``: the message says how to get weights."""


# ------------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------------


def _how_to_get_weights(method: str) -> str:
    m = get_method(method)
    train = f"'python -m sirr train {m.name} --preset demo' (or run notebook {m.chapter})"
    if m.release_url:
        return f"pass --checkpoint model.pth (the authors' weights, {m.release_url}) or train one with {train}"
    return f"train one with {train}, then pass --checkpoint"


def _runs_dir() -> Path:
    return REPO_ROOT / "runs"


def find_checkpoint(method: str, preset: str | None = None, runs_dir: str | Path | None = None) -> Path | None:
    """The newest trained checkpoint of ``method`` under ``runs/<preset>/<method>/full/<data>/seed*/``
    (:meth:`sirr.methods.Method.run_dir`; folders of the older ``full/seed*/`` scheme are found too).

    ``preset=None`` looks at ``paper``, then ``demo``, then ``cpu`` and takes the first preset that
    has one (``smoke`` only when asked for by name). A finished run's ``final.pt`` is preferred; ``last.pt`` (an interrupted run) or other
    ``*.pt`` / ``*.pth`` files only when no run of that preset finished. The newest by modification
    time wins. Returns None when there is none.
    """
    method = get_method(method).name  # an unknown method is UnknownMethodError
    root = Path(runs_dir) if runs_dir is not None else _runs_dir()
    for p in ([preset] if preset else PRESET_ORDER):
        base = root / p / method / "full"
        if not base.is_dir():
            continue
        files = [f for ext in ("*.pt", "*.pth") for pat in (f"seed*/**/{ext}", f"*/seed*/**/{ext}")
                 for f in base.glob(pat) if f.is_file() and not f.name.startswith(".")]
        files = [f for f in files if f.name == "final.pt"] or files
        if files:
            return max(files, key=lambda f: (f.stat().st_mtime, f.name))
    return None


def identify_checkpoint(path: str | Path) -> str:
    """What a checkpoint file holds, from its contents: ``"la"``, ``"ts"`` or ``"la_release"``.

    Loaded once with ``torch.load(weights_only=True)``: a file with pickled code is refused
    (:class:`CheckpointError`), as is a file that is none of the three.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refusing to load pickled code (torch.load weights_only=True: {str(e).splitlines()[0][:160]})"
        ) from None
    except Exception as e:  # noqa: BLE001 - torch raises KeyError/RuntimeError/EOFError/... for non-checkpoints
        first = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {first})") from None
    return _classify(obj, path, set(release_key_map()))


def _classify(obj, path: Path, release_keys: set[str]) -> str:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a model checkpoint (holds a {type(obj).__name__})")
    # Our own checkpoints say what they are.
    for key in ("method", "model_name", "kind", "model_class", "arch"):
        v = obj.get(key)
        if isinstance(v, str):
            low = v.lower()
            if low in METHODS:
                return low
            if "location" in low:
                return "la"
            if "two" in low and "stage" in low:
                return "ts"
    # The authors' release: a (possibly nested / module.-prefixed) state dict under release names.
    state = obj
    for key in ("state_dict", "model", "netG", "netG_T"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    names = {str(k).removeprefix("module.") for k in state} if isinstance(state, dict) else set()
    if len(names & release_keys) >= len(release_keys) // 2:
        return "la_release"
    # Fall back to the tensor names of our modules.
    flat = _tensor_names(obj)
    if any(n.startswith(("stage1.", "stage2.")) or ".stage1." in n or ".stage2." in n for n in flat):
        return "ts"
    if any(n.startswith(("transmission_net.", "image_in.", "mlsm.")) or ".transmission_net." in n for n in flat):
        return "la"
    raise CheckpointError(
        f"{path}: neither a sirr LA/TS checkpoint nor the LA authors' model.pth (top-level keys: "
        f"{', '.join(map(str, list(obj)[:5]))})"
    )


def _tensor_names(obj, prefix: str = "", depth: int = 0) -> list[str]:
    """Every tensor's dotted name in a nested checkpoint dict, with and without its first component."""
    if depth > 3 or not isinstance(obj, dict):
        return []
    out = []
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            out.append(f"{prefix}{k}")
        elif isinstance(v, dict):
            out.extend(_tensor_names(v, f"{prefix}{k}.", depth + 1))
    if depth:
        return out
    return out + [n.split(".", 1)[1] for n in out if "." in n]


@dataclass
class Remover:
    """A loaded model as a function (1,3,H,W) in [0, 1] -> (1,3,H,W) background, plus where it came from."""

    method: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    device: str
    checkpoint: Path | None
    source: str  # "sirr checkpoint" | "LA authors' release" | "in-memory model"
    model: torch.nn.Module | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def describe(self) -> str:
        where = repo_relative(self.checkpoint) if self.checkpoint else "a model passed in memory"
        return f"{self.method.upper()} ({self.source}) from {where} on {self.device}"


def _as_remover(method: str, model: torch.nn.Module, device: str, checkpoint: Path | None, source: str) -> Remover:
    """The model as a function (:meth:`sirr.methods.Method.predict`), run in the path
    :func:`sirrbook.inference.inference_precision` picks: LA in the one :func:`sirrbook.inference.precision_for` picks for ``device``
    (the fastest one ``sirr bench`` found within 40 dB of fp32 on trained weights); TS, and LA without a bench
    report, in ``resolve_precision("auto")`` (bf16 autocast + channels_last only where the hardware computes
    in bf16, fp32 elsewhere)."""
    model = model.to(device).eval()
    m = get_method(method)
    precision, why = inference_precision(m, device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
        if torch.device(device).type == "cpu":
            reuse_freed_memory(True)  # as sirr bench measured this path

    def fn(x: torch.Tensor) -> torch.Tensor:
        with precision.context(torch.device(device).type):
            return m.predict(model, precision.prepare(x)).float()

    return Remover(method, fn, device, checkpoint, f"{source}; runs in {why}", model)


def load_method(method: str = "la", checkpoint: str | Path | None = None, device: str = "cpu", *,
                model: torch.nn.Module | None = None, preset: str | None = None,
                runs_dir: str | Path | None = None) -> Remover:
    """Load ``method``'s weights as a :class:`Remover` (callable (1,3,H,W) -> (1,3,H,W)).

    ``model``: use this in-memory network (LocationAware or TwoStage) instead of a file.
    ``checkpoint``: a :mod:`sirr.train` checkpoint or, for ``la``, the authors' ``model.pth`` --
    detected from the contents; a checkpoint of the other method raises :class:`CheckpointError`
    naming the right ``--method``. ``None``: the newest checkpoint under ``runs/``
    (:func:`find_checkpoint`), else :class:`NoCheckpointError` saying how to get weights.
    """
    m = get_method(method)  # an unknown method is UnknownMethodError
    device = resolve_device(device)
    if model is not None:
        return _as_remover(method, model, device, None, "in-memory model")
    if checkpoint is None and preset is None and runs_dir is None:
        committed = committed_weights(REPO_ROOT / "results", method, "cpu", 0)
        if committed is not None:
            path, entry = committed
            model = get_method(method).load(path, device="cpu")
            return _as_remover(method, model, device, path, committed_description(entry))
    if checkpoint is None:
        found = find_checkpoint(method, preset, runs_dir)
        if found is None:
            where = Path(runs_dir) if runs_dir is not None else _runs_dir()
            raise NoCheckpointError(
                f"no weights for method {method!r}: no --checkpoint given and no trained checkpoint under "
                f"{where}/<preset>/{method}/full/; {_how_to_get_weights(method)}"
            )
        log.info("using the newest trained checkpoint %s", found)
        checkpoint = found
    path = Path(checkpoint)
    kind = identify_checkpoint(path)
    if kind == "la_release":
        if not m.release_url:
            raise CheckpointError(f"{path} is the LA authors' model.pth; use --method la (not {method!r})")
        return _as_remover(m.name, m.load_release(path), device, path, "LA authors' release")
    if kind != method:
        raise CheckpointError(f"{path} is a {kind.upper()} checkpoint, not {method.upper()}; use --method {kind}")
    model = get_method(method).load(path, device="cpu")
    preset_of = ((getattr(model, "checkpoint_meta", {}) or {}).get("config") or {}).get("preset", {}).get("name")
    if preset_of == "smoke":
        log.warning("%s holds `smoke` weights (a few training steps, a plumbing check): its outputs are not a "
                    "trained reflection remover", path)
    return _as_remover(method, model, device, path, f"sirr checkpoint (preset {preset_of or 'unknown'})")


def committed_description(entry: dict) -> str:
    """One line on committed weights: what they are, their training scale and their real20 verdict against the
    identity baseline (from the paired 95% interval stored with them)."""
    steps = entry.get("steps")
    sel = entry.get("selected_step")
    scale = f"preset {entry['preset']}: {steps} steps"
    if sel is not None and sel != steps:
        scale += f" (best-validation checkpoint at step {sel})"
    scale += f", {entry.get('samples_seen')} samples of {entry.get('crop')} px"
    frac = entry.get("compute_fraction")
    if frac is not None:
        scale += f", {100 * frac:.3g}% of the paper's training compute"
    if entry.get("truncated"):
        scale += ", TRUNCATED by its time guard"
    score = entry.get("real20") or {}
    psnr = score.get("psnr_la")
    if isinstance(psnr, dict):
        ssim = score.get("ssim_la") or {}
        scale += (f"; on real20 ({score.get('n')} pairs at <= {score.get('max_side')} px) it is "
                  f"{verdict_phrase(psnr['verdict'])} in PSNR ({psnr['mean']:+.2f} dB, 95% interval "
                  f"{psnr['low']:+.2f} to {psnr['high']:+.2f})")
        if ssim:
            scale += f" and {verdict_phrase(ssim['verdict'], 'it')} in SSIM ({ssim['mean']:+.3f})"
    elif psnr is not None:  # an older manifest entry: means only, no interval
        scale += (f"; real20 PSNR {psnr:.2f} dB (identity {score['identity_psnr_la']:.2f} dB, no interval "
                  "recorded)")
    return f"the book's committed weights {entry['path']} ({scale})"


# ------------------------------------------------------------------------------------------------
# Inference, whole or tiled
# ------------------------------------------------------------------------------------------------


def _to_tensor(img: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None].to(device)


def _to_image(t: torch.Tensor) -> np.ndarray:
    return t.detach()[0].float().clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy()


@torch.inference_mode()
def predict(fn: Callable[[torch.Tensor], torch.Tensor], img: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Run ``fn`` on a whole (H,W,3) float image in [0, 1]; returns the (H,W,3) float32 result in [0, 1]."""
    _check_image(img)
    return _to_image(fn(_to_tensor(img, device)))


def _check_image(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
        raise ValueError(f"expected an (H, W, 3) image array with H, W >= 1; got "
                         f"{getattr(img, 'shape', type(img).__name__)}")


def _ramp(r: int) -> np.ndarray:
    """Rising edge of length ``r``: zero over its first ``r // 4`` pixels (where a convolutional network
    sees the tile's artificial border), a raised cosine in the middle, one over the last ``r // 4``."""
    m = r // 4
    up = np.ones(r, dtype=np.float64)
    up[:m] = 0.0
    mid = r - 2 * m
    if mid > 0:
        up[m:m + mid] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(mid, dtype=np.float64) + 0.5) / mid)
    return up


def _window(n: int, ramp: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """1-D blending weights of a tile of ``n`` pixels: :func:`_ramp` on each side that has a
    neighbouring tile, flat elsewhere (the photo's own borders keep full weight)."""
    w = np.ones(n, dtype=np.float64)
    r = min(ramp, n // 2)
    if r > 0:
        up = _ramp(r)
        if ramp_start:
            w[:r] = up
        if ramp_end:
            w[-r:] = np.minimum(w[-r:], up[::-1])
    return w


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis, evenly spaced with neighbours overlapping by at least ``overlap``;
    the first and last tiles are flush with the photo's borders."""
    if size <= tile:
        return [0]
    n = math.ceil((size - tile) / (tile - overlap)) + 1
    return sorted({int(round(v)) for v in np.linspace(0, size - tile, n)})


def default_overlap(tile: int) -> int:
    """Overlap used for a ``tile``: a quarter of it, at most 64 pixels (at least 2)."""
    return int(max(2, min(64, tile // 4)))


def tile_grid(h: int, w: int, tile: int, overlap: int | None = None) -> list[tuple[int, int]]:
    """The (y, x) origins of the tiles :func:`predict_tiled` uses for an h×w photo."""
    overlap = default_overlap(tile) if overlap is None else overlap
    return [(y, x) for y in _starts(h, tile, overlap) for x in _starts(w, tile, overlap)]


@torch.inference_mode()
def predict_tiled(fn: Callable[[torch.Tensor], torch.Tensor], img: np.ndarray, device: str = "cpu",
                  tile: int = DEFAULT_TILE, overlap: int | None = None, progress: bool = False) -> np.ndarray:
    """Run ``fn`` on overlapping ``tile``×``tile`` pieces of an (H,W,3) image and blend them.

    Neighbouring tiles overlap by at least ``overlap`` pixels (default :func:`default_overlap`); each
    tile's output is weighted by a separable window that ramps down only towards its neighbours
    (:func:`_ramp`: zero over the outer quarter of the overlap, then a raised cosine), and the
    weighted sum is divided by the summed weights. For a pointwise ``fn`` the result equals the
    untiled one; so it does for a convolutional network whose receptive-field radius is at most a
    quarter of the overlap; for deeper networks (LA's encoder) the seams are small, not zero.
    Only one tile is on the device at a time; the output is accumulated in host memory.
    """
    _check_image(img)
    overlap = default_overlap(tile) if overlap is None else int(overlap)
    if tile < 8 or overlap < 0 or tile <= 2 * overlap:
        raise ValueError(f"tile ({tile}) must be at least 8 and larger than twice the overlap ({overlap})")
    h, w, _ = img.shape
    if h <= tile and w <= tile:
        return predict(fn, img, device)
    acc = np.zeros((h, w, 3), dtype=np.float32)
    wsum = np.zeros((h, w, 1), dtype=np.float32)
    grid = tile_grid(h, w, tile, overlap)
    for y, x in tqdm(grid, desc="tiles", unit="tile", leave=False, disable=not progress):
        piece = img[y:y + tile, x:x + tile]
        out = _to_image(fn(_to_tensor(piece, device)))
        ph, pw = piece.shape[:2]
        wy = _window(ph, overlap, ramp_start=y > 0, ramp_end=y + ph < h)
        wx = _window(pw, overlap, ramp_start=x > 0, ramp_end=x + pw < w)
        wt = (wy[:, None] * wx[None, :])[..., None].astype(np.float32)
        acc[y:y + ph, x:x + pw] += out * wt
        wsum[y:y + ph, x:x + pw] += wt
    acc /= wsum
    return acc


def auto_tile(max_pixels: int = MAX_PIXELS) -> int:
    """Tile side used when a photo exceeds ``max_pixels``: the largest square within the budget,
    at most :data:`DEFAULT_TILE` and at least 64."""
    return int(max(64, min(DEFAULT_TILE, math.isqrt(int(max_pixels)))))


def _is_oom(e: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e).lower()


def run_on_image(fn: Callable[[torch.Tensor], torch.Tensor], img: np.ndarray, device: str = "cpu",
                 tile: int | None = None, max_pixels: int = MAX_PIXELS, progress: bool = False) -> np.ndarray:
    """Whole-image inference for photos up to ``max_pixels`` pixels, tiled beyond (or when ``tile`` is set).

    When the device runs out of memory the tile side is halved (down to 64) and the photo retried.
    """
    _check_image(img)
    h, w = img.shape[:2]
    if tile is None and h * w > max_pixels:
        tile = auto_tile(max_pixels)
    while True:
        try:
            if tile is None:
                return predict(fn, img, device)
            return predict_tiled(fn, img, device, tile=tile, progress=progress)
        except (RuntimeError, MemoryError) as e:
            if not _is_oom(e) and not isinstance(e, MemoryError):
                raise
            new = max(64, (tile or max(h, w)) // 2)
            if tile is not None and new >= tile:
                raise
            log.warning("out of memory at tile %s; retrying with tiles of %d", tile, new)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            tile = new


# ------------------------------------------------------------------------------------------------
# Photos in, PNGs out
# ------------------------------------------------------------------------------------------------


def collect_photos(items: Iterable[str | Path]) -> list[Path]:
    """Expand folders into their image files (sorted, by :data:`sirr.data.images.IMAGE_EXTENSIONS`); files are kept as given."""
    out: list[Path] = []
    for it in items:
        p = Path(it).expanduser()
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                              and not f.name.startswith(".")))
        else:
            out.append(p)
    return out


def example_photos(folder: str | Path, data_root=None, n: int = 3, max_side: int | None = None,
                   verbose: bool = True) -> list[Path]:
    """``n`` photos with reflections to try :func:`remove_photos` on, as files.

    The real photos through glass under the data root (CEILNet's ``testdata_reflection_real``, then
    Zhang et al.'s ``real``), used in place -- or, with ``max_side``, as copies shrunk to that longer
    side written into ``folder``. Without them, LA-recipe blends of the packaged sample photos
    (:func:`sirrbook.photos.real_reflection_photos`' fallback, longer side ``max_side`` or 256) are
    written as PNGs into ``folder``. It logs which.
    """
    folder = Path(folder)
    paths: list[Path] = []
    present = available_datasets(data_root)
    for name in ("ceilnet_real", "zhang2018_real"):
        if name in present and len(paths) < n:
            paths.extend(load_dataset(name, data_root, max_images=n - len(paths)).paths)
    if paths:
        paths = paths[:n]
        if max_side:
            paths = [write_image(folder / f"{p.stem}.png", _shrink(read_image(p), max_side)) for p in paths]
        if verbose:
            log.info("example photos: %d real photos through glass: %s%s", len(paths), ", ".join(p.name for p in paths),
                     f" (copies in {folder}, longer side <= {max_side} px)" if max_side else "")
        return paths
    for name, img in real_reflection_photos(data_root, n=n, max_side=max_side or 256, verbose=verbose):
        safe = "".join(c if c.isalnum() or c in "-_+." else "_" for c in name.replace("/", "_"))
        paths.append(write_image(folder / f"{safe}.png", img))
    if verbose:
        log.info("example photos written to %s", folder)
    return paths


def _shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    """Antialiased downscale so that the longer side is at most ``max_side`` (unchanged if already smaller)."""
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    t = torch.nn.functional.interpolate(_to_tensor(img, "cpu"), size=size, mode="bilinear", antialias=True,
                                        align_corners=False)
    return _to_image(t)


def output_path(photo: str | Path, out_dir: str | Path, method: str) -> Path:
    """Where the result for ``photo`` goes: ``out_dir/<stem>_<method>.png``."""
    return Path(out_dir) / f"{Path(photo).stem}_{method}.png"


def _plan_outputs(photos: Sequence[Path], out_dir: Path, method: str) -> dict[int, Path]:
    """Output path per photo index; photos sharing a stem get the suffix too (``a_jpg_la.png``)."""
    plan: dict[int, Path] = {}
    used: set[Path] = set()
    for i, p in enumerate(photos):
        dst = output_path(p, out_dir, method)
        if dst in used:
            dst = out_dir / f"{p.stem}_{p.suffix.lstrip('.').lower() or 'noext'}_{method}.png"
            k = 2
            while dst in used:
                dst = out_dir / f"{p.stem}_{k}_{method}.png"
                k += 1
        used.add(dst)
        plan[i] = dst
    return plan


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


@dataclass
class RemovalReport:
    """What :func:`remove_photos` did: ``written`` (input, output) pairs and ``failed`` (input, one-line reason)."""

    method: str
    source: str
    written: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    tiled: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        s = f"{len(self.written)} photo(s) written with {self.source}"
        if self.failed:
            s += f"; {len(self.failed)} failed: " + "; ".join(f"{p.name}: {m}" for p, m in self.failed)
        return s


def remove_photos(photos: Sequence[str | Path] | str | Path, out_dir: str | Path, *, method: str = "la",
                  checkpoint: str | Path | None = None, model: torch.nn.Module | Remover | None = None,
                  device: str = "cpu", tile: int | None = None, max_pixels: int = MAX_PIXELS,
                  preset: str | None = None, progress: bool = True) -> RemovalReport:
    """Remove reflections from ``photos`` (files and/or folders) into ``out_dir/<stem>_<method>.png``.

    Weights come from ``model`` (a network or :class:`Remover`), else ``checkpoint``, else the newest
    trained checkpoint under ``runs/`` (``preset`` restricts the search); see :func:`load_method`.
    A photo that cannot be read, or whose output would be an input file, is recorded in
    ``report.failed`` with a one-line reason and the others are still processed; nothing is ever
    written over an input. Photos above ``max_pixels`` pixels, or all photos when ``tile`` is given,
    are processed in overlapping tiles. A tqdm bar shows progress (``progress=False`` hides it).
    """
    if isinstance(photos, (str, Path)):
        photos = [photos]
    paths = collect_photos(photos)
    if not paths:
        raise FileNotFoundError("no photos given (or no image files in the folders given)")
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {str(out_dir)!r} is a file; give a folder for the results")
    if tile is not None and tile < 16:
        raise ValueError(f"tile must be at least 16 pixels, got {tile}")
    remover = model if isinstance(model, Remover) else load_method(method, checkpoint, device, model=model,
                                                                     preset=preset)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = _plan_outputs(paths, out_dir, remover.method)
    report = RemovalReport(remover.method, remover.describe())
    bar = tqdm(list(enumerate(paths)), desc=f"removing reflections ({remover.method})", unit="photo",
               disable=not progress)
    for i, p in bar:
        dst = plan[i]
        clash = next((q for q in paths if _same_file(dst, q)), None)
        if clash is not None:
            msg = (f"output {dst} would overwrite the input {clash}; choose another --out folder "
                   "(inputs are never overwritten)")
            report.failed.append((p, msg))
            bar.write(f"sirr: error: {msg}")
            continue
        try:
            # With an explicit tile size the reader's pixel limit (a decompression-bomb guard that
            # points at --tile) is lifted: the photo then only has to fit in host memory.
            img = read_image(p, max_pixels=None if tile is None else 2**40)
        except (ValueError, OSError) as e:  # ImageReadError, FileNotFoundError, ...
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            report.failed.append((p, msg))
            bar.write(f"sirr: error: {p}: {msg}" if str(p) not in msg else f"sirr: error: {msg}")
            continue
        h, w = img.shape[:2]
        if (tile is not None and max(h, w) > tile) or (tile is None and h * w > max_pixels):
            report.tiled.append(p)
        try:
            result = run_on_image(remover, img, remover.device, tile=tile, max_pixels=max_pixels, progress=progress)
        except (RuntimeError, ValueError, MemoryError) as e:  # the model failed on this photo: keep going
            msg = f"{p}: inference failed ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]})"
            report.failed.append((p, msg))
            bar.write(f"sirr: error: {msg}")
            continue
        try:
            written = write_image(dst, result, protect=paths)
        except (ValueError, OSError) as e:  # OutputWouldOverwriteInput, permission, disk full
            report.failed.append((p, str(e).splitlines()[0]))
            bar.write(f"sirr: error: {str(e).splitlines()[0]}")
            continue
        report.written.append((p, Path(written) if written is not None else dst))
    return report


def remove_cli(photos: Sequence[str | Path], out: str | Path, method: str = "la", checkpoint: str | None = None,
               device: str | None = "auto", tile: int | None = None) -> RemovalReport:
    """Entry point of ``python -m sirr remove``: prints each written file, then raises one ValueError
    line (exit status 2 in ``__main__``) when any photo failed -- after all the others were processed."""
    report = remove_photos(list(photos), out, method=method, checkpoint=checkpoint, device=device or "auto",
                           tile=tile)
    print(f"weights: {report.source}")
    for _, dst in report.written:
        print(dst)
    if report.failed:
        raise ValueError(f"{len(report.failed)} of {len(report.failed) + len(report.written)} photos failed: "
                         + "; ".join(f"{p.name} ({m})" for p, m in report.failed))
    return report
