"""Layout parsers: turn a data set's folder as shipped into manifest rows.

Each parser is registered under the card's ``layout`` id and returns rows with absolute paths;
it names every missing or unpaired file instead of silently dropping a pair.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from deblurbench.datasets.card import DatasetCard
from deblurbench.registry import Registry


class LayoutError(ValueError):
    """A folder that does not have the layout its card promises."""


class LayoutParser(Protocol):
    def __call__(self, raw: Path, card: DatasetCard) -> list[dict]: ...


LAYOUTS: Registry[LayoutParser] = Registry("layout")


def _stems(folder: Path, suffix: str) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob(f"*{suffix}")) if not p.name.startswith(".")}


@LAYOUTS.decorator("synthetic")
@LAYOUTS.decorator("derived")  # datasets derive: the same flat layout, made from a real set
def parse_synthetic(raw: Path, card: DatasetCard) -> list[dict]:
    """``raw/{split}/{blurry,sharp,blur_map}/<id>.{png,png,npy}``, paired by identical stems."""
    rows: list[dict] = []
    problems: list[str] = []
    for split in card.splits:
        base = raw / split
        blurry_dir = base / "blurry"
        if not blurry_dir.is_dir():
            raise LayoutError(f"{blurry_dir}: missing folder (expected {raw}/<split>/blurry/*.png)")
        blurry = _stems(blurry_dir, ".png")
        sharp = _stems(base / "sharp", ".png")
        maps = _stems(base / "blur_map", ".npy")
        for stem in sorted(set(sharp) - set(blurry)):
            problems.append(f"{sharp[stem]}: sharp image without blurry partner")
        for stem, path in blurry.items():
            if card.has_gt and stem not in sharp:
                problems.append(f"{base / 'sharp' / (stem + '.png')}: missing sharp image for {path}")
                continue
            rows.append({"split": split, "image_id": stem, "blurry": path,
                         "sharp": sharp.get(stem), "blur_map": maps.get(stem)})
    if problems:
        raise LayoutError("layout problems:\n  " + "\n  ".join(problems))
    return rows


# Real data sets: parsers live in real_layouts.py, imported only when a card asks for them.
for _name in ("dpdd", "realdof", "sdd", "pixeldp", "cuhk", "lfdof", "ded"):
    LAYOUTS.register(_name, f"deblurbench.datasets.real_layouts:parse_{_name}")
