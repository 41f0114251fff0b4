"""The ``binding`` world: the class is what moves and sounds together, never what things look like.

Why a second world. In the ``shapes`` world each class has its own colour, shape and pitch, so random
(untrained) features already separate the classes and a probe cannot tell whether pretraining helped.
Here the design follows four principles:

1. **Looks are shared across classes.** Every object's shape, colour, second colour, texture and size, the
   background, the silent distractors, the carrier voice of the sound (pitch and timbre) and a background
   hum are drawn from ONE distribution, independently of the class. Per-class mean colour, size and pitch
   are therefore equal in expectation; a probe on pixel or spectrum statistics has nothing to hold on to.
2. **A class is a motion pattern bound to a sound pattern.** The main object's motion and the envelope
   (and, for ``orbit``, the pitch contour) of its sound read one plan: ``bounce`` (arcs with a struck note
   at each floor impact), ``pulse`` (size swells and shrinks; loudness follows size), ``orbit`` (circles;
   pitch follows height), ``shake`` (bursts of rapid jitter; sound only while shaking, trembling at the
   jitter rate), ``glide`` (glides and stops; loudness follows speed), ``hop`` (sudden jumps between
   resting spots; a rising chirp at each jump). Rates of the rhythmic classes are drawn from one shared
   range, so tempo alone does not name the class either.
3. **What each method can learn.** The class is in the video only as motion across frames and in the audio
   only as a pattern over time. AVTS, co-attention and CMAC see several frames and audio over time, so
   synchronization and correspondence pretexts reward features of motion and of temporal sound shape.
   AVC sees ONE frame: from this world it can learn only appearance-to-sound correspondence (which object
   is where, whose colour goes with which voice), which is per video, not per class; its video encoder is
   not expected to carry the class, its audio encoder may (the temporal envelope is in its spectrogram).
4. **Labels never reach pretraining.** The label is written to ``index.csv`` and the meta for the
   downstream probes; pretraining samples pairs by source video and clip only (``pretext/sampling.py``).

Extra objects (``min_objects``..``max_objects``) are silent distractors that wander slowly with looks from
the same distribution; ``distractor_prob`` is not used here (in this world every extra object is silent, so
the one sound in the video belongs to the labelled object).
"""

from __future__ import annotations

import numpy as np

from avssl_core.config import SynthConfig
from avssl_core.synth import shapes, sounds
from avssl_core.synth.background import make_background
from avssl_core.synth.classes.base import ObjectClass, ObjectPlan, Region, smooth_wander, stay_in
from avssl_core.synth.scene import BACKGROUND, LAYOUT, OBJECT_PLAN, Scene, scene_object, stream_rng
from avssl_core.synth.timeline import Timeline

SHAPES = ("disc", "square", "diamond", "ring", "capsule")
TEXTURES = ("flat", "shaded", "stripes", "two_tone")
SCALE_LEVELS = 16  # drawn sizes of a pulsing object: state i shows scale SCALES[i]
SCALES = np.linspace(0.55, 1.2, SCALE_LEVELS)
REST_STATE = int(np.argmin(np.abs(SCALES - 1.0)))  # the state of every object that does not pulse
RATE_HZ = (0.8, 2.0)  # one range for every rhythmic class: tempo does not name a class
TARGET_RMS = 0.12  # every class's sound has the same RMS before its random gain: loudness names nothing
HUM_DBFS = (-40.0, -28.0)
BACKGROUND_DRIFT_S = (3.0, 7.0)  # periods of the background's drift (shapes world: 10-25 s)
BACKGROUND_DRIFT = 0.12  # how far it drifts, as a fraction of the short side (shapes world: 0.05)
DISTRACTOR_WANDER_S = (2.0, 5.0)  # periods of the silent distractors' wander and of the labelled object's sway
SWAY = 0.1  # the labelled object's sway, as a fraction of the short side
SWAY_STREAM = 1000  # random-stream index of the sway, apart from the objects' plans


# Looks and voices: drawn the same way for every class.


def draw_look(rng: np.random.Generator, size: float) -> dict:
    return {
        "shape": SHAPES[int(rng.integers(len(SHAPES)))],
        "texture": TEXTURES[int(rng.integers(len(TEXTURES)))],
        "colour": tuple(float(c) for c in rng.uniform(30, 225, 3)),
        "colour2": tuple(float(c) for c in rng.uniform(30, 225, 3)),
        "radius": max(3.0, 0.5 * size),
        "angle": float(rng.uniform(0, np.pi)),
        "period": float(rng.uniform(0.35, 0.8)),  # stripe period relative to the radius
    }


def draw_voice(rng: np.random.Generator) -> dict:
    """The carrier of an object's sound: a harmonic tone of random pitch and timbre."""
    weights = [1.0] + [float(w) for w in rng.uniform(0.0, 0.7, 3)]
    return {"base_hz": float(np.exp(rng.uniform(np.log(150.0), np.log(900.0)))), "weights": weights}


def render_look(look: dict, scale: float) -> shapes.Sprite:
    r = look["radius"] * float(scale)
    canvas = shapes.Canvas(half_width=r + 1, above=r + 1, below=r + 1)
    x, y = canvas.x, canvas.y
    kind = look["shape"]
    if kind == "disc":
        dist = shapes.circle(x, y, 0.0, 0.0, r)
    elif kind == "square":
        dist = shapes.rounded_box(x, y, 0.0, 0.0, 0.85 * r, 0.85 * r, 0.15 * r)
    elif kind == "diamond":
        dist = shapes.diamond(x, y, 0.0, 0.0, r, r)
    elif kind == "ring":
        dist = np.abs(shapes.circle(x, y, 0.0, 0.0, 0.7 * r)) - 0.3 * r
    else:  # capsule
        c, s = np.cos(look["angle"]) * 0.55 * r, np.sin(look["angle"]) * 0.55 * r
        dist = shapes.segment(x, y, -c, -s, c, s, 0.45 * r)
    cover = shapes.coverage(dist)
    texture = look["texture"]
    if texture == "flat":
        fill = np.broadcast_to(np.asarray(look["colour"], np.float32), x.shape + (3,))
    elif texture == "shaded":
        light = np.hypot(x + 0.4 * r, y + 0.4 * r) / (2.0 * max(r, 1e-3))
        fill = shapes.shade(look["colour"], 1.2 - 0.6 * np.clip(light, 0, 1))
    else:
        phase = x * np.cos(look["angle"]) + y * np.sin(look["angle"])
        if texture == "stripes":
            wave = 0.5 + 0.5 * np.sin(2 * np.pi * phase / (look["period"] * max(r, 1.0)))
        else:  # two_tone: one half in each colour
            wave = (phase > 0).astype(np.float32)
        a, b = np.asarray(look["colour"], np.float32), np.asarray(look["colour2"], np.float32)
        fill = a * wave[..., None] + b * (1 - wave[..., None])
    canvas.paint(cover, fill)
    return canvas.sprite()


def tone(voice: dict, timeline: Timeline, pitch_factor: np.ndarray | None = None) -> np.ndarray:
    """The voice as a waveform; ``pitch_factor`` (per sample) bends its pitch."""
    freq = np.full(timeline.num_samples, voice["base_hz"]) if pitch_factor is None else voice["base_hz"] * pitch_factor
    return sounds.harmonics(sounds.phase_from_frequency(freq, timeline.sample_rate), voice["weights"])


def normalized(wave: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    return (wave * np.float32(TARGET_RMS / rms)).astype(np.float32) if rms > 0 else wave.astype(np.float32)


def rest_states(n: int) -> np.ndarray:
    return np.full(n, REST_STATE, np.int64)


def wander(rng: np.random.Generator, timeline: Timeline, region: Region, margin: float, periods=(3.0, 8.0)):
    """A slow drift inside the region (the silent distractors, and the resting place of pulses)."""
    t = timeline.frame_times()
    half_w, half_h = max(0.0, region.width / 2 - margin), max(0.0, region.height / 2 - margin)
    x = region.centre_x + half_w * 0.6 * smooth_wander(rng, t, *periods)
    y = region.centre_y + half_h * 0.6 * smooth_wander(rng, t, *periods)
    return x, y


class BindingClass(ObjectClass):
    """A motion pattern bound to a sound pattern; look and voice come from the shared draws."""

    def draw(self, params: dict, state: int) -> shapes.Sprite:
        return render_look(params["look"], SCALES[state])

    def _params(self, rng: np.random.Generator, size: float) -> dict:
        return {"look": draw_look(rng, size), "voice": draw_voice(rng)}


def _gaps(rng, timeline: Timeline, low_s: float, high_s: float) -> list[int]:
    """Frames of events separated by random gaps in [low_s, high_s]."""
    frames, t = [], rng.uniform(0.05, high_s)
    while t < timeline.duration_s:
        frames.append(int(round(t * timeline.fps)))
        t += rng.uniform(low_s, high_s)
    return sorted({f for f in frames if 0 <= f < timeline.num_frames})


def _bursts(envelope_len: int, starts: list[int], length: int, tau: int) -> np.ndarray:
    env = np.zeros(envelope_len, np.float32)
    shape = np.exp(-np.arange(length, dtype=np.float32) / tau)
    for s in starts:
        sounds.add_at(env, s, shape)
    return env


class Bounce(BindingClass):
    name = "bounce"
    event_kind = "impact"
    description = "bounces in arcs; a struck note at each floor impact"

    def plan(self, rng, timeline, region, size):
        params = self._params(rng, size)
        r = params["look"]["radius"]
        lo, hi = 1.0 / RATE_HZ[1], 1.0 / RATE_HZ[0]
        impacts = [-int(rng.integers(0, timeline.seconds_to_frames(hi)))]
        while impacts[-1] < timeline.num_frames:
            impacts.append(impacts[-1] + timeline.seconds_to_frames(rng.uniform(lo, hi)))
        imp = np.asarray(impacts)
        frames = np.arange(timeline.num_frames)
        arc = np.searchsorted(imp, frames, side="right") - 1
        arc_s = (imp[arc + 1] - imp[arc]) / timeline.fps
        tau = (frames - imp[arc]) / timeline.fps
        floor = region.y1 - r - 1
        top = max(1.0, floor - (region.y0 + r + 1))
        height = top * 4 * tau * (arc_s - tau) / hi**2  # the longest arc just reaches the top
        x0 = rng.uniform(region.x0 + r, max(region.x0 + r, region.x1 - r))
        drift = 0.25 * region.width * smooth_wander(rng, timeline.frame_times(), 4.0, 9.0)
        events = [int(f) for f in impacts if 0 <= f < timeline.num_frames]
        params["strength"] = {int(imp[i + 1]): float(np.sqrt((imp[i + 1] - imp[i]) / timeline.fps / hi)) for i in range(len(imp) - 1)}
        return ObjectPlan(
            params=params,
            x=stay_in(x0 + drift, region.x0 + r, region.x1 - r),
            y=floor - height,
            state=rest_states(timeline.num_frames),
            events=events,
        )

    def sound(self, plan, timeline, rng):
        sr = timeline.sample_rate
        env = np.zeros(timeline.num_samples, np.float32)
        strike = sounds.decay(int(0.25 * sr), 0.06, sr)
        for f in plan.events:
            sounds.add_at(env, timeline.onset_sample(f), plan.params["strength"].get(f, 1.0) * strike)
        return normalized(tone(plan.params["voice"], timeline) * env)


class Pulse(BindingClass):
    name = "pulse"
    event_kind = None
    description = "swells and shrinks at a steady rate; loudness follows its size"

    def plan(self, rng, timeline, region, size):
        params = self._params(rng, size)
        rate = rng.uniform(*RATE_HZ)
        swell = 0.5 + 0.5 * np.sin(2 * np.pi * rate * timeline.frame_times() + rng.uniform(0, 2 * np.pi))
        x, y = wander(rng, timeline, region, params["look"]["radius"] * SCALES[-1])
        state = np.round(swell * (SCALE_LEVELS - 1)).astype(np.int64)
        return ObjectPlan(params=params, x=x, y=y, state=state, controls={"swell": swell})

    def sound(self, plan, timeline, rng):
        env = 0.1 + 0.9 * timeline.per_sample(plan.controls["swell"]) ** 2
        return normalized(tone(plan.params["voice"], timeline) * env)


class Orbit(BindingClass):
    name = "orbit"
    event_kind = None
    description = "circles steadily; its pitch rises and falls with its height"

    def plan(self, rng, timeline, region, size):
        params = self._params(rng, size)
        r = params["look"]["radius"]
        radius = max(2.0, min(region.width, region.height) / 2 - r) * rng.uniform(0.6, 0.95)
        rate = rng.uniform(0.5 * RATE_HZ[0], 0.5 * RATE_HZ[1]) * rng.choice([-1.0, 1.0])
        angle = 2 * np.pi * rate * timeline.frame_times() + rng.uniform(0, 2 * np.pi)
        height = np.sin(angle)  # +1 at the top of the circle
        return ObjectPlan(
            params=params,
            x=region.centre_x + radius * np.cos(angle),
            y=region.centre_y - radius * height,
            state=rest_states(timeline.num_frames),
            controls={"height": height},
        )

    def sound(self, plan, timeline, rng):
        bend = 2.0 ** (0.5 * timeline.per_sample(plan.controls["height"]))  # half an octave up and down
        return normalized(tone(plan.params["voice"], timeline, bend))


class Shake(BindingClass):
    name = "shake"
    event_kind = "shake"
    description = "bursts of rapid side-to-side jitter; it sounds only while shaking, trembling with it"

    SHAKE_HZ = 6.0

    def plan(self, rng, timeline, region, size):
        params = self._params(rng, size)
        r = params["look"]["radius"]
        n = timeline.num_frames
        starts = _gaps(rng, timeline, 0.6, 1.4)
        lengths = [timeline.seconds_to_frames(rng.uniform(0.3, 0.7)) for _ in starts]
        on = np.zeros(n, np.float32)
        for s, length in zip(starts, lengths, strict=True):
            on[s : s + length] = 1.0
        params["bursts"] = [[int(s), int(length)] for s, length in zip(starts, lengths, strict=True)]
        x, y = wander(rng, timeline, region, 1.4 * r, periods=(5.0, 10.0))
        jitter = 0.35 * r * on * np.sin(2 * np.pi * self.SHAKE_HZ * timeline.frame_times())
        return ObjectPlan(
            params=params, x=x + jitter, y=y, state=rest_states(n), events=starts, controls={"on": on}
        )

    def sound(self, plan, timeline, rng):
        sr = timeline.sample_rate
        gate = np.zeros(timeline.num_samples, np.float32)
        ramp = int(0.02 * sr)
        for s, length in plan.params["bursts"]:
            a, b = timeline.onset_sample(s), timeline.onset_sample(s + length)
            gate[a:b] = 1.0
            gate[b : b + ramp] = np.linspace(1.0, 0.0, len(gate[b : b + ramp]))
        tremble = 0.55 + 0.45 * np.abs(np.sin(np.pi * self.SHAKE_HZ * timeline.sample_times()))
        return normalized(tone(plan.params["voice"], timeline) * gate * tremble.astype(np.float32))


class Glide(BindingClass):
    name = "glide"
    event_kind = None
    description = "glides from spot to spot and stops; loudness follows its speed"

    def plan(self, rng, timeline, region, size):
        params = self._params(rng, size)
        r = params["look"]["radius"]
        lo_x, hi_x = region.x0 + r, max(region.x0 + r, region.x1 - r)
        lo_y, hi_y = region.y0 + r, max(region.y0 + r, region.y1 - r)
        n = timeline.num_frames
        x, y = np.zeros(n), np.zeros(n)
        speed = np.zeros(n)
        pos = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
        f = 0
        while f < n:
            rest = timeline.seconds_to_frames(rng.uniform(0.2, 0.6))
            x[f : f + rest], y[f : f + rest] = pos
            f += rest
            if f >= n:
                break
            move = timeline.seconds_to_frames(rng.uniform(0.5, 1.1))
            target = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
            u = np.arange(1, move + 1) / move
            ease = u * u * (3 - 2 * u)  # smoothstep: starts and stops gently
            path = pos + (target - pos) * ease[:, None]
            seg = slice(f, min(n, f + move))
            k = seg.stop - seg.start
            x[seg], y[seg] = path[:k, 0], path[:k, 1]
            speed[seg] = 6 * u[:k] * (1 - u[:k])  # d(ease)/du: 0 at both ends, 1.5 in the middle
            pos = target
            f += move
        return ObjectPlan(params=params, x=x, y=y, state=rest_states(n), controls={"speed": speed / 1.5})

    def sound(self, plan, timeline, rng):
        env = timeline.per_sample(plan.controls["speed"])
        return normalized(tone(plan.params["voice"], timeline) * np.clip(env, 0, 1))


class Hop(BindingClass):
    name = "hop"
    event_kind = "hop"
    description = "rests, then jumps to a new spot within a few frames; a rising chirp at each jump"

    def plan(self, rng, timeline, region, size):
        params = self._params(rng, size)
        r = params["look"]["radius"]
        n = timeline.num_frames
        lo_x, hi_x = region.x0 + r, max(region.x0 + r, region.x1 - r)
        lo_y, hi_y = region.y0 + r, max(region.y0 + r, region.y1 - r)
        hops = _gaps(rng, timeline, 1.0 / RATE_HZ[1], 1.0 / RATE_HZ[0])
        x, y = np.zeros(n), np.zeros(n)
        pos = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
        prev = 0
        for h in hops + [n]:
            x[prev:h], y[prev:h] = pos
            if h < n:
                target = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
                steps = min(3, n - h)  # the jump takes three frames
                for i in range(steps):
                    x[h + i], y[h + i] = pos + (target - pos) * (i + 1) / steps
                pos = target
                prev = h + steps
        return ObjectPlan(params=params, x=x, y=y, state=rest_states(n), events=hops)

    def sound(self, plan, timeline, rng):
        sr = timeline.sample_rate
        length = int(0.18 * sr)
        u = np.arange(length) / length
        out = np.zeros(timeline.num_samples, np.float32)
        voice = plan.params["voice"]
        phase = sounds.phase_from_frequency(voice["base_hz"] * 2.0 ** (0.8 * u), sr)
        chirp = sounds.harmonics(phase, voice["weights"]) * np.sin(np.pi * u).astype(np.float32)
        for f in plan.events:
            sounds.add_at(out, timeline.onset_sample(f), chirp)
        return normalized(out)


class Distractor(BindingClass):
    """A silent object with a look from the same distribution, wandering slowly: present in every class."""

    name = "distractor"
    event_kind = None
    description = "silent; wanders slowly"

    def plan(self, rng, timeline, region, size):
        params = self._params(rng, size)
        x, y = wander(rng, timeline, region, params["look"]["radius"], DISTRACTOR_WANDER_S)
        return ObjectPlan(params=params, x=x, y=y, state=rest_states(timeline.num_frames))

    def sound(self, plan, timeline, rng):
        return np.zeros(timeline.num_samples, np.float32)


CLASSES: list[ObjectClass] = [Bounce(), Pulse(), Orbit(), Shake(), Glide(), Hop()]
CLASS_NAMES: list[str] = [c.name for c in CLASSES]
DISTRACTOR = Distractor()


def build_binding_scene(cfg: SynthConfig, seed: int, main_class: int | str, num_objects: int | None = None):
    """One video of the binding world: the labelled object, silent distractors, a shared background, hum."""
    if isinstance(main_class, str):
        if main_class not in CLASS_NAMES:
            raise KeyError(f"unknown class {main_class!r}; known: {', '.join(CLASS_NAMES)}")
        main_class = CLASS_NAMES.index(main_class)
    label_index = int(main_class)
    timeline = Timeline.for_duration(cfg.duration_s, cfg.fps, cfg.sample_rate)
    width, height = cfg.width, cfg.height
    layout = stream_rng(seed, LAYOUT)
    drawn_count = int(layout.integers(cfg.min_objects, cfg.max_objects + 1))
    count = num_objects if num_objects is not None else drawn_count
    gain = float(10 ** (layout.uniform(-4.0, 0.0) / 20.0))
    lane_width = width / count
    lanes = layout.permutation(count)
    sizes = [min(layout.uniform(0.26, 0.4) * min(width, height), 0.7 * lane_width) for _ in range(count)]
    draw_order = [int(i) for i in layout.permutation(count)]
    hum = {"base_hz": float(np.exp(layout.uniform(np.log(60.0), np.log(400.0)))), "weights": [1.0, 0.3]}
    hum_dbfs = float(layout.uniform(*HUM_DBFS)) if layout.random() < 0.5 else None
    objects = []
    for object_id in range(count):
        lane = int(lanes[object_id])
        region = Region(max(0.0, lane * lane_width), 0.0, min(float(width), (lane + 1) * lane_width), float(height))
        cls = CLASSES[label_index] if object_id == 0 else DISTRACTOR
        plan = cls.plan(stream_rng(seed, OBJECT_PLAN, object_id), timeline, region, sizes[object_id])
        if object_id == 0:  # a slow sway shared by every class, so no labelled object ever stands still
            sway = stream_rng(seed, OBJECT_PLAN, SWAY_STREAM)
            reach = SWAY * min(width, height)
            plan.x = plan.x + reach * smooth_wander(sway, timeline.frame_times(), *DISTRACTOR_WANDER_S)
            plan.y = plan.y + reach * smooth_wander(sway, timeline.frame_times(), *DISTRACTOR_WANDER_S)
        objects.append(scene_object(object_id, cls, object_id == 0, object_id == 0, gain, plan, width, height))
    return Scene(
        seed=seed,
        width=width,
        height=height,
        timeline=timeline,
        label_index=label_index,
        objects=objects,
        draw_order=draw_order,
        # A livelier camera drift than the shapes world's: every video moves (validate quarantines static
        # ones), whatever its class; a class that rests (hop, glide) would otherwise be dropped more often.
        background=make_background(stream_rng(seed, BACKGROUND), timeline, width, height, BACKGROUND_DRIFT_S, BACKGROUND_DRIFT),
        video_noise_std=cfg.video_noise_std,
        audio_noise_dbfs=cfg.audio_noise_dbfs,
        class_names=CLASS_NAMES,
        hum=None if hum_dbfs is None else {**hum, "dbfs": hum_dbfs},
    )
