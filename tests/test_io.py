"""deblurbench.io: 16-bit-safe reading and writing, and clear refusals of bad files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from deblurbench.io import ImageError, probe, read_image, read_image_with_info, write_png


def ramp(h=20, w=30) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x / (w - 1), y / (h - 1), (x + y) / (w + h - 2)], -1).astype(np.float32)


def test_16bit_png_roundtrip_keeps_all_16_bits(tmp_path):
    img = ramp()
    img[0, 0] = [1 / 65535, 2 / 65535, 3 / 65535]  # values 8 bits cannot hold
    write_png(tmp_path / "a.png", img, bits=16)
    back, info = read_image_with_info(tmp_path / "a.png")
    assert info.bit_depth == 16
    assert back.dtype == np.float32 and back.shape == (20, 30, 3)
    assert np.abs(back - img).max() <= 0.5 / 65535 + 1e-7
    assert np.allclose(back[0, 0] * 65535, [1, 2, 3])


def test_8bit_png_and_channel_order(tmp_path):
    img = np.zeros((4, 5, 3), np.float32)
    img[..., 0] = 1.0  # pure red
    write_png(tmp_path / "r.png", img, bits=8)
    back, info = read_image_with_info(tmp_path / "r.png")
    assert info.bit_depth == 8
    assert np.array_equal(back[0, 0], [1, 0, 0])
    # An independent decoder agrees on the channel order.
    assert Image.open(tmp_path / "r.png").getpixel((0, 0)) == (255, 0, 0)


def test_grey_rgba_and_tiff16_are_returned_as_rgb(tmp_path):
    grey = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    g = read_image(tmp_path / "g.png")
    assert g.shape == (3, 4, 3) and np.allclose(g[..., 0], grey / 65535) and np.all(g[..., 0] == g[..., 2])
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 2] = 255  # BGRA: red
    rgba[..., 3] = 10
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert np.array_equal(read_image(tmp_path / "a.png")[0, 0], [1, 0, 0])
    tif = np.full((3, 3, 3), 40000, np.uint16)
    cv2.imwrite(str(tmp_path / "t.tif"), tif)
    assert np.allclose(read_image(tmp_path / "t.tif"), 40000 / 65535)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # left half white, landscape
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "o.jpg")
    assert out.shape == (20, 10, 3)  # portrait once oriented
    assert out[2, 5].mean() > 0.9 and out[-3, 5].mean() < 0.1  # white half on top


def test_truncated_png_is_refused_with_file_name(tmp_path):
    write_png(tmp_path / "ok.png", ramp(64, 64), bits=16)
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png: unreadable or corrupt"):
        read_image(tmp_path / "cut.png")


def test_truncated_jpeg_is_refused(tmp_path):
    Image.fromarray((ramp(64, 64) * 255).astype(np.uint8)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.jpg: unreadable or (corrupt image|truncated JPEG) \(.*[Tt]runcated"):
        read_image(tmp_path / "cut.jpg")


def test_garbage_empty_and_missing_files_are_refused(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image at all" * 10)
    with pytest.raises(ImageError, match=r"junk\.png: unreadable or corrupt"):
        read_image(tmp_path / "junk.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png: empty file \(0 bytes\)"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match=r"nope\.png: file not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(ImageError, match=r"unsupported extension '\.gif'"):
        read_image(tmp_path / "x.gif")


def test_zero_size_png_is_refused(tmp_path):
    # A hand-made PNG header claiming 0x5 pixels.
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0)) \
        + chunk(b"IEND", b"")
    (tmp_path / "zero.png").write_bytes(png)
    with pytest.raises(ImageError, match=r"zero\.png: zero-size image \(0x5\)"):
        read_image(tmp_path / "zero.png")


def test_decompression_bomb_refused_before_decoding(tmp_path, monkeypatch):
    write_png(tmp_path / "big.png", np.zeros((100, 100, 3)), bits=8)
    with pytest.raises(ImageError, match=r"big\.png: image of 100x100 = 10000 pixels exceeds "
                                         r"the limit of 5000"):
        read_image(tmp_path / "big.png", max_pixels=5000)
    monkeypatch.setenv("DEBLURBENCH_MAX_PIXELS", "9999")
    with pytest.raises(ImageError, match="exceeds the limit of 9999"):
        probe(tmp_path / "big.png")


def test_write_refuses_nan_and_inf_and_leaves_no_file(tmp_path):
    img = ramp()
    img[3, 3, 1] = np.nan
    img[4, 4, 0] = np.inf
    with pytest.raises(ImageError, match=r"bad\.png: refusing to write: 2 NaN/Inf values"):
        write_png(tmp_path / "bad.png", img)
    assert not (tmp_path / "bad.png").exists()
    assert list(tmp_path.iterdir()) == []


def test_write_clips_and_refuses_bad_shapes(tmp_path):
    write_png(tmp_path / "c.png", np.full((2, 2, 3), 1.5), bits=8)
    assert read_image(tmp_path / "c.png").max() == 1.0
    with pytest.raises(ImageError, match="expected HxW or HxWx3"):
        write_png(tmp_path / "s.png", np.zeros((2, 2, 5)))
    with pytest.raises(ImageError, match="bit depth must be 8 or 16"):
        write_png(tmp_path / "b.png", np.zeros((2, 2, 3)), bits=12)
