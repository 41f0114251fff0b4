"""The synthetic audio-visual world: decodable files, exact ground truth, determinism, splits, resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from avssl_core.config import SynthConfig
from avssl_core.errors import ConfigError
from avssl_core.synth.classes import CLASS_NAMES, CLASSES
from avssl_core.synth.generate import (
    _split_counts,
    assign_labels,
    assign_splits,
    generate_dataset,
    write_video,
)
from avssl_core.synth.render import iter_frames, render_soundtrack
from avssl_core.synth.scene import build_scene

TINY = SynthConfig(
    seed=7,
    num_videos=len(CLASS_NAMES),
    duration_s=3.0,
    fps=25,
    width=64,
    height=64,
    sample_rate=16000,
    workers=1,
)


def decode(path: Path) -> tuple[list[np.ndarray], list[int], np.ndarray]:
    """All frames (RGB), their pts, and the audio as (channels, samples)."""
    with av.open(str(path)) as container:
        frames, pts = [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.pts)
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    return frames, pts, audio


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    return out, generate_dataset(out, TINY)


@pytest.fixture(scope="module")
def lamp_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("lamp") / "lamp.mp4"
    cfg = dataclasses.replace(TINY, duration_s=4.0)
    scene = write_video(path, cfg, seed=11, main_class="flash_lamp", num_objects=1)
    return path, scene.metadata("lamp", "train"), decode(path)


def test_dataset_files_decode_with_declared_streams(dataset):
    out, summary = dataset
    assert summary["written"] == TINY.num_videos
    index = pd.read_csv(out / "index.csv", dtype=str)
    assert list(index.columns) == ["video_id", "path", "label", "split", "annotation_path"]
    row = index.iloc[0]
    meta = json.loads((out / row.annotation_path).read_text())
    with av.open(str(out / row.path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and video.pix_fmt == "yuv420p"
        assert audio.codec_context.name == "aac" and audio.channels == 2 and audio.rate == TINY.sample_rate
        assert (video.width, video.height) == (TINY.width, TINY.height)
    frames, pts, samples = decode(out / row.path)
    assert len(frames) == meta["num_frames"] == 75
    assert pts[0] == 0
    # AAC pads its last frame: at most one frame (1024 samples) more than the metadata's count.
    assert meta["num_samples"] <= samples.shape[1] <= meta["num_samples"] + 1024


def test_metadata_schema_and_boxes_inside_frame(dataset):
    out, _ = dataset
    keys = {
        "video_id",
        "seed",
        "label",
        "label_index",
        "split",
        "classes",
        "fps",
        "sample_rate",
        "width",
        "height",
        "num_frames",
        "num_samples",
        "duration_s",
        "objects",
        "events",
        "params_hash",
    }
    for path in sorted((out / "meta").glob("*.json")):
        meta = json.loads(path.read_text())
        assert set(meta) == keys
        assert meta["classes"] == CLASS_NAMES and meta["label"] == CLASS_NAMES[meta["label_index"]]
        assert TINY.min_objects <= len(meta["objects"]) <= TINY.max_objects
        main = [o for o in meta["objects"] if o["main"]]
        assert len(main) == 1 and main[0]["class"] == meta["label"] and main[0]["sounding"]
        for obj in meta["objects"]:
            assert len(obj["boxes"]) == meta["num_frames"]
            for box in obj["boxes"]:
                if box is not None:
                    x0, y0, x1, y1 = box
                    assert 0 <= x0 < x1 <= meta["width"] and 0 <= y0 < y1 <= meta["height"]
        times = [e["time_s"] for e in meta["events"]]
        assert times == sorted(times)
        sounding = {o["object_id"] for o in meta["objects"] if o["sounding"]}
        for event in meta["events"]:
            assert event["time_s"] == pytest.approx(event["frame"] / meta["fps"])
            assert 0 <= event["frame"] < meta["num_frames"] and event["object_id"] in sounding


def test_labels_balanced_and_splits_stratified():
    cfg = dataclasses.replace(TINY, num_videos=24)  # 3 per class
    labels = assign_labels(cfg)
    assert np.bincount(labels, minlength=len(CLASS_NAMES)).tolist() == [3] * len(CLASS_NAMES)
    splits = assign_splits(labels, cfg)
    for cls in range(len(CLASS_NAMES)):
        assert sorted(s for s, lab in zip(splits, labels, strict=True) if lab == cls) == [
            "test",
            "train",
            "val",
        ]
    big = dataclasses.replace(TINY, num_videos=160)
    counts = pd.Series(assign_splits(assign_labels(big), big)).value_counts().to_dict()
    assert counts == {"train": 112, "val": 24, "test": 24}
    assert _split_counts(2, {"train": 0.7, "val": 0.15, "test": 0.15}) == {"train": 1, "val": 1, "test": 0}
    assert _split_counts(5, {"train": 1.0, "val": 0.0, "test": 0.0}) == {"train": 5, "val": 0, "test": 0}


def test_dataset_summary_counts(dataset):
    _, summary = dataset
    assert summary["per_class"] == dict.fromkeys(CLASS_NAMES, 1)
    assert sum(summary["per_split"].values()) == TINY.num_videos


def test_same_seed_same_video_different_seed_different(tmp_path):
    cfg = dataclasses.replace(TINY, duration_s=1.0)
    metas, decoded = [], []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        scene = write_video(tmp_path / f"{name}.mp4", cfg, seed, "bouncing_ball")
        metas.append(scene.metadata("x", "train"))
        decoded.append(decode(tmp_path / f"{name}.mp4"))
    assert metas[0] == metas[1] and metas[0] != metas[2]
    for a, b in zip(decoded[0][0], decoded[1][0], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(decoded[0][2], decoded[1][2])
    assert any(not np.array_equal(a, c) for a, c in zip(decoded[0][0], decoded[2][0], strict=True))


def test_beep_onsets_in_decoded_audio_match_event_times(lamp_video):
    _, meta, (_, _, audio) = lamp_video
    sr = meta["sample_rate"]
    level = np.abs(audio).max(axis=0)
    events = [e for e in meta["events"] if e["kind"] == "flash"]
    assert len(events) >= 2
    for event in events:
        expected = round(event["time_s"] * sr)
        lo = max(0, expected - int(0.02 * sr))
        window = level[lo : expected + int(0.02 * sr)]
        onset = lo + int(np.argmax(window > 0.3 * window.max()))
        assert abs(onset - expected) / sr <= 0.002, (event, onset, expected)


def test_flash_visible_on_its_event_frame(lamp_video):
    _, meta, (frames, _, _) = lamp_video
    boxes = meta["objects"][0]["boxes"]
    for event in meta["events"]:
        k = event["frame"]
        if k == 0:
            continue

        def brightness(i):
            x0, y0, x1, y1 = (int(v) for v in boxes[i])
            return frames[i][y0:y1, x0:x1].astype(float).mean()

        assert brightness(k) - brightness(k - 1) > 40


def test_stereo_pan_follows_horizontal_position(tmp_path):
    cfg = dataclasses.replace(TINY, duration_s=6.0)
    scene = write_video(tmp_path / "glide.mp4", cfg, seed=5, main_class="pitch_glider", num_objects=1)
    meta = scene.metadata("glide", "train")
    _, _, audio = decode(tmp_path / "glide.mp4")
    per_frame = meta["sample_rate"] // meta["fps"]
    n = meta["num_frames"]
    energy = (audio[:, : n * per_frame].reshape(2, n, per_frame) ** 2).mean(axis=2)
    balance = np.log(energy[1] + 1e-9) - np.log(energy[0] + 1e-9)  # right over left
    centre_x = np.array([(b[0] + b[2]) / 2 for b in meta["objects"][0]["boxes"]])
    assert np.ptp(centre_x) > 0.3 * meta["width"]
    assert np.corrcoef(balance, centre_x)[0, 1] > 0.9


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_NAMES)
def test_every_class_renders_and_sounds(cls):
    cfg = dataclasses.replace(TINY, duration_s=3.0, audio_noise_dbfs=-200.0, video_noise_std=0.0)
    scene = build_scene(cfg, seed=21, main_class=cls.name, num_objects=1)
    audio = render_soundtrack(scene)
    assert 20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-12) > -40  # clearly audible, not silent
    if cls.event_kind:
        assert scene.events() and all(e["kind"] == cls.event_kind for e in scene.events())
    frames = np.stack(list(iter_frames(scene))).astype(float)
    obj = scene.objects[0]
    # The object is drawn: its box differs from the bare background, and it moves or changes over time.
    x0, y0, x1, y1 = (int(v) for v in obj.boxes[0])
    bare = scene.background.frame(0, scene.height, scene.width)[y0:y1, x0:x1]
    assert (np.abs(frames[0, y0:y1, x0:x1] - bare).max(axis=2) > 30).mean() > 0.05
    assert np.abs(frames - frames[0]).mean(axis=(1, 2, 3)).max() > 1.0


def test_resume_skips_existing_and_regenerates_on_change(tmp_path):
    cfg = dataclasses.replace(TINY, num_videos=2, duration_s=1.0)
    first = generate_dataset(tmp_path, cfg)
    assert first["written"] == 2
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "videos").glob("*.mp4")}
    again = generate_dataset(tmp_path, cfg)
    assert again["written"] == 0 and again["skipped"] == 2
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "videos").glob("*.mp4")} == mtimes
    resplit = generate_dataset(tmp_path, dataclasses.replace(cfg, split_fractions={"test": 1.0}))
    assert resplit["meta_updated"] == 2 and resplit["written"] == 0  # only the split changed: meta rewritten
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "videos").glob("*.mp4")} == mtimes
    assert {json.loads(p.read_text())["split"] for p in (tmp_path / "meta").glob("*.json")} == {"test"}
    changed = generate_dataset(tmp_path, dataclasses.replace(cfg, video_noise_std=6.0))
    assert changed["written"] == 2
    assert all((tmp_path / "videos" / n).stat().st_mtime_ns != t for n, t in mtimes.items())
    assert not list(tmp_path.rglob("*.part*"))  # no temporary files left behind

    # A killed run's partial file and the videos of a larger earlier dataset are removed.
    (tmp_path / "videos" / ".synth_00000.abc.part.mp4").write_bytes(b"half")
    smaller = generate_dataset(tmp_path, dataclasses.replace(cfg, video_noise_std=6.0, num_videos=1))
    assert smaller["pruned"] == 3  # the .part file, synth_00001.mp4 and its meta
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["synth_00000.mp4"]
    assert sorted(p.name for p in (tmp_path / "meta").iterdir()) == ["synth_00000.json"]


def test_split_duration_renders_each_split_at_its_own_length(tmp_path):
    # 2 videos per class: one train, one test; test videos are rendered at the shorter length.
    cfg = dataclasses.replace(
        TINY, num_videos=2 * len(CLASS_NAMES), duration_s=2.0, split_duration_s={"test": 1.0},
        split_fractions={"train": 0.5, "test": 0.5},
    )
    generate_dataset(tmp_path, cfg)
    index = pd.read_csv(tmp_path / "index.csv")
    assert index["split"].value_counts().to_dict() == {"train": len(CLASS_NAMES), "test": len(CLASS_NAMES)}
    for row in index.itertuples():
        with av.open(str(tmp_path / row.path)) as container:
            seconds = container.streams.video[0].frames / cfg.fps
        meta = json.loads((tmp_path / row.annotation_path).read_text())
        expected = 1.0 if row.split == "test" else 2.0
        assert seconds == pytest.approx(expected) and meta["num_frames"] == expected * cfg.fps
    # Moving videos into a split of another length renders them again (not only their meta).
    moved = generate_dataset(tmp_path, dataclasses.replace(cfg, split_fractions={"test": 1.0}))
    assert moved["written"] == len(CLASS_NAMES) and moved["skipped"] == len(CLASS_NAMES)
    with pytest.raises(ConfigError, match=r"split_duration_s: unknown split\(s\) \['testing'\]"):
        generate_dataset(tmp_path, dataclasses.replace(cfg, split_duration_s={"testing": 1.0}))
    with pytest.raises(ConfigError, match="split_duration_s must be > 0"):
        generate_dataset(tmp_path, dataclasses.replace(cfg, split_duration_s={"test": 0.0}))


def test_bad_config_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="even"):
        generate_dataset(tmp_path, dataclasses.replace(TINY, width=65))
    with pytest.raises(ConfigError, match="split_fractions"):
        generate_dataset(tmp_path, dataclasses.replace(TINY, split_fractions={"training": 1.0}))


def test_cli_synth_with_two_workers(tmp_path, monkeypatch, capsys):
    from avssl_core.cli import main

    monkeypatch.chdir(tmp_path)  # no params.yaml here: defaults plus the overrides below
    out = tmp_path / "world"
    overrides = [
        "synth.num_videos=2",
        "synth.duration_s=1.0",
        "synth.width=64",
        "synth.height=64",
        "synth.workers=2",
    ]
    argv = [arg for item in overrides for arg in ("--set", item)]
    assert main([*argv, "synth", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 2
    index = pd.read_csv(out / "index.csv", dtype=str)
    assert len(index) == 2 and all((out / p).exists() for p in index.path)
