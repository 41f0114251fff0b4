"""A lamp (amber glass in a dark housing) that flashes white and beeps at each flash.

This is the class for measuring alignment: the flash starts on exactly the event frame (the frame before
is dark) and the beep's first sample is the event frame's time, at full loudness within a millisecond.
"""

from __future__ import annotations

import numpy as np

from avssl_core.synth import shapes, sounds
from avssl_core.synth.classes.base import (
    ObjectClass,
    ObjectPlan,
    Region,
    frames_since_last_event,
    random_event_frames,
    smooth_wander,
    stay_in,
)
from avssl_core.synth.timeline import Timeline

OFF = 0
# Glass colour: off, then the flash frames (brightest on the event frame, fading over the next two).
GLASS = [(150, 115, 25), (255, 255, 235), (245, 225, 140), (205, 170, 70)]
BEEP_S = 0.1
ATTACK_S = 0.001


class FlashLamp(ObjectClass):
    name = "flash_lamp"
    event_kind = "flash"
    description = "amber lamp in a dark rounded housing; nearly still; flashes white (fading over 3 frames) with a short beep starting on the flash frame"

    def plan(self, rng: np.random.Generator, timeline: Timeline, region: Region, size: float) -> ObjectPlan:
        half = max(3.0, 0.45 * size)
        times = timeline.frame_times()
        x = stay_in(
            region.centre_x + 0.2 * region.width * smooth_wander(rng, times, 6.0, 12.0),
            region.x0 + half,
            region.x1 - half,
        )
        y = stay_in(
            region.centre_y + 0.2 * region.height * smooth_wander(rng, times, 6.0, 12.0),
            region.y0 + half,
            region.y1 - half,
        )
        # At least 0.4 s apart, so each flash has faded before the next.
        events = random_event_frames(rng, timeline, 0.4, 1.2)
        since = frames_since_last_event(timeline.num_frames, events)
        state = np.where(since < len(GLASS) - 1, since + 1, OFF).astype(np.int64)
        return ObjectPlan(
            params={"half": half, "beep_hz": float(rng.uniform(700, 1500))},
            x=x,
            y=y,
            state=state,
            events=events,
        )

    def draw(self, params: dict, state: int) -> shapes.Sprite:
        h = params["half"]
        canvas = shapes.Canvas(half_width=h + 1, above=h + 1, below=h + 1)
        x, y = canvas.x, canvas.y
        canvas.paint(shapes.coverage(shapes.rounded_box(x, y, 0, 0, h, h, 0.3 * h)), (45, 45, 50))
        glass = shapes.coverage(shapes.rounded_box(x, y, 0, 0, 0.72 * h, 0.72 * h, 0.25 * h))
        canvas.paint(glass, GLASS[state])
        return canvas.sprite()

    def sound(self, plan: ObjectPlan, timeline: Timeline, rng: np.random.Generator) -> np.ndarray:
        sr = timeline.sample_rate
        n = int(BEEP_S * sr)
        t = np.arange(n, dtype=np.float32) / sr
        envelope = np.minimum(
            1.0, (t * sr + 1) / max(1.0, ATTACK_S * sr)
        )  # nonzero from the very first sample
        envelope *= np.minimum(1.0, (BEEP_S - t) / 0.01)  # 10 ms release: no click at the end
        beep = (0.35 * np.cos(2 * np.pi * plan.params["beep_hz"] * t) * envelope).astype(np.float32)
        out = np.zeros(timeline.num_samples, np.float32)
        for frame in plan.events:
            sounds.add_at(out, timeline.onset_sample(frame), beep)
        return out
