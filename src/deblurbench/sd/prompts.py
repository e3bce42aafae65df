"""Where a method's prompt comes from. MBSD captions each input with DAPE, which is not
available here; the default is the empty prompt, and a fixed text (BD-Diff's task prompts) is
the other source. A new source registers a function here."""

from __future__ import annotations

from collections.abc import Callable

import torch

#: name -> (settings text, batch) -> one prompt per image
PROMPT_SOURCES: dict[str, Callable[[str, torch.Tensor], list[str]]] = {
    "empty": lambda text, batch: [""] * batch.shape[0],
    "fixed": lambda text, batch: [text] * batch.shape[0],
}


def prompts(source: str, text: str, batch: torch.Tensor) -> list[str]:
    if source not in PROMPT_SOURCES:
        raise ValueError(f"unknown prompt source {source!r}; known: {sorted(PROMPT_SOURCES)} "
                         f"(DAPE captions are not available offline)")
    return PROMPT_SOURCES[source](text, batch)
