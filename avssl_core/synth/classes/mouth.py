"""A face whose mouth opens and closes in syllables; a voiced sound's loudness follows the opening.

A lip-sync analogue: the opening is a sum of syllable-shaped bumps evaluated at both frame and sample times,
so the voice swells exactly as the mouth opens, and its vowel brightens (higher first formant) when wide.
"""

from __future__ import annotations

import numpy as np

from avssl_core.synth import shapes, sounds
from avssl_core.synth.classes.base import ObjectClass, ObjectPlan, Region, smooth_wander, stay_in
from avssl_core.synth.timeline import Timeline

OPENING_STEPS = 12  # drawn mouth openings, closed .. widest
# (centre Hz, bandwidth Hz) of the formants of a closed ("oo") and an open ("ah") vowel.
CLOSED_VOWEL = ((320, 90), (870, 110))
OPEN_VOWEL = ((730, 110), (1100, 120), (2450, 180))


def syllables(rng: np.random.Generator, duration_s: float) -> list[tuple[float, float, float]]:
    """(start_s, length_s, peak opening) of each syllable: phrases of 2-6 syllables with pauses between."""
    out = []
    t = rng.uniform(0.0, 0.8)
    while t < duration_s:
        for _ in range(int(rng.integers(2, 7))):
            length = rng.uniform(0.14, 0.32)
            out.append((t, length, rng.uniform(0.5, 1.0)))
            t += length + rng.uniform(0.0, 0.08)
        t += rng.uniform(0.3, 1.0)
    return out


def opening_at(times: np.ndarray, sylls: list[tuple[float, float, float]]) -> np.ndarray:
    """Mouth opening 0..1 at arbitrary times (frame times for pixels, sample times for sound)."""
    out = np.zeros(times.shape, np.float32)
    for start, length, peak in sylls:
        i0, i1 = np.searchsorted(times, [start, start + length])
        if i1 > i0:
            out[i0:i1] += peak * np.sin(np.pi * (times[i0:i1] - start) / length) ** 2
    return np.clip(out, 0.0, 1.0)


class Mouth(ObjectClass):
    name = "mouth"
    event_kind = None
    description = "skin-toned face with eyes and a dark mouth; mouth opens and closes in syllables; a voice whose loudness and vowel follow the opening"

    def plan(self, rng: np.random.Generator, timeline: Timeline, region: Region, size: float) -> ObjectPlan:
        half_w, half_h = max(3.0, 0.42 * size), max(4.0, 0.55 * size)
        times = timeline.frame_times()
        x = stay_in(
            region.centre_x + 0.25 * region.width * smooth_wander(rng, times, 5.0, 10.0),
            region.x0 + half_w,
            region.x1 - half_w,
        )
        y = stay_in(
            region.centre_y + 0.25 * region.height * smooth_wander(rng, times, 5.0, 10.0),
            region.y0 + half_h,
            region.y1 - half_h,
        )
        sylls = syllables(rng, timeline.duration_s)
        opening = opening_at(times, sylls)
        return ObjectPlan(
            params={
                "half_w": half_w,
                "half_h": half_h,
                "skin": shapes.jitter_colour(rng, (225, 180, 140), 15),
                "syllables": sylls,
                "pitch_hz": float(rng.uniform(100, 220)),
            },
            x=x,
            y=y,
            state=np.round(opening * (OPENING_STEPS - 1)).astype(np.int64),
            controls={"opening": opening},
        )

    def draw(self, params: dict, state: int) -> shapes.Sprite:
        hw, hh = params["half_w"], params["half_h"]
        canvas = shapes.Canvas(half_width=hw + 1, above=hh + 1, below=hh + 1)
        x, y = canvas.x, canvas.y
        canvas.paint(shapes.coverage(shapes.ellipse(x, y, 0, 0, hw, hh)), params["skin"])
        for side in (-1, 1):
            canvas.paint(
                shapes.coverage(shapes.circle(x, y, side * 0.4 * hw, -0.3 * hh, max(0.8, 0.12 * hw))),
                (30, 25, 20),
            )
        opening = state / (OPENING_STEPS - 1)
        mouth_y, mouth_hw = 0.4 * hh, 0.5 * hw
        lips = shapes.coverage(
            shapes.ellipse(x, y, 0, mouth_y, mouth_hw, 0.6 + 0.12 * hh)
        )  # closed: a line of lips
        canvas.paint(lips, (150, 50, 55))
        if opening > 0:
            inner = shapes.coverage(
                shapes.ellipse(x, y, 0, mouth_y, 0.85 * mouth_hw, 0.05 * hh + 0.33 * hh * opening)
            )
            canvas.paint(inner, (60, 10, 15))
        return canvas.sprite()

    def sound(self, plan: ObjectPlan, timeline: Timeline, rng: np.random.Generator) -> np.ndarray:
        sr = timeline.sample_rate
        times = timeline.sample_times()
        opening = opening_at(times, plan.params["syllables"])
        # Slow intonation plus slight vibrato around the speaker's pitch.
        pitch = plan.params["pitch_hz"] * (
            1.0 + 0.08 * smooth_wander(rng, times, 1.0, 3.0) + 0.01 * np.sin(2 * np.pi * 5.5 * times)
        )
        count = max(1, int(min(3500.0, 0.45 * sr) // (1.4 * plan.params["pitch_hz"])))
        source = sounds.harmonics(
            sounds.phase_from_frequency(pitch, sr), [1.0 / k for k in range(1, count + 1)]
        )
        closed = sum(sounds.resonator(source, f, b, sr) for f, b in CLOSED_VOWEL if f < 0.45 * sr)
        wide = sum(sounds.resonator(source, f, b, sr) for f, b in OPEN_VOWEL if f < 0.45 * sr)
        closed /= max(float(np.max(np.abs(closed))), 1e-9)
        wide /= max(float(np.max(np.abs(wide))), 1e-9)
        voice = (1.0 - opening) * closed + opening * wide
        return (0.45 * opening * voice).astype(np.float32)
