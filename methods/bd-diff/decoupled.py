"""BD-Diff's decoupled cross-attention (Eq. 5): the U-Net's text cross-attention plus a second
attention over the blur features f_b, sharing the query.

    Z' = Attention(Q, K, V) + Attention(Q, K', V'),  Q = Z W_q,  K = c W_k,  V = c W_v,
    K' = f_b W'_k,  V' = f_b W'_v

W_q, W_k, W_v (and the output projection) are SD's, frozen; only W'_k and W'_v are new and
trained. They start as copies of W_k and W_v (IP-Adapter's initialisation; the paper names
none). With no f_b in the store (the deblurring task, and inference, which drops the blur
branch) the block is SD's own cross-attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BlurKV(nn.Module):
    """The new key and value projections of one cross-attention block."""

    def __init__(self, attn, source: str = ""):
        super().__init__()
        self.source = source  # the U-Net module these project for
        self.to_k = nn.Linear(attn.to_k.in_features, attn.to_k.out_features, bias=False)
        self.to_v = nn.Linear(attn.to_v.in_features, attn.to_v.out_features, bias=False)
        with torch.no_grad():
            self.to_k.weight.copy_(attn.to_k.weight)
            self.to_v.weight.copy_(attn.to_v.weight)


def _heads(x: Tensor, h: int) -> Tensor:
    b, n, d = x.shape
    return x.view(b, n, h, d // h).transpose(1, 2)


class DecoupledProcessor:
    """An attention processor for a U-Net ``attn2``: Eq. 5 when ``store["f_b"]`` is set."""

    def __init__(self, kv: BlurKV, store: dict[str, Tensor]):
        self.kv = kv
        self.store = store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):
        if attn.spatial_norm is not None or attn.group_norm is not None or attn.residual_connection:
            raise ValueError("DecoupledProcessor: expects SD's plain cross-attention block")
        if attention_mask is not None:
            raise ValueError("DecoupledProcessor: attention masks are not supported")
        if hidden_states.ndim != 3:
            raise ValueError("DecoupledProcessor: expects B x N x C hidden states")
        ctx = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if attn.norm_cross is not None:
            ctx = attn.norm_cross(ctx)
        h = attn.heads
        q = _heads(attn.to_q(hidden_states), h)
        out = F.scaled_dot_product_attention(q, _heads(attn.to_k(ctx), h),
                                             _heads(attn.to_v(ctx), h))
        f_b = self.store.get("f_b")
        if f_b is not None:
            out = out + F.scaled_dot_product_attention(q, _heads(self.kv.to_k(f_b), h),
                                                       _heads(self.kv.to_v(f_b), h))
        b, _, n, d = out.shape
        out = out.transpose(1, 2).reshape(b, n, h * d).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        return out / attn.rescale_output_factor


def install(unet, store: dict[str, Tensor]) -> nn.ModuleDict:
    """Put a :class:`DecoupledProcessor` on every ``attn2`` of ``unet``; returns the new K'/V'
    projections by block (the only U-Net parameters BD-Diff trains)."""
    procs = dict(unet.attn_processors)
    mods = dict(unet.named_modules())
    kvs = nn.ModuleDict()
    for name in procs:
        if name.endswith("attn2.processor"):
            attn = mods[name.removesuffix(".processor")]
            kv = BlurKV(attn, name.removesuffix(".processor"))
            kvs[name.removesuffix(".processor").replace(".", "_")] = kv
            procs[name] = DecoupledProcessor(kv, store)
    unet.set_attn_processor(procs)
    return kvs
