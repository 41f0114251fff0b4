"""A green striped diamond gliding up, down and across; it sings a tone whose pitch follows its height.

Two octaves span the region's height (top = highest pitch). The sound is continuous, so there are no events.
"""

from __future__ import annotations

import numpy as np

from avssl_core.synth import shapes, sounds
from avssl_core.synth.classes.base import ObjectClass, ObjectPlan, Region, smooth_wander, stay_in
from avssl_core.synth.timeline import Timeline

OCTAVES = 2.0


class PitchGlider(ObjectClass):
    name = "pitch_glider"
    event_kind = None
    description = "green diamond with dark stripes; glides smoothly up/down and sweeps sideways; a tone whose pitch follows its height"

    def plan(self, rng: np.random.Generator, timeline: Timeline, region: Region, size: float) -> ObjectPlan:
        half = max(3.0, 0.5 * size)
        times = timeline.frame_times()
        top, bottom = region.y0 + half, region.y1 - half
        y = stay_in(
            0.5 * (top + bottom) + 0.5 * (bottom - top) * smooth_wander(rng, times, 2.0, 6.0), top, bottom
        )
        left, right = region.x0 + 0.7 * half, region.x1 - 0.7 * half
        sweep = np.sin(2 * np.pi * times / rng.uniform(3.0, 7.0) + rng.uniform(0, 2 * np.pi))
        x = stay_in(0.5 * (left + right) + 0.5 * (right - left) * sweep, left, right)
        # Height 0 (bottom of the region) .. 1 (top), what the pitch follows.
        elevation = np.clip((bottom - y) / max(bottom - top, 1e-6), 0.0, 1.0)
        return ObjectPlan(
            params={
                "half": half,
                "colour": shapes.jitter_colour(rng, (60, 190, 70)),
                "low_hz": float(rng.uniform(180.0, 300.0)),
            },
            x=x,
            y=y,
            state=np.zeros(timeline.num_frames, np.int64),
            controls={"elevation": elevation},
        )

    def draw(self, params: dict, state: int) -> shapes.Sprite:
        h = params["half"]
        canvas = shapes.Canvas(half_width=0.7 * h + 1, above=h + 1, below=h + 1)
        x, y = canvas.x, canvas.y
        stripes = 0.75 + 0.35 * (np.sin(y * (2.6 / max(h / 6.0, 1.0))) > 0)
        canvas.paint(
            shapes.coverage(shapes.diamond(x, y, 0, 0, 0.7 * h, h)), shapes.shade(params["colour"], stripes)
        )
        return canvas.sprite()

    def sound(self, plan: ObjectPlan, timeline: Timeline, rng: np.random.Generator) -> np.ndarray:
        elevation = timeline.per_sample(plan.controls["elevation"])
        freq = plan.params["low_hz"] * 2.0 ** (OCTAVES * elevation)
        phase = sounds.phase_from_frequency(freq, timeline.sample_rate) + rng.uniform(0, 2 * np.pi)
        return 0.13 * sounds.harmonics(phase, (1.0, 0.35, 0.15))
