"""The synthetic dataset: labels, stratified splits, resumable parallel writing, and index.csv.

Layout of ``out_dir``::

    videos/<video_id>.mp4    H.264 + AAC stereo
    meta/<video_id>.json     ground truth: boxes per frame, sound-causing events, ... (see Scene.metadata)
    index.csv                video_id,path,label,split,annotation_path; paths relative to out_dir

Paths in index.csv are relative to ``out_dir`` so the folder can be moved or DVC-cached as a whole.
Every video lasts ``duration_s``, unless ``split_duration_s`` gives its split another length.
Video ``i`` has id ``synth_<i:05d>``, seed ``video_seed(cfg.seed, i)`` and main class
``permutation[i % num_classes]`` (one seeded permutation, cycled: classes stay balanced). A video whose mp4
and meta exist and whose meta has the same ``params_hash`` (everything that shapes its content) is not
rendered again; if only its split changed (``num_videos`` or ``split_fractions`` changed), only its meta is
rewritten. Files of videos beyond a reduced ``num_videos`` are left in place but leave the index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from avssl_core.config import SynthConfig
from avssl_core.errors import ConfigError
from avssl_core.io_utils import atomic_path, write_csv_atomic, write_text_atomic
from avssl_core.parallel import imap_unordered
from avssl_core.synth.encode import write_mp4
from avssl_core.synth.render import iter_frames, render_soundtrack
from avssl_core.synth.worlds import get_world

log = logging.getLogger(__name__)

# Bump when a code change alters what a given seed renders, so resumed datasets are regenerated.
GENERATOR_VERSION = 2
SPLITS = ("train", "val", "test")
INDEX_COLUMNS = ["video_id", "path", "label", "split", "annotation_path"]
ENCODER_PRESET = "veryfast"
LABEL_STREAM, SPLIT_STREAM = 101, 102  # seed-sequence tags, apart from video seeds


def check_config(cfg: SynthConfig) -> None:
    """Reject settings the generator cannot honour, naming the parameter."""
    problems = []
    try:
        get_world(cfg.world)
    except ConfigError as exc:
        problems.append(str(exc).removeprefix("synth: "))
    if cfg.num_videos < 1:
        problems.append("num_videos must be >= 1")
    if cfg.width < 32 or cfg.height < 32 or cfg.width % 2 or cfg.height % 2:
        problems.append(f"width/height must be even and >= 32 (H.264 yuv420p), got {cfg.width}x{cfg.height}")
    if cfg.fps < 1:
        problems.append("fps must be >= 1")
    if cfg.sample_rate < 8000:
        problems.append("sample_rate must be >= 8000")
    if cfg.duration_s <= 0:
        problems.append("duration_s must be > 0")
    unknown_durations = set(cfg.split_duration_s) - set(SPLITS)
    if unknown_durations:
        problems.append(f"split_duration_s: unknown split(s) {sorted(unknown_durations)}; use {list(SPLITS)}")
    if any(not v > 0 for v in cfg.split_duration_s.values()):
        problems.append(f"split_duration_s must be > 0, got {cfg.split_duration_s}")
    if not 1 <= cfg.min_objects <= cfg.max_objects <= 3:
        problems.append(
            f"need 1 <= min_objects <= max_objects <= 3, got {cfg.min_objects}..{cfg.max_objects}"
        )
    if not 0.0 <= cfg.distractor_prob <= 1.0:
        problems.append("distractor_prob must be in [0, 1]")
    if cfg.video_noise_std < 0:
        problems.append("video_noise_std must be >= 0")
    if not 0 <= cfg.crf <= 51:
        problems.append("crf must be in [0, 51]")
    unknown = set(cfg.split_fractions) - set(SPLITS)
    if unknown:
        problems.append(f"split_fractions: unknown split(s) {sorted(unknown)}; use {list(SPLITS)}")
    if any(v < 0 for v in cfg.split_fractions.values()) or sum(cfg.split_fractions.values()) <= 0:
        problems.append("split_fractions must be >= 0 with a positive sum")
    if problems:
        raise ConfigError("synth: " + "; ".join(problems))


def video_id(index: int) -> str:
    return f"synth_{index:05d}"


def video_seed(base_seed: int, index: int) -> int:
    """A 32-bit seed for video ``index``, well mixed from (base seed, index)."""
    return int(np.random.SeedSequence([base_seed, index]).generate_state(1)[0])


def assign_labels(cfg: SynthConfig) -> list[int]:
    order = np.random.default_rng([cfg.seed, LABEL_STREAM]).permutation(len(get_world(cfg.world).class_names))
    return [int(order[i % len(order)]) for i in range(cfg.num_videos)]


def _split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """How many of ``n`` videos of one class go to each split.

    Every split with a positive fraction gets at least one video when there are enough (so each class can
    be evaluated in every split); the rest follow the fractions by largest remainder.
    """
    active = [s for s in SPLITS if fractions.get(s, 0) > 0]
    total = sum(fractions[s] for s in active)
    share = {s: fractions[s] / total for s in active}
    if n < len(active):  # too few to cover every split: the largest fractions first
        ranked = sorted(active, key=lambda s: (-share[s], SPLITS.index(s)))
        return {s: int(s in ranked[:n]) for s in SPLITS}
    floor = dict.fromkeys(active, 1)
    rest = n - len(active)
    target = {s: max(0.0, share[s] * n - 1) for s in active}  # what each split still deserves after its one
    scale = rest / sum(target.values()) if sum(target.values()) > 0 else 0.0
    extra = {s: int(np.floor(target[s] * scale)) for s in active}
    order = sorted(active, key=lambda s: (-(target[s] * scale - extra[s]), SPLITS.index(s)))
    for s in order[: rest - sum(extra.values())]:
        extra[s] += 1
    return {s: floor.get(s, 0) + extra.get(s, 0) for s in SPLITS}


def assign_splits(labels: list[int], cfg: SynthConfig) -> list[str]:
    """Stratified split: within each class, a seeded shuffle of its videos is cut by ``_split_counts``."""
    splits = [""] * len(labels)
    for cls in sorted(set(labels)):
        members = [i for i, lab in enumerate(labels) if lab == cls]
        order = np.random.default_rng([cfg.seed, SPLIT_STREAM, cls]).permutation(len(members))
        counts = _split_counts(len(members), cfg.split_fractions)
        names = [s for s in SPLITS for _ in range(counts[s])]
        for pos, name in zip(order, names, strict=True):
            splits[members[pos]] = name
    return splits


def split_config(cfg: SynthConfig, split: str) -> SynthConfig:
    """The settings a video of ``split`` is rendered with: ``duration_s`` from ``split_duration_s`` if set."""
    if split not in cfg.split_duration_s:
        return cfg
    return dataclasses.replace(cfg, duration_s=float(cfg.split_duration_s[split]))


def params_hash(cfg: SynthConfig, seed: int, label_index: int) -> str:
    """Hash of everything that shapes one video's files (not its split, not worker counts)."""
    content = {
        "generator_version": GENERATOR_VERSION,
        "classes": get_world(cfg.world).class_names,  # differs between worlds, so the world is in the hash
        "seed": seed,
        "label_index": label_index,
        "encoder_preset": ENCODER_PRESET,
        **{
            k: getattr(cfg, k)
            for k in (
                "duration_s",
                "fps",
                "width",
                "height",
                "sample_rate",
                "min_objects",
                "max_objects",
                "distractor_prob",
                "video_noise_std",
                "audio_noise_dbfs",
                "crf",
            )
        },
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VideoJob:
    """Everything a worker process needs to make one video (picklable)."""

    out_dir: str
    index: int
    video_id: str
    seed: int
    label_index: int
    split: str
    params_hash: str
    cfg: SynthConfig

    @property
    def video_path(self) -> Path:
        return Path(self.out_dir) / "videos" / f"{self.video_id}.mp4"

    @property
    def meta_path(self) -> Path:
        return Path(self.out_dir) / "meta" / f"{self.video_id}.json"


def _existing_meta(job: VideoJob) -> dict | None:
    if not (job.video_path.exists() and job.meta_path.exists()):
        return None
    try:
        meta = json.loads(job.meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return (
        meta if meta.get("params_hash") == job.params_hash and meta.get("video_id") == job.video_id else None
    )


def _write_meta(path: Path, meta: dict) -> None:
    # Compact: a 30 s video has thousands of per-frame boxes; pretty-printing would triple the size.
    write_text_atomic(path, json.dumps(meta, sort_keys=True, separators=(",", ":")) + "\n")


def write_video(
    mp4_path: str | Path, cfg: SynthConfig, seed: int, main_class: int | str, num_objects: int | None = None
):
    """Render and encode one scene to ``mp4_path`` (atomically); return the Scene (its ground truth)."""
    scene = get_world(cfg.world).build_scene(cfg, seed, main_class, num_objects=num_objects)
    audio = render_soundtrack(scene)
    with atomic_path(mp4_path) as tmp:
        write_mp4(
            tmp,
            iter_frames(scene),
            audio,
            fps=cfg.fps,
            sample_rate=cfg.sample_rate,
            width=cfg.width,
            height=cfg.height,
            crf=cfg.crf,
            preset=ENCODER_PRESET,
        )
    return scene


def synthesize_video(job: VideoJob) -> dict:
    """Make (or keep) one video and its metadata; returns what happened. Runs in a worker process."""
    started = time.perf_counter()
    existing = _existing_meta(job)
    if existing is not None:
        if existing.get("split") == job.split:
            return {"video_id": job.video_id, "status": "skipped", "seconds": 0.0, "video_seconds": 0.0}
        existing["split"] = job.split
        _write_meta(job.meta_path, existing)
        return {"video_id": job.video_id, "status": "meta_updated", "seconds": 0.0, "video_seconds": 0.0}

    scene = write_video(job.video_path, job.cfg, job.seed, job.label_index)
    meta = scene.metadata(job.video_id, job.split)
    meta["params_hash"] = job.params_hash
    # The meta is written last: a video with no (or a stale) meta is regenerated on the next run.
    _write_meta(job.meta_path, meta)
    return {
        "video_id": job.video_id,
        "status": "written",
        "seconds": time.perf_counter() - started,
        "video_seconds": scene.timeline.duration_s,
    }


def plan_jobs(out_dir: Path, cfg: SynthConfig) -> list[VideoJob]:
    labels = assign_labels(cfg)
    splits = assign_splits(labels, cfg)
    jobs = []
    for i in range(cfg.num_videos):
        seed = video_seed(cfg.seed, i)
        # A video's length may follow its split, so the hash (which holds the length) is per split: a video
        # moved into a split of another length is rendered again, not just re-labelled.
        video_cfg = split_config(cfg, splits[i])
        jobs.append(
            VideoJob(
                out_dir=str(out_dir),
                index=i,
                video_id=video_id(i),
                seed=seed,
                label_index=labels[i],
                split=splits[i],
                params_hash=params_hash(video_cfg, seed, labels[i]),
                cfg=video_cfg,
            )
        )
    return jobs


def prune_stale(out_dir: Path, jobs: list[VideoJob]) -> int:
    """Remove files the current plan does not name: videos from a larger earlier ``num_videos``, and
    ``.part`` files a killed run left behind. The folder is a DVC output, so strays would be versioned."""
    keep = {job.video_path for job in jobs} | {job.meta_path for job in jobs}
    removed = 0
    for sub, pattern in (("videos", "*.mp4"), ("meta", "*.json")):
        for path in (out_dir / sub).glob(pattern):
            if path not in keep:
                path.unlink()
                removed += 1
        for path in (out_dir / sub).glob(".*.part*"):
            path.unlink()
            removed += 1
    if removed:
        log.info("synth: removed %d stale or partial files from %s", removed, out_dir)
    return removed


def generate_dataset(out_dir: Path, cfg: SynthConfig) -> dict:
    """Write (or complete) the synthetic dataset in ``out_dir``; return a summary."""
    check_config(cfg)
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    (out_dir / "meta").mkdir(parents=True, exist_ok=True)
    class_names = get_world(cfg.world).class_names
    jobs = plan_jobs(out_dir, cfg)
    pruned = prune_stale(out_dir, jobs)
    started = time.perf_counter()
    results = list(imap_unordered(synthesize_video, jobs, workers=cfg.workers, desc="synth", unit="video"))
    seconds = time.perf_counter() - started

    index = pd.DataFrame(
        [
            {
                "video_id": job.video_id,
                "path": f"videos/{job.video_id}.mp4",
                "label": class_names[job.label_index],
                "split": job.split,
                "annotation_path": f"meta/{job.video_id}.json",
            }
            for job in jobs
        ],
        columns=INDEX_COLUMNS,
    )
    write_csv_atomic(out_dir / "index.csv", index)

    statuses = [r["status"] for r in results]
    video_seconds = sum(r["video_seconds"] for r in results)
    summary = {
        "out_dir": str(out_dir),
        "num_videos": len(jobs),
        "written": statuses.count("written"),
        "skipped": statuses.count("skipped"),
        "meta_updated": statuses.count("meta_updated"),
        "pruned": pruned,
        "world": cfg.world,
        "per_class": {name: int((index["label"] == name).sum()) for name in class_names},
        "per_split": {s: int((index["split"] == s).sum()) for s in SPLITS},
        "seconds": round(seconds, 3),
        "video_seconds_written": round(video_seconds, 3),
        "video_seconds_per_second": round(video_seconds / seconds, 3)
        if seconds > 0 and video_seconds
        else 0.0,
        "workers": cfg.workers,
    }
    log.info(
        "synth: %d written, %d kept, %d re-split in %.1f s",
        summary["written"],
        summary["skipped"],
        summary["meta_updated"],
        seconds,
    )
    return summary
