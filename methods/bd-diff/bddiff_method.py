"""BD-Diff (blur-decoupled learning for deblurring on unknown domains, ICML; paper 004) as a
DeblurBench method, on the shared SD stack (:mod:`deblurbench.sd`).

Two Q-Formers over frozen CLIP image features: Q_s ("structure") gives f_s, which an adapter (a
ControlNet copied from the U-Net's encoder, its cross-attention reading f_s, its hint the
input's latent) turns into residuals for the frozen SD U-Net; Q_b ("blur") gives f_b, which
enters the U-Net through the decoupled cross-attention of Eq. 5. Three tasks:

- T1, deblurring (Eq. 4): a sharp crop blurred with a corruption-style blur of the annotate
  stage (Hendrycks & Dietterich's kinds); f_s from the blurred crop; target: the sharp latent;
  text "sharp and clean image".
- T2, blur transfer (Eq. 6): two blurry images y1, y2 of the target domain (unpaired, no ground
  truth); f_b from y1; target: y2's latent; text "blurry image".
- T3, reconstruction (Eq. 7): one target-domain image y; f_s and f_b both from y; target: y's
  latent; text "blurry image".

Stage ``warmup`` samples T1 and T2 1:1, stage ``joint`` samples T1, T2, T3 1:1:1 (Eq. 8 with
alpha = beta = gamma = 1/3 as sampling weights), one task per step, drawn from (seed, step) so
a resumed run draws the same tasks. Only the Q-Formers, the adapter and the new K'/V' are
trained. Inference keeps Q_s and the adapter (no blur branch): DDIM, 30 steps, classifier-free
guidance 7.5 against the empty prompt.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deblurbench.annotate.synth import CORRUPTIONS, corrupt
from deblurbench.sd.base import snapshot_folder
from deblurbench.sd.control import controlled_eps, make_controlnet, refresh_from_unet
from deblurbench.sd.latents import crop
from deblurbench.sd.method import SDMethod
from deblurbench.sd.tokenizer import bpe_ids
from deblurbench.sd.training import noise_loss, noised

from .decoupled import install
from .qformer import QFormerExtractor, clip_pixels
from .refined_vae import RefinedVAE, encoder_loss

TASKS = {"warmup": ("t1", "t2"), "joint": ("t1", "t2", "t3")}
REFINED_STAGES = ("vae-encoder", "vae-decoder")  # appendix B, after the joint stage
CLIP_REPO = "openai/clip-vit-large-patch14"


def task_for(stage: str, step: int, seed: int = 0) -> str:
    """The task of training step ``step`` in ``stage``: uniform over the stage's tasks."""
    if stage not in TASKS:
        raise ValueError(f"bd-diff: stage must be one of {', '.join(TASKS)} (or base), got "
                         f"{stage!r}")
    tasks = TASKS[stage]
    rng = np.random.default_rng([seed, step, 7])
    return tasks[int(rng.integers(len(tasks)))]


def synthetic_blur(sharp: torch.Tensor, seed: tuple[int, ...],
                   severities: tuple[int, ...] = (1, 2, 3, 4, 5)) -> torch.Tensor:
    """Each crop blurred by a corruption-style kind and severity drawn from ``seed`` (T1)."""
    rng = np.random.default_rng(list(seed))
    out = []
    for img in sharp.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy():
        kind = CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))]
        sev = int(severities[int(rng.integers(len(severities)))])
        out.append(corrupt(np.ascontiguousarray(img), kind, sev, rng).image)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(sharp)


class BDDiffMethod(SDMethod):
    def build(self) -> None:
        p = self.params
        unet = self.base.unet
        dim = self.base.cross_attention_dim
        self.vision, self.clip_size = self._clip()
        vdim = int(self.vision.config.hidden_size)
        q = {"hidden": int(p["qformer_hidden"]), "layers": int(p["qformer_layers"]),
             "heads": int(p["qformer_heads"]), "intermediate": int(p["qformer_intermediate"]),
             "n_queries": int(p["n_queries"])}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(p.get("init_seed", 0)) + 1)
            self.q_s = QFormerExtractor(vdim, dim, bpe_ids(str(p["structure_text"])), **q)
            self.q_b = QFormerExtractor(vdim, dim, bpe_ids(str(p["blur_text"])), **q)
        self._load_qformers()
        ch = int(unet.config.in_channels)
        self.adapter = make_controlnet(unet, ch, 0, int(p["hint_width"]),
                                       seed=int(p.get("init_seed", 0)))
        self._store: dict[str, torch.Tensor] = {}
        self.blur_kv = install(unet, self._store)
        self.refined = (RefinedVAE(self.base.vae, int(p.get("refined_width", 32)))
                        if p.get("refined_vae") else None)

    # -- parts --------------------------------------------------------------------------------
    def _clip(self):
        """CLIP's image encoder: the imported ViT-L/14 (part ``clip-vit-l14``), else a tiny
        random-init one of the same architecture; frozen either way."""
        from transformers import CLIPVisionConfig, CLIPVisionModel

        p = self.params
        paths = self.pretrained("clip-vit-l14")
        if paths is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(p.get("init_seed", 0)) + 2)
                size = int(p["tiny_clip_size"])
                model = CLIPVisionModel(CLIPVisionConfig(
                    hidden_size=int(p["tiny_clip_width"]), intermediate_size=2 * int(
                        p["tiny_clip_width"]), num_hidden_layers=int(p["tiny_clip_layers"]),
                    num_attention_heads=4, image_size=size, patch_size=int(p["tiny_clip_patch"]),
                    projection_dim=int(p["tiny_clip_width"])))
        else:
            with tempfile.TemporaryDirectory(prefix="clip-snapshot-") as tmp:
                model = CLIPVisionModel.from_pretrained(
                    str(snapshot_folder(paths, CLIP_REPO, Path(tmp))), local_files_only=True)
            size = int(model.config.image_size)
        model.requires_grad_(False).eval()
        return model, size

    def _load_qformers(self) -> None:
        """BLIP-Diffusion's Q-Former (part ``blipdiffusion-qformer``) into both extractors, by
        key and shape; the run records how many tensors matched."""
        paths = self.pretrained("blipdiffusion-qformer")
        if paths is None:
            return
        from safetensors.torch import load_file

        path = next(iter(paths.values()))
        state = load_file(str(path))
        for ext in (self.q_s, self.q_b):
            own = ext.qformer.state_dict()
            hits = {k.removeprefix("qformer."): v for k, v in state.items()
                    if k.removeprefix("qformer.") in own
                    and own[k.removeprefix("qformer.")].shape == v.shape}
            if len(hits) < len(own) // 2:
                raise ValueError(f"{path}: only {len(hits)} of the Q-Former's {len(own)} "
                                 f"tensors match by name and shape; not a BLIP-2 Q-Former of "
                                 f"this size")
            ext.qformer.load_state_dict(hits, strict=False)
        self._weights[-1]["matched_tensors"] = len(hits)

    def trainable(self) -> dict[str, torch.nn.Module]:
        mods = {"q_s": self.q_s, "q_b": self.q_b, "adapter": self.adapter,
                "blur_kv": self.blur_kv}
        return mods if self.refined is None else mods | {"refined": self.refined}

    def after_base(self) -> None:
        refresh_from_unet(self.adapter, self.base.unet)
        mods = dict(self.base.unet.named_modules())
        with torch.no_grad():  # K', V' restart from the trained K, V (their initialisation)
            for kv in self.blur_kv.values():
                attn = mods[kv.source]
                kv.to_k.weight.copy_(attn.to_k.weight)
                kv.to_v.weight.copy_(attn.to_v.weight)

    def clip_features(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen CLIP encoder's tokens of ``images`` (both Q-Formers read the same)."""
        with torch.no_grad():
            return self.vision(pixel_values=clip_pixels(images, self.clip_size)).last_hidden_state

    def features(self, images: torch.Tensor, extractor: torch.nn.Module) -> torch.Tensor:
        return extractor(self.clip_features(images))

    def _eps(self, zt, t, text, hint, f_s, f_b=None) -> torch.Tensor:
        self._store.clear()
        if f_b is not None:
            self._store["f_b"] = f_b
        try:
            if f_s is None:  # T2: the blur branch alone, no adapter
                tt = t.expand(zt.shape[0]) if t.dim() else t.repeat(zt.shape[0])
                return self.base.unet(zt, tt, encoder_hidden_states=text, return_dict=False)[0]
            return controlled_eps(self.base.unet, self.net("adapter"), zt, t, text, hint,
                                  control_context=f_s)
        finally:
            self._store.clear()

    def _texts(self, n: int, which: str) -> torch.Tensor:
        return self.base.text_embeddings([str(self.params[which])] * n)

    # -- training -----------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        stage, step = getattr(self, "train_stage", "joint"), int(getattr(self, "train_step", 0))
        if stage in REFINED_STAGES:
            if self.refined is None:
                raise ValueError(f"bd-diff: stage {stage!r} trains the refined VAE; set "
                                 f"refined_vae: true (variant refined-vae)")
            if stage == "vae-encoder":
                return {"vae_encoder": encoder_loss(self.refined, self.base.vae,
                                                    batch["blurry"], batch["sharp"])}
            return {"vae_decoder": self.decoder_loss(batch["blurry"], batch["sharp"])}
        seed = int(self.params.get("task_seed", 0))
        task = task_for(stage, step, seed)
        return {task: self.task_loss(task, batch, (seed, step))}

    def task_loss(self, task: str, batch: dict[str, torch.Tensor],
                  seed: tuple[int, ...] = (0, 0)) -> torch.Tensor:
        """The noise loss of one task (Eq. 4, 6 or 7) on one micro-batch."""
        q_s, q_b = self.net("q_s"), self.net("q_b")
        if task == "t1":
            sharp = batch["sharp"]
            y = synthetic_blur(sharp, seed, tuple(self.params["t1_severities"]))
            target, text = self.encode(sharp), self._texts(len(sharp), "sharp_prompt")
            f_s, f_b, hint = self.features(y, q_s), None, self.encode(y)
        else:
            if "unpaired_blurry" not in batch:
                raise ValueError("bd-diff: tasks T2 and T3 need target-domain blurry images "
                                 "(params unpaired_split)")
            y = batch["unpaired_blurry"]
            text = self._texts(len(y), "blurry_prompt")
            if task == "t2":  # y1's blur on y2's content: a different image of the same domain
                target = self.encode(y.roll(1, dims=0))
                f_s, f_b, hint = None, self.features(y, q_b), None
            elif task == "t3":
                target = self.encode(y)
                vis = self.clip_features(y)  # one CLIP pass for both extractors
                f_s, f_b, hint = q_s(vis), q_b(vis), target
            else:
                raise ValueError(f"bd-diff: unknown task {task!r}")
        zt, t, noise = noised(self.base.ddpm(), target)
        return noise_loss(self._eps(zt, t, text, hint, f_s, f_b), noise)

    def decoder_loss(self, blurry: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        """Phase 2 of the refined VAE: MSE(V'.decode(BD-Diff(V'.encode(blurry))), sharp), the
        encoder refiner and BD-Diff fixed; BD-Diff samples ``refine_sample_steps`` steps."""
        from dataclasses import replace

        settings = replace(self.sampler, steps=int(self.params.get("refine_sample_steps", 2)))
        self.refined.enabled = True
        try:
            with torch.no_grad():
                z_lr = self.encode(blurry)  # keeps the refined encoder features as skips
                self.refined.enabled = False
                z = self.sample(blurry, z_lr, settings)
                self.refined.enabled = True
            out = (self.base.vae.decode(z / self.base.latent_scale).sample + 1) / 2
        finally:
            self.refined.enabled = False
        return F.mse_loss(out, sharp)

    def encode_input(self, batch: torch.Tensor) -> torch.Tensor:
        if self.refined is None:
            return super().encode_input(batch)
        self.base.vae.disable_tiling()  # the skips are whole-image features
        self.refined.enabled = True
        try:
            return self.encode(batch)
        finally:
            self.refined.enabled = False

    def decode_output(self, z: torch.Tensor) -> torch.Tensor:
        if self.refined is None:
            return super().decode_output(z)
        self.refined.enabled = True
        try:
            return super().decode_output(z)
        finally:
            self.refined.enabled = False

    # -- sampling -------------------------------------------------------------------------------
    def context(self, blurry: torch.Tensor, z_lr: torch.Tensor) -> dict[str, Any]:
        f_s = self.features(blurry, self.q_s)
        n = blurry.shape[0]
        return {"f_s": f_s, "z": z_lr,
                "text": {True: self._texts(n, "sharp_prompt"),
                         False: self.base.text_embeddings(
                             [str(self.params.get("negative_prompt", ""))] * n)}}

    def eps(self, zt, t, window, conditional, ctx) -> torch.Tensor:
        return self._eps(zt, t, ctx["text"][conditional], crop(ctx["z"], window), ctx["f_s"])
