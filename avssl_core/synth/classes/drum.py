"""A drum (striped orange shell, pale head) hit in a rhythm; each hit squashes it and flashes its head.

Hits fall on a beat grid of whole frames (some beats skipped); the hit frame shows the deepest squash and
brightest head, and the thump (a sine gliding down in pitch, plus a stick click) starts at that frame's time.
"""

from __future__ import annotations

import numpy as np

from avssl_core.synth import shapes, sounds
from avssl_core.synth.classes.base import (
    ObjectClass,
    ObjectPlan,
    Region,
    frames_since_last_event,
    smooth_wander,
    stay_in,
)
from avssl_core.synth.timeline import Timeline

# (height scale, head brightness) of the frames since a hit; the last entry is the drum at rest.
RECOIL = [(0.8, 1.0), (0.88, 0.6), (0.95, 0.3), (1.0, 0.0)]


class Drum(ObjectClass):
    name = "drum"
    event_kind = "hit"
    description = "orange drum with vertical stripes and a pale head; nearly still; squashes and its head flashes at each hit; a low pitch-dropping thump with a stick click"

    def plan(self, rng: np.random.Generator, timeline: Timeline, region: Region, size: float) -> ObjectPlan:
        half_w = max(3.0, 0.5 * size)
        height = max(4.0, 0.75 * size)
        times = timeline.frame_times()
        x = stay_in(
            region.centre_x + 0.1 * region.width * smooth_wander(rng, times, 8.0, 15.0),
            region.x0 + half_w,
            region.x1 - half_w,
        )
        base_y = region.y1 - rng.uniform(0.05, 0.3) * region.height  # anchor: bottom centre of the shell
        beat = int(
            rng.integers(
                max(2, timeline.seconds_to_frames(0.28)), max(3, timeline.seconds_to_frames(0.6)) + 1
            )
        )
        events, frame = [], int(rng.integers(0, beat))
        while frame < timeline.num_frames:
            if rng.random() < 0.75:
                events.append(frame)
            frame += beat
        since = frames_since_last_event(timeline.num_frames, events)
        return ObjectPlan(
            params={
                "half_w": half_w,
                "height": height,
                "shell": shapes.jitter_colour(rng, (220, 120, 30)),
                "low_hz": float(rng.uniform(70, 130)),
                "velocity": {f: float(rng.uniform(0.7, 1.0)) for f in events},
            },
            x=x,
            y=np.full(timeline.num_frames, base_y),
            state=np.minimum(since, len(RECOIL) - 1).astype(np.int64),
            events=events,
        )

    def draw(self, params: dict, state: int) -> shapes.Sprite:
        squash, flash = RECOIL[state]
        hw, height = params["half_w"], params["height"] * squash
        head_ry = 0.22 * hw
        canvas = shapes.Canvas(half_width=hw + 1, above=height + head_ry + 1, below=1)
        x, y = canvas.x, canvas.y
        stripes = 0.8 + 0.3 * (np.sin(x * (2 * np.pi / max(2.5, 0.45 * hw))) > 0)
        shell = np.minimum(
            shapes.coverage(shapes.box(x, y, 0, -0.5 * height, hw, 0.5 * height)),
            shapes.coverage(
                shapes.ellipse(x, y, 0, -0.5 * height, hw, 0.5 * height + head_ry)
            ),  # round the bottom
        )
        canvas.paint(shell, shapes.shade(params["shell"], stripes))
        head = (
            np.asarray((225, 210, 180), np.float32) * (1 - flash)
            + np.asarray((255, 255, 255), np.float32) * flash
        )
        canvas.paint(shapes.coverage(shapes.ellipse(x, y, 0, -height, hw, head_ry)), head)
        return canvas.sprite()

    def sound(self, plan: ObjectPlan, timeline: Timeline, rng: np.random.Generator) -> np.ndarray:
        sr = timeline.sample_rate
        n = int(0.45 * sr)
        t = np.arange(n) / sr
        glide = plan.params["low_hz"] * (
            1.0 + 1.0 * np.exp(-t / 0.03)
        )  # the skin's pitch drops after the strike
        thump = np.cos(sounds.phase_from_frequency(glide, sr) - sounds.phase_from_frequency(glide[:1], sr)[0])
        thump = (thump * sounds.decay(n, 0.16, sr)).astype(np.float32)
        out = np.zeros(timeline.num_samples, np.float32)
        for frame in plan.events:
            wave = 0.6 * thump.copy()
            click = 0.25 * sounds.noise_transient(rng, 0.002, 0.012, sr)
            wave[: len(click)] += click
            sounds.add_at(out, timeline.onset_sample(frame), plan.params["velocity"][frame] * wave)
        return out
