"""The base class of the SD methods: one training loop, one sampler, one checkpoint rule.

A subclass builds its new parts in ``build`` and says three things:
``trainable()`` (the modules its paper trains), ``losses(batch)`` (the loss terms of one
micro-batch, summed with weights the card gives) and ``eps(...)`` (the noise prediction of one
sampling step). Everything else is here:

- the base model: :func:`deblurbench.sd.base.load_base` (imported snapshot, or tiny random
  init, recorded in ``weights_used``);
- stages: ``base`` (the tiny base's own training, :mod:`deblurbench.sd.training`), then the
  method's stage (any other name); at the switch the tiny base is frozen, its latent scale fitted
  and ``after_base`` runs (a ControlNet re-copies the trained encoder);
- optimisation: AdamW over ``trainable()`` with the card's lr, betas and weight decay (0 gives
  the papers' Adam), optional gradient clipping, constant lr as the papers use;
- sampling: DDIM from :mod:`deblurbench.sd.sampler`, VAE decoding, padding to the card's
  ``pad_multiple``;
- the checkpoint keeps the trained parts and, for the tiny base only, the base.
"""

from __future__ import annotations

from typing import Any

import torch

from deblurbench.methods.base import Method
from deblurbench.sd import training
from deblurbench.sd.base import SDBase, load_base
from deblurbench.sd.latents import decode, encode, vae_tiling
from deblurbench.sd.prompts import prompts
from deblurbench.sd.sampler import SamplerSettings, ddim_sample


class SDMethod(Method):
    """Subclass and implement ``build``, ``trainable``, ``losses`` and ``eps``."""

    def __init__(self, params: dict[str, Any], device: str = "cpu"):
        super().__init__(params, device)
        p = self.params
        self.base: SDBase = load_base(self, str(p["base"]), str(p["family"]),
                                      seed=int(p.get("init_seed", 0))).to(device)
        self.sampler = SamplerSettings.from_params(p)
        self._base_done = not self.base.is_tiny  # an imported base is never trained here
        self.build()
        for m in self.trainable().values():
            m.to(device)

    # -- what a subclass provides -------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def trainable(self) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named loss terms of one micro-batch (their weighted sum is minimised)."""
        raise NotImplementedError

    def loss_weights(self) -> dict[str, float]:
        return {}

    def eps(self, zt: torch.Tensor, t: torch.Tensor, window: tuple[int, int, int, int],
            conditional: bool, ctx: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def context(self, blurry: torch.Tensor, z_lr: torch.Tensor) -> dict[str, Any]:
        """What ``eps`` needs for a whole image, computed once per restore."""
        return {}

    def on_step(self, ctx: dict[str, Any], i: int, t: torch.Tensor, x0: torch.Tensor) -> None:
        """After each DDIM step, with the x0 estimate (DeblurDiff feeds it back)."""

    def after_base(self) -> None:
        """Once the tiny base is trained (a ControlNet re-copies its encoder)."""

    # -- shared pieces ------------------------------------------------------------------------
    def prompt(self, batch: torch.Tensor, conditional: bool = True) -> list[str]:
        p = self.params
        if not conditional:
            return [str(p.get("negative_prompt", ""))] * batch.shape[0]
        return prompts(str(p.get("prompt_source", "empty")), str(p.get("prompt", "")), batch)

    def text(self, batch: torch.Tensor, conditional: bool = True) -> torch.Tensor:
        return self.base.text_embeddings(self.prompt(batch, conditional))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return encode(self.base.vae, x, self.base.latent_scale)

    def net(self, name: str) -> torch.nn.Module:
        """A trainable module as training runs it (wrapped by ``prepare``), else the plain one."""
        live = getattr(self, "_live", {}).get(name)
        return self.trainable()[name] if live is None else live

    # -- restore ------------------------------------------------------------------------------
    @torch.no_grad()
    def restore(self, batch: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        for m in (*self.trainable().values(), *self.base.modules().values()):
            m.eval()
        vae_tiling(self.base.vae, max(batch.shape[-2:]), int(self.params.get("vae_tile_px", 0)))
        z_lr = self.encode_input(batch)
        return self.decode_output(self.sample(batch, z_lr))

    def sample(self, batch: torch.Tensor, z_lr: torch.Tensor,
               settings: SamplerSettings | None = None) -> torch.Tensor:
        """The sharp latent of ``batch`` (blurry latent ``z_lr``) after the DDIM sampler."""
        ctx = self.context(batch, z_lr)
        return ddim_sample(self.base.ddim(),
                           lambda zt, t, w, c: self.eps(zt, t, w, c, ctx), z_lr,
                           settings or self.sampler,
                           on_step=lambda i, t, x0: self.on_step(ctx, i, t, x0))

    def encode_input(self, batch: torch.Tensor) -> torch.Tensor:
        """The blurry image's latent at restore time (BD-Diff's refined VAE replaces it)."""
        return self.encode(batch)

    def decode_output(self, z: torch.Tensor) -> torch.Tensor:
        return decode(self.base.vae, z, self.base.latent_scale)

    def flops_probe(self, batch: torch.Tensor, **extras: torch.Tensor):
        n = self.sampler.steps * (1 if self.sampler.guidance == 1.0 else 2)
        return (lambda: self.restore(batch, **extras), 1,
                (f"VAE encode and decode plus {n} noise predictions ({self.sampler.steps} "
                 f"DDIM steps): the whole sampler, counted once"))

    # -- training -----------------------------------------------------------------------------
    def train(self, loader, params, callbacks) -> None:
        stages = [st.name for st in callbacks.stages]
        if "base" in stages and not self.base.is_tiny:
            raise ValueError(f"{self.card.name if self.card else 'method'}: stage base trains "
                             f"only the tiny random-init base, and an imported base is loaded; "
                             f"drop the stage (paper params have none)")
        mods = self.trainable()
        main = [q for m in mods.values() for q in m.parameters() if q.requires_grad]
        opt = torch.optim.AdamW(main, lr=float(params["lr"]), betas=tuple(params["betas"]),
                                weight_decay=float(params["weight_decay"]))
        callbacks.track(opt)
        opt_base = None
        if "base" in stages:
            opt_base = torch.optim.AdamW(training.base_parameters(self.base),
                                         lr=float(params.get("base_lr", 1e-3)), weight_decay=0)
            callbacks.track(opt_base)
        names = list(mods)
        *live, opt = callbacks.prepare(*(mods[n] for n in names), opt)
        self._live = dict(zip(names, live, strict=True))
        clip = float(params.get("grad_clip", 0) or 0)
        ddpm = self.base.ddpm()
        weights = self.loss_weights()
        for batch in loader:
            # which stage and step this batch belongs to (BD-Diff samples its task from them)
            self.train_stage, self.train_step = callbacks.stage.name, callbacks.global_step
            if callbacks.stage.name == "base":
                terms = self._base_step(batch, opt_base, ddpm, callbacks)
            else:
                if not self._base_done:
                    self._finish_base(batch)
                terms = self._method_step(batch, opt, main, weights, clip, callbacks)
            if not callbacks.step(terms):
                break
        self._live = {}

    def _base_step(self, batch, opt, ddpm, callbacks) -> dict[str, float]:
        opt.zero_grad(set_to_none=True)
        k = callbacks.grad_accum
        terms: dict[str, float] = {}
        for mb in callbacks.micro_batches(batch):
            got = training.base_step(self.base, mb["sharp"], ddpm, self.prompt(mb["sharp"]),
                                     lambda loss: callbacks.backward(loss / k))
            for name, v in got.items():
                terms[name] = terms.get(name, 0.0) + v / k
        opt.step()
        return terms

    def _finish_base(self, batch) -> None:
        training.end_base_stage(self.base, batch["sharp"])
        self.base._embeddings.clear()  # the text encoder is unchanged, but cheap to redo
        self.after_base()
        self._base_done = True

    def _method_step(self, batch, opt, main, weights, clip, callbacks) -> dict[str, float]:
        for m in self.trainable().values():
            m.train()
        opt.zero_grad(set_to_none=True)
        k = callbacks.grad_accum
        terms: dict[str, float] = {}
        for mb in callbacks.micro_batches(batch):
            parts = self.losses(mb)
            total = sum(weights.get(n, 1.0) * v for n, v in parts.items())
            callbacks.backward(total / k)
            for n, v in {"total": total, **parts}.items():
                terms[n] = terms.get(n, 0.0) + float(v.detach()) / k
        if clip > 0:
            terms["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(main, clip))
        opt.step()
        return terms

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"base": training.base_state(self.base), "base_done": self._base_done,
                **{n: m.state_dict() for n, m in self.trainable().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        training.load_base_state(self.base, state.get("base", {}))
        self._base_done = bool(state.get("base_done", True))
        for n, m in self.trainable().items():
            m.load_state_dict(state[n])
