"""CLIP's BPE tokenizer, offline: the vocabulary file ships inside the ``openai-clip`` package.

Stable Diffusion 1.x and 2.x both use this 49,408-token vocabulary; they differ only in the
padding id (SD 1.x pads with end-of-text, SD 2.x with id 0, the ``!`` token). The file's digest is
checked, so a different vocabulary can never silently change every prompt embedding.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import torch

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
VOCAB_SIZE = 49408
CONTEXT = 77
SOT, EOT = 49406, 49407


class TokenizerError(RuntimeError):
    """The CLIP vocabulary is missing or not the expected file."""


def _package_dir() -> Path:
    """openai-clip's folder, found without importing the package (its ``__init__`` loads the
    whole CLIP model code; the tokenizer needs one file of it)."""
    import importlib.util

    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError("the CLIP tokenizer needs the openai-clip package "
                             "(tools/setup_venv.sh installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def vocab_path() -> Path:
    return _package_dir() / VOCAB_FILE


@lru_cache(maxsize=1)
def _tokenizer():
    path = vocab_path()
    if not path.is_file():
        raise TokenizerError(f"{path}: the CLIP BPE vocabulary is missing")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != VOCAB_SHA256:
        raise TokenizerError(f"{path}: sha256 {digest[:16]}... is not the CLIP vocabulary "
                             f"({VOCAB_SHA256[:16]}...)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("_clip_simple_tokenizer",
                                                  _package_dir() / "simple_tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(str(path))


def tokenize(texts: list[str], pad_id: int = 0) -> torch.Tensor:
    """``len(texts) x 77`` token ids: start, the BPE tokens (cut to fit), end, then ``pad_id``."""
    tok = _tokenizer()
    out = torch.full((len(texts), CONTEXT), pad_id, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [SOT, *tok.encode(text)[:CONTEXT - 2], EOT]
        out[i, :len(ids)] = torch.tensor(ids)
    return out


def bpe_ids(text: str) -> list[int]:
    """The BPE token ids of ``text`` alone (no start, end or padding)."""
    return list(_tokenizer().encode(text))
