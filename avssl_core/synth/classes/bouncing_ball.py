"""A red shaded ball bouncing under gravity and drifting sideways; it clicks at each impact with the floor.

Every arc lasts a whole number of frames, so impacts land exactly on frames: the event frame shows the ball
squashed on the floor and the click starts at that frame's time, louder for higher (faster) arcs.
"""

from __future__ import annotations

import numpy as np

from avssl_core.synth import shapes, sounds
from avssl_core.synth.classes.base import ObjectClass, ObjectPlan, Region, fold
from avssl_core.synth.timeline import Timeline

RESTING, SQUASHED = 0, 1


class BouncingBall(ObjectClass):
    name = "bouncing_ball"
    event_kind = "impact"
    description = "red shaded ball; parabolic bounces with sideways drift; a click at each impact (louder for higher arcs)"

    def plan(self, rng: np.random.Generator, timeline: Timeline, region: Region, size: float) -> ObjectPlan:
        radius = max(2.5, 0.5 * size)
        floor_y = region.y1 - rng.uniform(0.0, 0.08) * region.height  # the ball's lowest point
        max_height = max(radius, floor_y - region.y0 - 2.2 * radius)
        shortest = max(3, timeline.seconds_to_frames(0.35))
        longest = max(shortest + 1, timeline.seconds_to_frames(0.9))
        # Gravity that lets the longest arc just reach the top of the region: h = g T^2 / 8.
        gravity = 8.0 * max_height / (longest / timeline.fps) ** 2

        impacts = [-int(rng.integers(0, longest))]  # the first arc began before the video
        while impacts[-1] < timeline.num_frames:
            impacts.append(impacts[-1] + int(rng.integers(shortest, longest + 1)))
        impacts_arr = np.asarray(impacts)
        frames = np.arange(timeline.num_frames)
        arc = np.searchsorted(impacts_arr, frames, side="right") - 1
        arc_start = impacts_arr[arc]
        arc_len_s = (impacts_arr[arc + 1] - arc_start) / timeline.fps
        tau = (frames - arc_start) / timeline.fps
        height = 0.5 * gravity * tau * (arc_len_s - tau)

        speed = rng.uniform(0.1, 0.35) * region.width * rng.choice([-1.0, 1.0])
        x = fold(
            rng.uniform(region.x0, region.x1) + speed * timeline.frame_times(),
            region.x0 + radius,
            region.x1 - radius,
        )
        events = [int(f) for f in impacts if 0 <= f < timeline.num_frames]
        # Impact speed grows with the height of the arc that ends in the impact (v = sqrt(2 g h)).
        arc_heights = gravity * (np.diff(impacts_arr) / timeline.fps) ** 2 / 8.0
        strength = {
            int(impacts[i + 1]): float(np.sqrt(arc_heights[i] / max_height)) for i in range(len(arc_heights))
        }
        state = np.full(timeline.num_frames, RESTING, np.int64)
        state[events] = SQUASHED
        return ObjectPlan(
            params={
                "radius": radius,
                "colour": shapes.jitter_colour(rng, (215, 45, 40)),
                "ring_hz": float(rng.uniform(1300, 2600) * (8.0 / max(radius, 4.0)) ** 0.3),
                "strength": strength,
            },
            x=x,
            y=floor_y - height,
            state=state,
            events=events,
        )

    def draw(self, params: dict, state: int) -> shapes.Sprite:
        r = params["radius"]
        # Anchor = the ball's lowest point, so the squashed ball stays on the floor.
        rx, ry = (1.22 * r, 0.8 * r) if state == SQUASHED else (r, r)
        canvas = shapes.Canvas(half_width=rx + 1, above=2 * ry + 1, below=1)
        x, y = canvas.x, canvas.y
        inside = shapes.coverage(shapes.ellipse(x, y, 0.0, -ry, rx, ry))
        # Lit from the upper left: darker away from a highlight point.
        light = np.hypot(x + 0.35 * rx, y + 1.4 * ry) / (2.0 * r)
        canvas.paint(inside, shapes.shade(params["colour"], 1.25 - 0.75 * np.clip(light, 0, 1)))
        canvas.paint(
            0.8 * shapes.coverage(shapes.circle(x, y, -0.35 * rx, -1.45 * ry, 0.22 * r)), (255, 235, 225)
        )
        return canvas.sprite()

    def sound(self, plan: ObjectPlan, timeline: Timeline, rng: np.random.Generator) -> np.ndarray:
        sr = timeline.sample_rate
        out = np.zeros(timeline.num_samples, np.float32)
        ring = sounds.damped_sine(plan.params["ring_hz"], 0.012, 0.08, sr)
        for frame in plan.events:
            strength = plan.params["strength"].get(frame, 1.0)
            click = 0.3 * sounds.noise_transient(rng, 0.0008, 0.01, sr)
            wave = 0.5 * ring.copy()
            wave[: len(click)] += click
            sounds.add_at(out, timeline.onset_sample(frame), (0.25 + 0.75 * strength) * wave)
        return out
