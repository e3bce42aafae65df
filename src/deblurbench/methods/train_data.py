"""Training data: random crops of a split's pairs, the same batches for the same step.

The crops of step ``s`` on process ``p`` come from ``numpy.random.default_rng([seed, s, p])``,
so a run resumed at step ``k`` sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np
import torch

from deblurbench.datasets.manifest import load_manifest
from deblurbench.io import read_image


def held_out(image_id: str, fraction: float, seed: int = 0) -> bool:
    """Whether ``image_id`` belongs to the held-out share ``fraction`` of a split: a stable hash
    of the id, so the subset is the same on every machine and for every method (BD-Diff's
    target domain: blurry images whose sharp ones are never used)."""
    return zlib.crc32(f"{seed}:{image_id}".encode()) / 2 ** 32 < fraction


class PairSource:
    """Training pairs of a (dataset, split) with the method's inputs and training-only inputs,
    decoded on demand and kept while they fit in ``cache_bytes`` (least recently used out):
    the embedded set's 228 pairs (0.4 GB) stay decoded, DPDD's 1120x1680 pairs cycle."""

    def __init__(self, dataset: str, split: str, inputs: list[str],
                 cache_bytes: int = 2 << 30, paired: bool = True,
                 keep: Callable[[str], bool] | None = None):
        from deblurbench.inputs import loader

        self.rows = load_manifest(dataset, split)
        if keep is not None:  # a subset of the split, by image id
            self.rows = self.rows[[bool(keep(i)) for i in self.rows["image_id"]]].reset_index(
                drop=True)
        if len(self.rows) == 0:
            raise ValueError(f"{dataset}/{split}: no pairs to train on")
        self.paired = paired
        missing = self.rows[self.rows["sharp"].isna()]
        if paired and len(missing):
            raise ValueError(f"{dataset}/{split}: image {missing.iloc[0]['image_id']!r} has no "
                             f"sharp target; training needs ground truth")
        self.extras = [k for k in inputs if k != "blurry"]
        self._load = {k: loader(k) for k in self.extras}
        for k in self.extras:
            if k in self.rows.columns:
                bad = self.rows[self.rows[k].isna()]
                if len(bad):
                    raise ValueError(f"{dataset}/{split}: image {bad.iloc[0]['image_id']!r} "
                                     f"lacks input {k!r} that the method needs")
        self.min_side = int(min(self.rows["height"].min(), self.rows["width"].min()))
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._budget, self._bytes = cache_bytes, 0

    def pair(self, i: int) -> dict[str, np.ndarray]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        row = self.rows.iloc[i]
        item = {"blurry": read_image(row["blurry"])}
        if self.paired:
            item["sharp"] = read_image(row["sharp"])
        for k in self.extras:
            item[k] = self._load[k](row)
        self._cache[i] = item
        self._bytes += sum(v.nbytes for v in item.values())
        while self._bytes > self._budget and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._bytes -= sum(v.nbytes for v in old.values())
        return item

    def batch(self, rng: np.random.Generator, batch_size: int, crop: int,
              device: torch.device, augment: bool = False) -> dict[str, torch.Tensor]:
        """Random crops; ``augment``: each crop also flipped and transposed at random (the 8
        symmetries of the square, the same for every input of a pair), drawn from ``rng``."""
        crops: dict[str, list[np.ndarray]] = {}
        for i in rng.integers(0, len(self.rows), size=batch_size):
            item = self.pair(int(i))
            h, w = item["blurry"].shape[:2]
            y0 = int(rng.integers(0, h - crop + 1))
            x0 = int(rng.integers(0, w - crop + 1))
            flips = rng.integers(0, 2, size=3) if augment else (0, 0, 0)
            for k, v in item.items():
                c = v[y0:y0 + crop, x0:x0 + crop]
                if flips[0]:
                    c = c[::-1]
                if flips[1]:
                    c = c[:, ::-1]
                if flips[2]:
                    c = c.transpose(1, 0, 2)
                crops.setdefault(k, []).append(np.ascontiguousarray(c))
        return {k: torch.from_numpy(np.stack(v)).permute(0, 3, 1, 2).contiguous().to(device)
                for k, v in crops.items()}


class StepLoader:
    """Yields the batch of every step from ``start_step + 1`` to ``max_steps``."""

    def __init__(self, source: PairSource, seed: int, process: int, batch_size: int, crop: int,
                 start_step: int, max_steps: int, device: torch.device, augment: bool = False,
                 unpaired: PairSource | None = None):
        self.source, self.seed, self.process, self.unpaired = source, seed, process, unpaired
        self.batch_size, self.crop, self.augment = batch_size, crop, augment
        self.start_step, self.max_steps, self.device = start_step, max_steps, device

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for step in range(self.start_step + 1, self.max_steps + 1):
            rng = np.random.default_rng([self.seed, step, self.process])
            batch = self.source.batch(rng, self.batch_size, self.crop, self.device, self.augment)
            if self.unpaired is not None:  # blurry images with no sharp one (BD-Diff)
                more = self.unpaired.batch(rng, self.batch_size, self.crop, self.device,
                                           self.augment)
                batch["unpaired_blurry"] = more["blurry"]
            yield batch
