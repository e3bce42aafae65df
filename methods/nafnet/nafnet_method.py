"""NAFNet as a DeblurBench method: the shared backbone (``deblurbench.nn.NAFNet``), trained with
AdamW, a cosine schedule, gradient clipping and a weight EMA through the runner's loop.

``restore`` uses the EMA weights when the card keeps an EMA (``ema_decay`` > 0), since those are
the weights validation selected.
"""

from __future__ import annotations

import torch

from deblurbench.methods.base import Method
from deblurbench.nn import EMA, NAFNet, charbonnier


def build(params: dict) -> NAFNet:
    return NAFNet(width=int(params["width"]), middle_blk_num=int(params["middle_blk_num"]),
                  enc_blk_nums=list(params["enc_blk_nums"]),
                  dec_blk_nums=list(params["dec_blk_nums"]),
                  zero_mean_residual=bool(params["zero_mean_residual"]), zero_init_out=True)


class NAFNetMethod(Method):
    def __init__(self, params, device="cpu"):
        super().__init__(params, device)
        self.net = build(params).to(device)
        decay = float(params.get("ema_decay", 0.0))
        self.ema = EMA(self.net, decay) if decay > 0 else None

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        if self.ema is None:
            return self.net(batch).clamp(0, 1)
        with self.ema.swapped(self.net):
            return self.net(batch).clamp(0, 1)

    def train(self, loader, params, callbacks) -> None:
        lr = float(params["lr"])
        opt = torch.optim.AdamW(self.net.parameters(), lr=lr, betas=tuple(params["betas"]),
                                weight_decay=float(params["weight_decay"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=callbacks.max_steps, eta_min=float(params["lr_min"]))
        callbacks.track(opt, sched)
        if self.ema is not None:
            callbacks.track_state("ema", self.ema)
        net, opt = callbacks.prepare(self.net, opt)
        clip = float(params.get("grad_clip", 0) or 0)
        k = callbacks.grad_accum
        for batch in loader:
            net.train()
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for mb in callbacks.micro_batches(batch):
                loss = charbonnier(net(mb["blurry"]), mb["sharp"], eps=float(params["eps"]))
                callbacks.backward(loss / k)
                total += float(loss.detach()) / k
            grad_norm = (torch.nn.utils.clip_grad_norm_(self.net.parameters(), clip)
                         if clip > 0 else None)
            opt.step()
            sched.step()
            if self.ema is not None:
                self.ema.update(self.net)
            terms = {"charbonnier": total, "lr": sched.get_last_lr()[0]}
            if grad_norm is not None:
                terms["grad_norm"] = float(grad_norm)
            if not callbacks.step(terms):
                break

    def state_dict(self):
        state = {"net": self.net.state_dict()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state) -> None:
        self.net.load_state_dict(state["net"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
