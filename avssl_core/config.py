"""params.yaml plus ``--set section.key=value`` overrides -> typed, validated configuration.

Every stage reads its own section; DVC tracks exactly those sections as the stage's params.
Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from avssl_core.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")


@dataclass
class PathsConfig:
    """Where each stage reads and writes, relative to the project root (DVC runs stages there)."""

    data_root: str = "data"
    raw_dir: str = "data/raw"  # synthesized or downloaded source videos
    acquired_dir: str = "data/acquired"  # manifest.csv: one probed row per source file
    validated_dir: str = "data/validated"  # valid.csv, quarantine.csv, Data Docs
    clips_dir: str = "data/clips"  # segmented clips + index.csv
    metrics_dir: str = "metrics"  # small JSON summaries, declared as DVC metrics


@dataclass
class SynthConfig:
    """The built-in synthetic audio-visual world (avssl_core/synth)."""

    seed: int = 0
    num_videos: int = 48  # 6 per class: enough for every class in every split
    duration_s: float = 30.0
    fps: int = 25
    width: int = 128
    height: int = 128
    sample_rate: int = 16000
    min_objects: int = 1
    max_objects: int = 3
    distractor_prob: float = 0.5  # chance that each extra object is silent
    video_noise_std: float = 3.0  # pixel noise, 0-255 scale
    audio_noise_dbfs: float = -45.0  # background hiss level
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15}
    )
    crf: int = 18
    workers: int = 2


@dataclass
class LocalSourceConfig:
    path: str = ""  # a folder, or a glob such as /videos/**/*.mp4
    extensions: list[str] = field(default_factory=lambda: [".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v"])
    label_from_parent: bool = True  # <root>/<class>/<file> layout (UCF101): label = class folder name


@dataclass
class ManifestSourceConfig:
    csv: str = ""  # columns: path (file path or file:// / http(s):// URL); optional label, start, end, split
    path_column: str = "path"
    label_column: str = "label"
    start_column: str = "start"
    end_column: str = "end"
    split_column: str = "split"
    download_timeout_s: float = 60.0
    download_retries: int = 2  # extra attempts after a timeout, connection error or 5xx
    media_dir: str = ""  # relative paths resolve here; empty: the CSV's folder
    path_template: str = ""  # build the path from columns, e.g. "{youtube_id}_{start_seconds:06d}.mp4"
    columns: list[str] = field(default_factory=list)  # names for a header-less CSV (VGGSound's vggsound.csv)
    segment_duration_s: float | None = None  # a row with a start but no end ends this long after it


@dataclass
class LakeFSSourceConfig:
    repository: str = ""
    ref: str = "main"  # branch, tag or commit
    prefix: str = ""
    endpoint_url: str = ""  # empty: from LAKECTL_SERVER_ENDPOINT_URL or ~/.lakectl.yaml
    extensions: list[str] = field(default_factory=lambda: [".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v"])
    label_from_parent: bool = True  # <prefix>/<class>/<file> layout: label = class folder name
    pre_sign: bool = False  # true: read straight from the object store via pre-signed URLs
    timeout_s: float = 60.0  # per request (listing page or downloaded chunk)


@dataclass
class AcquireConfig:
    source: str = "synthetic"  # synthetic | local | manifest | lakefs
    local: LocalSourceConfig = field(default_factory=LocalSourceConfig)
    manifest: ManifestSourceConfig = field(default_factory=ManifestSourceConfig)
    lakefs: LakeFSSourceConfig = field(default_factory=LakeFSSourceConfig)
    workers: int = 2


@dataclass
class ValidateConfig:
    min_duration_s: float | None = None  # None: one clip (segment.clip_seconds)
    min_fps: float = 10.0
    max_fps: float = 120.0
    min_short_side: int = 64
    max_long_side: int = 4096
    min_audio_sample_rate: int = 16000
    min_audio_rms_dbfs: float = -60.0  # quieter than this over the whole file is "silent"
    min_frame_diff: float = 0.5  # mean absolute difference of consecutive gray frames, 0-255 scale
    duration_tolerance_s: float = 0.5  # a stream may decode this much shorter than the file announces
    min_valid_fraction: float = 0.5  # the stage fails below this share of valid files
    workers: int = 2


@dataclass
class SegmentConfig:
    clip_seconds: float = 10.0  # the co-attention paper trains on 10 s clips
    fps: int = 25
    short_side: int = 128
    sample_rate: int = 16000
    keyframe_interval: int = 5  # frames between keyframes: cheap random access when training
    crf: int = 20
    preset: str = "veryfast"
    threads: int = 1  # x264 threads per worker; parallelism comes from workers
    decode_threads: int = 0  # decoder threads per worker; 0: FFmpeg picks (large sources decode faster)
    workers: int = 2


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """The trainer's settings (avssl_core/train/trainer.py); the pretrain stage fills epochs and batch
    size from the method's preset unless params.yaml sets them."""

    epochs: int | None = None  # None: the method preset's (the pretrain stage fills it in)
    batch_size: int | None = None  # per process (None: the preset's); global = this * world * grad_accum
    grad_accum_steps: int = 1
    num_workers: int = 0  # DataLoader worker processes per training process
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16 | fp16 (CUDA, GradScaler)
    compile: bool = False  # torch.compile the training step
    channels_last_3d: bool = False  # model and 5-D inputs in channels_last_3d, for methods with 3-D convs
    checkpoint_every_steps: int = 500  # optimizer steps; a checkpoint is also written at each epoch end
    keep_checkpoints: int = 3  # newest checkpoints kept; <= 0 keeps all
    log_every_steps: int = 10
    max_failed_fraction: float = 0.05  # stop when more undecodable samples than this share ...
    min_samples_before_failure_check: int = 20  # ... once at least this many samples were drawn
    deterministic: bool = False  # deterministic kernels (slower), for bit-exact reruns and resumes
    max_steps: int | None = None  # stop after this many optimizer steps (smoke runs); schedules still span all epochs
    progress: bool = True  # tqdm bar on the main process

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "grad_accum_steps", "checkpoint_every_steps", "log_every_steps")
        for name in positive:
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ConfigError(f"train.num_workers must be >= 0, got {self.num_workers}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if not 0.0 <= self.max_failed_fraction <= 1.0:
            raise ConfigError(f"train.max_failed_fraction must be in [0, 1], got {self.max_failed_fraction}")
        if self.max_steps is not None and self.max_steps < 0:
            raise ConfigError(f"train.max_steps must be >= 0, got {self.max_steps}")


@dataclass
class PretrainConfig:
    """The pretrain stage: which method and preset, on which clips, and the trainer's settings."""

    method: str = "avts"  # what `avssl pretrain` trains when --method is not given
    preset: str = "tiny"  # tiny | paper
    methods: list[str] = field(default_factory=lambda: ["avts", "avc"])  # what dvc.yaml trains
    out_dir: str = "data/pretrain"  # runs go to <out_dir>/<method>/
    train_split: str = "train"
    val_split: str = "val"
    pairs_per_clip: int = 4  # training pairs drawn per clip in an epoch
    val_pairs: int = 256  # fixed, seeded held-out pairs for pretext accuracy
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> preset overrides
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    acquire: AcquireConfig = field(default_factory=AcquireConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)

    @property
    def min_duration_s(self) -> float:
        v = self.validate.min_duration_s
        return float(self.segment.clip_seconds if v is None else v)


def load_config(params: str | Path | None = DEFAULT_PARAMS, overrides: list[str] | None = None) -> Config:
    """Read ``params`` (missing file: all defaults) and apply ``key.path=value`` overrides."""
    raw: dict[str, Any] = {}
    if params is not None and Path(params).exists():
        try:
            raw = yaml.safe_load(Path(params).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{params}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{params}: expected a mapping of sections at the top level")
    elif params is not None and Path(params) != DEFAULT_PARAMS:
        raise ConfigError(f"{params}: parameters file not found")
    for item in overrides or []:
        _apply_override(raw, item)
    return build(Config, raw, where=str(params or "config"))


def _apply_override(raw: dict, item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected section.key=value")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc


def build(cls, data: Any, where: str):
    """Build dataclass ``cls`` from a mapping, checking keys and types; ``where`` names the location."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name], f"{where}.{f.name}")
    obj = cls(**kwargs)
    return obj


def _coerce(tp, value, where: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a {tp}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (arg,) = typing.get_args(tp)
        return [_coerce(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp)
        return {_coerce(kt, k, where): _coerce(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
