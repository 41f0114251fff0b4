"""segment: cut every valid video into fixed-length clips (H.264 mp4 + PCM WAV, aligned) and index them.

Reads ``<validated_dir>/valid.csv``; writes ``<clips_dir>/<video_id>/<clip_id>.{mp4,wav[,json]}``, the
index ``<clips_dir>/index.csv`` (tables.CLIP_COLUMNS, sorted by clip_id) and ``<metrics_dir>/segment.json``.
With ``segment.frame_store`` it also decodes every clip once into the frame store, ``<clips_dir>_frames``
(avssl_core/data/frame_store.py), which training reads instead of the mp4s; without, it removes that folder.

Resumable: a video's folder gets a done-marker, written last, holding a hash of everything that shapes
its clips (segment parameters, start/end, annotation file, transcoder version) and the source's sha256.
A rerun skips videos whose marker matches and redoes the others from scratch. Atomic: every file is
written under a temporary name and renamed when complete, and only videos that finished are indexed.
A video that fails is reported with its reason and its clips are removed; the others go on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from avssl_core.config import Config, SegmentConfig
from avssl_core.data.clip_annotations import slice_annotation
from avssl_core.data.frame_store import frames_dir_of, stores_split, video_frames_current, write_video_frames
from avssl_core.data.tables import CLIP_COLUMNS, read_table, write_table
from avssl_core.data.transcode import ClipInfo, SegmentParams, clip_id_for, segment_video
from avssl_core.errors import ConfigError, DataError
from avssl_core.io_utils import write_json_atomic
from avssl_core.parallel import imap_unordered

log = logging.getLogger(__name__)

DONE_MARKER = "_done.json"
# Bump when the transcoder's output changes for the same parameters: every video is then redone.
TRANSCODER_VERSION = 1


def segment_params(cfg: SegmentConfig) -> SegmentParams:
    try:
        return SegmentParams(
            clip_seconds=cfg.clip_seconds,
            fps=cfg.fps,
            short_side=cfg.short_side,
            sample_rate=cfg.sample_rate,
            keyframe_interval=cfg.keyframe_interval,
            crf=cfg.crf,
            preset=cfg.preset,
            threads=cfg.threads,
            decode_threads=cfg.decode_threads,
        )
    except ValueError as exc:
        raise ConfigError(f"segment: {exc}") from exc


def run_segment(cfg: Config) -> dict:
    started = time.perf_counter()
    params = segment_params(cfg.segment)
    valid_csv = Path(cfg.paths.validated_dir) / "valid.csv"
    valid = read_table(valid_csv, required=["video_id", "path"])
    if valid.empty:
        raise DataError(f"{valid_csv}: no valid videos to segment")
    clips_dir = Path(cfg.paths.clips_dir)
    frames_dir = frames_dir_of(clips_dir)
    if not cfg.segment.frame_store:
        shutil.rmtree(frames_dir, ignore_errors=True)  # no stale store survives
    tasks = [
        {"row": _plain_row(rec), "params": params, "clips_dir": str(clips_dir),
         "frames_dir": str(frames_dir) if cfg.segment.frame_store and stores_split(cfg, rec.get("split") or "")
         else None}
        for rec in valid.to_dict(orient="records")
    ]
    results = list(
        imap_unordered(_segment_one, tasks, workers=cfg.segment.workers, desc="segment", unit="video",
                       executor=cfg.parallel.executor, dask_scheduler=cfg.parallel.dask_scheduler)
    )
    results.sort(key=lambda r: r["video_id"])

    rows = [clip for r in results if r["status"] != "failed" for clip in r["rows"]]
    failures = [{"video_id": r["video_id"], "error": r["error"]} for r in results if r["status"] == "failed"]
    for failure in failures:
        log.warning("segment: video %s failed: %s", failure["video_id"], failure["error"])
    if not rows:
        reasons = "; ".join(f["error"] for f in failures[:3]) or "every video is shorter than one clip"
        raise DataError(f"segment: no clip produced from {len(results)} videos ({reasons})")

    pruned = prune_stale_videos(clips_dir, {r["video_id"] for r in results})
    if cfg.segment.frame_store:
        stored = {t["row"]["video_id"] for t in tasks if t["frames_dir"] is not None}
        prune_stale_videos(frames_dir, {r["video_id"] for r in results if r["status"] != "failed"} & stored)
    index = clips_dir / "index.csv"
    write_table(index, pd.DataFrame(rows).sort_values("clip_id").reset_index(drop=True), CLIP_COLUMNS)

    seconds = time.perf_counter() - started
    new_clip_seconds = sum(len(r["rows"]) for r in results if r["status"] == "done") * params.clip_seconds
    summary = {
        "num_videos": len(results),
        "num_videos_segmented": sum(r["status"] == "done" for r in results),
        "num_videos_skipped": sum(r["status"] == "skipped" for r in results),  # done by an earlier run
        "num_videos_failed": len(failures),
        "num_stale_folders_removed": pruned,
        "num_clips": len(rows),
        "clip_seconds": params.clip_seconds,
        "total_clip_seconds": round(len(rows) * params.clip_seconds, 3),
        "discarded_tail_seconds": round(sum(r["discarded_tail_s"] for r in results), 3),
        "failures": failures,
        "seconds": round(seconds, 2),
        # Throughput of the work done in this run (skipped videos cost next to nothing).
        "clip_seconds_per_second": round(new_clip_seconds / seconds, 2) if seconds > 0 else None,
        "params": asdict(params),
        "index": str(index),
        # The frame store: its folder, size, and the CPU time this run spent decoding clips into it.
        "frame_store": {
            "enabled": cfg.segment.frame_store,
            "dir": str(frames_dir),
            "bytes": sum(f.stat().st_size for f in frames_dir.rglob("*.npy")),
            "clips_written": sum(r["frames_written"] for r in results),
            "build_seconds": round(sum(r["frames_seconds"] for r in results), 2),
        },
    }
    write_json_atomic(Path(cfg.paths.metrics_dir) / "segment.json", summary)
    log.info(
        "segmented %d videos into %d clips (%d skipped as already done, %d failed) in %.1f s",
        summary["num_videos_segmented"],
        len(rows),
        summary["num_videos_skipped"],
        len(failures),
        seconds,
    )
    return summary


def prune_stale_videos(clips_dir: Path, current: set[str]) -> int:
    """Remove clip folders of videos that are no longer valid sources (dropped from the data, or now
    quarantined). The clips folder is a DVC output that survives reruns, so strays would be versioned."""
    removed = 0
    for folder in clips_dir.iterdir() if clips_dir.is_dir() else []:
        if folder.is_dir() and folder.name not in current:
            shutil.rmtree(folder)
            removed += 1
    if removed:
        log.info("segment: removed %d clip folders of videos no longer in valid.csv", removed)
    return removed


def _plain_row(rec: dict) -> dict:
    """A manifest row with NaN (empty CSV cells) turned into None, picklable for worker processes."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}


# -- one video, in a worker process -----------------------------------------------------------------


def _segment_one(task: dict) -> dict:
    row, params, clips_dir = task["row"], task["params"], Path(task["clips_dir"])
    frames_dir = task.get("frames_dir")
    video_id = str(row["video_id"])
    result = {"video_id": video_id, "status": "failed", "rows": [], "error": "", "discarded_tail_s": 0.0,
              "frames_written": 0, "frames_seconds": 0.0}
    if not video_id or Path(video_id).name != video_id or video_id in (".", ".."):
        result["error"] = f"{row['path']}: video_id {video_id!r} cannot name a folder"
        return result
    video_dir = clips_dir / video_id
    try:
        key_hash, source_sha = _video_key(row, params)
        marker = _read_marker(video_dir)
        if marker and marker["key_hash"] == key_hash and marker["source_sha256"] == source_sha:
            if all((video_dir / name).exists() for clip in marker["clips"] for name in _clip_files(clip)):
                _store_frames(frames_dir, video_dir, marker, result)
                result.update(status="skipped", discarded_tail_s=marker["discarded_tail_s"])
                result["rows"] = [_index_row(row, clip, clips_dir) for clip in marker["clips"]]
                return result
        # Missing, stale or incomplete: start the video over so no clip of an older run survives.
        if video_dir.exists():
            shutil.rmtree(video_dir)
        if frames_dir is not None:
            shutil.rmtree(Path(frames_dir) / video_id, ignore_errors=True)
        video_dir.mkdir(parents=True)
        clips = _transcode(row, params, video_dir)
        marker = {
            "video_id": video_id,
            "key_hash": key_hash,
            "source_sha256": source_sha,
            "transcoder_version": TRANSCODER_VERSION,
            "params": params.params_key(),
            **clips,
        }
        _store_frames(frames_dir, video_dir, marker, result)
    except Exception as exc:  # noqa: BLE001 - one bad video must not stop the others; reported below
        shutil.rmtree(video_dir, ignore_errors=True)
        if frames_dir is not None:
            shutil.rmtree(Path(frames_dir) / video_id, ignore_errors=True)
        message = str(exc) or type(exc).__name__
        if str(row["path"]) not in message:
            message = f"{row['path']}: {type(exc).__name__}: {message}"
        result["error"] = message
        return result
    write_json_atomic(video_dir / DONE_MARKER, marker)  # last: the video is done only once this exists
    result.update(status="done", discarded_tail_s=clips["discarded_tail_s"])
    result["rows"] = [_index_row(row, clip, clips_dir) for clip in clips["clips"]]
    return result


def _store_frames(frames_dir: str | None, video_dir: Path, marker: dict, result: dict) -> None:
    """Decode the video's clips into the frame store unless it already holds them from these clips."""
    if frames_dir is None:
        return
    identity = {"key_hash": marker["key_hash"], "source_sha256": marker["source_sha256"]}
    if video_frames_current(frames_dir, marker["video_id"], identity):
        return
    started = time.process_time()
    clips = [(c["clip_id"], video_dir / f"{c['clip_id']}.mp4") for c in marker["clips"]]
    write_video_frames(frames_dir, marker["video_id"], clips, identity)
    result.update(frames_written=len(clips), frames_seconds=time.process_time() - started)


def _transcode(row: dict, params: SegmentParams, video_dir: Path) -> dict:
    video_id = str(row["video_id"])
    annotation = _load_annotation(row.get("annotation_path"))

    def write_clip_annotation(clip: ClipInfo) -> None:
        if annotation is None:
            return
        sliced = slice_annotation(
            annotation,
            clip_id=clip_id_for(video_id, clip.index),
            source_video_id=video_id,
            clip_start_s=clip.start_s,
            clip_seconds=params.clip_seconds,
            fps=clip.fps,
            width=clip.width,
            height=clip.height,
            sample_rate=clip.sample_rate,
        )
        write_json_atomic(video_dir / f"{clip_id_for(video_id, clip.index)}.json", sliced)

    result = segment_video(
        row["path"],
        video_dir,
        video_id,
        params,
        start_s=_optional_float(row.get("start_s")),
        end_s=_optional_float(row.get("end_s")),
        on_clip=write_clip_annotation,
        audio_stream_index=_optional_int(row.get("audio_stream_index")),
    )
    if result.inserted_silence_s > 0.1:
        log.info(
            "%s: %.2f s of gaps in the audio track were filled with silence",
            row["path"],
            result.inserted_silence_s,
        )
    return {
        "discarded_tail_s": result.discarded_tail_s,
        "usable_s": result.usable_s,
        "clips": [
            {
                "clip_id": clip_id_for(video_id, c.index),
                "start_s": c.start_s,
                "end_s": c.end_s,
                "has_annotation": annotation is not None,
                "fps": c.fps,
                "num_frames": c.num_frames,
                "width": c.width,
                "height": c.height,
                "sample_rate": c.sample_rate,
                "audio_channels": c.audio_channels,
                "num_samples": c.num_samples,
            }
            for c in result.clips
        ],
    }


def _clip_files(clip: dict) -> list[str]:
    names = [f"{clip['clip_id']}.mp4", f"{clip['clip_id']}.wav"]
    return names + [f"{clip['clip_id']}.json"] if clip["has_annotation"] else names


def _index_row(row: dict, clip: dict, clips_dir: Path) -> dict:
    """One index.csv row; labels come from the current manifest row (they do not shape the clip)."""
    folder = clips_dir / str(row["video_id"])
    clip_id = clip["clip_id"]
    return {
        "clip_id": clip_id,
        "video_id": str(row["video_id"]),
        "source_uri": row.get("source_uri") or "",
        "start_s": clip["start_s"],
        "end_s": clip["end_s"],
        "label": row.get("label") or "",
        "split": row.get("split") or "",
        "video_path": (folder / f"{clip_id}.mp4").as_posix(),
        "audio_path": (folder / f"{clip_id}.wav").as_posix(),
        "annotation_path": (folder / f"{clip_id}.json").as_posix() if clip["has_annotation"] else "",
        **{
            k: clip[k]
            for k in ("fps", "num_frames", "width", "height", "sample_rate", "audio_channels", "num_samples")
        },
    }


def _video_key(row: dict, params: SegmentParams) -> tuple[str, str]:
    """(hash of what shapes this video's clips, sha256 of the source file)."""
    source_sha = str(row.get("sha256") or "") or _sha256_file(row["path"])
    annotation_path = row.get("annotation_path") or ""
    key = {
        "transcoder_version": TRANSCODER_VERSION,
        "params": params.params_key(),
        "start_s": _optional_float(row.get("start_s")),
        "end_s": _optional_float(row.get("end_s")),
        "annotation_sha256": _sha256_file(annotation_path) if annotation_path else "",
    }
    key_hash = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return key_hash, source_sha


def _read_marker(video_dir: Path) -> dict | None:
    try:
        return json.loads((video_dir / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return None


def _load_annotation(path) -> dict | None:
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the annotation JSON: {exc}") from exc


def _optional_float(value) -> float | None:
    if value is None or value == "":
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _optional_int(value) -> int | None:
    number = _optional_float(value)
    return None if number is None else int(number)


def _sha256_file(path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
