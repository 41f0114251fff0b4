"""Turn a scene into pixels and a stereo soundtrack.

Frames: copy the background window, blend each object's sprite only inside its own rectangle (back to
front), add Gaussian pixel noise, round to uint8. Soundtrack: each sounding object's mono sound, scaled by
its gain and panned with constant power by its box centre per frame, summed, kept below clipping, plus hiss.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from avssl_core.synth import sounds
from avssl_core.synth.scene import HISS, OBJECT_SOUND, PIXEL_NOISE, Scene, SceneObject, stream_rng


def _blend(frame: np.ndarray, obj: SceneObject, index: int) -> None:
    sprite = obj.sprites[int(obj.plan.state[index])]
    col, row = obj.top_left[index]
    h, w = frame.shape[:2]
    # Clip the sprite rectangle to the frame (objects may reach past an edge).
    c0, r0 = max(0, col), max(0, row)
    c1, r1 = min(w, col + sprite.width), min(h, row + sprite.height)
    if c1 <= c0 or r1 <= r0:
        return
    region = frame[r0:r1, c0:c1]
    sr, sc = r0 - row, c0 - col
    region *= sprite.one_minus_alpha[sr : sr + (r1 - r0), sc : sc + (c1 - c0)]
    region += sprite.premultiplied[sr : sr + (r1 - r0), sc : sc + (c1 - c0)]


def iter_frames(scene: Scene) -> Iterator[np.ndarray]:
    """Yield the scene's frames as (height, width, 3) uint8 RGB arrays."""
    h, w = scene.height, scene.width
    noise_rng = stream_rng(scene.seed, PIXEL_NOISE)
    noise = np.empty((h, w, 3), np.float32)
    ordered = [scene.objects[i] for i in scene.draw_order]
    for index in range(scene.timeline.num_frames):
        frame = scene.background.frame(index, h, w)
        for obj in ordered:
            _blend(frame, obj, index)
        if scene.video_noise_std > 0:
            noise_rng.standard_normal(out=noise, dtype=np.float32)
            noise *= np.float32(scene.video_noise_std)
            frame += noise
        frame += 0.5  # so the truncating cast below rounds to nearest
        np.clip(frame, 0.0, 255.0, out=frame)
        yield frame.astype(np.uint8)


def pan_positions(scene: Scene, obj: SceneObject) -> np.ndarray:
    """Per-frame horizontal position 0 (left edge) .. 1 (right edge) of an object's box centre.

    Frames where the object is out of view keep the anchor position, so the sound still comes from
    the side where it left.
    """
    centre = np.array([0.5 * (b[0] + b[2]) if b is not None else np.nan for b in obj.boxes])
    missing = np.isnan(centre)
    centre[missing] = obj.plan.x[missing]
    return np.clip(centre / scene.width, 0.0, 1.0)


def render_soundtrack(scene: Scene) -> np.ndarray:
    """(2, num_samples) float32 stereo in [-1, 1]."""
    tl = scene.timeline
    mix = np.zeros((2, tl.num_samples), np.float32)
    for obj in scene.objects:
        if not obj.sounding:
            continue
        mono = obj.cls.sound(obj.plan, tl, stream_rng(scene.seed, OBJECT_SOUND, obj.object_id))
        mix += sounds.pan(np.float32(obj.gain) * mono, tl.per_sample(pan_positions(scene, obj)))
    if scene.hum is not None:  # the same steady tone in both channels: a sound no object makes
        hum = sounds.harmonics(
            sounds.phase_from_frequency(np.full(tl.num_samples, scene.hum["base_hz"]), tl.sample_rate),
            scene.hum["weights"],
        )
        mix += np.float32(10 ** (scene.hum["dbfs"] / 20.0)) * hum
    mix = sounds.limit_peak(mix)
    if scene.audio_noise_dbfs > -120:
        mix += sounds.hiss(stream_rng(scene.seed, HISS), tl.num_samples, scene.audio_noise_dbfs)
    return np.clip(mix, -1.0, 1.0).astype(np.float32)
