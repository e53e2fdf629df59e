"""Image IO on the odd inputs readers bring (issue 6): every bad file gets one clear error line."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from sirr.data.images import (
    ImageReadError,
    ImageTooLargeError,
    OutputWouldOverwriteInput,
    image_size,
    list_images,
    read_image,
    to_image,
    to_tensor,
    write_image,
)


def _rgb(h=6, w=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- modes


def test_rgb_png_roundtrip_exact(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.dtype == np.float32 and img.shape == (6, 10, 3)
    np.testing.assert_array_equal(np.round(img * 255).astype(np.uint8), a)


def test_grey_png_becomes_three_equal_channels(tmp_path):
    g = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.shape == (6, 10, 3)
    np.testing.assert_allclose(img[..., 0], g / 255.0, atol=1e-6)
    np.testing.assert_array_equal(img[..., 0], img[..., 2])


def test_palette_png_expanded_to_rgb(tmp_path):
    p = Image.new("P", (4, 3))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    p.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    np.testing.assert_allclose(img[0, 0], [1, 0, 0])
    np.testing.assert_allclose(img[1, 1], [0, 1, 0])


def test_palette_with_transparency_composited_on_white(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 0
    p.save(tmp_path / "pt.png", transparency=0)
    img = read_image(tmp_path / "pt.png")
    np.testing.assert_allclose(img[0, 0], [1, 1, 1])  # index 0 transparent -> white
    np.testing.assert_allclose(img[0, 1], [1, 0, 0])


def test_rgba_composited_on_white(tmp_path):
    a = np.zeros((1, 3, 4), np.uint8)
    a[0, :, 0] = 255  # red everywhere
    a[0, :, 3] = [0, 255, 128]
    Image.fromarray(a, "RGBA").save(tmp_path / "rgba.png")
    img = read_image(tmp_path / "rgba.png")
    np.testing.assert_allclose(img[0, 0], [1, 1, 1])  # fully transparent: white, not the hidden red
    np.testing.assert_allclose(img[0, 1], [1, 0, 0])
    np.testing.assert_allclose(img[0, 2], [1, 1 - 128 / 255, 1 - 128 / 255], atol=1e-6)


def test_la_composited_on_white(tmp_path):
    a = np.array([[[0, 0], [0, 255], [100, 255]]], np.uint8)
    Image.fromarray(a, "LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    np.testing.assert_allclose(img[0, :, 0], [1.0, 0.0, 100 / 255], atol=1e-6)


def test_16bit_grey_png_scaled_by_65535(tmp_path):
    g = np.array([[0, 1000, 32768, 65535]], np.uint16)
    Image.fromarray(g).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")
    img = read_image(tmp_path / "g16.png")
    np.testing.assert_allclose(img[0, :, 1], g[0] / 65535.0, atol=1e-7)
    assert img[0, 1, 0] != round(img[0, 1, 0] * 255) / 255  # not quantised to 8 bits


def _png16(path, a, filters=(0,)):
    """Write a 16-bit PNG by hand (PIL cannot), cycling through the given scanline filter types."""
    h, w, c = a.shape
    bpp = 2 * c
    rows = a.astype(">u2").reshape(h, -1).view(np.uint8).reshape(h, w * bpp).astype(np.int32)
    out = []
    for y in range(h):
        x = rows[y]
        up = rows[y - 1] if y else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        ul = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        f = filters[y % len(filters)]
        if f == 0:
            pred = 0
        elif f == 1:
            pred = left
        elif f == 2:
            pred = up
        elif f == 3:
            pred = (left + up) // 2
        else:
            pa, pb, pc = np.abs(up - ul), np.abs(left - ul), np.abs(left + up - 2 * ul)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
        out.append(bytes([f]) + ((x - pred) % 256).astype(np.uint8).tobytes())
    color = {1: 0, 2: 4, 3: 2, 4: 6}[c]

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"".join(out))) + chunk(b"IEND", b""))


def test_16bit_rgb_png_scaled_by_65535(tmp_path):
    a = np.random.default_rng(0).integers(0, 65536, (10, 7, 3)).astype(np.uint16)
    a[0, 0] = [65535, 1000, 0]
    _png16(tmp_path / "rgb16.png", a, filters=(0, 1, 2, 3, 4))  # every scanline filter type
    img = read_image(tmp_path / "rgb16.png")
    np.testing.assert_allclose(img, a / 65535.0, atol=1e-7)
    assert abs(img[0, 0, 1] - 1000 / 65535) < 1e-7  # 8-bit reading would give 3/255


def test_16bit_rgba_png_composited_on_white(tmp_path):
    a = np.zeros((2, 2, 4), np.uint16)
    a[..., 0] = 65535
    a[0, 0, 3] = 0
    a[1, 1, 3] = 65535
    _png16(tmp_path / "rgba16.png", a, filters=(4,))
    img = read_image(tmp_path / "rgba16.png")
    np.testing.assert_allclose(img[0, 0], [1, 1, 1])
    np.testing.assert_allclose(img[1, 1], [1, 0, 0])


def test_16bit_grey_alpha_png_composited_on_white(tmp_path):
    a = np.array([[[30000, 0], [30000, 65535]]], np.uint16)  # 1x2, grey+alpha: transparent, opaque
    _png16(tmp_path / "la16.png", a, filters=(1,))
    img = read_image(tmp_path / "la16.png")
    assert img.shape == (1, 2, 3)
    np.testing.assert_allclose(img[0, 0], [1, 1, 1])
    np.testing.assert_allclose(img[0, 1], [30000 / 65535] * 3, atol=1e-7)


def test_truncated_16bit_png_is_one_clear_error(tmp_path):
    a = np.random.default_rng(2).integers(0, 65536, (40, 30, 3)).astype(np.uint16)
    _png16(tmp_path / "full16.png", a, filters=(4,))
    data = (tmp_path / "full16.png").read_bytes()
    (tmp_path / "cut16.png").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageReadError, match=r"cut16\.png.*truncated or corrupt PNG"):
        read_image(tmp_path / "cut16.png")


def _exif_jpeg(path, arr, orientation):
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, quality=95, exif=exif.tobytes())


def test_exif_rotated_jpeg_is_upright(tmp_path):
    a = np.zeros((16, 32, 3), np.uint8)
    a[:, :16] = [255, 0, 0]  # left half red
    a[:, 16:] = [0, 0, 255]  # right half blue
    _exif_jpeg(tmp_path / "rot.jpg", a, 6)  # "rotate 90 CW to display": left half ends on top
    img = read_image(tmp_path / "rot.jpg")
    assert img.shape == (32, 16, 3)
    assert image_size(tmp_path / "rot.jpg") == (32, 16)
    assert img[4, 8, 0] > 0.8 and img[4, 8, 2] < 0.2  # top: red
    assert img[28, 8, 2] > 0.8 and img[28, 8, 0] < 0.2  # bottom: blue


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pil(tmp_path, orientation):
    from PIL import ImageOps

    from sirr.data.images import _apply_orientation

    a = _rgb(4, 6, seed=orientation)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(_apply_orientation(a, orientation), expected)


def test_one_by_one_image(tmp_path):
    Image.fromarray(np.array([[[10, 20, 30]]], np.uint8)).save(tmp_path / "one.png")
    img = read_image(tmp_path / "one.png")
    assert img.shape == (1, 1, 3)
    np.testing.assert_allclose(img[0, 0], np.array([10, 20, 30]) / 255, atol=1e-6)
    assert image_size(tmp_path / "one.png") == (1, 1)


def test_cmyk_jpeg_and_other_formats(tmp_path):
    Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)  # pure red
    img = read_image(tmp_path / "cmyk.jpg")
    assert img.shape == (4, 5, 3) and img[..., 0].min() > 0.9 and img[..., 1:].max() < 0.1
    a = _rgb(4, 5)
    Image.fromarray(a).save(tmp_path / "a.bmp")
    Image.fromarray(a).save(tmp_path / "a.tif")
    for f in ("a.bmp", "a.tif"):
        np.testing.assert_array_equal(np.round(read_image(tmp_path / f) * 255).astype(np.uint8), a)


def test_image_size_is_h_w(tmp_path):
    Image.fromarray(_rgb(7, 13)).save(tmp_path / "s.png")
    assert image_size(tmp_path / "s.png") == (7, 13)


# ----------------------------------------------------------------------------- bad files


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png.*empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageReadError, match="empty"):
        image_size(tmp_path / "empty.png")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png.*does not exist"):
        read_image(tmp_path / "nope.png")


def test_truncated_png(tmp_path):
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.png.*truncated or corrupt PNG"):
        read_image(tmp_path / "cut.png")


def test_corrupt_png_checksum(tmp_path):
    Image.fromarray(_rgb(32, 32)).save(tmp_path / "ok.png")
    data = bytearray((tmp_path / "ok.png").read_bytes())
    i = data.index(b"IDAT") + 6
    data[i:i + 100] = np.random.default_rng(1).integers(0, 256, 100, dtype=np.uint8).tobytes()
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match=r"bad\.png.*PNG"):
        read_image(tmp_path / "bad.png")


def test_truncated_jpeg(tmp_path):
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.jpg.*truncated or corrupt JPEG"):
        read_image(tmp_path / "cut.jpg")


def test_non_image_with_image_extension(tmp_path):
    (tmp_path / "notes.jpg").write_text("these are my holiday notes, not a photo\n")
    with pytest.raises(ImageReadError, match=r"notes\.jpg.*not a recognised image"):
        read_image(tmp_path / "notes.jpg")


def test_folder_is_not_an_image(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path / "dir.png")


def test_error_message_is_one_line(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageReadError) as e:
        read_image(tmp_path / "x.png")
    assert "\n" not in str(e.value) and "x.png" in str(e.value)


def _png_claiming_size(path, w, h):
    """A tiny valid-looking PNG whose header claims w x h (a decompression bomb's header)."""
    raw = zlib.compress(b"\x00\x00")
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def test_decompression_bomb_refused_with_tiling_hint(tmp_path):
    _png_claiming_size(tmp_path / "bomb.png", 100_000, 100_000)
    assert image_size(tmp_path / "bomb.png") == (100_000, 100_000)  # header only, instant
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png.*10000 MP.*sirr remove --tile"):
        read_image(tmp_path / "bomb.png")


def test_pixel_limit_configurable(tmp_path, monkeypatch):
    Image.fromarray(_rgb(20, 20)).save(tmp_path / "s.png")
    with pytest.raises(ImageTooLargeError, match="--tile"):
        read_image(tmp_path / "s.png", max_pixels=100)
    monkeypatch.setenv("SIRR_MAX_PIXELS", "50")
    with pytest.raises(ImageTooLargeError):
        read_image(tmp_path / "s.png")
    monkeypatch.setenv("SIRR_MAX_PIXELS", "1000")
    assert read_image(tmp_path / "s.png").shape == (20, 20, 3)


# ----------------------------------------------------------------------------- writing


def test_write_png_roundtrip_and_jpg(tmp_path):
    a = _rgb(9, 11)
    p = write_image(tmp_path / "out" / "a.png", a.astype(np.float32) / 255)
    assert p.exists()
    np.testing.assert_array_equal(np.round(read_image(p) * 255).astype(np.uint8), a)
    smooth = np.tile(np.linspace(0, 1, 32, dtype=np.float32)[None, :, None], (32, 1, 3))
    q = write_image(tmp_path / "b.jpg", smooth)
    with Image.open(q) as im:
        assert im.format == "JPEG"
    assert np.abs(read_image(q) - smooth).max() < 0.03


def test_write_accepts_tensor_and_clips(tmp_path):
    t = torch.full((1, 3, 4, 5), 1.7)
    p = write_image(tmp_path / "t.png", t)
    np.testing.assert_allclose(read_image(p), 1.0)


def test_write_refuses_input_path(tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(_rgb()).save(src)
    before = src.read_bytes()
    with pytest.raises(OutputWouldOverwriteInput, match="photo.png.*input"):
        write_image(tmp_path / "." / "photo.png", np.zeros((2, 2, 3)), protect=[src])
    assert src.read_bytes() == before


def test_write_refuses_symlink_and_hardlink_to_input(tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(_rgb()).save(src)
    (tmp_path / "sym.png").symlink_to(src)
    os.link(src, tmp_path / "hard.png")
    for alias in ("sym.png", "hard.png"):
        with pytest.raises(OutputWouldOverwriteInput):
            write_image(tmp_path / alias, np.zeros((2, 2, 3)), protect=[src])
    assert read_image(src).shape == (6, 10, 3)


def test_write_overwrite_flag(tmp_path):
    p = write_image(tmp_path / "o.png", np.zeros((2, 2, 3)))
    write_image(p, np.ones((2, 2, 3)))  # default: overwrite a non-protected file
    np.testing.assert_allclose(read_image(p), 1.0)
    with pytest.raises(OutputWouldOverwriteInput, match="exists"):
        write_image(p, np.zeros((2, 2, 3)), overwrite=False)


def test_write_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match=r"\.xyz"):
        write_image(tmp_path / "a.xyz", np.zeros((2, 2, 3)))


def test_write_is_atomic(tmp_path, monkeypatch):
    p = write_image(tmp_path / "keep.png", np.zeros((2, 2, 3)))
    old = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_image(p, np.ones((2, 2, 3)))
    with pytest.raises(OSError, match="disk full"):
        write_image(tmp_path / "new.png", np.ones((2, 2, 3)))
    assert p.read_bytes() == old
    assert not (tmp_path / "new.png").exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["keep.png"]  # no temp files left


# ----------------------------------------------------------------------------- tensors


def test_tensor_roundtrip():
    a = np.random.default_rng(0).random((5, 7, 3), dtype=np.float32)
    t = to_tensor(a)
    assert t.shape == (1, 3, 5, 7) and t.dtype == torch.float32
    np.testing.assert_array_equal(to_image(t), a)
    assert to_tensor(np.full((2, 2, 3), 255, np.uint8)).max().item() == 1.0
    assert to_tensor(np.zeros((2, 3))).shape == (1, 3, 2, 3)
    assert to_image(torch.zeros(3, 4, 5)).shape == (4, 5, 3)
    assert to_image(np.zeros((1, 3, 4, 5))).shape == (4, 5, 3)
    assert to_image(np.zeros((4, 5, 3))).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="batch of one"):
        to_image(torch.zeros(2, 3, 4, 4))


def test_list_images_sorted_skips_other_files(tmp_path):
    for n in ("b.png", "a.JPG", "c.txt", ".hidden.png"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]
