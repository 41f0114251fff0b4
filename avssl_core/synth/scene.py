"""One video's world: which objects, where each keeps to, what they do, and the ground truth they produce.

``build_scene`` is deterministic in (config, seed, main class). Random choices come from independent
streams keyed by purpose (layout, background, each object's plan and sound, pixel noise, hiss), so changing
one knob (say the noise level) does not reshuffle everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avssl_core.config import SynthConfig
from avssl_core.synth.background import Background, make_background
from avssl_core.synth.classes import CLASS_BY_NAME, CLASS_NAMES, CLASSES, ObjectClass, ObjectPlan, Region
from avssl_core.synth.shapes import Sprite
from avssl_core.synth.timeline import Timeline

# Random-stream tags: np.random.default_rng([seed, tag, index]).
LAYOUT, BACKGROUND, OBJECT_PLAN, OBJECT_SOUND, PIXEL_NOISE, HISS = range(1, 7)


def stream_rng(seed: int, tag: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, tag, index])


@dataclass
class SceneObject:
    object_id: int
    cls: ObjectClass
    sounding: bool
    main: bool
    gain: float  # loudness of its sound in the mix (linear)
    plan: ObjectPlan
    sprites: dict[int, Sprite]  # every state the plan shows, drawn once
    top_left: np.ndarray  # (num_frames, 2) int: sprite's (column, row) in the frame, may be off-frame
    boxes: list[list[float] | None]  # per frame [x0, y0, x1, y1] clipped to the frame, None if not visible


@dataclass
class Scene:
    seed: int
    width: int
    height: int
    timeline: Timeline
    label_index: int
    objects: list[SceneObject]  # by object_id; object 0 is the main (labelled) object
    draw_order: list[int]  # object ids, back to front
    background: Background
    video_noise_std: float
    audio_noise_dbfs: float
    class_names: list[str] = field(default_factory=lambda: list(CLASS_NAMES))  # the world's label names
    hum: dict | None = None  # a steady background tone (binding world): base_hz, weights, dbfs

    @property
    def label(self) -> str:
        return self.class_names[self.label_index]

    def events(self) -> list[dict]:
        """Sound-causing visual events of the sounding objects, sorted by time (then object)."""
        out = []
        for obj in self.objects:
            if obj.sounding and obj.cls.event_kind:
                for frame in obj.plan.events:
                    out.append(
                        {
                            "object_id": obj.object_id,
                            "time_s": self.timeline.frame_time(frame),
                            "frame": int(frame),
                            "kind": obj.cls.event_kind,
                        }
                    )
        return sorted(out, key=lambda e: (e["frame"], e["object_id"]))

    def metadata(self, video_id: str, split: str) -> dict:
        """The per-video ground truth JSON (generate.py adds ``params_hash``).

        ``objects[j].boxes[i]`` is object j's box in frame i as [x0, y0, x1, y1] pixel edges (x1, y1
        exclusive), clipped to the frame, or None when it is out of view. ``events`` are the sound-causing
        visual events of sounding objects: the event is visible on ``frame`` (shown at ``time_s = frame / fps``)
        and its sound starts at sample ``round(time_s * sample_rate)``. ``duration_s = num_frames / fps``.
        """
        tl = self.timeline
        return {
            "video_id": video_id,
            "seed": int(self.seed),
            "label": self.label,
            "label_index": int(self.label_index),
            "split": split,
            "classes": list(self.class_names),
            "fps": int(tl.fps),
            "sample_rate": int(tl.sample_rate),
            "width": int(self.width),
            "height": int(self.height),
            "num_frames": int(tl.num_frames),
            "num_samples": int(tl.num_samples),
            "duration_s": float(tl.duration_s),
            "objects": [
                {
                    "object_id": o.object_id,
                    "class": o.cls.name,
                    "sounding": o.sounding,
                    "main": o.main,
                    "boxes": o.boxes,
                }
                for o in self.objects
            ],
            "events": self.events(),
        }


def _place(plan: ObjectPlan, sprites: dict[int, Sprite], width: int, height: int):
    """Integer sprite positions per frame and the frame-clipped boxes they give."""
    n = len(plan.state)
    top_left = np.zeros((n, 2), np.int64)
    boxes: list[list[float] | None] = []
    for i in range(n):
        sprite = sprites[int(plan.state[i])]
        col = int(np.floor(plan.x[i] - sprite.anchor_x + 0.5))
        row = int(np.floor(plan.y[i] - sprite.anchor_y + 0.5))
        top_left[i] = (col, row)
        bx0, by0, bx1, by1 = sprite.box
        x0, y0 = max(0, col + bx0), max(0, row + by0)
        x1, y1 = min(width, col + bx1), min(height, row + by1)
        boxes.append([float(x0), float(y0), float(x1), float(y1)] if x1 > x0 and y1 > y0 else None)
    return top_left, boxes


def scene_object(
    object_id: int, cls: ObjectClass, sounding: bool, main: bool, gain: float, plan: ObjectPlan, width: int, height: int
) -> SceneObject:
    """An object of a scene: its plan, each state it shows drawn once, and where it lands in every frame."""
    sprites = {int(s): cls.draw(plan.params, int(s)) for s in np.unique(plan.state)}
    top_left, boxes = _place(plan, sprites, width, height)
    return SceneObject(
        object_id=object_id,
        cls=cls,
        sounding=sounding,
        main=main,
        gain=gain,
        plan=plan,
        sprites=sprites,
        top_left=top_left,
        boxes=boxes,
    )


def build_scene(cfg: SynthConfig, seed: int, main_class: int | str, num_objects: int | None = None) -> Scene:
    """The scene of one video. ``main_class`` (index or name) is the label; ``num_objects`` overrides the
    random 1..max count (tests use single-object scenes)."""
    label_index = class_index(main_class) if isinstance(main_class, str) else int(main_class)
    timeline = Timeline.for_duration(cfg.duration_s, cfg.fps, cfg.sample_rate)
    width, height = cfg.width, cfg.height
    layout = stream_rng(seed, LAYOUT)
    drawn_count = int(layout.integers(cfg.min_objects, cfg.max_objects + 1))
    count = num_objects if num_objects is not None else drawn_count
    # Extra objects are of other classes, so the label names exactly one kind of thing in the video.
    others = [i for i in range(len(CLASSES)) if i != label_index]
    class_ids = [label_index] + [int(c) for c in layout.choice(others, size=count - 1, replace=False)]
    sounding = [True] + [bool(layout.random() >= cfg.distractor_prob) for _ in range(count - 1)]
    gains = [float(10 ** (layout.uniform(-4.0, 0.0) / 20.0)) for _ in range(count)]
    # Side-by-side lanes (overlapping a little) keep objects apart, so boxes rarely coincide and each
    # sound comes from a distinct direction.
    lane_width = width / count
    lanes = layout.permutation(count)
    sizes = [min(layout.uniform(0.22, 0.32) * min(width, height), 0.9 * lane_width) for _ in range(count)]
    draw_order = [int(i) for i in layout.permutation(count)]

    objects = []
    for object_id in range(count):
        lane = int(lanes[object_id])
        region = Region(
            x0=max(0.0, (lane - 0.1) * lane_width),
            y0=0.0,
            x1=min(float(width), (lane + 1.1) * lane_width),
            y1=float(height),
        )
        cls = CLASSES[class_ids[object_id]]
        plan = cls.plan(stream_rng(seed, OBJECT_PLAN, object_id), timeline, region, sizes[object_id])
        objects.append(
            scene_object(object_id, cls, sounding[object_id], object_id == 0, gains[object_id], plan, width, height)
        )
    return Scene(
        seed=seed,
        width=width,
        height=height,
        timeline=timeline,
        label_index=label_index,
        objects=objects,
        draw_order=draw_order,
        background=make_background(stream_rng(seed, BACKGROUND), timeline, width, height),
        video_noise_std=cfg.video_noise_std,
        audio_noise_dbfs=cfg.audio_noise_dbfs,
    )


def class_index(name: str) -> int:
    """Label index of a class name, with a helpful error for unknown names."""
    if name not in CLASS_BY_NAME:
        raise KeyError(f"unknown class {name!r}; known: {', '.join(CLASS_NAMES)}")
    return CLASS_NAMES.index(name)
