"""Bit-depth-safe image I/O: the only way the project reads or writes images.

Pillow, imageio and ``skimage.io`` silently reduce 16-bit RGB PNGs (DPDD) to 8 bits, so pixel
data of PNG/TIFF is decoded with ``cv2.IMREAD_UNCHANGED``; Pillow only reads headers (size, EXIF
orientation) and verifies PNG chunk checksums so that truncated files are refused, not padded.

Images in memory are float32, HxWx3, RGB, in [0, 1].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from deblurbench.paths import atomic_file

#: Default decompression-bomb limit in pixels (SDD's 4096x2160 is 8.8 MP; leave ample margin).
DEFAULT_MAX_PIXELS = 80_000_000

READABLE = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


class ImageError(ValueError):
    """An image that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class ImageInfo:
    """Header facts of an image file, read without decoding its pixels."""

    width: int
    height: int
    bit_depth: int
    orientation: int


def _max_pixels(max_pixels: int | None) -> int:
    if max_pixels is not None:
        return max_pixels
    return int(os.environ.get("DEBLURBENCH_MAX_PIXELS", DEFAULT_MAX_PIXELS))


def probe(path: str | os.PathLike, max_pixels: int | None = None) -> ImageInfo:
    """Read size, bit depth and EXIF orientation from the header; refuse bombs before decoding."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "file not found")
    if path.stat().st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    if path.suffix.lower() not in READABLE:
        raise ImageError(path, f"unsupported extension {path.suffix!r}; expected one of "
                               f"{sorted(READABLE)}")
    limit = _max_pixels(max_pixels)
    header = _png_header(path)
    if header is not None and 0 in header[:2]:
        # Pillow refuses a 0-pixel PNG as "cannot identify": say what is wrong.
        raise ImageError(path, f"zero-size image ({header[0]}x{header[1]})")
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own limit applies, with our own message
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width == 0 or height == 0:
                raise ImageError(path, f"zero-size image ({width}x{height})")
            if width * height > limit:
                raise ImageError(path, f"image of {width}x{height} = {width * height} pixels "
                                       f"exceeds the limit of {limit} (decompression bomb?)")
            mode = im.mode
            bits = 16 if (mode.startswith("I;16") or mode in ("I", "F")) else 8
            if im.format == "PNG":
                if header is None:
                    raise ImageError(path, "not a PNG file (bad signature)")
                bits = header[2]
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            fmt = im.format
        if fmt == "PNG":
            with Image.open(path) as im:
                im.verify()  # walks every chunk and checks CRCs: catches truncation
    except ImageError:
        raise
    except (UnidentifiedImageError, SyntaxError, OSError, ValueError) as exc:
        raise ImageError(path, f"unreadable or corrupt image ({exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    return ImageInfo(width=width, height=height, bit_depth=bits, orientation=orientation)


def _png_header(path: Path) -> tuple[int, int, int] | None:
    """(width, height, bit depth) from a PNG's IHDR chunk, or None for any other file; the bit
    depth (byte 24) is what Pillow's mode hides for 16-bit RGB."""
    with open(path, "rb") as fh:
        head = fh.read(25)
    if len(head) < 25 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"),
            int(head[24]))


_ORIENT_OPS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.swapaxes(a, 0, 1)[::-1, :],
}


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Decode an 8/16-bit grey, RGB or RGBA PNG/JPEG/TIFF to float32 HxWx3 RGB in [0, 1].

    EXIF orientation is applied; alpha is dropped (deblurring data has none that matters).
    """
    return read_image_with_info(path, max_pixels)[0]


def read_image_with_info(
    path: str | os.PathLike, max_pixels: int | None = None
) -> tuple[np.ndarray, ImageInfo]:
    """Like :func:`read_image`, also returning the file's header facts (native bit depth)."""
    path = Path(path)
    info = probe(path, max_pixels)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        raw = _decode_jpeg(path)
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ImageError(path, "unreadable or corrupt image (decoder failed)")
        raw = _bgr_to_rgb(raw)
    img = _to_float(path, raw)
    img = np.ascontiguousarray(_ORIENT_OPS.get(info.orientation, _ORIENT_OPS[1])(img))
    return img, info


def _decode_jpeg(path: Path) -> np.ndarray:
    """JPEG is 8-bit by definition; Pillow refuses truncated data where libjpeg only warns."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(path, f"unreadable or truncated JPEG ({exc})") from None


def _bgr_to_rgb(raw: np.ndarray) -> np.ndarray:
    if raw.ndim == 2:
        return raw
    if raw.shape[2] == 4:
        return raw[:, :, [2, 1, 0]]
    if raw.shape[2] == 3:
        return raw[:, :, ::-1]
    return raw


def _to_float(path: Path, raw: np.ndarray) -> np.ndarray:
    if raw.dtype == np.uint8:
        img = raw.astype(np.float32) / 255.0
    elif raw.dtype == np.uint16:
        img = raw.astype(np.float32) / 65535.0
    elif raw.dtype in (np.float32, np.float64):
        img = raw.astype(np.float32)
        if not np.isfinite(img).all():
            raise ImageError(path, "float image holds NaN or Inf")
    else:
        raise ImageError(path, f"unsupported pixel type {raw.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 2:  # grey + alpha
        img = np.repeat(img[:, :, :1], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageError(path, "zero-size image")
    return img


def write_png(path: str | os.PathLike, image: np.ndarray, bits: int = 16) -> Path:
    """Write float RGB (HxWx3) or grey (HxW) in [0, 1] as an 8- or 16-bit PNG, atomically.

    NaN/Inf are refused (a method that produced them has failed, it must not look scored);
    values are rounded to the nearest level after clipping to [0, 1].
    """
    path = Path(path)
    if bits not in (8, 16):
        raise ImageError(path, f"bit depth must be 8 or 16, got {bits}")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise ImageError(path, f"expected HxW or HxWx3 array, got shape {arr.shape}")
    if arr.size == 0:
        raise ImageError(path, f"zero-size image {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ImageError(path, f"refusing to write: {bad} NaN/Inf values")
    peak = 65535 if bits == 16 else 255
    q = np.rint(np.clip(arr.astype(np.float64), 0.0, 1.0) * peak)
    q = q.astype(np.uint16 if bits == 16 else np.uint8)
    if q.ndim == 3 and q.shape[2] == 3:
        q = q[:, :, ::-1]
    return _atomic_write(path, q)


def _atomic_write(path: Path, data: np.ndarray) -> Path:
    """Encode to a temp file in the same folder, then rename: readers never see half a file."""
    with atomic_file(path, ".png") as tmp:
        if not cv2.imwrite(str(tmp), data, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
            raise ImageError(path, "encoder failed")
    return path


def to_display_uint8(image: np.ndarray) -> np.ndarray:
    """Tone-map a float [0, 1] image to uint8 for display only (never for scoring)."""
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
