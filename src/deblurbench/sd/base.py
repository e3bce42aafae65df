"""The frozen Stable-Diffusion base: an imported snapshot, or a tiny random-init stand-in.

A method card lists the base as a ``pretrained:`` part whose files are the snapshot's own
(``<repo>/unet/config.json``, ``<repo>/unet/diffusion_pytorch_model.safetensors``, ...). When a
user has imported them (``deblurbench weights import DIR``), :func:`load_base` lays them out as a
diffusers folder and loads every component with its ``from_pretrained``; nothing is downloaded.
Otherwise it builds a *tiny* model of the same architecture (about 1.5 M U-Net, 0.25 M VAE,
1.6 M text encoder parameters, seeded), and every record says "tiny, random init": such a row
measures the method's plumbing, never its real quality.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from deblurbench.sd.tokenizer import EOT, VOCAB_SIZE, tokenize

if TYPE_CHECKING:
    from deblurbench.methods.base import Method

#: the diffusers components of a snapshot and the files each needs
COMPONENT_FILES = {
    "unet": ("config.json", "diffusion_pytorch_model.safetensors"),
    "vae": ("config.json", "diffusion_pytorch_model.safetensors"),
    "text_encoder": ("config.json", "model.safetensors"),
    "scheduler": ("scheduler_config.json",),
}


@dataclass(frozen=True)
class Family:
    """What differs between the SD versions the papers build on."""

    repo: str  # the hub repository the card's files come from
    pad_id: int  # the tokenizer's padding id
    prediction_type: str = "epsilon"
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    train_timesteps: int = 1000

    def scheduler_config(self) -> dict[str, Any]:
        return {"num_train_timesteps": self.train_timesteps, "beta_start": self.beta_start,
                "beta_end": self.beta_end, "beta_schedule": self.beta_schedule,
                "prediction_type": self.prediction_type, "clip_sample": False,
                "set_alpha_to_one": False, "steps_offset": 1}


FAMILIES = {
    "sd2-base": Family("stabilityai/stable-diffusion-2-base", pad_id=0),  # MBSD
    "sd21-base": Family("stabilityai/stable-diffusion-2-1-base", pad_id=0),  # DeblurDiff
    "sd15": Family("stable-diffusion-v1-5/stable-diffusion-v1-5", pad_id=EOT),  # BD-Diff
}

#: the tiny stand-in: SD's layout (cross-attention down/up blocks, a 4-channel KL VAE with an
#: 8x down-sampling, a CLIP text transformer over the full vocabulary), narrow and shallow
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "projection_dim": 32}
TINY_UNET = {"block_out_channels": (32, 64, 64), "layers_per_block": 1,
             "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
             "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
             "attention_head_dim": 8, "norm_num_groups": 8}
TINY_VAE = {"block_out_channels": (8, 16, 32, 32), "layers_per_block": 1,
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4, "norm_num_groups": 8}
SD_LATENT_SCALE = 0.18215  # SD 1.x/2.x VAE scaling factor


@dataclass
class SDBase:
    """The base model's components; frozen unless a method's stage says otherwise."""

    vae: Any
    unet: Any
    text_encoder: Any
    scheduler_config: dict[str, Any]
    family: Family
    source: str  # "pretrained <part>" or "tiny, random init"
    _embeddings: dict[tuple[str, ...], torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def is_tiny(self) -> bool:
        return self.source.startswith("tiny")

    @property
    def latent_scale(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def cross_attention_dim(self) -> int:
        return int(self.unet.config.cross_attention_dim)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"vae": self.vae, "unet": self.unet, "text_encoder": self.text_encoder}

    def freeze(self) -> None:
        for m in self.modules().values():
            m.requires_grad_(False)
            m.eval()

    def to(self, device: str | torch.device) -> SDBase:
        for m in self.modules().values():
            m.to(device)
        self._embeddings.clear()
        return self

    def text_embeddings(self, prompts: list[str]) -> torch.Tensor:
        """The text encoder's last hidden states, ``B x 77 x D``; cached per prompt list (the
        text encoder is frozen, and most prompts repeat every step)."""
        key = tuple(prompts)
        if key not in self._embeddings:
            device = next(self.text_encoder.parameters()).device
            ids = tokenize(list(prompts), self.family.pad_id).to(device)
            with torch.no_grad():
                self._embeddings[key] = self.text_encoder(ids)[0]
        return self._embeddings[key]

    def ddpm(self):
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.scheduler_config)

    def ddim(self):
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.scheduler_config)

    def save_pretrained(self, folder: str | Path) -> None:
        """A diffusers folder (``unet/``, ``vae/``, ``text_encoder/``, ``scheduler/``): the
        layout an imported hub snapshot has, so a tiny model round-trips through the same
        loader a real one uses."""
        from diffusers import DDIMScheduler

        folder = Path(folder)
        for name, m in self.modules().items():
            m.save_pretrained(folder / name)
        DDIMScheduler.from_config(self.scheduler_config).save_pretrained(folder / "scheduler")


def build_tiny(family: Family, seed: int = 0) -> SDBase:
    """The tiny random-init base, the same for a given seed (the RNG is forked, not moved)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text = CLIPTextModel(CLIPTextConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=77,
                                            pad_token_id=family.pad_id, **TINY_TEXT))
        unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                    cross_attention_dim=TINY_TEXT["hidden_size"], **TINY_UNET)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=64,
                            scaling_factor=SD_LATENT_SCALE, **TINY_VAE)
    return SDBase(vae, unet, text, family.scheduler_config(), family, "tiny, random init")


def snapshot_folder(paths: dict[str, Path], repo: str, dest: Path) -> Path:
    """Symlink a part's resolved files (``<repo>/<component>/<file>`` -> path) into ``dest`` in
    diffusers' layout. Imported hub files live in per-file snapshot folders of the HF cache, so
    the layout ``from_pretrained`` reads is assembled here rather than assumed."""
    for name, path in paths.items():
        if not name.startswith(repo + "/"):
            raise ValueError(f"{name}: not a file of {repo}")
        link = dest / name[len(repo) + 1:]
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(path).resolve())
    return dest


def load_folder(folder: str | Path, family: Family, source: str) -> SDBase:
    """Every component through its ``from_pretrained``, offline."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder = str(folder)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", local_files_only=True)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", local_files_only=True)
    text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder",
                                         local_files_only=True)
    sched = DDIMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True)
    return SDBase(vae, unet, text, dict(sched.config), family, source)


def load_base(method: Method, part_id: str, family: str, seed: int = 0) -> SDBase:
    """The card's pretrained part ``part_id`` when imported (else the tiny stand-in), frozen.
    The method's ``weights_used`` records which, with the reason for a fallback."""
    fam = FAMILIES[family]
    paths = method.pretrained(part_id)
    if paths is None:
        base = build_tiny(fam, seed)
    else:
        with tempfile.TemporaryDirectory(prefix="sd-snapshot-") as tmp:
            base = load_folder(snapshot_folder(paths, fam.repo, Path(tmp)), fam,
                               f"pretrained {part_id}")
    base.freeze()
    return base


def card_files(family: str) -> list[dict[str, Any]]:
    """The ``files`` a card lists for a family's snapshot (kind hf, digests recorded)."""
    repo = FAMILIES[family].repo
    out = []
    for comp, names in COMPONENT_FILES.items():
        for n in names:
            big = n.endswith(".safetensors")
            out.append({"name": f"{repo}/{comp}/{n}", "kind": "hf",
                        "url": f"https://huggingface.co/{repo}/resolve/main/{comp}/{n}",
                        "min_bytes": 1_000_000 if big else 100})
    return out
