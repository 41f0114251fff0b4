"""Per-clip slices of the synthetic world's ground truth (boxes per frame, sound-causing events).

The source metadata describes the whole video at its own frame rate and resolution. A clip's slice has
the same schema, re-timed to the clip: frame i of the clip shows the source frame on screen at
``clip_start + i / fps`` (the rule the transcoder uses), boxes are scaled to the clip's resolution and
events are shifted to clip time and kept only if they fall inside the clip.
"""

from __future__ import annotations

import math
from typing import Any

from avssl_core.data.frame_rate import TIME_EPSILON_S


def source_frame_at(time_s: float, source_fps: float) -> int:
    """Index of the source frame on screen at ``time_s`` (frame j is shown from j / source_fps on)."""
    return math.floor(time_s * source_fps + TIME_EPSILON_S * source_fps)


def slice_annotation(
    meta: dict[str, Any],
    *,
    clip_id: str,
    source_video_id: str,
    clip_start_s: float,
    clip_seconds: float,
    fps: int,
    width: int,
    height: int,
    sample_rate: int,
) -> dict[str, Any]:
    """The clip's annotation: ``meta`` re-timed to ``[clip_start_s, clip_start_s + clip_seconds)``."""
    source_fps = float(meta["fps"])
    scale_x = width / float(meta["width"])
    scale_y = height / float(meta["height"])
    num_frames = round(clip_seconds * fps)
    source_frames = [source_frame_at(clip_start_s + i / fps, source_fps) for i in range(num_frames)]

    objects = []
    for obj in meta.get("objects", []):
        boxes = obj.get("boxes") or []
        clip_boxes = []
        for j in source_frames:
            box = boxes[j] if 0 <= j < len(boxes) else None
            clip_boxes.append(None if box is None else _scale_box(box, scale_x, scale_y))
        objects.append({**obj, "boxes": clip_boxes})

    events = []
    clip_end_s = clip_start_s + clip_seconds
    for event in meta.get("events", []):
        t = float(event["time_s"])
        if clip_start_s - TIME_EPSILON_S <= t < clip_end_s - TIME_EPSILON_S:
            local = max(0.0, t - clip_start_s)
            # The first clip frame showing the event: frames are instants i / fps, so round up.
            frame = math.ceil(local * fps - TIME_EPSILON_S * fps)
            events.append({**event, "time_s": round(local, 6), "frame": min(frame, num_frames - 1)})

    return {
        **meta,
        "video_id": clip_id,
        "source_video_id": source_video_id,
        "clip_start_s": round(clip_start_s, 6),
        "fps": fps,
        "sample_rate": sample_rate,
        "width": width,
        "height": height,
        "num_frames": num_frames,
        "num_samples": round(clip_seconds * sample_rate),
        "duration_s": clip_seconds,
        "objects": objects,
        "events": events,
    }


def _scale_box(box: list[float], scale_x: float, scale_y: float) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(x0 * scale_x, 3), round(y0 * scale_y, 3), round(x1 * scale_x, 3), round(y1 * scale_y, 3)]
