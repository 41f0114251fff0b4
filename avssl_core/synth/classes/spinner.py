"""A blue four-bladed pinwheel that spins at a varying speed; its buzz rises and throbs with the rotation.

The buzz's fundamental grows with the rotation rate and its loudness swells each time a blade passes the
top, so both pitch and rhythm of the sound follow what the wheel visibly does.
"""

from __future__ import annotations

import numpy as np

from avssl_core.synth import shapes, sounds
from avssl_core.synth.classes.base import ObjectClass, ObjectPlan, Region, smooth_wander, stay_in
from avssl_core.synth.timeline import Timeline

BLADES = 4
ANGLE_STEPS = 24  # drawn rotation steps per blade period (3.75 degrees each)
MIN_REVS, MAX_REVS = 0.2, 1.2  # revolutions per second; well below the frame-rate limit of visible rotation


class Spinner(ObjectClass):
    name = "spinner"
    event_kind = None
    description = "blue four-bladed pinwheel with a white hub; spins at a smoothly varying speed while drifting; a buzz whose pitch and throb follow the rotation"

    def plan(self, rng: np.random.Generator, timeline: Timeline, region: Region, size: float) -> ObjectPlan:
        radius = max(3.0, 0.5 * size)
        times = timeline.frame_times()
        revs = MIN_REVS + (MAX_REVS - MIN_REVS) * (0.5 + 0.5 * smooth_wander(rng, times, 2.0, 5.0))
        direction = rng.choice([-1.0, 1.0])
        # Angle at frame k integrates the rate over the frames before it (starting at a random angle).
        angle = (
            rng.uniform(0, 2 * np.pi)
            + direction * 2 * np.pi * np.concatenate([[0.0], np.cumsum(revs[:-1])]) / timeline.fps
        )
        blade_period = 2 * np.pi / BLADES
        state = (
            np.round(np.mod(angle, blade_period) / blade_period * ANGLE_STEPS).astype(np.int64) % ANGLE_STEPS
        )
        x = stay_in(
            region.centre_x + 0.3 * region.width * smooth_wander(rng, times, 4.0, 9.0),
            region.x0 + radius,
            region.x1 - radius,
        )
        y = stay_in(
            region.centre_y + 0.3 * region.height * smooth_wander(rng, times, 4.0, 9.0),
            region.y0 + radius,
            region.y1 - radius,
        )
        return ObjectPlan(
            params={
                "radius": radius,
                "colour": shapes.jitter_colour(rng, (50, 90, 220)),
                "base_hz": float(rng.uniform(70, 110)),
            },
            x=x,
            y=y,
            state=state,
            controls={"revs_per_s": revs, "angle": angle},
        )

    def draw(self, params: dict, state: int) -> shapes.Sprite:
        r = params["radius"]
        canvas = shapes.Canvas(half_width=r + 1, above=r + 1, below=r + 1)
        x, y = canvas.x, canvas.y
        base = state / ANGLE_STEPS * (2 * np.pi / BLADES)
        dist = np.hypot(x, y)
        theta = np.arctan2(y, x)
        blades = np.zeros_like(x)
        for b in range(BLADES):
            # Each blade is a swept wedge (leading edge straight, trailing edge curved): the rotation reads clearly.
            rel = (
                np.mod(theta - base - b * 2 * np.pi / BLADES + np.pi, 2 * np.pi) - np.pi
            )  # from leading edge
            width = 0.9 * (1.0 - 0.5 * dist / r)
            inside_by = np.minimum(rel, width - rel) * dist  # arc-length distance to the nearer edge
            blades = np.maximum(blades, shapes.coverage(-inside_by) * shapes.coverage(dist - r))
        canvas.paint(blades, shapes.shade(params["colour"], 0.8 + 0.4 * dist / r))
        canvas.paint(shapes.coverage(shapes.circle(x, y, 0, 0, max(1.2, 0.2 * r))), (240, 240, 240))
        return canvas.sprite()

    def sound(self, plan: ObjectPlan, timeline: Timeline, rng: np.random.Generator) -> np.ndarray:
        revs = timeline.per_sample(plan.controls["revs_per_s"])
        angle = timeline.per_sample(plan.controls["angle"])
        freq = plan.params["base_hz"] + 110.0 * revs
        phase = sounds.phase_from_frequency(freq, timeline.sample_rate)
        buzz = sounds.harmonics(phase, [1.0 / k for k in range(1, 9)])
        throb = 0.45 + 0.55 * (0.5 + 0.5 * np.cos(BLADES * angle)) ** 2  # a swell per blade passing
        loudness = 0.5 + 0.5 * revs / MAX_REVS
        return (0.18 * buzz * throb * loudness).astype(np.float32)
