"""JDRL (Ren et al., paper 002) as a DeblurBench method: a deblurring module (blur-map estimator,
deformable fusion, backbone; the only part that runs at inference) trained through a reblurring
module and a flow-based misalignment-tolerant loss (Eq. 2, 7, 14, 15).

Stages (``params.stages``): in ``early`` (the paper's first T = 15 of 200 epochs,
``flow_from: blurry``) the flows are computed from the blurry input instead of the restored
image; in ``main`` from the restored image (Eq. 11). ``released: true`` switches to the
released code's behaviour where it differs (see CARD.md); ``loss: l1`` with ``prior: false``
is the plain-L1 baseline on the same backbone.
"""

from __future__ import annotations

import torch
from torch import nn

from deblurbench.methods.base import Method
from deblurbench.nn import charbonnier

from . import flow as fl
from .deblur import Deblur
from .reblur import Reblur, pseudo_defocus_map


class JDRLNet(nn.Module):
    """Deblurring module plus (for training only) the reblurring module."""

    def __init__(self, params: dict):
        super().__init__()
        m = int(params["m"])
        self.m = m
        n_map = sum(range(2, m + 1))
        self.deblur = Deblur(params, n_map)
        self.reblur = (Reblur(m, int(params["kpn_width"]), int(params["kpn_blocks"]))
                       if params.get("loss", "jdrl") == "jdrl" else None)

    def forward(self, blurry: torch.Tensor, ramp: float = 1.0, reblur: bool = False
                ) -> dict[str, torch.Tensor | None]:
        restored, bmap = self.deblur(blurry, ramp)
        out = {"restored": restored, "bmap": bmap}
        if reblur:
            out["reblurred"], out["seeds"], out["weights"] = self.reblur(restored, blurry)
        return out


def masked_charbonnier(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor, eps: float
                       ) -> torch.Tensor:
    """Eq. 14's term: Charbonnier of ``M * (a - b)`` (masked pixels contribute ``eps``)."""
    return charbonnier(m * a, m * b, eps=eps)


class JDRLMethod(Method):
    def __init__(self, params, device="cpu"):
        super().__init__(params, device)
        self.model = JDRLNet(params).to(device)

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model.deblur(batch)[0].clamp(0, 1)

    def loss_terms(self, net: nn.Module, mb: dict[str, torch.Tensor], early: bool, ramp: float
                   ) -> dict[str, torch.Tensor]:
        """The loss terms of one micro-batch; ``total`` is what is minimised."""
        p = self.params
        blurry, sharp = mb["blurry"], mb["sharp"]
        eps, lam = float(p["eps"]), float(p["lam"])
        released = bool(p.get("released", False))
        if p.get("loss", "jdrl") == "l1":
            restored = net(blurry)["restored"]
            loss = (restored - sharp).abs().mean()
            return {"total": loss, "l1": loss}
        if released and early:  # released code: Charbonnier against GT warped to the input
            restored = net(blurry, ramp)["restored"]
            sw = fl.warp(sharp, fl.flow(blurry, sharp))
            loss = charbonnier(restored, sw, eps=eps)
            return {"total": loss, "deblur": loss}
        out = net(blurry, ramp, reblur=True)
        restored = out["restored"]
        ref = blurry if early else restored  # Sec. 4.1: first T epochs from the blurry input
        on = "visualisation" if released else "magnitude"
        f_s = fl.flow(ref, sharp)  # Phi_{I_S -> I_hat}: deforms I_S towards I_hat (Eq. 11-12)
        f_r = fl.flow(sharp, ref)  # Phi_{I_hat -> I_S}: the cycle direction
        mf = float(p.get("mask_min_flow", 0.0))
        m_s, m_r = fl.mask(f_s, lam, on, mf), fl.mask(f_r, lam, on, mf)
        l_d = (masked_charbonnier(fl.warp(sharp, f_s), restored, m_s, eps)
               + masked_charbonnier(fl.warp(restored, f_r), sharp, m_r, eps))  # Eq. 14
        l_r = charbonnier(out["reblurred"], blurry, eps=eps)  # Eq. 7
        b_p = pseudo_defocus_map(out["seeds"], out["weights"], self.model.m,
                                 repmat=not released).detach()  # Eq. 8, a target
        l_p = charbonnier(out["bmap"], b_p, eps=eps)  # Eq. 15
        total = l_d + float(p["alpha"]) * l_r + float(p["beta"]) * l_p  # Eq. 2
        return {"total": total, "deblur": l_d, "reblur": l_r, "prior": l_p,
                "mask_kept": 0.5 * (m_s.mean() + m_r.mean()).detach()}

    def train(self, loader, params, callbacks) -> None:
        opt = torch.optim.Adam(self.model.parameters(), lr=float(params["lr"]),
                               betas=(0.9, 0.999), eps=1e-8)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(params["lr_halve_every"]),
                                                gamma=0.5)
        callbacks.track(opt, sched)
        net, opt = callbacks.prepare(self.model, opt)
        clip = float(params.get("grad_clip", 0) or 0)
        k = callbacks.grad_accum
        for batch in loader:
            stage = callbacks.stage
            early = stage.get("flow_from", "restored") == "blurry"
            ramp = 1.0
            if early and params.get("released", False):  # estimator output 0.001 -> 1
                s = callbacks.global_step + 1
                ramp = 0.001 + 0.999 * (s - stage.first) / max(1, stage.last - stage.first)
            net.train()
            opt.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            for mb in callbacks.micro_batches(batch):
                terms = self.loss_terms(net, mb, early, ramp)
                callbacks.backward(terms["total"] / k)
                for name, v in terms.items():
                    sums[name] = sums.get(name, 0.0) + float(v.detach()) / k
            grad_norm = (torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                         if clip > 0 else None)
            opt.step()
            sched.step()
            sums["lr"] = sched.get_last_lr()[0]
            if grad_norm is not None:
                sums["grad_norm"] = float(grad_norm)
            if not callbacks.step(sums):
                break

    def networks(self) -> list[nn.Module]:
        """The method's size is the deblurring module's: the reblurring module is training-only
        (the paper's parameter counts leave it out too)."""
        return [self.model.deblur]

    def state_dict(self):
        return {"net": self.model.state_dict()}

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state["net"])
