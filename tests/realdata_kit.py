"""Test kit for the real data sets: tiny archives in each data set's real folder layout and
file naming, served by a real HTTP server on 127.0.0.1 (Range requests, cut connections).

Images are crops of scikit-image photos (real sharp content), defocused with a Gaussian, and for
SDD also zoomed and shifted, so alignment has a known misalignment to find.
"""

from __future__ import annotations

import csv
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import yaml
from conftest import REPO
from skimage import data

from deblurbench.io import write_png

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
H, W = 64, 96  # tiny landscape, like DPDD's 1120x1680


def photo(i: int, h: int = H, w: int = W) -> np.ndarray:
    img = getattr(data, PHOTOS[i % len(PHOTOS)])()[..., :3].astype(np.float32) / 255
    img = cv2.resize(img, (w * 2, h * 2), interpolation=cv2.INTER_AREA)
    y0, x0 = (i // len(PHOTOS)) * 7 % h, (i // len(PHOTOS)) * 11 % w
    return np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])


def defocus(img: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


def zoom_shift(img: np.ndarray, scale: float, dx: float, dy: float) -> np.ndarray:
    """Sample ``img`` at ``c + scale * (x - c) + (dx, dy)`` (blurry -> sharp convention)."""
    h, w = img.shape[:2]
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    m = np.array([[scale, 0, c[0] - scale * c[0] + dx], [0, scale, c[1] - scale * c[1] + dy]])
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def dpdd_pairs(counts: dict[str, int]) -> list[dict]:
    """The first pairs of each split of the shipped official lists (real DPDD names)."""
    with open(REPO / "datasets" / "dpdd" / "pairs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for split, n in counts.items():
        out += [r for r in rows if r["split"] == split][:n]
    return out


def build_dpdd(root: Path, counts: dict[str, int]) -> list[dict]:
    """dd_dp_dataset_canon/{split}_c/{source,target}, {split}_{l,r}/source/<stem>_{L,R}.png,
    16-bit PNG; targets carry their own capture numbers, as in the release."""
    pairs = dpdd_pairs(counts)
    base = root / "dd_dp_dataset_canon"
    for i, p in enumerate(pairs):
        sharp = photo(i)
        blurry = defocus(sharp)
        s = p["split"]
        write_png(base / f"{s}_c" / "source" / f"{p['source']}.png", blurry, bits=16)
        write_png(base / f"{s}_c" / "target" / f"{p['target']}.png", sharp, bits=16)
        write_png(base / f"{s}_l" / "source" / f"{p['source']}_L.png",
                  zoom_shift(blurry, 1.0, 0.5, 0), bits=16)
        write_png(base / f"{s}_r" / "source" / f"{p['source']}_R.png",
                  np.clip(zoom_shift(blurry, 1.0, -0.5, 0) * 0.9, 0, 1), bits=16)
    return pairs


def write_pairs_csv(path: Path, pairs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["split", "source", "target"])
        w.writeheader()
        w.writerows(pairs)


def build_realdof(root: Path, n: int) -> list[str]:
    """RealDOF/{source,target}/<name>.png, 8-bit, identical names in both folders."""
    names = [f"{i:04d}" for i in range(n)]
    for i, name in enumerate(names):
        sharp = photo(i + 1)
        write_png(root / "RealDOF" / "target" / f"{name}.png", sharp, bits=8)
        write_png(root / "RealDOF" / "source" / f"{name}.png",
                  defocus(zoom_shift(sharp, 1.0, 0.7, -0.4)), bits=8)
    return names


SDD_MISALIGN = [(1.02, 1.5, -1.0), (0.985, -2.0, 1.0), (1.01, 0.5, 2.0), (1.0, -1.0, -1.5)]


def build_sdd(root: Path, counts: dict[str, int]) -> dict[str, tuple[float, float, float]]:
    """SDD/train_patches/{blur,gt} and SDD/test/{blur,gt}, identical names; each blurry image is
    the sharp one zoomed and shifted (``SDD_MISALIGN``) then defocused. Returns the truth."""
    truth = {}
    k = 0
    for split, folder in (("train", "train_patches"), ("test", "test")):
        for j in range(counts[split]):
            name = f"{split}_{j:03d}"
            sharp = photo((0, 1, 2, 4)[k % 4], 96, 128)  # textured photos (not rocket's sky)
            s, dx, dy = SDD_MISALIGN[k % len(SDD_MISALIGN)]
            write_png(root / "SDD" / folder / "gt" / f"{name}.png", sharp, bits=8)
            write_png(root / "SDD" / folder / "blur" / f"{name}.png",
                      defocus(zoom_shift(sharp, s, dx, dy), 1.2), bits=8)
            truth[name] = (s, dx, dy)
            k += 1
    return truth


def build_pixeldp(root: Path, n: int) -> list[str]:
    """dd_dp_dataset_pixel/test_{c,l,r}/source, 16-bit, no ground truth (portrait images)."""
    names = [f"IMG_{i:04d}" for i in range(n)]
    base = root / "dd_dp_dataset_pixel"
    for i, name in enumerate(names):
        img = defocus(photo(i + 3, W, H))
        write_png(base / "test_c" / "source" / f"{name}.png", img, bits=16)
        write_png(base / "test_l" / "source" / f"{name}_L.png", img, bits=16)
        write_png(base / "test_r" / "source" / f"{name}_R.png", img * 0.8, bits=16)
    return names


def zip_folder(folder: Path, out: Path) -> Path:
    """Zip every file under ``folder`` with paths relative to it (folders as entries too)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder).as_posix())
    return out


def write_card(project: Path, name: str, splits: dict[str, int | None], url: str | None,
              archive: str | None, **changes) -> dict:
    """The repo's card of ``name`` with test counts and urls, written into ``project``."""
    card = yaml.safe_load((REPO / "datasets" / f"{name}.yaml").read_text())
    card["splits"] = splits
    card["urls"] = [] if url is None else [{"url": url, "kind": "official", "archive": archive,
                                            "confirmed_from": "test server"}]
    card.update(changes)
    (project / "datasets").mkdir(parents=True, exist_ok=True)
    (project / "datasets" / f"{name}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return card


# --------------------------------------------------------------------------------- server


class _Handler(SimpleHTTPRequestHandler):
    """Static files with single-range support, optional cut connections and HTML pages."""

    server_version = "kit/1.0"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append((self.path, dict(self.headers)))
        name = self.path.split("?")[0].lstrip("/")
        if name in srv.html:
            body = b"<!DOCTYPE html><html><body>Virus scan warning: confirm</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        path = Path(srv.folder) / name
        if not path.is_file():
            self.send_error(404)
            return
        data_ = path.read_bytes()
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data_):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data_)}")
                self.end_headers()
                return
            status = 206
        body = data_[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f'"{hash(data_) & 0xffffffff:x}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data_) - 1}/{len(data_)}")
        self.end_headers()
        cut = srv.cut.pop(name, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


class Server:
    """``with Server(folder) as s: s.url("x.zip")``; ``s.cut[name] = n`` cuts the next GET of
    ``name`` after n bytes; ``s.html`` names paths answered by an HTML confirmation page."""

    def __init__(self, folder: Path, ranges: bool = True):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler))
        self.httpd.folder = str(folder)
        self.httpd.requests = []
        self.httpd.cut = {}
        self.httpd.html = set()
        self.httpd.ranges = ranges
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def cut(self) -> dict:
        return self.httpd.cut

    @property
    def html(self) -> set:
        return self.httpd.html

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def url(self, name: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"
