"""Modulated deformable convolution (DCNv2, Zhu et al. CVPR 2019) with two interchangeable paths.

Offsets and masks follow ``torchvision.ops.deform_conv2d``: for input N x C x H x W and a
kh x kw kernel, ``offset`` is N x (2 * offset_groups * kh * kw) x H' x W', holding for each
offset group and each kernel tap (row-major) a (dy, dx) pair in pixels; ``mask`` is
N x (offset_groups * kh * kw) x H' x W'.

Why two paths: torchvision's CPU kernel is very slow (measured in this project at 64 channels,
256 x 256: ~37x a plain conv forward, 0.9 s, and 3.65 s backward), while sampling the kh * kw
shifted copies with ``grid_sample`` and contracting them with one matmul is several times faster
on CPU. On CUDA torchvision's kernel is the faster one. Both paths read the same ``weight`` and
``bias``, so a module can be trained on one and run on the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMPLS = ("auto", "torchvision", "grid_sample")


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def choose_impl(impl: str, device: torch.device) -> str:
    """The concrete path ``impl`` stands for on ``device``: "auto" is torchvision on CUDA."""
    if impl not in IMPLS:
        raise ValueError(f"unknown deformable-conv impl {impl!r}; expected one of {IMPLS}")
    if impl != "auto":
        return impl
    return "torchvision" if device.type == "cuda" else "grid_sample"


def torchvision_deform(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None, stride: tuple[int, int],
                       padding: tuple[int, int], dilation: tuple[int, int],
                       mask: torch.Tensor | None) -> torch.Tensor:
    """torchvision's kernel: the reference, and the fast path on CUDA."""
    from torchvision.ops import deform_conv2d  # imported late: listing methods stays light

    return deform_conv2d(x, offset, weight, bias, stride=stride, padding=padding,
                         dilation=dilation, mask=mask)


def _tap_grid(offset: torch.Tensor, size: tuple[int, int], kernel: tuple[int, int],
              stride: tuple[int, int], padding: tuple[int, int],
              dilation: tuple[int, int]) -> torch.Tensor:
    """Sampling positions as grid_sample coordinates: (N * G) x (K * H') x W' x 2, (x, y).

    Pixel p maps to (2p + 1) / size - 1 under align_corners=False; with zeros padding the
    bilinear weights then equal torchvision's, which also lets out-of-image corners count 0.
    """
    n, _, ho, wo = offset.shape
    (h, w), (kh, kw) = size, kernel
    k = kh * kw
    dev, dt = offset.device, offset.dtype
    oy = torch.arange(ho, device=dev, dtype=dt) * stride[0] - padding[0]
    ox = torch.arange(wo, device=dev, dtype=dt) * stride[1] - padding[1]
    ty = torch.arange(kh, device=dev, dtype=dt).repeat_interleave(kw) * dilation[0]
    tx = torch.arange(kw, device=dev, dtype=dt).repeat(kh) * dilation[1]
    base_y = (ty[:, None] + oy[None, :])[:, :, None]  # K x H' x 1
    base_x = (tx[:, None] + ox[None, :])[:, None, :]  # K x 1 x W'
    off = offset.reshape(n, -1, k, 2, ho, wo)  # may be a channel slice
    gy = (2 * (base_y + off[:, :, :, 0]) + 1) / h - 1
    gx = (2 * (base_x + off[:, :, :, 1]) + 1) / w - 1
    return torch.stack((gx, gy), dim=-1).view(-1, k * ho, wo, 2)


def grid_sample_deform(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None, stride: tuple[int, int],
                       padding: tuple[int, int], dilation: tuple[int, int],
                       mask: torch.Tensor | None) -> torch.Tensor:
    """Deformable conv as bilinear sampling of every tap, then one grouped matmul."""
    n, c, h, w = x.shape
    cout, cin_g, kh, kw = weight.shape
    k = kh * kw
    ho, wo = offset.shape[-2:]
    og = offset.shape[1] // (2 * k)
    groups = c // cin_g
    grid = _tap_grid(offset, (h, w), (kh, kw), stride, padding, dilation)
    cols = F.grid_sample(x.reshape(n * og, c // og, h, w), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=False)
    cols = cols.view(n, og, c // og, k, ho, wo)
    if mask is not None:
        cols = cols * mask.reshape(n, og, 1, k, ho, wo)
    # channel order (offset group, channel in group) is the input's order; taps follow weight's
    cols = cols.reshape(n, groups, cin_g * k, ho * wo)
    out = torch.matmul(weight.reshape(groups, cout // groups, cin_g * k), cols)
    out = out.reshape(n, cout, ho, wo)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class DeformConv2d(nn.Module):
    """Modulated deformable conv; ``forward(x, offset, mask=None)`` in torchvision's layout.

    ``impl``: "torchvision", "grid_sample", or "auto" (torchvision on CUDA, grid_sample
    elsewhere), chosen at each call, so it may also be changed on a built module.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int | tuple[int, int] = 3,
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 1,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, offset_groups: int = 1,
                 bias: bool = True, impl: str = "auto"):
        super().__init__()
        choose_impl(impl, torch.device("cpu"))  # refuse an unknown name now, not at forward
        if in_ch % groups or out_ch % groups:
            raise ValueError(f"DeformConv2d: in_ch {in_ch} and out_ch {out_ch} must be "
                             f"divisible by groups {groups}")
        if in_ch % offset_groups:
            raise ValueError(f"DeformConv2d: in_ch {in_ch} must be divisible by "
                             f"offset_groups {offset_groups}")
        self.in_ch, self.out_ch = in_ch, out_ch
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding = _pair(stride), _pair(padding)
        self.dilation = _pair(dilation)
        self.groups, self.offset_groups = groups, offset_groups
        self.impl = impl
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_ch)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The same initial distribution as ``nn.Conv2d`` of the same shape."""
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        if self.bias is not None:
            bound = (self.weight[0].numel()) ** -0.5
            nn.init.uniform_(self.bias, -bound, bound)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """H' x W' of the output (and of ``offset`` and ``mask``) for an H x W input."""
        return tuple(  # type: ignore[return-value]
            (s + 2 * p - d * (k - 1) - 1) // st + 1
            for s, p, d, k, st in zip((h, w), self.padding, self.dilation, self.kernel_size,
                                      self.stride, strict=True))

    def _check(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f"DeformConv2d: input must be N x {self.in_ch} x H x W, "
                             f"got {tuple(x.shape)}")
        k = self.kernel_size[0] * self.kernel_size[1]
        n, hw = x.shape[0], self.output_size(*x.shape[-2:])
        want = (n, 2 * self.offset_groups * k, *hw)
        if tuple(offset.shape) != want:
            raise ValueError(f"DeformConv2d: offset must be {want}, got {tuple(offset.shape)}")
        if mask is not None and tuple(mask.shape) != (n, self.offset_groups * k, *hw):
            raise ValueError(f"DeformConv2d: mask must be {(n, self.offset_groups * k, *hw)}, "
                             f"got {tuple(mask.shape)}")

    def forward(self, x: torch.Tensor, offset: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x, offset, mask)
        path = choose_impl(self.impl, x.device)
        fn = torchvision_deform if path == "torchvision" else grid_sample_deform
        return fn(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation,
                  mask)

    def extra_repr(self) -> str:
        return (f"{self.in_ch}, {self.out_ch}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, offset_groups={self.offset_groups}, impl={self.impl!r}")


class ModulatedDeformConv(DeformConv2d):
    """A deformable conv that predicts its own offsets and mask, from ``x`` or from ``feat``.

    The predicting conv starts at zero and the mask is ``2 * sigmoid(logit)``, so at
    initialisation the offsets are 0 and the mask is 1: the module is exactly a plain conv, and
    learns to deform from there (a plain ``sigmoid`` would start it at half the plain conv).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int | tuple[int, int] = 3,
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 1,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, offset_groups: int = 1,
                 bias: bool = True, impl: str = "auto", feat_ch: int | None = None):
        super().__init__(in_ch, out_ch, kernel_size, stride, padding, dilation, groups,
                         offset_groups, bias, impl)
        k = self.kernel_size[0] * self.kernel_size[1]
        self.conv_offset = nn.Conv2d(in_ch if feat_ch is None else feat_ch,
                                     3 * offset_groups * k, self.kernel_size, self.stride,
                                     self.padding, self.dilation)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def offset_mask(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(offset, mask) predicted from ``feat``, in torchvision's layout."""
        out = self.conv_offset(feat)
        n_off = 2 * self.offset_groups * self.kernel_size[0] * self.kernel_size[1]
        return out[:, :n_off], 2 * torch.sigmoid(out[:, n_off:])

    def forward(self, x: torch.Tensor,  # type: ignore[override]
                feat: torch.Tensor | None = None) -> torch.Tensor:
        offset, mask = self.offset_mask(x if feat is None else feat)
        return super().forward(x, offset, mask)
