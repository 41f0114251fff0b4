"""The data stages chained as a user runs them: acquire -> validate -> segment.

The mixed folder holds good files next to every kind of broken one (tests/media_factory.py): the run must
finish, every file must end up either a clip source or quarantined with a reason that names it, and no
valid file may be lost on the way.
"""

from __future__ import annotations

import json
import logging
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media_factory import write_audio_only_m4a, write_clip, write_mpeg_ps

from avssl_core.config import load_config
from avssl_core.data.split_check import check_synthetic_splits, synthetic_split_counts
from avssl_core.data.tables import CLIP_COLUMNS, MANIFEST_COLUMNS, read_table
from avssl_core.errors import ConfigError, DataError
from avssl_core.stages.acquire import run_acquire, source_fingerprint
from avssl_core.stages.segment import run_segment
from avssl_core.stages.validate import run_validate

ZOO_FILES_GOOD = {"good_a", "good_b", "good_multistream", "good_vfr", "good_10bit"}


def _config(tmp_path: Path, *overrides: str):
    paths = [f"paths.{key}={tmp_path / value}" for key, value in {
        "data_root": "data", "raw_dir": "data/raw", "acquired_dir": "data/acquired",
        "validated_dir": "data/validated", "clips_dir": "data/clips", "metrics_dir": "metrics"}.items()]
    return load_config(None, [*paths, *overrides])


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, media_zoo):
    tmp = tmp_path_factory.mktemp("mixed")
    cfg = _config(
        tmp,
        "acquire.source=local",
        f"acquire.local.path={media_zoo['root']}",
        "segment.clip_seconds=1.0",
        "segment.short_side=64",
        "validate.min_valid_fraction=0.1",
    )
    return cfg, run_acquire(cfg), run_validate(cfg), run_segment(cfg)


def test_every_file_is_accounted_for(mixed_run, media_zoo):
    cfg, acquired, validated, segmented = mixed_run
    on_disk = sorted(p.name for p in Path(media_zoo["root"]).iterdir())
    manifest = read_table(Path(cfg.paths.acquired_dir) / "manifest.csv", required=MANIFEST_COLUMNS)
    assert sorted(Path(p).name for p in manifest["path"]) == on_disk  # acquire drops nothing
    assert acquired["num_files"] == len(on_disk)

    valid = read_table(Path(cfg.paths.validated_dir) / "valid.csv")
    quarantine = read_table(Path(cfg.paths.validated_dir) / "quarantine.csv")
    assert len(valid) + len(quarantine) == len(on_disk)
    assert set(valid["video_id"]).isdisjoint(quarantine["video_id"])
    assert (quarantine["reasons"].str.len() > 0).all()
    # The good files are all valid: nothing valid is lost.
    good_names = {media_zoo[name].name for name in ZOO_FILES_GOOD}
    assert good_names <= {Path(p).name for p in valid["path"]}


def test_only_valid_files_become_clips_and_all_of_them_do(mixed_run):
    cfg, _, _, segmented = mixed_run
    valid = read_table(Path(cfg.paths.validated_dir) / "valid.csv")
    index = read_table(Path(cfg.paths.clips_dir) / "index.csv", required=CLIP_COLUMNS)
    assert set(index["video_id"]) == set(valid["video_id"])
    assert segmented["num_clips"] == len(index) > 0
    for rec in index.itertuples():
        assert Path(rec.video_path).is_file() and Path(rec.audio_path).is_file()
        assert rec.num_samples == round(cfg.segment.clip_seconds * cfg.segment.sample_rate)
        assert rec.num_frames == round(cfg.segment.clip_seconds * cfg.segment.fps)


def test_acquire_is_deterministic_and_fingerprints_the_data(mixed_run):
    cfg, acquired, _, _ = mixed_run
    manifest_path = Path(cfg.paths.acquired_dir) / "manifest.csv"
    before = manifest_path.read_bytes()
    metrics_path = Path(cfg.paths.metrics_dir) / "acquire.json"
    metrics_before = metrics_path.read_bytes()
    again = run_acquire(cfg)
    # Byte-identical manifest: DVC then skips validate and segment when the data did not change.
    assert manifest_path.read_bytes() == before
    # The metrics file too, its `seconds` included: report (which depends on metrics/) is not rerun by
    # acquire, which runs on every `dvc repro`.
    assert metrics_path.read_bytes() == metrics_before and again == json.loads(metrics_before)
    # Another acquisition's record (here: one file fewer) is replaced by this one's.
    metrics_path.write_text(json.dumps({**again, "num_files": again["num_files"] - 1, "seconds": 0.0}))
    assert run_acquire(cfg)["num_files"] == again["num_files"]
    assert json.loads(metrics_path.read_text())["num_files"] == again["num_files"]
    assert again["source_fingerprint"] == acquired["source_fingerprint"]
    frame = read_table(manifest_path)
    frame.loc[0, "sha256"] = "0" * 64
    assert source_fingerprint(frame) != acquired["source_fingerprint"]


def test_synthetic_source_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths inside the project are stored relative to it
    cfg = load_config(None, [
        "synth.num_videos=3", "synth.duration_s=2.5", "synth.width=64", "synth.height=64", "synth.workers=1",
        "acquire.workers=1", "validate.workers=1", "segment.workers=1",
        "segment.clip_seconds=1.0", "segment.short_side=64",
        "pretrain.val_split=train", "evaluate.split=train",  # 3 videos of 3 classes: all in train
    ])
    summary = run_acquire(cfg)
    assert summary["num_files"] == 3 and summary["num_probe_errors"] == 0
    manifest = read_table("data/acquired/manifest.csv")
    assert list(manifest["path"]) == [f"data/raw/synthetic/videos/synth_0000{i}.mp4" for i in range(3)]
    assert (manifest["video_codec"] == "h264").all() and (manifest["audio_codec"] == "aac").all()
    assert (manifest["audio_channels"] == 2).all() and (manifest["fps"] == 25).all()
    assert manifest["label"].str.len().gt(0).all()
    assert json.loads(Path("metrics/acquire.json").read_text())["num_files"] == 3

    assert run_validate(cfg)["valid"] == 3
    seg = run_segment(cfg)
    index = pd.read_csv("data/clips/index.csv")
    assert seg["num_clips"] == len(index) == 6  # 2.5 s videos -> two 1 s clips each
    # Synthetic clips carry their slice of the ground truth.
    ann = json.loads(Path(index["annotation_path"][0]).read_text())
    assert ann["num_frames"] == 25 and len(ann["objects"][0]["boxes"]) == 25


def test_acquire_reports_an_empty_source(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = _config(tmp_path, "acquire.source=local", f"acquire.local.path={empty}")
    with pytest.raises(DataError, match="empty"):
        run_acquire(cfg)


@pytest.mark.timeout(300)
def test_best_audio_stream_is_used_and_every_skipped_file_is_named(tmp_path, caplog):
    """Hold-out media as it comes (issue 11): an 8 kHz default audio track beside a 16 kHz one, an MPEG
    program stream (.mpg), an audio-only .m4a and a text file, in one local folder."""
    folder = tmp_path / "holdout"
    # Stream 0 video, 1 the 8 kHz default (silent), 2 the 16 kHz tone: silence in a clip would mean stream 1.
    write_clip(folder / "two_tracks.mp4", seconds=2.0, seed=21, audio_sample_rates=[8000, 16000],
               silent_audio_streams=(0,))
    write_mpeg_ps(folder / "camcorder.mpg")
    write_audio_only_m4a(folder / "voice.m4a")
    (folder / "readme.txt").write_text("shot list\n")
    cfg = _config(tmp_path, "acquire.source=local", f"acquire.local.path={folder}", "validate.min_duration_s=1.0",
                  "segment.clip_seconds=1.0", "segment.short_side=64", "acquire.workers=1", "validate.workers=1",
                  "segment.workers=1")
    with caplog.at_level(logging.WARNING):
        acquired = run_acquire(cfg)
    assert acquired["num_files"] == 2 and acquired["num_skipped"] == 2
    skipped = pd.read_csv(acquired["skipped"]).set_index("path")["reason"].to_dict()
    assert skipped == {
        str(folder / "readme.txt"): "extension .txt not in acquire.local.extensions",
        str(folder / "voice.m4a"): "audio-only file type .m4a (no video stream); not in acquire.local.extensions",
    }
    for path, reason in skipped.items():
        assert f"skipped {path}: {reason}" in caplog.messages

    assert run_validate(cfg)["valid"] == 2  # neither low_sample_rate nor a skipped .mpg
    valid = read_table(Path(cfg.paths.validated_dir) / "valid.csv").set_index("video_id")
    two = valid[valid["path"].str.endswith("two_tracks.mp4")].iloc[0]
    assert (two["audio_stream_index"], two["audio_sample_rate"]) == (2, 16000)
    assert two["audio_rms_dbfs"] > -30  # the decoded stream is the tone, not the silent default
    mpg = valid[valid["path"].str.endswith("camcorder.mpg")].iloc[0]
    assert mpg["container"] == "mpeg" and mpg["video_codec"] == "mpeg1video"

    run_segment(cfg)
    index = pd.read_csv(Path(cfg.paths.clips_dir) / "index.csv")
    clips = index[index["video_id"] == two.name]
    assert len(clips) == 2
    for wav in clips["audio_path"]:
        with wave.open(wav) as fh:
            samples = np.frombuffer(fh.readframes(fh.getnframes()), dtype=np.int16)
        assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 1000  # the 16 kHz tone, not silence


def test_acquire_refuses_a_synthetic_world_with_an_empty_split_before_generating(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["synth.num_videos=8", "synth.workers=1", "acquire.workers=1"])  # one per class
    with pytest.raises(ConfigError) as caught:
        run_acquire(cfg)
    message = str(caught.value)
    assert "split 'val' (read by pretrain.val_split) gets no video" in message
    assert "split 'test' (read by evaluate.split) gets no video" in message
    assert "videos per split: test 0, train 8, val 0" in message and "synth.num_videos=17 or more" in message
    assert not list(tmp_path.rglob("*.mp4"))  # nothing generated first

    # The smallest world the message names fills every split; one video fewer does not.
    assert min(synthetic_split_counts(load_config(None, ["synth.num_videos=17"]).synth).values()) >= 1
    check_synthetic_splits(load_config(None, ["synth.num_videos=17"]))
    with pytest.raises(ConfigError, match="split 'test'"):
        check_synthetic_splits(load_config(None, ["synth.num_videos=16"]))
    # Pointing the readers at the split that has the videos is the other way out.
    check_synthetic_splits(load_config(None, ["synth.num_videos=8", "pretrain.val_split=train",
                                              "evaluate.split=train"]))
