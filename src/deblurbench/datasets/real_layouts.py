"""Layout parsers of the real defocus data sets, as their archives ship them.

Each parser finds the data set's folders at most three levels below ``raw`` (archives add a
top folder, some mirrors one more), pairs images by the data set's own rule and names every
missing or unpaired file; nothing is dropped silently. Facts and sources: datasets/*.yaml and
datasets/SOURCES.md.

- ``dpdd``: ``{split}_c/{source,target}``, ``{split}_{l,r}/source/<stem>_{L,R}.png``; a target
  has its own capture number, so pairs come from ``datasets/dpdd/pairs.csv`` (the official
  DPDNet file lists). Also reads the Restormer re-pack ``{split}/{inputC,inputL,inputR,target}``.
- ``realdof``: ``RealDOF/{source,target}``; identical names, else sorted order as IFAN pairs.
- ``sdd``: ``SDD/test/{blur,gt}``, ``SDD/train/{blur,gt}`` or ``SDD/train_patches/{blur,gt}``;
  identical names (JDRL code).
- ``pixeldp``: ``test_{c,l,r}/source`` (or ``test_{c,l,r}`` directly); no ground truth.
- ``cuhk``: a flat folder of blurry images; ``lfdof``: ``input/`` + ``ground_truth/``.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from deblurbench.datasets.card import DatasetCard
from deblurbench.datasets.layouts import LayoutError
from deblurbench.io import READABLE
from deblurbench.paths import dataset_dir

log = logging.getLogger(__name__)
_IGNORED = ("__MACOSX",)


def images(folder: Path) -> dict[str, Path]:
    """``stem -> path`` of the image files directly in ``folder``; duplicate stems refused."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in READABLE:
            continue
        if p.stem in out:
            raise LayoutError(f"{folder}: two images share the name {p.stem!r} "
                              f"({out[p.stem].name}, {p.name})")
        out[p.stem] = p
    return out


def find_root(raw: Path, probes: list[str], what: str, depth: int = 3) -> Path:
    """The shallowest folder at most ``depth`` below ``raw`` holding any ``probes`` subpath."""
    level = [raw]
    for _ in range(depth + 1):
        hits = [d for d in level if any((d / p).is_dir() for p in probes)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise LayoutError(f"{raw}: several copies of the {what} layout: "
                              f"{', '.join(str(h) for h in hits)}; keep one")
        level = [c for d in level for c in sorted(d.iterdir())
                 if c.is_dir() and not c.name.startswith(".") and c.name not in _IGNORED]
    raise LayoutError(f"{raw}: no {what} layout found (expected one of "
                      f"{', '.join(probes)} at most {depth} folders below {raw})")


def _raise(problems: list[str], name: str) -> None:
    if problems:
        shown = problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50
                                 else [])
        raise LayoutError(f"{name}: {len(problems)} layout problem(s):\n  " + "\n  ".join(shown))


def _row(split: str, image_id: str, blurry: Path, sharp: Path | None,
         left: Path | None = None, right: Path | None = None) -> dict:
    return {"split": split, "image_id": image_id, "blurry": blurry, "sharp": sharp,
            "left": left, "right": right}


def pair_by_name(split: str, blurry_dir: Path, sharp_dir: Path, problems: list[str],
                 has_gt: bool = True) -> list[dict]:
    """Pairs with identical stems; each side's orphans become named problems."""
    blurry, sharp = images(blurry_dir), images(sharp_dir)
    rows = []
    for stem, path in blurry.items():
        if has_gt and stem not in sharp:
            problems.append(f"{sharp_dir / (stem + path.suffix)}: missing sharp image for "
                            f"{path}")
            continue
        rows.append(_row(split, stem, path, sharp.get(stem) if has_gt else None))
    if has_gt:
        for stem in sorted(set(sharp) - set(blurry)):
            problems.append(f"{sharp[stem]}: sharp image without blurry partner in {blurry_dir}")
    return rows


def _views(rows: list[dict], left_dir: Path | None, right_dir: Path | None,
           problems: list[str]) -> None:
    """Attach dual-pixel views named ``<stem>_L`` / ``<stem>_R`` (or ``<stem>``) when shipped."""
    for key, folder, tag in (("left", left_dir, "_L"), ("right", right_dir, "_R")):
        if folder is None or not folder.is_dir():
            continue
        found = images(folder)
        for r in rows:
            stem = Path(r["blurry"]).stem
            view = found.get(stem + tag) or found.get(stem)
            if view is None:
                problems.append(f"{folder / (stem + tag + '.png')}: missing {key} dual-pixel "
                                f"view of {r['blurry']}")
            r[key] = view


# ------------------------------------------------------------------------------------ DPDD


def load_pairs(name: str) -> dict[str, list[tuple[str, str]]]:
    """``datasets/<name>/pairs.csv`` (split, source, target) as ``{split: [(src, trg)]}``."""
    path = dataset_dir(name) / "pairs.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != ["split", "source", "target"]:
            raise LayoutError(f"{path}: expected columns split,source,target, got "
                              f"{reader.fieldnames}")
        out: dict[str, list[tuple[str, str]]] = {}
        for r in reader:
            out.setdefault(r["split"], []).append((r["source"], r["target"]))
    return out


def parse_dpdd(raw: Path, card: DatasetCard) -> list[dict]:
    probes = [f"{s}_c" for s in card.splits] + [f"{s}/inputC" for s in card.splits]
    root = find_root(raw, probes, "DPDD ({split}_c/source, {split}_c/target)")
    listed = load_pairs(card.name)
    rows: list[dict] = []
    problems: list[str] = []
    for split in card.splits:
        if (root / f"{split}_c").is_dir():
            src = root / f"{split}_c" / "source"
            trg = root / f"{split}_c" / "target"
            views = (root / f"{split}_l" / "source", root / f"{split}_r" / "source")
        elif (root / split / "inputC").is_dir():  # Restormer re-pack
            src, trg = root / split / "inputC", root / split / "target"
            views = (root / split / "inputL", root / split / "inputR")
        else:
            problems.append(f"{root / (split + '_c')}: missing folder (expected "
                            f"{root}/{split}_c/source and {split}_c/target)")
            continue
        for folder in (src, trg):
            if not folder.is_dir():
                problems.append(f"{folder}: missing folder")
        if not (src.is_dir() and trg.is_dir()):
            continue
        split_rows = _pair_dpdd(split, src, trg, listed.get(split), problems)
        _views(split_rows, *views, problems)
        rows += split_rows
    _raise(problems, card.name)
    return rows


def _pair_dpdd(split: str, src: Path, trg: Path, listed: list[tuple[str, str]] | None,
               problems: list[str]) -> list[dict]:
    sources, targets = images(src), images(trg)
    if listed and any(s in sources for s, _ in listed):
        rows = []
        for s, t in listed:
            if s not in sources:
                problems.append(f"{src / (s + '.png')}: missing blurry image (listed in "
                                f"pairs.csv with target {t})")
            elif t not in targets:
                problems.append(f"{trg / (t + '.png')}: missing sharp image for {sources[s]}")
            else:
                rows.append(_row(split, s, sources[s], targets[t]))
        known = {s for s, _ in listed}
        for s in sorted(set(sources) - known):
            problems.append(f"{sources[s]}: not in the official pair list (pairs.csv)")
        return rows
    if set(sources) == set(targets):
        return pair_by_name(split, src, trg, problems)
    if len(sources) != len(targets):
        problems.append(f"{src}: {len(sources)} sources but {trg}: {len(targets)} targets, and "
                        f"no pairs.csv lists their names: cannot pair")
        return []
    log.warning("%s: names not in pairs.csv; pairing %d images by sorted order as DPDD "
                "loaders do", src, len(sources))
    return [_row(split, s, sources[s], targets[t]) for s, t in zip(sorted(sources),
                                                                    sorted(targets))]


# --------------------------------------------------------------------------------- RealDOF


def _single_split(card: DatasetCard) -> str:
    if len(card.splits) != 1:
        raise LayoutError(f"{card.name}: layout {card.layout} has one split, the card lists "
                          f"{list(card.splits)}")
    return next(iter(card.splits))


def parse_realdof(raw: Path, card: DatasetCard) -> list[dict]:
    root = find_root(raw, ["source"], "RealDOF (source/, target/)")
    split = _single_split(card)
    src, trg = root / "source", root / "target"
    if not trg.is_dir():
        raise LayoutError(f"{trg}: missing folder (expected {root}/source and {root}/target)")
    sources, targets = images(src), images(trg)
    problems: list[str] = []
    if set(sources) & set(targets) or not sources or not targets:
        rows = pair_by_name(split, src, trg, problems)
    elif len(sources) == len(targets):
        rows = [_row(split, s, sources[s], targets[t])
                for s, t in zip(sorted(sources), sorted(targets))]
    else:
        problems.append(f"{src}: {len(sources)} sources but {trg}: {len(targets)} targets with "
                        f"different names: cannot pair by sorted order")
        rows = []
    _raise(problems, card.name)
    return rows


# ------------------------------------------------------------------------------------- SDD


def parse_sdd(raw: Path, card: DatasetCard) -> list[dict]:
    probes = ["test/blur", "train/blur", "train_patches/blur"]
    root = find_root(raw, probes, "SDD ({test,train,train_patches}/{blur,gt})")
    rows: list[dict] = []
    problems: list[str] = []
    for split in card.splits:
        candidates = [root / split] + ([root / "train_patches"] if split == "train" else [])
        base = next((c for c in candidates if (c / "blur").is_dir()), None)
        if base is None:
            problems.append(f"{candidates[0] / 'blur'}: missing folder (expected "
                            f"{' or '.join(str(c / 'blur') for c in candidates)})")
            continue
        rows += pair_by_name(split, base / "blur", base / "gt", problems, card.has_gt)
    _raise(problems, card.name)
    return rows


# --------------------------------------------------------------------------------- PixelDP


def _maybe_source(folder: Path) -> Path:
    return folder / "source" if (folder / "source").is_dir() else folder


def parse_pixeldp(raw: Path, card: DatasetCard) -> list[dict]:
    root = find_root(raw, ["test_c"], "PixelDP (test_c/source, test_l, test_r)")
    split = _single_split(card)
    src = _maybe_source(root / "test_c")
    found = images(src)
    if not found:
        raise LayoutError(f"{src}: no images (expected {root}/test_c/source/*.png)")
    rows = [_row(split, s, p, None) for s, p in found.items()]
    problems: list[str] = []
    _views(rows, _maybe_source(root / "test_l"), _maybe_source(root / "test_r"), problems)
    _raise(problems, card.name)
    return rows


# ------------------------------------------------------------------------------ CUHK, LFDOF


def parse_cuhk(raw: Path, card: DatasetCard) -> list[dict]:
    split = _single_split(card)
    level = [raw] + [d for d in sorted(raw.rglob("*")) if d.is_dir()
                     and not any(p.startswith(".") or p in _IGNORED for p in d.parts)]
    folder = next((d for d in level if images(d)), None)
    if folder is None:
        raise LayoutError(f"{raw}: no images found (expected a flat CUHK/ folder of images)")
    return [_row(split, s, p, None) for s, p in images(folder).items()]


def parse_lfdof(raw: Path, card: DatasetCard) -> list[dict]:
    rows: list[dict] = []
    problems: list[str] = []
    for split in card.splits:
        root = find_root(raw, [f"{split}_data/input", f"{split}/input"] if split != "test"
                         else ["test_data/input", "test/input", "input"], f"LFDOF {split}")
        base = next(b for b in (root / f"{split}_data", root / split, root)
                    if (b / "input").is_dir())
        rows += pair_by_name(split, base / "input", base / "ground_truth", problems)
    _raise(problems, card.name)
    return rows


_NUMBER = re.compile(r"(\d+)$")


def parse_ded(raw: Path, card: DatasetCard) -> list[dict]:
    """DED (DID-ANet loader): ``sharp/<prefix>_<n>.jpg``, ``image/image_<n>.jpg`` (defocused),
    ``filtered/defocus_filterd_<n>.png`` (the defocus map, not used for scoring), matched by the
    trailing number ``<n>``; one split (the data set has no official one)."""
    split = _single_split(card)
    root = find_root(raw, ["image", "sharp"], "DED")
    blurry_dir, sharp_dir = root / "image", root / "sharp"
    problems: list[str] = []
    for d in (blurry_dir, sharp_dir):
        if not d.is_dir():
            raise LayoutError(f"{d}: missing folder (DED needs image/ and sharp/ side by side)")

    def by_number(folder: Path) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for stem, path in images(folder).items():
            m = _NUMBER.search(stem)
            if m is None:
                problems.append(f"{path}: no trailing number to pair by")
            elif str(int(m.group(1))) in out:
                problems.append(f"{path}: number {m.group(1)} also used by "
                                f"{out[str(int(m.group(1)))]}")
            else:
                out[str(int(m.group(1)))] = path
        return out

    blurry, sharp = by_number(blurry_dir), by_number(sharp_dir)
    rows = []
    for n, path in sorted(blurry.items(), key=lambda kv: int(kv[0])):
        if n not in sharp:
            problems.append(f"{path}: no sharp/<prefix>_{n} image to pair with")
            continue
        rows.append(_row(split, f"{int(n):04d}", path, sharp[n]))
    for n in sorted(set(sharp) - set(blurry), key=int):
        problems.append(f"{sharp[n]}: sharp image without image/image_{n}")
    _raise(problems, card.name)
    return rows
