"""A purple ringed disc that swells in breaths; each swell comes with a burst of breathy noise.

The swell and the noise share one envelope, nonzero from the event frame on, so the disc is visibly larger
on the event frame and the burst starts at that frame's time.
"""

from __future__ import annotations

import numpy as np

from avssl_core.synth import shapes, sounds
from avssl_core.synth.classes.base import (
    ObjectClass,
    ObjectPlan,
    Region,
    random_event_frames,
    smooth_wander,
    stay_in,
)
from avssl_core.synth.timeline import Timeline

SWELL_STEPS = 10  # drawn radii between rest and fully swollen
MAX_SWELL = 0.35  # radius grows by up to this fraction
ATTACK_S, ATTACK_HEAD_S = 0.03, 0.02


def breath_envelope(tau: np.ndarray, decay_s: float) -> np.ndarray:
    """Breath shape after its onset (tau >= 0 s): a fast rise already half-way at tau = 0, then a slow fall."""
    env = (1.0 - np.exp(-(tau + ATTACK_HEAD_S) / ATTACK_S)) * np.exp(-tau / decay_s)
    return np.where(tau >= 0, env, 0.0)


def swell_at(times: np.ndarray, onsets_s: list[float], decay_s: float) -> np.ndarray:
    out = np.zeros(times.shape, np.float64)
    for onset in onsets_s:
        i0, i1 = np.searchsorted(times, [onset - 1e-9, onset + 8 * decay_s])
        out[i0:i1] += breath_envelope(times[i0:i1] - onset, decay_s)
    return np.clip(out, 0.0, 1.0)


class Breather(ObjectClass):
    name = "breather"
    event_kind = "pulse"
    description = "purple disc with concentric rings; swells in breaths and slowly relaxes; a band of breathy noise per swell"

    def plan(self, rng: np.random.Generator, timeline: Timeline, region: Region, size: float) -> ObjectPlan:
        radius = max(2.5, 0.4 * size)
        reach = radius * (1 + MAX_SWELL)
        times = timeline.frame_times()
        x = stay_in(
            region.centre_x + 0.3 * region.width * smooth_wander(rng, times, 4.0, 9.0),
            region.x0 + reach,
            region.x1 - reach,
        )
        y = stay_in(
            region.centre_y + 0.3 * region.height * smooth_wander(rng, times, 4.0, 9.0),
            region.y0 + reach,
            region.y1 - reach,
        )
        events = random_event_frames(rng, timeline, 0.7, 1.8)
        decay_s = float(rng.uniform(0.2, 0.4))
        swell = swell_at(times, [timeline.frame_time(f) for f in events], decay_s)
        centre_hz = float(rng.uniform(600, 2200))
        return ObjectPlan(
            params={
                "radius": radius,
                "colour": shapes.jitter_colour(rng, (150, 60, 190)),
                "decay_s": decay_s,
                "band_hz": (centre_hz / 1.6, centre_hz * 1.6),
            },
            x=x,
            y=y,
            # ceil: any swell at all is drawn, so the event frame is never drawn at rest.
            state=np.ceil(swell * (SWELL_STEPS - 1) - 1e-6).astype(np.int64),
            events=events,
            controls={"swell": swell},
        )

    def draw(self, params: dict, state: int) -> shapes.Sprite:
        r = params["radius"] * (1.0 + MAX_SWELL * state / (SWELL_STEPS - 1))
        canvas = shapes.Canvas(half_width=r + 1, above=r + 1, below=r + 1)
        x, y = canvas.x, canvas.y
        dist = np.hypot(x, y)
        rings = 0.75 + 0.3 * np.cos(dist * (2 * np.pi * 3.0 / r))  # three rings that stretch as it swells
        canvas.paint(shapes.coverage(dist - r), shapes.shade(params["colour"], rings))
        return canvas.sprite()

    def sound(self, plan: ObjectPlan, timeline: Timeline, rng: np.random.Generator) -> np.ndarray:
        sr = timeline.sample_rate
        onsets = [timeline.onset_sample(f) / sr for f in plan.events]
        envelope = swell_at(timeline.sample_times(), onsets, plan.params["decay_s"])
        low, high = plan.params["band_hz"]
        noise = sounds.bandpass_noise(rng, timeline.num_samples, low, high, sr)
        return (0.2 * noise * envelope).astype(np.float32)
