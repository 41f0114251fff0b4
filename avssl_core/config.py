"""params.yaml plus ``--set section.key=value`` overrides -> typed, validated configuration.

Every stage reads its own section; DVC tracks exactly those sections as the stage's params.
Unknown keys are errors (a typo must not silently fall back to a default).

Each section is a pydantic dataclass (``@section``): its fields' types, defaults and bounds are declared
once, below, and pydantic checks them strictly (no "3" for 3, no 1 for true) whenever a section is built,
from params.yaml or in code by ``dataclasses.replace``. To the rest of the code a section is a plain
dataclass (``dataclasses.fields``, ``replace``, ``asdict``). Pydantic's errors are reworded at the end of
this module into one ConfigError line per mistake: the dotted key, what is expected and what was given.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic.dataclasses
import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator

from avssl_core.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")

# Bounds, declared once per kind of number; their messages read "must be >= 1" / "must be in [0, 1]".
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


def section(cls):
    """Make ``cls`` a config section: a dataclass whose constructor validates every field (strict types,
    bounds, no unknown keys) and raises ConfigError naming the section's dotted key."""
    cls = pydantic.dataclasses.dataclass(cls, config=ConfigDict(extra="forbid", strict=True))
    validating_init = cls.__init__

    @functools.wraps(validating_init)
    def __init__(self, *args, **kwargs):
        _validate(validating_init, self, args, kwargs, where=self._params_key)

    cls.__init__ = __init__
    cls._validating_init = validating_init  # the loader's way in, with the parameters file in its messages
    cls._params_key = cls.__name__  # its dotted key in params.yaml, set at the end of this module
    return cls


@section
class PathsConfig:
    """Where each stage reads and writes, relative to the project root (DVC runs stages there)."""

    data_root: str = "data"
    raw_dir: str = "data/raw"  # synthesized or downloaded source videos
    acquired_dir: str = "data/acquired"  # manifest.csv: one probed row per source file
    validated_dir: str = "data/validated"  # valid.csv, quarantine.csv, Data Docs
    clips_dir: str = "data/clips"  # segmented clips + index.csv
    metrics_dir: str = "metrics"  # small JSON summaries, declared as DVC metrics


@section
class SynthConfig:
    """The built-in synthetic audio-visual world (avssl_core/synth)."""

    # shapes: each class has its own look, motion and sound (random features separate it);
    # binding: looks shared across classes, the class is what moves and sounds together (synth/binding.py)
    world: str = "shapes"
    seed: int = 0
    num_videos: int = 48  # 6 per class: enough for every class in every split
    duration_s: float = 30.0
    fps: int = 25
    width: int = 128
    height: int = 128
    sample_rate: int = 16000
    min_objects: int = 1
    max_objects: int = 3
    distractor_prob: float = 0.5  # chance that each extra object is silent (shapes; binding: always silent)
    video_noise_std: float = 3.0  # pixel noise, 0-255 scale
    audio_noise_dbfs: float = -45.0  # background hiss level
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15}
    )
    # Per-split video length overriding duration_s, e.g. {test: 4.0}: test videos only need one clip each
    # (intervals are over test source videos, so many short ones buy more than a few long ones).
    split_duration_s: dict[str, float] = field(default_factory=dict)
    crf: int = 18
    workers: int = 2


# Video containers a folder or bucket is searched for; .mpg/.mpeg are MPEG program streams (FFmpeg decodes
# them). Every other file found is named in <acquired_dir>/skipped.csv with its reason, never passed over.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg")


@section
class LocalSourceConfig:
    path: str = ""  # a folder, or a glob such as /videos/**/*.mp4
    extensions: list[str] = field(default_factory=lambda: list(VIDEO_EXTENSIONS))
    label_from_parent: bool = True  # <root>/<class>/<file> layout (UCF101): label = class folder name


@section
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
    # Roots before reads: every listed file must resolve (symlinks followed) under media_dir (or the CSV's
    # folder), the download folder, or one of these folders; anything else is refused without being opened.
    allowed_roots: list[str] = field(default_factory=list)
    # Downloads (http/https only): one file may not exceed max_download_bytes (checked against
    # Content-Length before reading and while streaming), nor all of one run's downloads download_budget_bytes.
    max_download_bytes: PositiveInt = 4 << 30  # 4 GiB: hours of HD video
    download_budget_bytes: PositiveInt = 100 << 30  # 100 GiB per run
    path_template: str = ""  # build the path from columns, e.g. "{youtube_id}_{start_seconds:06d}.mp4"
    columns: list[str] = field(default_factory=list)  # names for a header-less CSV (VGGSound's vggsound.csv)
    segment_duration_s: float | None = None  # a row with a start but no end ends this long after it


@section
class LakeFSSourceConfig:
    repository: str = ""
    ref: str = "main"  # branch, tag or commit
    prefix: str = ""
    endpoint_url: str = ""  # empty: from LAKECTL_SERVER_ENDPOINT_URL or ~/.lakectl.yaml
    extensions: list[str] = field(default_factory=lambda: list(VIDEO_EXTENSIONS))
    label_from_parent: bool = True  # <prefix>/<class>/<file> layout: label = class folder name
    pre_sign: bool = False  # true: read straight from the object store via pre-signed URLs
    timeout_s: float = 60.0  # per request (listing page or downloaded chunk)

    @field_validator("endpoint_url")
    @classmethod
    def _no_credentials(cls, url: str) -> str:
        # Parameters are recorded (dvc.lock, Prefect runs): credentials belong in LAKECTL_* or lakectl's file.
        if "@" in url.strip().split("://")[-1].split("/")[0]:
            raise ValueError("holds credentials (user:password@); parameters are recorded in dvc.lock and "
                             "run logs, so give them as LAKECTL_CREDENTIALS_* instead")
        return url


@section
class AcquireConfig:
    source: str = "synthetic"  # synthetic | local | manifest | lakefs
    local: LocalSourceConfig = field(default_factory=LocalSourceConfig)
    manifest: ManifestSourceConfig = field(default_factory=ManifestSourceConfig)
    lakefs: LakeFSSourceConfig = field(default_factory=LakeFSSourceConfig)
    workers: int = 2


@section
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


@section
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
    # Also decode every clip once into the frame store, <clips_dir>_frames (avssl_core/data/frame_store.py),
    # which training reads instead of the mp4s: raw uint8 frames, about 100 times the mp4s' size.
    frame_store: bool = True
    # The splits whose clips go into the store: those training reads (pretrain.train_split and val_split).
    # The evaluate stage decodes its test clips from the mp4s, once each, so storing them (most of the
    # default world's clips) would only fill the disk. Empty: every split.
    frame_store_splits: list[str] = field(default_factory=lambda: ["train", "val"])


Executor = Literal["processes", "dask"]


@section
class ParallelConfig:
    """Where the per-video work of validate and segment runs (avssl_core/parallel.py). Not a DVC param:
    the outputs are the same on every executor (tests/test_dask_stages.py), so switching reruns nothing."""

    executor: Executor = "processes"  # processes: a local pool of <stage>.workers
    # dask: None starts a LocalCluster of <stage>.workers processes for the stage; an address such as
    # tcp://host:8786 uses that running cluster (every worker needs avssl installed and the data paths)
    dask_scheduler: str | None = None


Precision = Literal["auto", "fp32", "bf16", "fp16"]


@section
class TrainConfig:
    """The trainer's settings (avssl_core/train/trainer.py); the pretrain stage fills epochs and batch
    size from the method's preset unless params.yaml sets them."""

    epochs: PositiveInt | None = None  # None: the method preset's (the pretrain stage fills it in)
    batch_size: PositiveInt | None = None  # per process (None: the preset's); global = this * world * grad_accum
    grad_accum_steps: PositiveInt = 1
    num_workers: NonNegativeInt = 0  # DataLoader worker processes per training process
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: Precision = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16 | fp16 (CUDA, GradScaler)
    compile: bool = False  # torch.compile the training step
    channels_last_3d: bool = False  # model and 5-D inputs in channels_last_3d, for methods with 3-D convs
    checkpoint_every_steps: PositiveInt = 500  # optimizer steps; a checkpoint is also written at each epoch end
    keep_checkpoints: int = 3  # newest checkpoints kept; <= 0 keeps all
    log_every_steps: PositiveInt = 10
    # Held-out pretext accuracy after every this many epochs, and always after the last. It is a forward
    # pass over every held-out pair (the tiny presets: about a fifth of an epoch's compute), and it draws
    # nothing that training draws, so validating less often changes no weight.
    validate_every_epochs: PositiveInt = 1
    max_failed_fraction: Fraction = 0.05  # stop when more undecodable samples than this share ...
    min_samples_before_failure_check: int = 20  # ... once at least this many samples were drawn
    deterministic: bool = False  # deterministic kernels (slower), for bit-exact reruns and resumes
    max_steps: NonNegativeInt | None = None  # stop after this many optimizer steps (smoke runs); schedules still span all epochs
    progress: bool = True  # tqdm bar on the main process
    # Video decoding of the training pairs: cpu, or cuda (torchcodec's NVDEC decoding; falls back to the
    # CPU with one warning naming the reason where CUDA decoding cannot run).
    video_decoder: Literal["cpu", "cuda"] = "cpu"


@section
class PretrainConfig:
    """The pretrain stage: which method and preset, on which clips, and the trainer's settings."""

    method: str = "avts"  # what `avssl pretrain` trains when --method is not given
    preset: str = "tiny"  # tiny | paper
    methods: list[str] = field(default_factory=lambda: ["avts", "avc"])  # what dvc.yaml trains
    out_dir: str = "data/pretrain"  # runs go to <out_dir>/<method>/
    train_split: str = "train"
    val_split: str = "val"
    # Training pairs drawn per clip in an epoch; None: the preset's ("pairs_per_clip": 4 for tiny presets,
    # 1 for paper presets, whose epoch is then one pass over the clips as in the papers).
    pairs_per_clip: int | None = None
    val_pairs: int = 256  # fixed, seeded held-out pairs for pretext accuracy
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> preset overrides
    train: TrainConfig = field(default_factory=TrainConfig)


@section
class EvalPretextConfig:
    """Pretext accuracy on fixed, seeded pairs of the evaluation split, one mix of negatives per protocol."""

    protocols: list[str] = field(default_factory=lambda: ["easy", "easy75_hard25", "shifted"])
    pairs: int = 64  # pairs per protocol (half positives)


@section
class EvalActionConfig:
    """Action recognition by fine-tuning (avssl_core/eval/action.py)."""

    dataset: str = "synthetic"  # synthetic (clips exported to UCF101 layout) | ucf101 | hmdb51
    root: str = ""  # ucf101/hmdb51: the folder holding <class>/<video> files
    splits_dir: str = ""  # empty: <root>/ucfTrainTestlist (or <root>) | <root>/testTrainMulti_7030_splits
    splits: list[int] = field(default_factory=list)  # empty: every split present; the result is their mean
    modality: str = "video"  # video (the visual network alone) | audio_visual (video + audio features)
    epochs: int = 30  # 3 left every tiny model at chance (README, Measured); opt-in task, see evaluate.tasks
    clips_per_video: int = 1  # random training clips per video and epoch
    test_clips: int = 3  # N uniformly spaced clips per test video, softmax scores averaged
    # Label efficiency: fine-tune on the training videos of at most this many source videos (groups) per
    # class, a seeded draw; null: every training video.
    labelled_groups_per_class: int | None = None
    batch_size: int = 16
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.005  # CMAC Sec. 4.2
    head_dim: int = 512  # audio_visual: FC head_dim -> FC classes


@section
class EvalAudioConfig:
    """Linear probe on frozen audio features (avssl_core/eval/audio_probe.py)."""

    dataset: str = "synthetic"  # synthetic (clips exported to ESC-50 layout) | esc50 | dcase
    root: str = ""  # esc50/dcase: the dataset folder (layouts in avssl_core/eval/layouts.py)
    folds: list[int] = field(default_factory=list)  # held-out folds to test; empty: every fold
    num_folds: int = 5  # synthetic export: source videos dealt to this many folds
    clips_per_file: int = 3  # equally spaced sub-clips per file (AVTS Sec. 3.3: 10 of 2 s)
    classifier: str = "linear_svm"  # linear_svm | logistic
    c_grid: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])  # chosen by CV on training folds
    cv_folds: int = 3  # DCASE: grouped k-fold over training files (ESC-50 uses its own training folds)


@section
class EvalRetrievalConfig:
    clips_per_video: int = 3  # clips whose backbone features are averaged per video (CMAC Sec. 4.2: 10)
    ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    cross_distance: str = "euclidean"  # cross-modal space: euclidean (AVTS/AVC are trained on it) | cosine


@section
class EvalFrozenConfig:
    """Frozen-feature probes of both encoders (avssl_core/eval/frozen_probe.py): kNN and a linear probe fit
    on the training split's labels, scored per test clip."""

    clips_per_video: int = 3  # N uniformly spaced windows per clip, features averaged
    labelled_per_class: list[int | None] = field(default_factory=lambda: [1, None])  # labelled source videos per class; null: all
    knn_k: int = 20
    knn_temperature: float = 0.07  # vote weight exp(cosine similarity / T)
    c_grid: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])  # chosen by grouped CV on training clips
    cv_folds: int = 3
    fixed_c: float = 1.0  # C where grouped CV cannot run (a class with one labelled source video)


@section
class EvalPaperMaxConfig:
    """Caps on the paper protocol's sizes, for small runs (null: the paper's value); named in the metrics."""

    epochs: int | None = None  # fine-tuning epochs
    iterations: int | None = None  # fine-tuning steps (co-attention; its lr halving scales with the cap)
    clips: int | None = None  # every clip count: training/test clips per video, audio sub-clips, retrieval clips


@section
class EvalLocalizationConfig:
    max_clips: int = 24  # evaluation-split clips with boxes scored per method
    # Frame size (pixels) the maps are computed on, for methods whose networks take any size (finer maps);
    # null: the method's own crop.
    input_size: int | None = None


@section
class EvaluateConfig:
    """The evaluate stage (avssl evaluate --method M): downstream tasks for a pretrained method, each also
    run from random initialisation (same architecture, seed and inputs) as the baseline."""

    methods_dir: str = "data/pretrain"  # <methods_dir>/<method>/model.pt (the pretrain stage's output)
    out_dir: str = "data/evaluate"  # <out_dir>/<method>/: pictures, exported split lists, details.json
    split: str = "test"  # index.csv split for test clips, held-out pairs, cross-modal retrieval, localization
    train_split: str = "train"  # index.csv split for the synthetic action/retrieval training videos
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 32  # feature extraction and pretext batches
    cache_mb: int = 2048  # preprocessed windows kept in memory for reuse (pretrained and scratch runs)
    scratch: bool = True  # also run every task from random initialisation
    bootstrap: int = 1000  # replicates of the 95% bootstrap interval over test source videos
    tasks: list[str] = field(default_factory=lambda: ["pretext", "frozen", "retrieval", "localization", "tsne"])
    pretext: EvalPretextConfig = field(default_factory=EvalPretextConfig)
    frozen: EvalFrozenConfig = field(default_factory=EvalFrozenConfig)
    action: EvalActionConfig = field(default_factory=EvalActionConfig)
    audio: EvalAudioConfig = field(default_factory=EvalAudioConfig)
    retrieval: EvalRetrievalConfig = field(default_factory=EvalRetrievalConfig)
    localization: EvalLocalizationConfig = field(default_factory=EvalLocalizationConfig)
    # quick: the settings above | paper: each method's paper protocol (avssl_core/eval/paper_protocols.py)
    # in place of the action, audio and retrieval settings, capped by paper_max.
    protocol: str = "quick"
    paper_max: EvalPaperMaxConfig = field(default_factory=EvalPaperMaxConfig)


@section
class RetrainConfig:
    """The retrain flow (flows/retrain.py): which model it retrains, and when a new one replaces the best."""

    method: str = "avc"  # the method the retrain flow retrains and promotes
    metric: str = "tasks.pretext_easy.pretrained.accuracy"  # dotted path in metrics/<method>.json (evaluate)
    direction: Literal["maximize", "minimize"] = "maximize"
    min_improvement: NonNegativeFloat = 0.0  # the new model must beat the best by more than this
    best_dir: str = "models/best"  # <best_dir>/<method>/{model.pt,metrics.json,record.json}, decisions.jsonl
    force: bool = False  # retrain even when the source data did not change


@section
class AblateConfig:
    """Optuna ablations (avssl ablate --study NAME): one study per table of the papers, each trial a
    small pretraining run in its own folder, <out_dir>/<study>/trial_<n>/."""

    study: str = "avts_curriculum"  # what `avssl ablate` runs without --study (avssl_core/ablate/studies.py)
    study_name: str = ""  # the study's name in the storage; empty: the study's key
    storage: str = "sqlite:///data/ablate/optuna.db"  # a PostgreSQL URL or journal:PATH on a shared filesystem lets several workers share a study
    out_dir: str = "data/ablate"  # trial folders and the table of trials (trials.csv, trials.md)
    trials: PositiveInt | None = None  # None: every point of the study's grid
    timeout_s: float | None = None  # this worker starts no new trial after this many seconds
    sampler_seed: int = 0  # the grid sampler's order of the points left after a crash
    # Training seeds (pretrain.train.seed) each grid point is trained with, inside its one trial; the point's
    # value is their mean. One seed by default: a default study is already 6 tiny trainings.
    seeds: list[int] = field(default_factory=lambda: [0])
    pruner: Literal["none", "median", "halving", "threshold"] = "none"  # threshold: prunes below prune_below
    pruner_warmup_epochs: NonNegativeInt = 1  # epochs a trial always runs before it may be pruned
    pruner_startup_trials: NonNegativeInt = 2  # median: trials finished before any is pruned
    prune_below: float = 0.5  # threshold: a validation accuracy below this (chance: 0.5) is pruned
    objective: str = "pretext"  # pretext (the study's protocol) | pretext:<protocol> | <task>.<metric> (evaluate)
    preset: str = "tiny"  # the method preset every trial starts from
    epochs: PositiveInt | None = 3  # the tiny budget per trial; None: the preset's
    max_steps: PositiveInt | None = None  # optimizer steps per trial; None: all epochs
    pairs_per_clip: PositiveInt | None = 2  # None: pretrain.pairs_per_clip (itself None: the preset's)
    val_pairs: PositiveInt | None = 64  # None: pretrain.val_pairs
    batch_size: PositiveInt | None = None  # None: pretrain.train.batch_size, else the preset's
    heartbeat_interval_s: PositiveInt = 30  # a RUNNING trial whose worker stops beating ...
    grace_period_s: PositiveInt | None = None  # ... for this long (None: 2 heartbeats) is failed and retried once

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        # A repeated seed would count one training twice and narrow the point's interval for nothing.
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"needs one or more distinct training seeds, got {seeds}")
        return seeds


@section
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    acquire: AcquireConfig = field(default_factory=AcquireConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    ablate: AblateConfig = field(default_factory=AblateConfig)

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
    """Section ``cls`` from a mapping (None: all defaults), its subsections first; ``where`` names the
    mapping's place (``params.yaml.pretrain``) in messages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        if not isinstance(key, str):  # YAML read it as a number or bool: it cannot name a field
            raise ConfigError(f"{where}: unknown key {key!r}")
        tp = hints.get(key)
        kwargs[key] = build(tp, value, f"{where}.{key}") if _is_section(tp) else value
    obj = cls.__new__(cls)
    _validate(cls._validating_init, obj, (), kwargs, where)
    return obj


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


# --- pydantic's errors, reworded: "<dotted key>: expected <kind>, got <value>" ---------------------------

_EXPECTED = {"int_type": "an integer", "float_type": "a number", "bool_type": "true/false",
             "string_type": "a string", "list_type": "a list", "dict_type": "a mapping"}


def _validate(validating_init, obj, args: tuple, kwargs: dict, where: str) -> None:
    """Run pydantic's validating ``__init__``; ``where`` names the section in messages."""
    try:
        validating_init(obj, *args, **kwargs)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(type(obj), e, where) for e in exc.errors())) from None


def _describe(cls, error: dict, where: str) -> str:
    """One pydantic error about section ``cls`` (at ``where``) as one line naming the dotted key."""
    loc, kind, given = error["loc"], error["type"], error["input"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        close = difflib.get_close_matches(loc[0], _hints(cls), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}: unknown key {loc[0]!r}{hint}"
    wrong_key = loc[-1] == "[key]"  # a mapping's key, not a value: the message names the mapping
    loc = loc[:-2] if wrong_key else loc
    tp = _hints(cls)[loc[0]]
    for _ in loc[1:]:
        tp = typing.get_args(_parts(tp)[0])[-1]  # list[T] -> T, dict[K, V] -> V
    if wrong_key:
        tp = typing.get_args(_parts(tp)[0])[0]
    key = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    key = key.removeprefix(".")  # ks[1], split_fractions.train
    base, nullable, bounds = _parts(tp)
    if kind in ("greater_than_equal", "less_than_equal"):
        if len(bounds) == 2:
            return f"{key} must be in [{bounds['ge']}, {bounds['le']}], got {given}"
        return f"{key} must be {'>=' if 'ge' in bounds else '<='} {next(iter(bounds.values()))}, got {given}"
    if kind == "literal_error":
        return f"{key}: expected one of {error['ctx']['expected']}, got {given!r}"
    if kind == "value_error":
        return f"{key} {error['ctx']['error']}"
    if kind.startswith("dataclass"):
        return f"{key}: expected a mapping, got {type(given).__name__}"
    if nullable:
        return f"{key}: {given!r} is not a {base.__name__} | None"
    if kind in _EXPECTED:
        return f"{key}: expected {_EXPECTED[kind]}, got {given!r}"
    return f"{key}: {error['msg']}, got {given!r}"


@functools.cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _is_section(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _parts(tp) -> tuple[Any, bool, dict[str, Any]]:
    """A declared type as (its base type, whether null is allowed, its bounds as declared: {"ge": 1}).
    Unions here are all ``T | None``."""
    members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    base = next(m for m in members if m is not type(None))
    bounds: dict[str, Any] = {}
    if typing.get_origin(base) is Annotated:
        base, *metadata = typing.get_args(base)
        for info in metadata:  # Field(ge=0, le=1) -> [Ge(ge=0), Le(le=1)]
            bounds.update(item for c in info.metadata for item in dataclasses.asdict(c).items())
    return base, len(members) > 1, bounds


def _set_params_keys(cls, key: str = "") -> None:
    cls._params_key = key  # Config: "", its sections: "segment", "pretrain.train", ...
    for name, tp in typing.get_type_hints(cls).items():
        if _is_section(tp):
            _set_params_keys(tp, f"{key}.{name}".removeprefix("."))


_set_params_keys(Config)
