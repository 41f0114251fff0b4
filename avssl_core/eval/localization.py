"""Sound-source localisation: does a method's map light up the objects that make the sound?

Protocol (our adaptation of Senocak et al., CVPR 2018, to the synthetic world's ground truth):

* Moments. For each clip of the split (a seeded random choice of at most ``max_clips``), candidate
  frames are the sound events of its sounding objects (an impact, a hit, a flash: the frame that
  shows what makes the sound) and, for objects whose sound is continuous (a mouth, a spinner), a grid
  every half second. A frame is kept when at least one sounding object is audible in the method's
  audio window and visible in the part of the frame the method sees; up to ``moments_per_clip`` are
  drawn per clip.
* Samples. Around each moment a raw sample is built exactly as training pairs are (the method's
  ``pair_spec()`` window, with the scored frame in the middle of the video window and the audio window
  centred on it, decoded with the pretext decoders), then ``method.preprocess(train=False)``: the crop its
  ``frame_crop`` names. The map ([K, h, w] from ``method.localization_maps``; heads are averaged for scoring) is
  upsampled bilinearly to that crop in frame pixels.
* Ground truth: the union of the boxes of the sounding objects that are audible in the window (an
  event-driven object is audible when one of its events lies in the window or up to ``EVENT_TAIL_S``
  before it, as its sound decays; a continuous one always). Silent distractors are not part of it.
  A moment with more than one audible, visible source is "multi-source" and is also scored apart.
* Score. The map is min-max normalised and thresholded at ``threshold`` (0.5); the IoU of that region
  with the ground-truth mask is the sample's consensus IoU (with one annotation, Senocak's cIoU is this
  IoU). ``cIoU@0.5`` is the share of samples with IoU >= 0.5; ``AUC`` the area under the success rate
  over IoU thresholds 0, 0.05, ..., 1 (the LVS / EZ-VSL evaluation). LVS thresholds at the median pixel
  instead, which suits the large boxes of Flickr-SoundNet but caps the IoU of this world's small objects
  near 0.2, so the relative threshold is used here.
* Baseline: the centre prior, a centred box of ``centre_fraction`` of the crop's height and width,
  scored the same way, so that the numbers can be read against a map that knows nothing.

Scratch baseline: pass ``scratch=`` (the same method randomly initialised, with the normalisation
statistics of the pretrained one) to score it on the very same samples in one call; its numbers land
under ``"scratch"`` beside ``"pretrained"``. Calling ``evaluate_localization`` again with the scratch
model and ``overlays=0`` gives the same numbers under ``"pretrained"`` of a second entry.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from avssl_core.errors import DataError
from avssl_core.eval.overlays import save_overlay
from avssl_core.io_utils import atomic_path
from avssl_core.methods.base import PretrainMethod
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.decode import DecodeError, VideoFrameReader, read_audio_window
from avssl_core.pretext.spec import PairKind, PairSpec
from avssl_core.pretext.windows import (
    centred_audio_start,
    frame_offsets,
    native_audio_len,
    video_rate,
    video_window_s,
)
from avssl_core.synth.classes import CLASS_BY_NAME
from avssl_core.transforms.features import PairTransform

log = logging.getLogger(__name__)

LOCALIZATION_SEED_TAG = 0x4C4F4331  # "LOC1": the clip and moment draws, apart from every other stream
EVENT_TAIL_S = 0.5  # an event's sound is still audible this long after it (the synthetic decays: 0.1-0.4 s)
CONTINUOUS_STEP_S = 0.5  # candidate moments for objects that sound all the time
MIN_VISIBLE_SHARE = 0.005  # a source must cover this share of the crop to count as visible
IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)

Box = tuple[float, float, float, float]


# -- scoring (pure functions, numpy) ---------------------------------------------------------------


def binarize(heat: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The region a map points at: min-max normalised >= ``threshold``. A flat map points everywhere."""
    heat = np.asarray(heat, dtype=np.float64)
    span = float(heat.max() - heat.min())
    if span <= 0 or not math.isfinite(span):
        return np.ones(heat.shape, dtype=bool)
    return (heat - heat.min()) / span >= threshold


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (0 when both are empty)."""
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 0.0


def success_metrics(ious: Sequence[float]) -> dict[str, float]:
    """{"cIoU@0.5": share of IoU >= 0.5, "AUC": area under the success rate over IoU thresholds 0..1}."""
    values = np.asarray(list(ious), dtype=np.float64)
    if values.size == 0:
        raise ValueError("success_metrics: no IoU values")
    success = np.array([(values >= t).mean() for t in IOU_THRESHOLDS])
    return {"cIoU@0.5": float((values >= 0.5).mean()), "AUC": float(np.trapezoid(success, IOU_THRESHOLDS))}


def box_mask(boxes: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Union of boxes [x0, y0, x1, y1] (pixel edges, x1/y1 exclusive, may be fractional) as a mask."""
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        c0, r0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        c1, r1 = min(width, math.ceil(x1)), min(height, math.ceil(y1))
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1] = True
    return mask


def centre_box_map(height: int, width: int, fraction: float = 0.5) -> np.ndarray:
    """The centre prior: 1 inside a centred box of ``fraction`` of the height and width, 0 elsewhere."""
    if not 0 < fraction <= 1:
        raise ValueError(f"centre fraction must be in (0, 1], got {fraction}")
    bh, bw = max(1, round(fraction * height)), max(1, round(fraction * width))
    top, left = (height - bh) // 2, (width - bw) // 2
    prior = np.zeros((height, width), dtype=np.float32)
    prior[top:top + bh, left:left + bw] = 1.0
    return prior


# -- ground truth ------------------------------------------------------------------------------------


def load_annotation(path: str | Path) -> dict[str, Any]:
    """A clip's ground truth (avssl_core.data.clip_annotations), with a clear error when unusable."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no annotation beside the clip (localisation needs per-frame boxes; the "
                        "synthetic source writes them)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable annotation: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("objects"), list):
        raise DataError(f"{path}: annotation has no 'objects' list")
    for obj in meta["objects"]:
        if not isinstance(obj, dict) or not {"object_id", "sounding", "boxes"} <= obj.keys():
            raise DataError(f"{path}: every object needs object_id, sounding and boxes")
    return meta


def is_continuous(obj: dict[str, Any], events: Sequence[dict[str, Any]]) -> bool:
    """Whether a sounding object sounds all the time (no discrete events). The synthetic classes say so
    themselves; an unknown class is continuous when the clip lists no event of it."""
    cls = CLASS_BY_NAME.get(str(obj.get("class", "")))
    if cls is not None:
        return cls.event_kind is None
    return not any(e.get("object_id") == obj["object_id"] for e in events)


def audible_sources(meta: dict[str, Any], frame: int, audio_s: tuple[float, float]) -> list[dict[str, Any]]:
    """Sounding objects heard in the audio window ``audio_s`` (clip seconds) and present in ``frame``."""
    events = meta.get("events", [])
    out = []
    for obj in meta["objects"]:
        if not obj["sounding"] or frame >= len(obj["boxes"]) or obj["boxes"][frame] is None:
            continue
        if is_continuous(obj, events) or any(
                e.get("object_id") == obj["object_id"]
                and audio_s[0] - EVENT_TAIL_S <= float(e["time_s"]) < audio_s[1] for e in events):
            out.append(obj)
    return out


def crop_box(box: Sequence[float], crop: tuple[int, int, int, int]) -> Box | None:
    """A frame box in the coordinates of the crop (top, left, height, width), clipped; None if outside."""
    top, left, h, w = crop
    x0, y0 = max(0.0, box[0] - left), max(0.0, box[1] - top)
    x1, y1 = min(float(w), box[2] - left), min(float(h), box[3] - top)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


# -- what the method sees ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """One scored sample: a clip, the scored frame, the windows to decode, and its ground truth."""

    row: int  # row in the ClipIndex
    clip_id: str
    frame: int  # the scored frame (clip-local), the middle of the video window
    frame_indices: tuple[int, ...]
    audio_start: int  # samples at the clip's rate
    audio_count: int
    crop: tuple[int, int, int, int]  # (top, left, height, width) in frame pixels
    sources: tuple[int, ...]  # object ids of the audible, visible sounding objects
    boxes: tuple[Box, ...]  # their boxes in crop pixels
    silent_boxes: tuple[Box, ...]  # the other visible objects (distractors, quiet sounders)

    @property
    def multi_source(self) -> bool:
        return len(self.sources) > 1

    def truth(self) -> np.ndarray:
        return box_mask(self.boxes, self.crop[2], self.crop[3])


def clip_moments(index: ClipIndex, row: int, meta: dict[str, Any], spec: PairSpec,
                 crop: tuple[int, int, int, int]) -> list[Moment]:
    """Every usable moment of one clip (see the module docstring)."""
    fps, num_frames = float(index.fps[row]), int(index.num_frames[row])
    sr, num_samples = int(index.sample_rate[row]), int(index.num_samples[row])
    rate = video_rate(spec, fps)
    if rate > fps + 1e-9:
        return []
    offsets = frame_offsets(spec.video_frames, fps, rate)
    middle = int(offsets[len(offsets) // 2])
    audio_len = native_audio_len(spec, sr)
    events = meta.get("events", [])
    candidates = {int(e["frame"]) for e in events}
    if any(o["sounding"] and is_continuous(o, events) for o in meta["objects"]):
        candidates.update(range(0, num_frames, max(1, round(CONTINUOUS_STEP_S * fps))))
    crop_area = crop[2] * crop[3]
    moments = []
    for frame in sorted(candidates):
        start = frame - middle
        if start < 0 or start + int(offsets[-1]) >= num_frames:
            continue
        k = int(centred_audio_start(np.array([start]), fps, video_window_s(spec, fps), sr, audio_len)[0])
        if k < 0 or k + audio_len > num_samples or k / sr < EVENT_TAIL_S:
            continue  # the last condition: an event just before the clip would be missing from its list
        heard = audible_sources(meta, frame, (k / sr, (k + audio_len) / sr))
        sources, boxes = [], []
        for obj in heard:
            box = crop_box(obj["boxes"][frame], crop)
            if box is not None and (box[2] - box[0]) * (box[3] - box[1]) >= MIN_VISIBLE_SHARE * crop_area:
                sources.append(int(obj["object_id"]))
                boxes.append(box)
        if not sources:
            continue
        silent = [crop_box(o["boxes"][frame], crop) for o in meta["objects"]
                  if int(o["object_id"]) not in sources and frame < len(o["boxes"]) and o["boxes"][frame]]
        moments.append(Moment(
            row=row, clip_id=str(index.clip_id[row]), frame=frame,
            frame_indices=tuple(int(start + o) for o in offsets), audio_start=k, audio_count=audio_len,
            crop=crop, sources=tuple(sources), boxes=tuple(boxes),
            silent_boxes=tuple(b for b in silent if b is not None)))
    return moments


def annotation_paths(index_csv: Path, index: ClipIndex) -> list[Path]:
    """Each clip's annotation: the index's annotation_path column (relative paths resolve like the media
    paths, against the working directory), else the .json beside the video."""
    frame = pd.read_csv(index_csv, dtype=str, keep_default_na=False)
    by_clip = dict(zip(frame["clip_id"], frame["annotation_path"], strict=True)) \
        if "annotation_path" in frame.columns else {}
    out = []
    for row, clip_id in enumerate(index.clip_id):
        given = by_clip.get(str(clip_id), "")
        out.append(Path(given).absolute() if given else Path(index.video_path[row]).with_suffix(".json"))
    return out


def select_moments(index_csv: Path, index: ClipIndex, spec: PairSpec, preprocess: PairTransform, *, max_clips: int,
                   moments_per_clip: int, seed: int) -> tuple[list[Moment], dict[str, Any]]:
    """Seeded choice of clips and moments; also returns counts of what could not be used and why."""
    rng = np.random.default_rng([LOCALIZATION_SEED_TAG, seed])
    paths = annotation_paths(index_csv, index)
    moments: list[Moment] = []
    unusable: dict[str, str] = {}
    clips_without_source = 0
    used_clips = 0
    for row in rng.permutation(len(index)):
        if used_clips >= max_clips:
            break
        try:
            meta = load_annotation(paths[row])
        except DataError as exc:
            unusable[str(index.clip_id[row])] = str(exc)
            continue
        crop = preprocess.frame_crop(int(index.height[row]), int(index.width[row]))
        found = clip_moments(index, int(row), meta, spec, crop)
        if not found:
            clips_without_source += 1
            continue
        pick = sorted(rng.choice(len(found), size=min(moments_per_clip, len(found)), replace=False))
        moments.extend(found[i] for i in pick)
        used_clips += 1
    return moments, {"unusable": unusable, "clips_without_visible_source": clips_without_source,
                     "clips": used_clips}


# -- maps ------------------------------------------------------------------------------------------


@torch.no_grad()
def method_maps(method: PretrainMethod, samples: Sequence[dict], preprocess: Any,
                crops: Sequence[tuple[int, int, int, int]], *, batch_size: int) -> list[np.ndarray]:
    """``method.localization_maps`` for raw samples, each upsampled to its crop: [K, crop_h, crop_w]."""
    was_training = method.training
    method.eval()
    device = next(method.parameters()).device
    out: list[np.ndarray] = []
    try:
        for begin in range(0, len(samples), batch_size):
            chunk = samples[begin:begin + batch_size]
            batch = default_collate([preprocess(s) for s in chunk])
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            maps = method.localization_maps(batch)
            if maps.dim() != 4 or maps.shape[0] != len(chunk):
                raise ValueError(f"{method.name}.localization_maps returned shape {tuple(maps.shape)}, "
                                 f"expected [{len(chunk)}, K, h, w]")
            maps = maps.detach().float().cpu()
            if not torch.isfinite(maps).all() or float(maps.min()) < -1e-6:
                raise ValueError(f"{method.name}.localization_maps must be finite and non-negative "
                                 f"(min {float(maps.min()):.3g})")
            for m, crop in zip(maps, crops[begin:begin + batch_size], strict=True):
                up = F.interpolate(m.unsqueeze(0), size=(crop[2], crop[3]), mode="bilinear", align_corners=False)
                out.append(up[0].clamp_min(0).numpy())
    finally:
        method.train(was_training)
    return out


def decode_moment(reader: VideoFrameReader, index: ClipIndex, spec: PairSpec, m: Moment) -> dict[str, Any]:
    """The raw sample of a moment, as the pair dataset would build a positive pair (raises DecodeError)."""
    video = reader.read(str(index.video_path[m.row]), m.frame_indices)
    clip_rate = int(index.sample_rate[m.row])
    target_rate = spec.audio_sample_rate or clip_rate
    audio = read_audio_window(str(index.audio_path[m.row]), m.audio_start, m.audio_count,
                              channels=spec.audio_channels, clip_rate=clip_rate, target_rate=target_rate,
                              target_len=round(spec.audio_seconds * target_rate))
    return {"video": video, "audio": audio, "label": 1, "kind": int(PairKind.POSITIVE), "index": 0,
            "clip": m.row}


# -- the evaluation ---------------------------------------------------------------------------------


def evaluate_localization(method: PretrainMethod, index_csv: Path, split: str, out_dir: Path, *,
                          max_clips: int = 32, seed: int = 0, overlays: int = 8,
                          scratch: PretrainMethod | None = None, moments_per_clip: int = 2,
                          threshold: float = 0.5, centre_fraction: float = 0.5,
                          batch_size: int = 16) -> dict[str, Any]:
    """Score ``method``'s sound-source maps (and ``scratch``'s, on the same samples) against the ground
    truth of ``split`` in ``index_csv``; write overlays and per-sample IoUs under ``out_dir``. Returns the
    ``localization`` task entry of metrics/<method>.json (see the module docstring)."""
    index_csv, out_dir = Path(index_csv), Path(out_dir)
    if max_clips < 1 or moments_per_clip < 1:
        raise ValueError("max_clips and moments_per_clip must be >= 1")
    index = ClipIndex.from_csv(index_csv, splits=split)
    spec = method.pair_spec()
    preprocess = method.preprocess(train=False)
    moments, chosen = select_moments(index_csv, index, spec, preprocess, max_clips=max_clips,
                                     moments_per_clip=moments_per_clip, seed=seed)
    for clip_id, reason in chosen["unusable"].items():
        log.warning("localization: skipping clip %s: %s", clip_id, reason)

    reader = VideoFrameReader(capacity=4)
    samples, kept, decode_failures = [], [], 0
    for m in moments:
        try:
            samples.append(decode_moment(reader, index, spec, m))
            kept.append(m)
        except DecodeError as exc:
            decode_failures += 1
            log.warning("localization: skipping %s frame %d: %s", m.clip_id, m.frame, exc)
    if not kept:
        raise DataError(f"{index_csv} [{split}]: no clip has a moment with an audible, visible sounding object "
                        f"({chosen['clips_without_visible_source']} clips without one, "
                        f"{len(chosen['unusable'])} without a usable annotation, {decode_failures} undecodable)")

    crops = [m.crop for m in kept]
    truths = [m.truth() for m in kept]
    maps = method_maps(method, samples, preprocess, crops, batch_size=batch_size)
    scored = {"pretrained": [iou(binarize(k.mean(0), threshold), t) for k, t in zip(maps, truths, strict=True)],
              "centre_prior": [iou(binarize(centre_box_map(c[2], c[3], centre_fraction), threshold), t)
                               for c, t in zip(crops, truths, strict=True)]}
    if scratch is not None:
        scratch_maps = method_maps(scratch, samples, scratch.preprocess(train=False), crops, batch_size=batch_size)
        scored["scratch"] = [iou(binarize(k.mean(0), threshold), t) for k, t in zip(scratch_maps, truths, strict=True)]

    multi = np.array([m.multi_source for m in kept])
    entry: dict[str, Any] = {
        "dataset": f"{index_csv} [{split}]",
        "protocol": (f"{len(kept)} moments from {chosen['clips']} {split} clips (seeded draw, seed {seed}, at most "
                     f"{max_clips} clips, {moments_per_clip} moments each) at sound events of visible sounding "
                     f"objects; the method's own window centred on the frame, centre crop; map min-max "
                     f"normalised and thresholded at {threshold:g}, IoU with the union of audible sounding-object "
                     f"boxes; cIoU@0.5 = share with IoU >= 0.5, AUC over IoU thresholds 0:0.05:1 (Senocak et al. "
                     f"2018); centre prior: centred box of {centre_fraction:g} x {centre_fraction:g} of the crop"),
        **{name: success_metrics(values) for name, values in scored.items()},
        "samples": len(kept),
        "skipped": len(chosen["unusable"]) + decode_failures,
        "clips_without_visible_source": chosen["clips_without_visible_source"],
        "heads": int(maps[0].shape[0]),
    }
    for part, mask in (("single_source", ~multi), ("multi_source", multi)):
        entry[part] = {"samples": int(mask.sum())}
        if mask.any():
            entry[part].update({name: success_metrics(np.asarray(values)[mask]) for name, values in scored.items()})

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_samples_csv(out_dir / "localization_samples.csv", kept, scored)
    entry["overlays"] = [str(p) for p in _write_overlays(out_dir, method.name, kept, samples, maps, scored,
                                                          overlays, threshold, spec)]
    return entry


def _write_samples_csv(path: Path, moments: Sequence[Moment], scored: dict[str, list[float]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["clip_id", "frame", "sources", "multi_source", *[f"iou_{k}" for k in scored]])
        for i, m in enumerate(moments):
            writer.writerow([m.clip_id, m.frame, " ".join(map(str, m.sources)), int(m.multi_source),
                             *[f"{scored[k][i]:.4f}" for k in scored]])


def _write_overlays(out_dir: Path, name: str, moments: Sequence[Moment], samples: Sequence[dict],
                    maps: Sequence[np.ndarray], scored: dict[str, list[float]], count: int, threshold: float,
                    spec: PairSpec) -> list[Path]:
    """Overlays for up to ``count`` samples: multi-source ones first (at most half), then single-source."""
    if count <= 0:
        return []
    multi = [i for i, m in enumerate(moments) if m.multi_source][:count // 2]
    single = [i for i, m in enumerate(moments) if not m.multi_source]
    chosen = sorted(multi + single[:count - len(multi)])
    paths = []
    middle = spec.video_frames // 2
    for i in chosen:
        m = moments[i]
        top, left, h, w = m.crop
        frame = samples[i]["video"][middle, top:top + h, left:left + w].numpy()
        kind = "multi-source" if m.multi_source else "single-source"
        title = (f"{name}: {m.clip_id} frame {m.frame} ({kind}); IoU {scored['pretrained'][i]:.2f}, "
                 f"centre prior {scored['centre_prior'][i]:.2f}")
        paths.append(save_overlay(frame, maps[i], out_dir / f"localization_{m.clip_id}_f{m.frame:04d}.png",
                                  sounding=m.boxes, silent=m.silent_boxes, title=title, threshold=threshold))
    return paths
