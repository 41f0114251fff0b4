"""What every object class provides: a motion plan, a sprite per visual state, and a sound from the plan.

A class decides everything about one object in ``plan`` (positions, visual state and sound-causing events per
frame), draws each distinct state once in ``draw``, and synthesizes its mono sound from the same plan in
``sound``; the scene then pans that sound by where the object is. Because look and sound read one plan, the
sound is caused by what is seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avssl_core.synth.shapes import Sprite
from avssl_core.synth.timeline import Timeline


@dataclass(frozen=True)
class Region:
    """The part of the frame (pixels) an object keeps to; scenes give each object its own lane."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def centre_x(self) -> float:
        return 0.5 * (self.x0 + self.x1)

    @property
    def centre_y(self) -> float:
        return 0.5 * (self.y0 + self.y1)


@dataclass
class ObjectPlan:
    """One object's behaviour over a whole video."""

    params: dict  # look and sound parameters fixed for the video (size, colours, pitch range, ...)
    x: np.ndarray  # anchor position per frame, pixels (the sprite's anchor lands here)
    y: np.ndarray
    state: np.ndarray  # int per frame: which drawn state (sprite) is shown
    events: list[int] = field(default_factory=list)  # frames of sound-causing visual events, ascending
    controls: dict[str, np.ndarray] = field(default_factory=dict)  # per-frame signals the sound follows


class ObjectClass:
    """Base of the sounding-object classes. Subclasses are stateless; per-object data lives in the plan."""

    name: str = ""
    event_kind: str | None = None  # the kind of its discrete events, or None for continuous sounds
    description: str = ""  # look / motion / sound, one line (docs and reports)

    def plan(self, rng: np.random.Generator, timeline: Timeline, region: Region, size: float) -> ObjectPlan:
        """Decide the object's look parameters and motion; ``size`` is its nominal extent in pixels."""
        raise NotImplementedError

    def draw(self, params: dict, state: int) -> Sprite:
        raise NotImplementedError

    def sound(self, plan: ObjectPlan, timeline: Timeline, rng: np.random.Generator) -> np.ndarray:
        """Mono float32 waveform of ``timeline.num_samples`` samples, peak roughly 0.2-0.6."""
        raise NotImplementedError


# Motion helpers shared by the classes.


def smooth_wander(
    rng: np.random.Generator, times: np.ndarray, min_period_s: float, max_period_s: float
) -> np.ndarray:
    """A smooth random signal in [-1, 1]: three sinusoids of random slow periods and phases."""
    out = np.zeros_like(times, dtype=np.float64)
    weights = rng.uniform(0.5, 1.0, 3)
    for w in weights:
        period = rng.uniform(min_period_s, max_period_s)
        out += w * np.sin(2 * np.pi * times / period + rng.uniform(0, 2 * np.pi))
    return out / weights.sum()


def fold(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Reflect positions into [low, high], like something bouncing off two walls."""
    if high <= low:
        return np.full_like(values, 0.5 * (low + high))
    span = high - low
    phase = np.mod(values - low, 2 * span)
    return low + np.where(phase > span, 2 * span - phase, phase)


def random_event_frames(
    rng: np.random.Generator,
    timeline: Timeline,
    min_gap_s: float,
    max_gap_s: float,
    first_after_s: float = 0.1,
) -> list[int]:
    """Event frames with random gaps; the first comes a random part of one gap after ``first_after_s``."""
    frames = []
    t = first_after_s + rng.uniform(0.0, max_gap_s)
    while t < timeline.duration_s:
        frames.append(int(round(t * timeline.fps)))
        t += rng.uniform(min_gap_s, max_gap_s)
    return sorted({f for f in frames if 0 <= f < timeline.num_frames})


def frames_since_last_event(num_frames: int, events: list[int]) -> np.ndarray:
    """Per frame, how many frames ago the latest event happened (a large number before the first)."""
    since = np.full(num_frames, 1_000_000, np.int64)
    if events:
        ev = np.asarray(events)
        idx = np.searchsorted(ev, np.arange(num_frames), side="right") - 1
        has = idx >= 0
        since[has] = np.arange(num_frames)[has] - ev[idx[has]]
    return since


def stay_in(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clamp to [low, high]; when the range is empty (object wider than its lane) use its middle."""
    if high < low:
        return np.full_like(values, 0.5 * (low + high))
    return np.clip(values, low, high)
