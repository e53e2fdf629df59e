"""Robust image reading and writing for the book and the ``sirr remove`` CLI.

Every image inside ``sirr`` is an ``H x W x 3`` ``numpy.float32`` array in ``[0, 1]`` (RGB).
:func:`read_image` turns any photo a reader may bring into that form:

- the EXIF orientation tag is applied (``PIL.ImageOps.exif_transpose``), so a portrait photo
  taken on a phone is upright;
- grey (``L``, ``1``, ``I;16``) images are replicated to three channels; palette (``P``) images are
  expanded to RGB;
- images with alpha (``LA``, ``RGBA``, ``PA``) are **composited on white** (a transparent pixel
  reads as white paper, not as the arbitrary colour stored under alpha 0); the alpha channel is
  then dropped;
- 16-bit PNGs (``I;16``, ``I;16B``, 48-/64-bit RGB(A)) are scaled by ``1/65535`` (not clipped to 8 bits);
  PIL reduces 48/64-bit RGB(A) to 8 bits, so those are decoded by libpng (``imagecodecs``);
- a 1x1 image is a valid 1x1x3 array (what a model does with it is the model's business).

Bad input raises :class:`ImageReadError` (a ``ValueError``) whose one-line message names the file and
the cause: empty file, truncated/corrupt PNG or JPEG, a non-image with an image extension, or an
image larger than :data:`MAX_PIXELS` (a decompression bomb or simply a photo too large to hold at
once: it points at ``sirr remove --tile``). :func:`image_size` reads only the header.

:func:`write_image` writes atomically (:func:`sirr.atomic.atomic_write`) and refuses to write over a
protected input (:class:`OutputWouldOverwriteInput`). Existing non-protected files are overwritten
by default (``overwrite=True``): the CLI writes ``<stem>_<method>.png`` into an output folder and
rerunning it should refresh those files; pass ``overwrite=False`` to refuse instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import imagecodecs
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sirr.atomic import atomic_write
from sirr.errors import SirrError

__all__ = [
    "ImageReadError",
    "ImageTooLargeError",
    "OutputWouldOverwriteInput",
    "MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "read_image",
    "as_hwc",
    "read_image_uint8",
    "image_size",
    "to_tensor",
    "to_image",
    "to_uint8",
    "write_image",
    "list_images",
]

#: Largest image :func:`read_image` decodes at once (pixels). 120 MP at float32 x3 is ~1.4 GB.
#: Override per call (``max_pixels=``) or with ``$SIRR_MAX_PIXELS``.
MAX_PIXELS = 120_000_000

#: Extensions treated as images when listing folders.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(SirrError, ValueError):
    """A file that cannot be read as an image; the message names the file and the cause."""


class ImageTooLargeError(ImageReadError):
    """An image above the pixel limit (decompression bomb or a photo to be processed in tiles)."""


class OutputWouldOverwriteInput(SirrError, ValueError):
    """An output path that is (or links to) one of the inputs, or an existing file with ``overwrite=False``."""


def _max_pixels(max_pixels: int | None) -> int:
    if max_pixels is not None:
        return int(max_pixels)
    env = os.environ.get("SIRR_MAX_PIXELS")
    if env:
        try:
            return int(float(env))
        except ValueError:
            pass
    return MAX_PIXELS


def _open(path: Path, max_pixels: int):
    """Open with PIL, turning every failure into a one-line :class:`ImageReadError`."""
    if not path.exists():
        raise FileNotFoundError(f"image {str(path)!r} does not exist")
    if path.is_dir():
        raise ImageReadError(f"cannot read {str(path)!r}: it is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"cannot read {str(path)!r}: the file is empty (0 bytes)")
    try:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # PIL's bomb check is replaced by ours below, with a useful message
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = old
    except UnidentifiedImageError:
        raise ImageReadError(
            f"cannot read {str(path)!r}: not a recognised image (wrong extension or not an image file)"
        ) from None
    except OSError as e:
        raise ImageReadError(f"cannot read {str(path)!r}: {e}") from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise ImageTooLargeError(
            f"cannot read {str(path)!r}: {w}x{h} = {w * h / 1e6:.0f} MP is above the {max_pixels / 1e6:.0f} MP "
            f"limit for one image (a decompression bomb, or a photo to process in tiles with "
            f"`sirr remove --tile 512 ...`); raise the limit with $SIRR_MAX_PIXELS if you trust the file"
        )
    return im


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image from its header only (EXIF rotation applied), without decoding pixels."""
    path = Path(path)
    im = _open(path, max_pixels=2**62)
    try:
        w, h = im.size
        try:
            orient = im.getexif().get(0x0112, 1)
        except Exception:  # noqa: BLE001 - a broken EXIF block must not stop a size query
            orient = 1
        if orient in (5, 6, 7, 8):
            w, h = h, w
        return int(h), int(w)
    finally:
        im.close()


def _to_float_rgb(im) -> np.ndarray:
    """Decode a PIL image (any mode) to float32 RGB in [0, 1], alpha composited on white."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        g = np.clip(a / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        g = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
        return np.repeat(g[..., None], 3, axis=2)
    if mode in ("1", "L"):
        g = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "LA":
        a = np.asarray(im, dtype=np.float32) / 255.0
        rgb = np.repeat(a[..., :1], 3, axis=2)
        alpha = a[..., 1:2]
        return (rgb * alpha + (1.0 - alpha)).astype(np.float32)
    if mode == "RGBA":
        a = np.asarray(im, dtype=np.float32) / 255.0
        alpha = a[..., 3:4]
        return (a[..., :3] * alpha + (1.0 - alpha)).astype(np.float32)
    if mode == "RGB":
        return np.asarray(im, dtype=np.float32) / 255.0
    # CMYK, YCbCr, LAB, HSV, ...: let PIL convert
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _read_16bit_png(path: Path) -> np.ndarray:
    """A 16-bit RGB/RGBA/grey+alpha PNG as float32 HxWx3 in [0, 1], alpha composited on white.

    Decoded by libpng through ``imagecodecs`` (PIL keeps only the high byte of 48/64-bit PNGs).
    """
    a = imagecodecs.png_decode(path.read_bytes())
    if a.dtype != np.uint16:  # the header said 16 bits, the decoder disagrees: a corrupt file
        raise ValueError(f"decoded as {a.dtype}, not 16-bit")
    a = (a.reshape(a.shape[0], a.shape[1], -1) / 65535.0).astype(np.float32)
    if a.shape[2] in (2, 4):  # grey+alpha or RGBA: composite on white
        rgb, alpha = a[..., :-1], a[..., -1:]
        a = rgb * alpha + 1.0 - alpha
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 26:
        return head[24]
    return 8


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Read any photo as an ``H x W x 3`` float32 RGB array in ``[0, 1]`` (see the module docstring).

    Raises :class:`ImageReadError` (one line naming the file and cause) for unreadable files and
    :class:`ImageTooLargeError` above ``max_pixels`` (default :data:`MAX_PIXELS`).
    """
    path = Path(path)
    im = _open(path, _max_pixels(max_pixels))
    try:
        fmt = im.format
        orient = 1
        try:
            orient = im.getexif().get(0x0112, 1)
        except Exception:  # noqa: BLE001
            pass
        try:
            if fmt == "PNG":  # PIL's decoder ignores chunk checksums: verify them first
                with Image.open(path) as chk:
                    chk.verify()
            if fmt == "PNG" and im.mode in ("RGB", "RGBA", "LA") and _png_bit_depth(path) == 16:
                arr = _read_16bit_png(path)  # PIL would keep only the high byte of 48/64-bit PNGs
                if orient != 1:
                    arr = _apply_orientation(arr, orient)
            else:
                im.load()
                im2 = ImageOps.exif_transpose(im)
                arr = _to_float_rgb(im2)
        except (OSError, SyntaxError, ValueError, imagecodecs.PngError) as e:
            kind = {"PNG": "a truncated or corrupt PNG", "JPEG": "a truncated or corrupt JPEG"}.get(
                fmt or "", f"a corrupt {fmt or 'image'} file")
            raise ImageReadError(f"cannot read {str(path)!r}: {kind} ({e})") from None
    finally:
        im.close()
    return np.ascontiguousarray(arr, dtype=np.float32)


def _apply_orientation(arr: np.ndarray, orient: int) -> np.ndarray:
    """EXIF orientation 1..8 applied to an array (as ``PIL.ImageOps.exif_transpose``; 16-bit PNG path)."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.transpose(a, (1, 0, 2)), 6: lambda a: np.rot90(a, -1),
           7: lambda a: np.rot90(np.transpose(a, (1, 0, 2)), 2),
           8: lambda a: np.rot90(a, 1)}
    return np.ascontiguousarray(ops.get(orient, lambda a: a)(arr))


def read_image_uint8(path: str | os.PathLike, **kw) -> np.ndarray:
    """:func:`read_image` quantised to ``uint8`` (what synthesis pools and datasets of photos store)."""
    return to_uint8(read_image(path, **kw))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` (or uint8) image to uint8 with rounding and clipping."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    return (np.clip(img.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def as_hwc(img) -> np.ndarray:
    """A ``(1,3,H,W)`` / ``(3,H,W)`` tensor or an ``HxW`` / ``HxWxC`` array as an ``HxWxC`` numpy array
    (grey copied to three channels; dtype and values kept)."""
    if isinstance(img, torch.Tensor):
        img = to_image(img)
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return a


def to_tensor(arr, device=None):
    """``H x W x 3`` (or ``H x W``) array, uint8 or float in [0, 1] -> float32 tensor ``(1, 3, H, W)``."""
    if isinstance(arr, torch.Tensor):
        t = arr.float()
        if t.ndim == 3:
            t = t.unsqueeze(0)
        return t.to(device) if device is not None else t
    a = np.asarray(arr)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3:
        raise ValueError(f"to_tensor expects an HxWx3 image, got shape {a.shape}")
    if a.shape[2] == 4:
        a = a[..., :3]
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    return t.to(device) if device is not None else t


def to_image(t) -> np.ndarray:
    """Tensor ``(1, 3, H, W)`` or ``(3, H, W)`` -> ``H x W x 3`` float32 numpy array (values unchanged)."""
    if isinstance(t, np.ndarray):
        if t.ndim == 4 or (t.ndim == 3 and t.shape[0] in (1, 3) and t.shape[2] not in (1, 3)):
            t = torch.from_numpy(np.ascontiguousarray(t))  # (1,3,H,W) / (3,H,W) arrays: channels first
        else:
            return t.astype(np.float32)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"to_image expects a torch.Tensor, got {type(t).__name__}")
    t = t.detach()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_image expects a batch of one, got shape {tuple(t.shape)}")
        t = t[0]
    if t.ndim != 3:
        raise ValueError(f"to_image expects (1,3,H,W) or (3,H,W), got shape {tuple(t.shape)}")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t.permute(1, 2, 0).float().cpu().numpy().astype(np.float32)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
    except OSError:
        pass
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_image(path: str | os.PathLike, img, *, protect: Iterable[str | os.PathLike] = (),
                overwrite: bool = True, quality: int = 95) -> Path:
    """Write an image atomically, format by extension (``.png`` 8-bit RGB, ``.jpg``/``.jpeg`` quality 95).

    ``img`` is an ``H x W x 3`` array (float in [0, 1], clipped, or uint8) or a ``(1,3,H,W)`` tensor.
    Raises :class:`OutputWouldOverwriteInput` when ``path`` is one of ``protect`` (same resolved path,
    symlink or hard link) or, with ``overwrite=False``, when ``path`` already exists. Returns the path.
    """
    path = Path(path)
    for p in protect:
        if _same_file(path, Path(p)):
            raise OutputWouldOverwriteInput(
                f"refusing to write {str(path)!r}: it is the input {str(p)!r}; choose another output folder or name"
            )
    if not overwrite and path.exists():
        raise OutputWouldOverwriteInput(f"refusing to write {str(path)!r}: the file exists (pass overwrite=True)")
    ext = path.suffix.lower()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
           ".webp": "WEBP"}.get(ext)
    if fmt is None:
        raise ValueError(f"cannot write {str(path)!r}: unknown image extension {ext!r} (use .png or .jpg)")
    a = as_hwc(img)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"cannot write {str(path)!r}: expected an HxWx3 image, got shape {a.shape}")
    a = to_uint8(a[..., :3])
    kw = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}

    def recheck() -> None:  # right before the rename: an input may have appeared under this name meanwhile
        if path.exists() and any(_same_file(path, Path(p)) for p in protect):
            raise OutputWouldOverwriteInput(f"refusing to write {str(path)!r}: it is one of the inputs")

    atomic_write(path, lambda fh: Image.fromarray(a, "RGB").save(fh, format=fmt, **kw), before_replace=recheck)
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
