"""The Stable-Diffusion stack the SD-based methods share (MBSD, DeblurDiff, BD-Diff).

- :mod:`~deblurbench.sd.base`: the frozen base model (VAE, U-Net, text encoder, scheduler)
  from an imported hub snapshot through ``from_pretrained``, or a tiny random-init model of the
  same architecture, labelled as such;
- :mod:`~deblurbench.sd.tokenizer`: the CLIP BPE tokenizer, offline, from ``openai-clip``;
- :mod:`~deblurbench.sd.latents`: image <-> latent, and latent tiling that blends every
  denoising step (no seams);
- :mod:`~deblurbench.sd.sampler`: DDIM with step count, guidance scale and start as settings;
- :mod:`~deblurbench.sd.training`: the noise loss, what is trained and what is saved;
- :mod:`~deblurbench.sd.prompts`: where a prompt comes from (empty by default).
"""
