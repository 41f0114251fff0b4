"""The binding world: deterministic, balanced, looks independent of the class, sound bound to motion."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from avssl_core.config import SynthConfig
from avssl_core.errors import ConfigError
from avssl_core.synth import binding
from avssl_core.synth.generate import assign_labels, assign_splits, check_config, generate_dataset
from avssl_core.synth.render import iter_frames, render_soundtrack
from avssl_core.synth.scene import build_scene

pytestmark = pytest.mark.timeout(120)

TINY = SynthConfig(
    world="binding", seed=3, num_videos=6, duration_s=1.0, width=48, height=48, workers=1,
    split_fractions={"train": 1.0, "val": 0.0, "test": 0.0},
)


def sprite_colour(scene) -> np.ndarray:
    """Mean RGB of the labelled object's drawn pixels (alpha-weighted), over its drawn states."""
    totals, weight = np.zeros(3), 0.0
    for sprite in scene.objects[0].sprites.values():
        alpha = 1.0 - sprite.one_minus_alpha[..., 0]
        totals += sprite.premultiplied.reshape(-1, 3).sum(axis=0)
        weight += float(alpha.sum())
    return totals / weight


def per_frame_rms(scene) -> np.ndarray:
    audio = render_soundtrack(scene).mean(axis=0)
    hop = scene.timeline.sample_rate // scene.timeline.fps
    n = len(audio) // hop
    return np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1))


def test_generation_is_deterministic_and_labelled_by_the_world(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    summary = generate_dataset(a, TINY)
    generate_dataset(b, TINY)
    assert summary["world"] == "binding" and summary["per_class"] == dict.fromkeys(binding.CLASS_NAMES, 1)
    # The ground truth is identical run to run; so are the rendered pixels and samples of each scene (the
    # encoded files are compared by the shapes world's write_video test: the encoder is shared).
    for path in sorted((a / "meta").glob("*.json")):
        assert path.read_text() == (b / "meta" / path.name).read_text()
    for name in binding.CLASS_NAMES:
        one, two = (binding.build_binding_scene(TINY, 11, name) for _ in range(2))
        np.testing.assert_array_equal(np.stack(list(iter_frames(one))), np.stack(list(iter_frames(two))))
        np.testing.assert_array_equal(render_soundtrack(one), render_soundtrack(two))
    index = pd.read_csv(a / "index.csv", dtype=str)
    assert sorted(index.label) == sorted(binding.CLASS_NAMES)
    for row in index.itertuples():
        meta = json.loads((a / row.annotation_path).read_text())
        assert meta["classes"] == binding.CLASS_NAMES and meta["label"] == row.label
        main = [o for o in meta["objects"] if o["main"]]
        assert len(main) == 1 and main[0]["class"] == row.label and main[0]["sounding"]
        assert all(not o["sounding"] and o["class"] == "distractor" for o in meta["objects"] if not o["main"])
    other_seed = dataclasses.replace(TINY, seed=4)
    frames_a = next(iter(iter_frames(binding.build_binding_scene(TINY, 1, "pulse"))))
    frames_b = next(iter(iter_frames(binding.build_binding_scene(other_seed, 2, "pulse"))))
    assert not np.array_equal(frames_a, frames_b)


def test_classes_balanced_in_every_split():
    cfg = dataclasses.replace(TINY, num_videos=60, split_fractions={"train": 0.5, "val": 0.1, "test": 0.4})
    labels = assign_labels(cfg)
    table = pd.crosstab(pd.Series(assign_splits(labels, cfg), name="split"), pd.Series(labels, name="label"))
    assert table.shape == (3, len(binding.CLASS_NAMES))
    for split, row in table.iterrows():
        assert row.nunique() == 1, f"{split}: {row.to_dict()}"


def test_look_is_independent_of_the_class_unlike_the_shapes_world():
    """Per-class mean colour of the labelled object: equal across binding classes, far apart in shapes."""
    cfg = dataclasses.replace(TINY, width=32, height=32, duration_s=0.4)
    per_video = 60

    def spread(build, names) -> float:
        means = np.array(
            [np.mean([sprite_colour(build(cfg, 1000 + i, name, num_objects=1)) for i in range(per_video)], axis=0)
             for name in names]
        )
        return float(np.abs(means - means.mean(axis=0)).max())

    assert spread(binding.build_binding_scene, binding.CLASS_NAMES) < 20.0
    assert spread(build_scene, ["bouncing_ball", "pitch_glider", "spinner", "flash_lamp"]) > 40.0


@pytest.mark.parametrize("name", ["bounce", "hop", "shake"])
def test_event_sounds_start_with_the_visible_event(name):
    cfg = dataclasses.replace(TINY, duration_s=4.0, audio_noise_dbfs=-120.0)
    scene = binding.build_binding_scene(cfg, 5, name, num_objects=1)
    events = scene.objects[0].plan.events
    assert len(events) >= 2
    rms = per_frame_rms(scene)
    near = np.zeros(len(rms), bool)
    for frame in events:
        near[frame : frame + 3] = True
    if name == "shake":  # it sounds for as long as it shakes
        near = scene.objects[0].plan.controls["on"][: len(rms)] > 0
    assert rms[near].mean() > 3.0 * rms[~near].mean()


@pytest.mark.parametrize(("name", "control"), [("pulse", "swell"), ("glide", "speed")])
def test_loudness_follows_the_motion(name, control):
    cfg = dataclasses.replace(TINY, duration_s=4.0, audio_noise_dbfs=-120.0)
    scene = binding.build_binding_scene(cfg, 6, name, num_objects=1)
    rms = per_frame_rms(scene)
    signal = scene.objects[0].plan.controls[control][: len(rms)]
    assert np.corrcoef(rms, signal)[0, 1] > 0.8


def test_orbit_pitch_follows_height():
    cfg = dataclasses.replace(TINY, duration_s=4.0, audio_noise_dbfs=-120.0)
    scene = binding.build_binding_scene(cfg, 7, "orbit", num_objects=1)
    if scene.hum is not None:
        scene.hum = None  # the hum's own pitch would blur the zero crossings
    audio = render_soundtrack(scene).mean(axis=0)
    hop = scene.timeline.sample_rate // scene.timeline.fps
    crossings = np.abs(np.diff(np.signbit(audio).astype(np.int8)))
    n = len(crossings) // hop
    rate = crossings[: n * hop].reshape(n, hop).sum(axis=1)  # zero crossings per frame: a pitch proxy
    height = scene.objects[0].plan.controls["height"][:n]
    assert np.corrcoef(rate, height)[0, 1] > 0.8


def test_unknown_world_is_a_config_error():
    with pytest.raises(ConfigError, match="synth.world: unknown world 'blocks'"):
        check_config(dataclasses.replace(TINY, world="blocks"))
