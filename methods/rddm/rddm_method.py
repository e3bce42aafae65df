"""RDDM (Feng, Zhou, Ye, Chen, Zhu; AAAI 2025) as a DeblurBench method.

Inference (Fig. 2, Eq. 12-15; Algorithm 1 with the ``map_source`` choice):
``I_map = g(I_b)``, ``I_p = p(I_b, I_map)``, ``s = H(Res50(I_p))``; x_T ~ N(0, I) from a
generator seeded with ``sample_seed``; ``sample_steps`` DDIM steps with sigma = 0 in which the
denoiser predicts the residual ``R = x0 - I_p`` directly; output ``I_p + R``.

Training, in two stages (``params.stages``), as the paper trains its parts:
``estimator``: the SegFormer on the true blur map (sigmoid cross-entropy, Adam) — the paper's
estimator is pre-trained on its own data and then frozen; ``diffusion``: the pre-deblur module,
the guidance head and the denoiser jointly with the L1 loss of Eq. 12 (the pre-deblur module has
no loss of its own), AdamW and cosine annealing with warm restarts; the estimator is frozen.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from deblurbench.methods.base import Method
from deblurbench.nn.unet import pad_to_multiple

from .denoiser import Denoiser, SemanticGuidance
from .estimator import DefocusMapEstimator
from .predeblur import PreDeblur
from .schedule import alpha_bars, ddim_step, ddim_timesteps, q_sample

STAGES = ("estimator", "diffusion")
MAP_SOURCES = ("blurry", "predeblur")


class RDDMMethod(Method):
    def __init__(self, params: dict[str, Any], device: str = "cpu"):
        super().__init__(params, device)
        p = self.params
        self.map_source = str(p["map_source"])
        if self.map_source not in MAP_SOURCES:
            raise ValueError(f"map_source must be one of {MAP_SOURCES}, got {self.map_source!r}")
        impl = str(p["dcn_impl"])
        gc = int(p["dcn_group_channels"])
        self.estimator = DefocusMapEstimator(p)
        seg = self._pretrained_or_none("segformer")
        if seg is not None:
            self.estimator.load_files(seg)
        self.predeblur = PreDeblur(
            in_ch=4 if self.map_source == "blurry" else 3, width=int(p["pre_width"]),
            enc_blks=list(p["pre_enc_blks"]), mid_blks=int(p["pre_mid_blks"]),
            dec_blks=list(p["pre_dec_blks"]), scale=int(p["pre_scale"]), group_channels=gc,
            impl=impl)
        self.guidance = SemanticGuidance(str(p["guidance"]), int(p["guidance_ch"]))
        files = self._pretrained_or_none(str(p["guidance"]))
        self.guidance_pretrained = files is not None
        if files is not None:
            self.guidance.load_backbone(torch.load(next(iter(files.values())),
                                                   map_location="cpu", weights_only=True))
        self.denoiser = Denoiser(
            in_ch=3 + 3 + 1, width=int(p["width"]), enc_blks=list(p["enc_blks"]),
            mid_blks=int(p["mid_blks"]), dec_blks=list(p["dec_blks"]),
            guide_ch=int(p["guidance_ch"]), group_channels=gc, impl=impl)
        self.T = int(p["T"])
        self.alpha_bar = alpha_bars(self.T, str(p["schedule"]), float(p["beta_start"]),
                                    float(p["beta_end"]))
        for m in self.networks():
            m.to(device)

    # -- pretrained parts --------------------------------------------------------------------
    def _pretrained_or_none(self, part_id: str):
        """``self.pretrained(part_id)`` when the card lists the part; else random init, recorded
        with the reason (a part no card lists, such as the small config's smaller backbone)."""
        listed = {q.id for q in (self.card.pretrained if self.card else [])}
        if part_id in listed:
            return self.pretrained(part_id)
        self._weights = [w for w in self._weights if w["id"] != part_id] + [{
            "id": part_id, "title": part_id, "status": "random init",
            "reason": f"the method card lists no pretrained part {part_id!r}"}]
        return None

    # -- the pipeline --------------------------------------------------------------------------
    @property
    def multiple(self) -> int:
        a, b = self.predeblur.multiple, self.denoiser.multiple
        return a * b // math.gcd(a, b)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, self.multiple)

    def condition(self, blurry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(I_p, I_map). ``blurry``: the map is estimated from the blurry image and the
        pre-deblur module sees both (Fig. 2, Eq. 12); ``predeblur``: Algorithm 1's order,
        ``I_p = p(I_b)``, ``I_map = g(I_p)``. The estimator is frozen here."""
        est, pre_net = self._net("estimator"), self._net("predeblur")
        if self.map_source == "blurry":
            with torch.no_grad():
                m = est(blurry)
            return pre_net(blurry, m), m
        pre = pre_net(blurry)
        with torch.no_grad():
            m = est(pre.detach())
        return pre, m

    def _net(self, name: str) -> torch.nn.Module:
        """The module as training runs it (wrapped by ``callbacks.prepare``, e.g. DDP), else
        the plain one; ``self.<name>`` always stays the plain module."""
        live = getattr(self, "_live", {}).get(name)
        return getattr(self, name) if live is None else live

    def sample(self, ip: torch.Tensor, cond: torch.Tensor, guide: torch.Tensor,
               steps: int | None = None) -> torch.Tensor:
        """The residual R after ``steps`` DDIM steps (sigma = 0) from seeded x_T."""
        steps = int(self.params["sample_steps"]) if steps is None else steps
        gen = torch.Generator(device="cpu").manual_seed(int(self.params["sample_seed"]))
        x = torch.randn(ip.shape, generator=gen, dtype=ip.dtype).to(ip.device)
        ts = ddim_timesteps(self.T, steps)
        for i, t in enumerate(ts):
            prev = ts[i + 1] if i + 1 < len(ts) else 0
            r = self.denoiser(x, torch.full((ip.shape[0],), t, device=ip.device), cond, guide)
            x = ddim_step(x, r, float(self.alpha_bar[t]), float(self.alpha_bar[prev]))
        return x

    def restore(self, batch: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        if "blur_map" in extras:
            raise ValueError("rddm: blur_map is a training-only input; restore estimates it")
        for m in self.networks():
            m.eval()
        h, w = batch.shape[-2:]
        x = self._pad(batch)
        ip, m = self.condition(x)
        out = ip + self.sample(ip, torch.cat([ip, m], 1), self.guidance(ip))
        return out[..., :h, :w].clamp(0, 1)

    def flops_probe(self, batch: torch.Tensor, **extras: torch.Tensor):
        """The sampler as pieces: estimator, pre-deblur and guidance once, then the denoiser
        ``sample_steps`` times (the probe contract has one multiplier, so the whole is counted
        once rather than one step times the count plus the rest)."""
        n = int(self.params["sample_steps"])
        how = (f"estimator + pre-deblur + guidance once, plus {n} denoiser passes (DDIM, "
               f"sigma 0): the whole sampler, counted once")
        return (lambda: self.restore(batch, **extras), 1, how)

    # -- training ----------------------------------------------------------------------------
    def train(self, loader, params, callbacks) -> None:
        names = [st.name for st in callbacks.stages]
        bad = [n for n in names if n not in STAGES]
        if bad:
            raise ValueError(f"rddm: unknown stages {bad}; expected names from {STAGES}")
        est_stage = next((st for st in callbacks.stages if st.name == "estimator"), None)
        opt_est = torch.optim.Adam(self.estimator.parameters(),
                                   lr=float(est_stage.get("lr", 1e-4) if est_stage else 1e-4))
        main = [q for m in (self.predeblur, self.guidance, self.denoiser)
                for q in m.parameters() if q.requires_grad]
        opt = torch.optim.AdamW(main, lr=float(params["lr"]), betas=tuple(params["betas"]),
                                weight_decay=float(params["weight_decay"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            opt, T_0=int(params["restart_every"]), eta_min=float(params["lr_min"]))
        callbacks.track(opt_est)
        callbacks.track(opt, sched)
        names = ("estimator", "predeblur", "guidance", "denoiser")
        *mods, opt_est, opt = callbacks.prepare(*(getattr(self, n) for n in names), opt_est,
                                                opt)
        self._live = dict(zip(names, mods, strict=True))
        clip = float(params.get("grad_clip", 0) or 0)
        for batch in loader:
            if callbacks.stage.name == "estimator":
                terms = self._estimator_step(batch, opt_est, callbacks)
            else:
                terms = self._diffusion_step(batch, opt, callbacks, clip)
                sched.step()
                terms["lr"] = sched.get_last_lr()[0]
            if not callbacks.step(terms):
                break
        self._live = {}

    def _estimator_step(self, batch, opt, callbacks) -> dict[str, float]:
        scale = float(self.params["map_scale_px"])
        self.estimator.train()
        opt.zero_grad(set_to_none=True)
        k = callbacks.grad_accum
        bce = mae = 0.0
        for mb in callbacks.micro_batches(batch):
            target = (mb["blur_map"] / scale).clamp(0, 1)
            logits = self._net("estimator")(mb["blurry"], as_logits=True)
            loss = F.binary_cross_entropy_with_logits(logits, target)
            callbacks.backward(loss / k)
            bce += float(loss.detach()) / k
            mae += float((torch.sigmoid(logits.detach()) - target).abs().mean()) * scale / k
        opt.step()
        return {"bce": bce, "map_mae_px": mae}

    def _diffusion_step(self, batch, opt, callbacks, clip: float) -> dict[str, float]:
        self.estimator.eval()
        for m in (self.predeblur, self.guidance, self.denoiser):
            m.train()
        opt.zero_grad(set_to_none=True)
        k = callbacks.grad_accum
        total = pre_l1 = in_l1 = 0.0
        for mb in callbacks.micro_batches(batch):
            ip, m = self.condition(self._pad(mb["blurry"]))
            sharp = self._pad(mb["sharp"])
            r0 = sharp - ip  # the residual the denoiser learns (Eq. 12)
            n = r0.shape[0]
            t = torch.randint(1, self.T + 1, (n,), device=r0.device)
            x_t = q_sample(r0, t, torch.randn_like(r0), self.alpha_bar)
            r = self._net("denoiser")(x_t, t, torch.cat([ip, m], 1), self._net("guidance")(ip))
            loss = self._loss(r, r0)
            callbacks.backward(loss / k)
            total += float(loss.detach()) / k
            pre_l1 += float((ip.detach() - sharp).abs().mean()) / k
            in_l1 += float((mb["blurry"] - mb["sharp"]).abs().mean()) / k
        grad_norm = None
        if clip > 0:
            params = [q for g in opt.param_groups for q in g["params"]]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        opt.step()
        # beside the loss: L1 to the sharp crop of I_p and of the blurry input (the data's own
        # difficulty, which varies from batch to batch far more than training changes the loss)
        terms = {self.params["loss"]: total, "predeblur_l1": pre_l1, "input_l1": in_l1}
        if grad_norm is not None:
            terms["grad_norm"] = grad_norm
        return terms

    def _loss(self, r: torch.Tensor, r0: torch.Tensor) -> torch.Tensor:
        kind = self.params["loss"]
        if kind == "l1":  # Eq. 12
            return (r - r0).abs().mean()
        if kind == "psnr":  # the PSNR loss the paper's DDPM section names (Chen et al. 2022)
            mse = (r - r0).pow(2).mean(dim=(1, 2, 3))
            return (10 / math.log(10)) * torch.log(mse + 1e-8).mean()
        raise ValueError(f"unknown loss {kind!r}; expected l1 or psnr")

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        guide = self.guidance.state_dict()
        if self.guidance_pretrained:  # the frozen ImageNet backbone reloads from its file
            guide = {k: v for k, v in guide.items() if not k.startswith("backbone.")}
        return {"estimator": self.estimator.state_dict(), "predeblur": self.predeblur.state_dict(),
                "guidance": guide, "denoiser": self.denoiser.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.estimator.load_state_dict(state["estimator"])
        self.predeblur.load_state_dict(state["predeblur"])
        self.guidance.load_state_dict(state["guidance"], strict=not self.guidance_pretrained)
        self.denoiser.load_state_dict(state["denoiser"])
