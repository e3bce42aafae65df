"""The two feature extractors of BD-Diff (Sec. 3.4-3.5): a Q-Former over CLIP image features
with 16 learnable queries and a fixed word ("structure" for Q_s, "blur" for Q_b).

The Q-Former is ``transformers``' ``Blip2QFormerModel``: the queries and the word's token
embeddings go in as one sequence, ``query_length`` of them queries, so (as in BLIP-2 and
BLIP-Diffusion) the queries attend to the image features and, through self-attention, to the
word, while the word's tokens run through the text feed-forward only. The 16 query outputs,
projected to the U-Net's cross-attention width, are the features f_s or f_b.

BLIP-Diffusion's Q-Former embeds its text with BERT's word embeddings; no BERT vocabulary is
available offline, so the word is tokenised with the CLIP BPE the project ships and each of
its tokens gets a learned embedding (plus a position embedding): a named deviation (CARD.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class QFormerExtractor(nn.Module):
    """``forward(image_features)`` -> B x n_queries x out_dim."""

    def __init__(self, vision_dim: int, out_dim: int, word_ids: list[int], hidden: int = 768,
                 layers: int = 12, heads: int = 12, intermediate: int = 3072,
                 n_queries: int = 16):
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        if not word_ids:
            raise ValueError("QFormerExtractor: the fixed text has no tokens")
        cfg = Blip2QFormerConfig(hidden_size=hidden, num_hidden_layers=layers,
                                 num_attention_heads=heads, intermediate_size=intermediate,
                                 encoder_hidden_size=vision_dim, cross_attention_frequency=1,
                                 use_qformer_text_input=True, vocab_size=2)
        self.qformer = Blip2QFormerModel(cfg)
        self.n_queries = n_queries
        self.queries = nn.Parameter(torch.randn(1, n_queries, hidden) * cfg.initializer_range)
        self.register_buffer("word_ids", torch.tensor(word_ids, dtype=torch.long),
                             persistent=False)
        self.word = nn.Parameter(torch.randn(1, len(word_ids), hidden) * cfg.initializer_range)
        self.word_pos = nn.Parameter(torch.zeros(1, len(word_ids), hidden))
        self.proj = nn.Sequential(nn.Linear(hidden, out_dim), nn.LayerNorm(out_dim))

    def forward(self, image_features: Tensor) -> Tensor:
        b = image_features.shape[0]
        seq = torch.cat([self.queries.expand(b, -1, -1),
                         (self.word + self.word_pos).expand(b, -1, -1)], dim=1)
        out = self.qformer(query_embeds=seq, query_length=self.n_queries,
                           encoder_hidden_states=image_features).last_hidden_state
        return self.proj(out[:, :self.n_queries])


def clip_pixels(x: Tensor, size: int) -> Tensor:
    """Images in [0, 1] -> CLIP's input: resized to ``size`` (bicubic) and normalised with
    CLIP's mean and std."""
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], device=x.device)[:, None, None]
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711], device=x.device)[:, None, None]
    if x.shape[-2:] != (size, size):
        x = nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return (x.clamp(0, 1) - mean) / std
