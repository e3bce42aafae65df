"""`params.yaml` as typed dataclasses, and strict YAML-to-dataclass loading for cards.

Unknown or missing keys fail loudly with the file and the key, so a typo in a card or in
`params.yaml` never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from deblurbench.pba_definition import PBA_BORDERS, PBAParams  # noqa: F401  (re-exported)

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file that does not match its schema."""


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` (file and key path) prefixes errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown key {k!r}{hint}; allowed: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        out = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        vt = args[1] if len(args) > 1 else Any
        return {k: _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


# ---------------------------------------------------------------------------------------------
# params.yaml


@dataclass(frozen=True)
class SynthParams:
    """The embedded `synthetic-defocus` data set (thin-lens defocus over skimage photos and
    dead-leaves pictures); splits train / val / test, disjoint by photo."""

    seed: int = 2026
    photos: list[str] = field(default_factory=lambda: [
        "astronaut", "chelsea", "immunohistochemistry", "hubble_deep_field"])  # train, colour
    # More train photos from skimage.data (offline); grey ones are tinted into RGB.
    extra_photos: list[str] = field(default_factory=lambda: [
        "retina", "colorwheel", "logo", "brick", "cell", "clock", "coins", "grass", "gravel",
        "horse", "moon", "page", "text"])
    scenes_per_photo: int = 4  # per train photo (photos and extra_photos)
    dead_leaves: int = 160  # train dead-leaves scenes (max_side x max_side)
    val_photos: list[str] = field(default_factory=lambda: ["motorcycle_left", "camera"])
    val_scenes_per_photo: int = 6
    val_dead_leaves: int = 0
    test_photos: list[str] = field(default_factory=lambda: ["coffee", "rocket"])
    test_scenes_per_photo: int = 8
    # `synth target`: more scenes of the test photos, blurry only (no ground truth written)
    target_scenes_per_photo: int = 4
    dead_leaves_r_min_px: float = 1.5  # disc radii ~ r^-3 on [r_min, r_max], output pixels
    dead_leaves_r_max_px: float = 96.0
    dead_leaves_textured: float = 0.3  # share of discs with a sinusoid or noise texture
    max_side: int = 256
    depth_near_m: float = 1.0
    depth_far_m: float = 12.0
    # Each scene's focus distance (searched between these depth quantiles) is the one whose
    # mean CoC radius is closest to a target, stratified over each split's scenes in this range.
    focus_quantile: list[float] = field(default_factory=lambda: [0.02, 0.98])
    scene_mean_radius_px: list[float] = field(default_factory=lambda: [1.0, 4.0])
    focal_length_mm: float = 85.0
    f_number: float = 1.4
    sensor_width_mm: float = 36.0  # spans max_side pixels (the pixel pitch)
    max_radius_px: float = 8.0
    n_layers: int = 24
    # `deblurbench synth misalign`: the sharp target zoomed by up to this factor and shifted
    # by up to this many pixels against the blurry image (SDD-style pairs, true alignment kept)
    misalign_zoom: float = 0.03
    misalign_shift_px: float = 4.0


@dataclass(frozen=True)
class CrossRun:
    """A trained method tested on another data set than its checkpoint's (papers train on DPDD
    and test on RealDOF): its own run, ``outputs/<method>~<trained_on>/<dataset>/<split>``."""

    method: str
    trained_on: str
    dataset: str
    split: str = "test"


@dataclass(frozen=True)
class RunParams:
    # methods run without a checkpoint; trainable ones trained by the pipeline go in
    # train.methods, and each of those runs on its own checkpoint (dvc stage `evaluate`)
    methods: list[str] = field(default_factory=lambda: ["identity", "unsharp-mask"])
    splits: list[str] = field(default_factory=lambda: ["test"])
    cross: list[CrossRun] = field(default_factory=list)
    device: str = "auto"
    output_bits: int = 16
    config: Literal["auto", "small", "paper"] = "auto"  # auto: small on CPU, paper on a GPU
    seed: int = 0


@dataclass(frozen=True)
class SyntheticCopy:
    """A data set made by blurring the sharp images of a prepared one (stage ``copy@<i>``:
    ``deblurbench synth copy --out NAME``, which runs ``synth KIND --from SOURCE`` with these
    settings): a method's own training blur, such as DeblurDiff's motion blur, trained on
    through ``train.extra``."""

    name: str
    kind: str  # one of deblurbench.annotate.synth_dataset.KINDS (checked by the command)
    source: str
    kernel_size: int = 31  # motion kernels (odd px)
    severity: int = 3  # corruption-style kinds, 1..5
    noise: float = 0.0  # defocus read-noise sigma


@dataclass(frozen=True)
class ExtraTraining:
    """A method also trained on a data set the pipeline does not score (its paper's own
    training data: DeblurDiff on motion blur); run it elsewhere with ``run.cross``."""

    method: str
    dataset: str


@dataclass(frozen=True)
class TrainParams:
    """`methods train`: which trainable methods the pipeline trains, on each data set."""

    methods: list[str] = field(default_factory=list)
    # the data sets they train on (a subset of `datasets`, each with ground truth); None: all
    datasets: list[str] | None = None
    split: str = "train"
    device: str = "auto"
    config: Literal["auto", "small", "paper"] = "auto"
    seed: int = 0
    max_seconds: float | None = None  # stop (resumably) after this long
    # per-method parameter overrides on top of the card's resolved params (a training budget:
    # {nafnet: {train_steps: 6000}}); `methods run` applies the same, so they stay matched
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: list[ExtraTraining] = field(default_factory=list)  # dvc stage train-extra


@dataclass(frozen=True)
class ScoreParams:
    protocol: str = "defocus"
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim", "mae"])
    db: str = "leaderboard/results.duckdb"
    metrics_dir: str = "metrics"
    regions: bool = False  # also score FR metrics per PBA blur level of the blurry input
    reference: str = "original"  # or "aligned": the data set's aligned GT with its valid mask
    device: str = "auto"  # learned metrics: cuda when present, else cpu
    reported: str | None = "leaderboard/reported.csv"  # papers' numbers loaded beside ours
    # same-size images per forward pass of batchable (learned) metrics; auto: 4 on CUDA, 1 on CPU
    batch_size: int | Literal["auto"] = "auto"
    batch_megapixels: float = 8.0  # ... within this many pixels: SDD's 8.8 MP go one at a time


@dataclass(frozen=True)
class RealDataParams:
    """Real data sets (fetch -> align -> report stages); off while ``datasets`` is empty."""

    datasets: list[str] = field(default_factory=list)
    max_download_gb: float = 100.0
    max_unpacked_gb: float = 200.0
    max_ratio: float = 100.0  # unpacked / packed size: above it an archive is a zip bomb
    align_model: Literal["translation", "euclidean", "affine", "homography"] = "affine"
    align_flow: Literal["dis", "farneback", "none"] = "dis"
    align_lambda: float = 0.35  # JDRL Eq. 13
    align_work_side: int = 1024
    align_mask_tile: int = 512
    derive: dict[str, str] = field(default_factory=dict)  # resize variant -> its source set


DEFAULT_PIXEL_MAP_PATCH = 64  # the finest PBA scale: per-pixel maps at its resolution


@dataclass(frozen=True)
class PBASection(PBAParams):
    """params.yaml ``pba``: the PBA definition plus ``pixel_map_patch``, the patch size of the
    per-pixel level map (regions, training inputs); typed when params.yaml is read."""

    pixel_map_patch: int = DEFAULT_PIXEL_MAP_PATCH

    def __post_init__(self) -> None:
        super().__post_init__()
        patch = self.pixel_map_patch
        if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
            raise ValueError(f"pixel_map_patch: expected a positive integer, got {patch!r}")
        if patch < self.ssim_window:
            raise ValueError(f"pixel_map_patch: {patch} is smaller than the "
                             f"{self.ssim_window}-px SSIM window")

    def definition(self) -> PBAParams:
        """The PBA definition alone (what a stored annotation records)."""
        return PBAParams(**{f.name: getattr(self, f.name)
                            for f in dataclasses.fields(PBAParams)})


def pba_section(data: Any, where: str = "params.yaml:pba") -> PBASection:
    """The typed ``pba`` section; a bad value is a :class:`ConfigError` naming it."""
    if isinstance(data, PBASection):
        return data
    try:
        return from_dict(PBASection, dict(data or {}), where)
    except ConfigError:
        raise
    except ValueError as exc:  # PBAParams / PBASection checks
        raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Params:
    datasets: list[str] = field(default_factory=lambda: ["synthetic-defocus"])
    synth: SynthParams = field(default_factory=SynthParams)
    copies: list[SyntheticCopy] = field(default_factory=list)  # dvc stage copy
    run: RunParams = field(default_factory=RunParams)
    train: TrainParams = field(default_factory=TrainParams)
    score: ScoreParams = field(default_factory=ScoreParams)
    real: RealDataParams = field(default_factory=RealDataParams)
    pba: PBASection = field(default_factory=PBASection)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read `params.yaml` once into :class:`Params`; a missing file gives the defaults."""
    path = Path(path)
    if not path.exists():
        return Params()
    data = dict(load_yaml(path) or {})
    pba = pba_section(data.pop("pba", None), f"{path}:pba")
    params = dataclasses.replace(from_dict(Params, data, str(path)), pba=pba)
    both = sorted(set(params.run.methods) & set(params.train.methods))
    if both:
        raise ConfigError(f"{path}: {', '.join(both)} listed under run.methods and "
                          f"train.methods; a method the pipeline trains is listed under "
                          f"train.methods only (it then runs on its own checkpoint)")
    copies = [c.name for c in params.copies]
    for i, c in enumerate(params.copies):
        if c.source not in params.datasets:
            raise ConfigError(f"{path}: copies[{i}].source {c.source!r} is not under datasets; "
                              f"a copy blurs a data set the pipeline prepares")
        if c.name in params.datasets or c.name in copies[:i]:
            raise ConfigError(f"{path}: copies[{i}].name {c.name!r} is already a data set of the "
                              f"pipeline; a copy needs a name of its own")
    for i, e in enumerate(params.train.extra):
        if e.method not in params.train.methods:
            raise ConfigError(f"{path}: train.extra[{i}].method {e.method!r} is not under "
                              f"train.methods")
        if e.dataset not in params.datasets and e.dataset not in copies:
            raise ConfigError(f"{path}: train.extra[{i}].dataset {e.dataset!r} is neither under "
                              f"datasets nor made by copies; the pipeline would have nothing to "
                              f"train on")
    if params.train.datasets is None:
        params = dataclasses.replace(params, train=dataclasses.replace(
            params.train, datasets=list(params.datasets)))
    stray = [d for d in params.train.datasets if d not in params.datasets]
    if stray:
        raise ConfigError(f"{path}: train.datasets lists {', '.join(stray)}, which datasets "
                          f"does not; the pipeline trains only on data sets it prepares")
    for i, c in enumerate(params.run.cross):
        trained = [*params.train.datasets, *(e.dataset for e in params.train.extra
                                       if e.method == c.method)]
        for what, name, pool, key in (("method", c.method, params.train.methods, "train.methods"),
                                      ("trained_on", c.trained_on, trained,
                                       "train.datasets or train.extra"),
                                      ("dataset", c.dataset, params.datasets, "datasets")):
            if name not in pool:
                raise ConfigError(f"{path}: run.cross[{i}].{what} {name!r} is not under {key}")
    # The align and report stages read the manifest that prepare@<name> makes, and prepare
    # runs over `datasets`: a real data set listed only under real.datasets would leave
    # `dvc repro` with a stage whose input nothing produces.
    orphans = [d for d in params.real.datasets if d not in params.datasets]
    if orphans:
        raise ConfigError(f"{path}: real.datasets lists {', '.join(orphans)} but datasets does "
                          f"not; add {'them' if len(orphans) > 1 else 'it'} to datasets too, so "
                          f"the pipeline prepares what it fetches")
    return params


def pipeline_runs(params: Params) -> list[tuple[str, str, str]]:
    """(run folder name, data set, split) of every run the pipeline makes, for ``score``."""
    trained_on = params.train.datasets if params.train.datasets is not None else params.datasets
    out = [(m, d, s) for d in params.datasets for s in params.run.splits
           for m in [*params.run.methods, *(params.train.methods if d in trained_on else [])]]
    out += [(f"{c.method}~{c.trained_on}", c.dataset, c.split) for c in params.run.cross]
    return out
