"""Content fingerprints that tell whether a photo is (a crop, resize or re-encode of) another.

A training pool must never hold a photo that a test set was made from (see :mod:`sirr.data.pool`).
File names catch most of them (CEILNet names its triples by VOC id); content catches the rest:
a renamed copy, a re-encode, a resize, or a crop such as CEILNet's 224x224 transmissions, which are
exact crops of their VOC photos at scale 1.

The fingerprint of an image is a grey thumbnail at 1/8 of its size (decoded with JPEG's DCT scaling
where possible) plus a 16x16 thumbnail of the whole frame. A pair (test image, pool photo) is decided
in three stages, all by normalised cross-correlation (NCC):

1. **rank** (:func:`match_scores`): the larger of the whole-frame NCC and the peak NCC of the test
   thumbnail's central ``TEMPLATE`` window slid over the pool thumbnail; the best
   :data:`CANDIDATES_PER_TEST` pool photos scoring >= :data:`CANDIDATE_THRESHOLD` go on;
2. **refine**: the whole test thumbnail slid over the pool thumbnail (:func:`verify` on thumbnails)
   must reach :data:`REFINE_THRESHOLD`;
3. **verify**: :func:`verify` on full-resolution grey images must reach :data:`VERIFY_THRESHOLD`.

Full resolution is needed for the decision: on ``../shared/data`` the CEILNet crops score 0.9992-0.9998
there, while at 1/2 or 1/8 scale a half-pixel offset drops textured crops to about 0.84 and unrelated
photos reach 0.987 at the ranking stage. Crops of resized photos are caught only through the whole-frame
test (a resize of the whole image); a crop that was also rescaled is not looked for.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from sirr.data.images import ImageReadError

__all__ = ["Fingerprint", "fingerprint", "fingerprint_array", "grey_at", "match_scores", "verify",
           "CANDIDATE_THRESHOLD", "REFINE_THRESHOLD", "VERIFY_THRESHOLD", "CROP_SCALES"]

log = logging.getLogger(__name__)

#: Pixel scale of the crop thumbnail (1/8: JPEG decodes it directly from the DCT).
SCALE = 8
#: Side of the whole-frame thumbnail.
WHOLE_SIDE = 16
#: Ranking score a candidate needs (stage 1).
CANDIDATE_THRESHOLD = 0.8
VERIFY_SCALE = 1  # half resolution is not enough: a half-pixel offset drops textured crops to NCC 0.84
#: Second coarse stage: the whole 1/8 thumbnail (not just its centre window) slid over the pool thumbnail.
REFINE_THRESHOLD = 0.7
#: Full-resolution NCC that makes a match (stage 3).
VERIFY_THRESHOLD = 0.98
#: Candidates verified per test image (its best coarse scores).
CANDIDATES_PER_TEST = 3
#: Relative sizes at which a test image is looked for inside a pool photo.
CROP_SCALES = (1.0,)
TEMPLATE = 24  # side of the crop-test window in thumbnail pixels (192 px of image)
_MIN_STD = 0.02  # flat windows match anything: they are judged by the whole-frame test only


@dataclass(frozen=True)
class Fingerprint:
    """Grey thumbnails of one image: ``thumb`` at 1/:data:`SCALE` and ``whole`` (16x16, zero-mean, unit norm)."""

    thumb: np.ndarray  # float32 (h, w) in [0, 1]
    whole: np.ndarray  # float32 (256,)

    @property
    def nbytes(self) -> int:
        return self.thumb.nbytes + self.whole.nbytes


def _normalise(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float32).ravel()
    v = v - v.mean()
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-6 else v * 0


def fingerprint_array(grey: np.ndarray) -> Fingerprint:
    """Fingerprint of a grey float image in [0, 1] already at 1/``scale`` of its original size."""
    g = np.array(grey, dtype=np.float32)
    im = Image.fromarray(g, mode="F")
    whole = np.asarray(im.resize((WHOLE_SIDE, WHOLE_SIDE), Image.BOX), dtype=np.float32)
    return Fingerprint(thumb=g, whole=_normalise(whole))


def grey_at(path: str | os.PathLike, scale: int, draft: bool = True) -> np.ndarray:
    """The image as grey float32 in [0, 1] at 1/``scale`` of its size, box-filtered (with ``draft``,
    JPEGs are decoded at that scale directly from the DCT: faster, slightly different filter)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            target = (max(1, round(w / scale)), max(1, round(h / scale)))
            if draft and im.format == "JPEG":
                im.draft("L", target)  # DCT-domain down-scaling: no full decode
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees on display
                target = target[::-1]
            im = ImageOps.exif_transpose(im)
            sixteen = im.mode in ("I;16", "I;16B", "I")
            if im.mode not in ("L", "F") and not sixteen:
                im = im.convert("RGB").convert("L")
            g = np.asarray(im.convert("F"), dtype=np.float32) / (65535.0 if sixteen else 255.0)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot fingerprint {str(path)!r}: {exc}") from exc
    if (g.shape[1], g.shape[0]) != target:
        g = np.asarray(Image.fromarray(g, mode="F").resize(target, Image.BOX), dtype=np.float32)
    return g


def fingerprint(path: str | os.PathLike) -> Fingerprint:
    """Fingerprint of an image file."""
    return fingerprint_array(grey_at(path, SCALE))


def _resized(t: np.ndarray, s: float) -> np.ndarray:
    hw = (max(1, round(t.shape[0] * s)), max(1, round(t.shape[1] * s)))
    if hw == t.shape:
        return t
    return np.asarray(Image.fromarray(t, mode="F").resize((hw[1], hw[0]), Image.BOX), dtype=np.float32)


def _peak_ncc(pool: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """Peak NCC of each template (K, 1, w, w; zero-mean, unit-norm) over pool thumbnails (N, 1, H, W) -> (N, K).

    Windows of the pool photo that are nearly flat (std below ``_MIN_STD``) score 0: a flat window
    has no content to match, and dividing by its tiny norm would only amplify rounding.
    """
    w = templates.shape[-1]
    n = w * w
    num = F.conv2d(pool, templates)
    s1 = F.avg_pool2d(pool, w, stride=1) * n
    s2 = F.avg_pool2d(pool * pool, w, stride=1) * n
    var = (s2 - s1 * s1 / n).clamp_min(0)
    ok = var > n * _MIN_STD**2
    ncc = torch.where(ok, num / var.clamp_min(1e-12).sqrt(), torch.zeros((), dtype=num.dtype))
    return ncc.amax(dim=(-2, -1))


def match_scores(tests: list[Fingerprint], pool: list[Fingerprint]) -> tuple[np.ndarray, np.ndarray]:
    """``(whole, crop)``: NCC matrices of shape (len(tests), len(pool)) for the two tests of the module.

    The crop test slides the central ``TEMPLATE x TEMPLATE`` window of each rescaled test thumbnail
    over every pool thumbnail that can hold the whole rescaled test thumbnail, so its cost is one
    small convolution per pool photo whatever the test images' sizes.
    """
    nt, npool = len(tests), len(pool)
    whole = np.zeros((nt, npool), np.float32)
    crop = np.zeros((nt, npool), np.float32)
    if not nt or not npool:
        return whole, crop
    whole[:] = np.stack([t.whole for t in tests]) @ np.stack([p.whole for p in pool]).T
    rows, sizes, temps = [], [], []
    for i, t in enumerate(tests):
        for s in CROP_SCALES:
            r = _resized(t.thumb, s)
            if min(r.shape) < TEMPLATE:
                continue
            y, x = (r.shape[0] - TEMPLATE) // 2, (r.shape[1] - TEMPLATE) // 2
            c = r[y:y + TEMPLATE, x:x + TEMPLATE]
            if float(c.std()) < _MIN_STD:
                continue  # flat: judged by the whole-image test alone
            rows.append(i)
            sizes.append(r.shape)
            temps.append(_normalise(c).reshape(c.shape))
    if not temps:
        return whole, crop
    rows_a = np.array(rows)
    hw = np.array(sizes)
    kernel = torch.from_numpy(np.stack(temps)[:, None])
    with torch.no_grad():
        for j, p in enumerate(pool):
            H, W = p.thumb.shape
            fits = np.flatnonzero((hw[:, 0] <= H) & (hw[:, 1] <= W))
            if not fits.size:
                continue
            pt = torch.from_numpy(np.array(p.thumb, dtype=np.float32))[None, None]
            best = _peak_ncc(pt, kernel[fits])[0].numpy()
            np.maximum.at(crop[:, j], rows_a[fits], best)
    return whole, crop


def verify(test: np.ndarray, pool: np.ndarray) -> float:
    """Exact check of one candidate pair on grey images at 1/:data:`VERIFY_SCALE` (same filter on
    both): the best NCC of ``test`` as a crop of ``pool`` (when it fits; windows of ``pool`` that are
    nearly flat are ignored) or of the two whole frames squashed to 64x64 (a resize)."""
    # slow to import (about 2 s) and needed only for the few candidate pairs of a cold pool check
    from scipy.ndimage import uniform_filter
    from skimage.feature import match_template

    def squash(a):
        return _normalise(np.asarray(Image.fromarray(a, mode="F").resize((64, 64), Image.BOX)))

    best = float(squash(test) @ squash(pool))
    h, w = test.shape
    if h <= pool.shape[0] and w <= pool.shape[1] and test.std() >= _MIN_STD:
        ncc = match_template(pool, test)
        p64 = pool.astype(np.float64)
        m1 = uniform_filter(p64, (h, w), mode="constant")
        m2 = uniform_filter(p64 * p64, (h, w), mode="constant")
        y0, x0 = h // 2, w // 2
        std = np.sqrt(np.clip(m2 - m1 * m1, 0, None))[y0:y0 + ncc.shape[0], x0:x0 + ncc.shape[1]]
        ncc = np.where(std >= _MIN_STD, ncc, 0.0)
        best = max(best, float(np.clip(ncc, -1, 1).max()))
    return best
