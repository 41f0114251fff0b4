"""A teal bob on a grey rod swinging from a pivot; it ticks at each end of its swing (tick right, tock left).

The half-period is a whole number of frames and the swing is phased so that its turning points land on
frames: the event frame shows the bob at its extreme and the tick starts at that frame's time.
"""

from __future__ import annotations

import math

import numpy as np

from avssl_core.synth import shapes, sounds
from avssl_core.synth.classes.base import ObjectClass, ObjectPlan, Region, smooth_wander, stay_in
from avssl_core.synth.timeline import Timeline

ANGLE_STEP_DEG = 1.0  # drawn swing angles are whole degrees
TICK_HZ = {1: 1900.0, -1: 1450.0}  # right end, left end


class Pendulum(ObjectClass):
    name = "pendulum"
    event_kind = "tick"
    description = "teal bob on a grey rod hanging from a dark pivot; swings with a slowly drifting pivot; a tick at the right end and a lower tock at the left end of each swing"

    def plan(self, rng: np.random.Generator, timeline: Timeline, region: Region, size: float) -> ObjectPlan:
        bob = max(2.0, 0.3 * size)
        pivot_y = region.y0 + 0.08 * region.height
        rod = max(2.0 * bob, (region.y1 - pivot_y - 1.5 * bob) * rng.uniform(0.55, 0.9))
        half_lane = 0.5 * region.width
        fits = math.degrees(math.asin(min(1.0, max(0.0, (half_lane - bob) / rod))))
        amplitude = max(10.0, min(rng.uniform(25.0, 50.0), fits))
        half_period = int(
            rng.integers(
                max(2, timeline.seconds_to_frames(0.45)), max(3, timeline.seconds_to_frames(1.0)) + 1
            )
        )
        first_end = int(rng.integers(0, half_period))
        frames = np.arange(timeline.num_frames)
        swing = np.cos(np.pi * (frames - first_end) / half_period)  # +1 at the right end, -1 at the left
        angle = amplitude * swing
        times = timeline.frame_times()
        reach = rod * math.sin(math.radians(amplitude)) + bob
        pivot_x = stay_in(
            region.centre_x + 0.15 * region.width * smooth_wander(rng, times, 6.0, 12.0),
            region.x0 + reach,
            region.x1 - reach,
        )
        events = list(range(first_end, timeline.num_frames, half_period))
        return ObjectPlan(
            params={
                "bob": bob,
                "rod": rod,
                "colour": shapes.jitter_colour(rng, (40, 185, 180)),
                "end_side": {f: (1 if (f - first_end) // half_period % 2 == 0 else -1) for f in events},
            },
            x=pivot_x,
            y=np.full(timeline.num_frames, pivot_y),
            state=np.round(angle / ANGLE_STEP_DEG).astype(np.int64),
            events=events,
        )

    def draw(self, params: dict, state: int) -> shapes.Sprite:
        bob, rod = params["bob"], params["rod"]
        theta = math.radians(state * ANGLE_STEP_DEG)
        bx, by = rod * math.sin(theta), rod * math.cos(theta)  # y grows downwards
        canvas = shapes.Canvas(half_width=abs(bx) + bob + 2, above=2, below=by + bob + 2)
        x, y = canvas.x, canvas.y
        canvas.paint(
            shapes.coverage(shapes.segment(x, y, 0, 0, bx, by, max(0.6, 0.08 * bob))), (150, 150, 155)
        )
        canvas.paint(shapes.coverage(shapes.circle(x, y, 0, 0, max(1.0, 0.25 * bob))), (35, 35, 40))
        canvas.paint(shapes.coverage(shapes.circle(x, y, bx, by, bob)), (25, 60, 60))
        canvas.paint(shapes.coverage(shapes.circle(x, y, bx, by, 0.75 * bob)), params["colour"])
        return canvas.sprite()

    def sound(self, plan: ObjectPlan, timeline: Timeline, rng: np.random.Generator) -> np.ndarray:
        sr = timeline.sample_rate
        out = np.zeros(timeline.num_samples, np.float32)
        ticks = {side: sounds.damped_sine(hz, 0.012, 0.06, sr) for side, hz in TICK_HZ.items()}
        for frame in plan.events:
            wave = 0.4 * ticks[plan.params["end_side"][frame]].copy()
            transient = 0.25 * sounds.noise_transient(rng, 0.0006, 0.004, sr)
            wave[: len(transient)] += transient
            sounds.add_at(out, timeline.onset_sample(frame), wave)
        return out
