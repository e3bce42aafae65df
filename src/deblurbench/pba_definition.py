"""The PBA definition as data: its constants and their checks, with no engine code, so the
typed params (``deblurbench.config``) and the annotator (``deblurbench.annotate.pba``) share one
class. A DVC stage that computes PBA depends on this file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: PBA's border modes (scipy's names; ``deblurbench.annotate.pba`` maps them to OpenCV's)
PBA_BORDERS = ("reflect", "mirror")
#: scikit-image fixes the window truncation at 3.5 sigma when ``gaussian_weights=True``.
_SKIMAGE_TRUNCATE = 3.5


@dataclass(frozen=True)
class PBAParams:
    """The PBA definition (MBSD implementation details; ``deblurbench.annotate.pba`` computes
    it); ``border`` uses scipy's mode names."""

    luma_weights: tuple[float, float, float] = (0.299, 0.587, 0.114)
    reblur_sigma: float = 3.6
    reblur_radius: int = 11
    laplacian: tuple[tuple[float, ...], ...] = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
    border: Literal["reflect", "mirror"] = "reflect"
    patch_sizes: tuple[int, ...] = (64, 128, 256, 512)
    thresholds: tuple[float, float, float] = (0.25, 0.35, 0.75)
    ssim_sigma: float = 1.5
    ssim_data_range: float = 1.0
    ssim_k1: float = 0.01
    ssim_k2: float = 0.03

    def __post_init__(self) -> None:
        n = len(self.laplacian)
        if n % 2 == 0 or any(len(row) != n for row in self.laplacian):
            raise ValueError(f"laplacian: expected an odd square kernel, got {self.laplacian}")
        if self.border not in PBA_BORDERS:
            raise ValueError(f"border: expected one of {sorted(PBA_BORDERS)}, got "
                             f"{self.border!r}")
        if list(self.thresholds) != sorted(self.thresholds) or len(self.thresholds) != 3:
            raise ValueError(f"thresholds: expected 3 increasing values, got {self.thresholds}")
        too_small = [s for s in self.patch_sizes if s < self.ssim_window]
        if not self.patch_sizes or too_small:
            raise ValueError(f"patch_sizes: need sizes >= the {self.ssim_window}-px SSIM window, "
                             f"got {self.patch_sizes}")
        if self.reblur_sigma <= 0 or self.ssim_sigma <= 0 or self.reblur_radius < 1:
            raise ValueError("reblur_sigma, ssim_sigma and reblur_radius must be positive")
        if self.ssim_k1 <= 0 or self.ssim_k2 <= 0 or self.ssim_data_range <= 0:
            raise ValueError("ssim_k1, ssim_k2 and ssim_data_range must be positive")

    @property
    def ssim_pad(self) -> int:
        """SSIM window radius, as scikit-image derives it (5 for sigma 1.5)."""
        return int(_SKIMAGE_TRUNCATE * self.ssim_sigma + 0.5)

    @property
    def ssim_window(self) -> int:
        return 2 * self.ssim_pad + 1
