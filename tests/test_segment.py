"""The segment stage: clips of fixed length, CFR video and sample-exact audio, aligned, resumable, atomic.

Sources are tiny files crafted here with PyAV: dark frames with a white "flash" frame at chosen source
frames and a loud beep starting at the same instants, so alignment can be checked from the outputs.
"""

from __future__ import annotations

import json
import wave
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from av.video.frame import PictureType

from avssl_core.config import Config, PathsConfig, SegmentConfig
from avssl_core.data import clip_writers
from avssl_core.data.clip_annotations import slice_annotation
from avssl_core.data.tables import CLIP_COLUMNS, MANIFEST_COLUMNS, read_table, write_table
from avssl_core.data.transcode import SegmentParams, TranscodeError, segment_video
from avssl_core.errors import DataError
from avssl_core.stages.segment import DONE_MARKER, run_segment

DARK, BRIGHT = 30, 230
BEEP_S = 0.1


# -- crafted sources --------------------------------------------------------------------------------


def write_av(
    path: Path,
    *,
    seconds: float = 3.0,
    fps: int = 25,
    width: int = 64,
    height: int = 48,
    sample_rate: int = 48000,
    channels: int = 1,
    pix_fmt: str = "yuv420p",
    frame_times: list[float] | None = None,
    flash_frames: tuple[int, ...] = (),
    faststart: bool = False,
    audio_offset_s: float = 0.0,
) -> Path:
    """H.264 + AAC mp4: source frame j is shown from ``frame_times[j]`` (default j / fps); the frames in
    ``flash_frames`` are white, the rest dark, and a 1 kHz beep starts at each flash frame's time.
    ``audio_offset_s`` starts the audio track that much after the video (its first pts)."""
    times = frame_times if frame_times is not None else [j / fps for j in range(round(seconds * fps))]
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.codec_context.time_base = Fraction(1, 1000)
        vs.options = {"preset": "ultrafast", "crf": "18", "g": "25"}  # a keyframe a second: seekable
        aus = out.add_stream("aac", rate=sample_rate, layout=layout)
        for j, t in enumerate(times):
            level = BRIGHT if j in flash_frames else DARK
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), level, np.uint8), format="rgb24")
            frame = frame.reformat(format=pix_fmt)
            # Flashes are scene cuts: make them keyframes, as an encoder with scene-cut detection would.
            frame.pict_type = PictureType.I if j in flash_frames else PictureType.NONE
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        audio = _beeps(seconds, sample_rate, channels, [times[j] - audio_offset_s for j in flash_frames])
        first = round(audio_offset_s * sample_rate)
        for start in range(0, audio.shape[1], 1024):
            chunk = np.ascontiguousarray(audio[:, start : start + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = (
                sample_rate,
                first + start,
                Fraction(1, sample_rate),
            )
            out.mux(aus.encode(frame))
        out.mux(aus.encode(None))
    return path


def _beeps(seconds: float, sample_rate: int, channels: int, onsets: list[float]) -> np.ndarray:
    n = round(seconds * sample_rate)
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.003, (channels, n)).astype(np.float32)  # faint hiss, never digital silence
    beep = 0.6 * np.sin(2 * np.pi * 1000 * np.arange(round(BEEP_S * sample_rate)) / sample_rate)
    for t in onsets:
        s = round(t * sample_rate)
        audio[:, s : s + len(beep)] += beep[: n - s].astype(np.float32)
    return audio


# -- reading outputs --------------------------------------------------------------------------------


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as wav:
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return data.reshape(-1, wav.getnchannels()), wav.getframerate()


def video_facts(path: Path) -> dict:
    """Frame count, size, pix_fmt, frame rate, keyframe positions and per-frame mean luma of an mp4."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keyframes = [i for i, p in enumerate(p for p in container.demux(stream) if p.size) if p.is_keyframe]
        container.seek(0)
        lumas, pts = [], []
        for frame in container.decode(stream):
            lumas.append(float(frame.to_ndarray(format="gray").mean()))
            pts.append(frame.time)
        return {
            "frames": len(lumas),
            "width": stream.width,
            "height": stream.height,
            "pix_fmt": stream.codec_context.pix_fmt,
            "rate": stream.average_rate,
            "keyframes": keyframes,
            "luma": np.array(lumas),
            "times": pts,
            "has_b_frames": stream.codec_context.has_b_frames,
        }


def beep_onsets(samples: np.ndarray, sample_rate: int) -> list[float]:
    """Times (s) where the beep envelope first crosses half the beep level."""
    mono = np.abs(samples.astype(np.float32).mean(axis=1)) / 32768.0
    hop = sample_rate // 1000  # 1 ms resolution
    envelope = np.array([mono[i : i + hop].max() for i in range(0, len(mono) - hop + 1, hop)])
    loud = envelope > 0.3
    starts = np.flatnonzero(loud & ~np.concatenate([[False], loud[:-1]]))
    # Refine to the sample: first sample above the threshold within the rising millisecond.
    onsets = []
    for s in starts:
        window = mono[s * hop : (s + 1) * hop]
        onsets.append((s * hop + int(np.argmax(window > 0.3))) / sample_rate)
    return onsets


# Small and fast settings shared by the transcoder and stage tests.
TEST_SEGMENT = dict(
    clip_seconds=1.0,
    fps=25,
    short_side=32,
    sample_rate=16000,
    keyframe_interval=5,
    crf=23,
    preset="ultrafast",
    threads=1,
)


def params(**overrides) -> SegmentParams:
    return SegmentParams(**{**TEST_SEGMENT, **overrides})


# -- the transcoder ---------------------------------------------------------------------------------


def test_clips_have_exact_length_size_rate_and_keyframes(tmp_path):
    src = write_av(tmp_path / "src.mp4", seconds=3.5, width=96, height=64, channels=2, sample_rate=44100)
    result = segment_video(src, tmp_path / "out", "v", params())
    assert [c.index for c in result.clips] == [0, 1, 2]  # the 0.5 s tail is dropped
    assert result.discarded_tail_s == pytest.approx(0.5, abs=0.05)
    assert not (tmp_path / "out" / "v_00003.mp4").exists() and not (tmp_path / "out" / "v_00003.wav").exists()
    for clip in result.clips:
        facts = video_facts(clip.video_path)
        assert facts["frames"] == 25 and clip.num_frames == 25
        assert (facts["width"], facts["height"]) == (48, 32) == (clip.width, clip.height)
        assert facts["pix_fmt"] == "yuv420p" and facts["rate"] == 25
        assert facts["keyframes"] == [0, 5, 10, 15, 20]
        assert facts["times"] == pytest.approx([i / 25 for i in range(25)])
        samples, rate = read_wav(clip.audio_path)
        assert rate == 16000 and samples.shape == (16000, 2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"v_{k:05d}.{ext}" for k in range(3) for ext in ("mp4", "wav")
    ]


def test_portrait_source_keeps_aspect_with_even_sides(tmp_path):
    src = write_av(tmp_path / "tall.mp4", seconds=1.2, width=48, height=100)
    (clip,) = segment_video(src, tmp_path / "out", "t", params()).clips
    assert (clip.width, clip.height) == (32, 66)  # 100 * 32 / 48 = 66.7 -> nearest even
    assert (video_facts(clip.video_path)["width"], video_facts(clip.video_path)["height"]) == (32, 66)


@pytest.mark.parametrize("channels, expected", [(1, 1), (2, 2)])
def test_channel_count_is_kept(tmp_path, channels, expected):
    src = write_av(tmp_path / "src.mp4", seconds=1.1, channels=channels)
    (clip,) = segment_video(src, tmp_path / "out", "c", params()).clips
    samples, _ = read_wav(clip.audio_path)
    assert samples.shape == (16000, expected) and clip.audio_channels == expected


def test_variable_frame_rate_source_becomes_constant_rate_by_timestamp(tmp_path):
    # Frames 20 ms and 70 ms apart, alternately (a stuttering phone video); frame 9 is the flash.
    times, t = [], 0.0
    while t < 2.2:
        times.append(round(t, 3))
        t += 0.02 if len(times) % 2 else 0.07
    flash = 9
    src = write_av(tmp_path / "vfr.mp4", seconds=2.3, frame_times=times, flash_frames=(flash,))
    result = segment_video(src, tmp_path / "out", "vfr", params(clip_seconds=2.0))
    (clip,) = result.clips
    facts = video_facts(clip.video_path)
    assert facts["frames"] == 50 and facts["times"] == pytest.approx([i / 25 for i in range(50)])
    # Output frame i shows the source frame on screen at i / 25: the flash exactly while it is shown.
    shown = [i for i in range(50) if times[flash] <= i / 25 < times[flash + 1]]
    assert shown, "the flash must be on screen at some output instant"
    assert list(np.flatnonzero(facts["luma"] > 128)) == shown


def test_ten_bit_source_becomes_eight_bit_yuv420p(tmp_path):
    src = write_av(tmp_path / "p10.mp4", seconds=1.1, pix_fmt="yuv420p10le", flash_frames=(3,))
    (clip,) = segment_video(src, tmp_path / "out", "p", params()).clips
    facts = video_facts(clip.video_path)
    assert facts["pix_fmt"] == "yuv420p"
    assert list(np.flatnonzero(facts["luma"] > 128)) == [3]


def test_start_and_end_are_honoured(tmp_path):
    src = write_av(tmp_path / "src.mp4", seconds=6.0, flash_frames=(60,))  # flash at 2.4 s
    result = segment_video(src, tmp_path / "out", "s", params(), start_s=1.0, end_s=4.5)
    assert [(c.start_s, c.end_s) for c in result.clips] == [(1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
    assert result.discarded_tail_s == pytest.approx(0.5, abs=1e-6)
    assert list(np.flatnonzero(video_facts(result.clips[1].video_path)["luma"] > 128)) == [10]
    samples, rate = read_wav(result.clips[1].audio_path)
    (onset,) = beep_onsets(samples, rate)
    assert onset == pytest.approx(0.4, abs=0.005)

    # A start past the seek margin: the source is entered by seeking, and must land on the same instant.
    result = segment_video(src, tmp_path / "seek", "s", params(), start_s=2.2, end_s=5.2)
    assert [c.start_s for c in result.clips] == [2.2, 3.2, 4.2]
    assert list(np.flatnonzero(video_facts(result.clips[0].video_path)["luma"] > 128)) == [5]
    (onset,) = beep_onsets(*read_wav(result.clips[0].audio_path))
    assert onset == pytest.approx(0.2, abs=0.005)


def test_audio_and_video_stay_aligned_within_one_frame(tmp_path):
    flashes = (7, 31, 55, 83, 112, 140)  # no beep runs across a clip boundary
    src = write_av(tmp_path / "fb.mp4", seconds=6.0, flash_frames=flashes, sample_rate=44100)
    result = segment_video(src, tmp_path / "out", "fb", params(clip_seconds=1.2))
    worst = 0.0
    checked = 0
    for clip in result.clips:
        facts = video_facts(clip.video_path)
        flash_frames = np.flatnonzero(facts["luma"] > 128)
        # The source's keyframes (on the flashes) must not leak into the clip's fixed GOP.
        assert facts["keyframes"] == list(range(0, 30, 5))
        onsets = beep_onsets(*read_wav(clip.audio_path))
        expected = [j / 25 - clip.start_s for j in flashes if clip.start_s <= j / 25 < clip.end_s]
        assert [f / 25 for f in flash_frames] == pytest.approx(expected, abs=1e-6)
        assert len(onsets) == len(expected)
        for frame, onset in zip(flash_frames, onsets, strict=True):
            worst = max(worst, abs(onset - frame / 25))
            checked += 1
    assert checked == len(flashes)
    assert worst < 1 / 25 / 4  # within a quarter frame; the requirement is one frame


def test_late_starting_audio_is_placed_by_timestamp(tmp_path):
    # Audio begins 0.3 s after the video; counting samples from the first audio packet would put every
    # beep 0.3 s early. Placed by pts, the beeps land on the flashes and the first 0.3 s are silent.
    src = write_av(tmp_path / "late.mp4", seconds=2.2, flash_frames=(15, 40), audio_offset_s=0.3)
    (clip, clip2) = segment_video(src, tmp_path / "out", "late", params()).clips
    samples, rate = read_wav(clip.audio_path)
    assert np.abs(samples[: int(0.25 * rate)]).max() == 0
    assert beep_onsets(samples, rate) == pytest.approx([0.6], abs=0.005)
    assert beep_onsets(*read_wav(clip2.audio_path)) == pytest.approx([0.6], abs=0.005)
    assert list(np.flatnonzero(video_facts(clip.video_path)["luma"] > 128)) == [15]


def test_memory_is_bounded_by_one_clip_of_audio(tmp_path, monkeypatch):
    # The audio buffer must be emptied clip by clip, not grow with the video.
    from avssl_core.data import audio_timeline

    peak = {"samples": 0}
    original = audio_timeline.SampleTimeline._append

    def tracking_append(self, samples):
        original(self, samples)
        peak["samples"] = max(peak["samples"], self.end - self.begin)

    monkeypatch.setattr(audio_timeline.SampleTimeline, "_append", tracking_append)
    src = write_av(tmp_path / "long.mp4", seconds=8.0, width=32, height=32)
    result = segment_video(src, tmp_path / "out", "m", params(clip_seconds=0.4))
    assert len(result.clips) == 20
    assert peak["samples"] < 2 * 16000 * 0.4 + 4096


def fail_clip_write(monkeypatch, clip_name: str, *, at_frame: int, error: Exception) -> None:
    """Make the video writer of ``clip_name`` raise ``error`` when it reaches frame ``at_frame``: a crash
    in the middle of a clip."""
    original = clip_writers.ClipVideoWriter.write

    def write(self, frame):
        if self.dest.name == clip_name and self.frames_written == at_frame:
            raise error
        original(self, frame)

    monkeypatch.setattr(clip_writers.ClipVideoWriter, "write", write)


def test_failure_mid_clip_leaves_no_partial_file(tmp_path, monkeypatch):
    src = write_av(tmp_path / "src.mp4", seconds=3.0)
    fail_clip_write(monkeypatch, "x_00001.mp4", at_frame=12, error=RuntimeError("disk on fire"))
    with pytest.raises(RuntimeError, match="disk on fire"):
        segment_video(src, tmp_path / "out", "x", params())
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "x_00001.mp4" not in names and not [n for n in names if ".part" in n]
    assert "x_00000.mp4" in names  # finished before the failure; the stage removes these (see below)


def test_truncated_source_is_an_error_not_a_short_video(tmp_path):
    src = write_av(tmp_path / "src.mp4", seconds=6.0, faststart=True)
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(TranscodeError, match="cut.mp4"):
        segment_video(cut, tmp_path / "out", "cut", params())


def test_bigbuckbunny_surround_48k_becomes_stereo_16k(tmp_path, bigbuckbunny):
    result = segment_video(bigbuckbunny, tmp_path / "out", "bbb", params(clip_seconds=2.0, short_side=128))
    assert len(result.clips) == 2  # 5.28 s of video
    for clip in result.clips:
        samples, rate = read_wav(clip.audio_path)
        assert rate == 16000 and samples.shape == (32000, 2)
        assert np.abs(samples).max() > 1000  # the downmix carries the soundtrack, not silence
        facts = video_facts(clip.video_path)
        assert (facts["width"], facts["height"], facts["frames"]) == (228, 128, 50)


# -- annotation slices ------------------------------------------------------------------------------


def test_slice_annotation_resamples_boxes_and_shifts_events():
    meta = {
        "video_id": "syn",
        "seed": 1,
        "label": "flash",
        "label_index": 0,
        "split": "train",
        "classes": ["flash"],
        "fps": 50,
        "sample_rate": 48000,
        "width": 200,
        "height": 100,
        "num_frames": 200,
        "num_samples": 192000,
        "duration_s": 4.0,
        "objects": [
            {
                "object_id": 0,
                "class": "flash",
                "sounding": True,
                "main": True,
                "boxes": [[j, 10, j + 20, 30] if j % 7 else None for j in range(200)],
            }
        ],
        "events": [
            {"object_id": 0, "time_s": 0.9, "frame": 45, "kind": "flash"},
            {"object_id": 0, "time_s": 1.5, "frame": 75, "kind": "flash"},
            {"object_id": 0, "time_s": 2.0, "frame": 100, "kind": "flash"},
        ],
    }
    clip = slice_annotation(
        meta,
        clip_id="syn_00001",
        source_video_id="syn",
        clip_start_s=1.0,
        clip_seconds=1.0,
        fps=25,
        width=64,
        height=32,
        sample_rate=16000,
    )
    assert (clip["video_id"], clip["source_video_id"], clip["clip_start_s"]) == ("syn_00001", "syn", 1.0)
    assert (clip["fps"], clip["width"], clip["height"], clip["num_frames"]) == (25, 64, 32, 25)
    assert (clip["num_samples"], clip["sample_rate"], clip["duration_s"]) == (16000, 16000, 1.0)
    boxes = clip["objects"][0]["boxes"]
    assert len(boxes) == 25
    # Clip frame i shows source frame 50 * (1 + i / 25) = 50 + 2i, scaled by 64/200 and 32/100.
    for i, box in enumerate(boxes):
        j = 50 + 2 * i
        assert box == (None if j % 7 == 0 else pytest.approx([j * 0.32, 3.2, (j + 20) * 0.32, 9.6]))
    # 0.5 s into the clip lies between frames 12 (0.48 s, source frame 74) and 13 (0.52 s, source frame 76):
    # the event's frame is the first clip frame that shows it.
    assert clip["events"] == [{"object_id": 0, "time_s": 0.5, "frame": 13, "kind": "flash"}]
    assert meta["events"][1]["time_s"] == 1.5  # the source metadata is not modified


# -- the stage --------------------------------------------------------------------------------------


def make_config(tmp_path: Path, **segment) -> Config:
    base = {**TEST_SEGMENT, "workers": 1}
    paths = PathsConfig(
        validated_dir=str(tmp_path / "validated"),
        clips_dir=str(tmp_path / "clips"),
        metrics_dir=str(tmp_path / "metrics"),
    )
    return Config(paths=paths, segment=SegmentConfig(**{**base, **segment}))


def write_valid(cfg: Config, rows: list[dict]) -> None:
    frame = pd.DataFrame([{"source_uri": r["path"], "label": "x", "split": "train", **r} for r in rows])
    write_table(Path(cfg.paths.validated_dir) / "valid.csv", frame, MANIFEST_COLUMNS)


def clip_mtimes(cfg: Config) -> dict[str, int]:
    root = Path(cfg.paths.clips_dir)
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and p.name != "index.csv"
    }


def test_stage_indexes_clips_with_annotations(tmp_path):
    cfg = make_config(tmp_path)
    a = write_av(tmp_path / "a.mp4", seconds=2.5, flash_frames=(30,))
    b = write_av(tmp_path / "b.mp4", seconds=1.5, channels=2)
    meta = {
        "video_id": "a",
        "fps": 25,
        "width": 64,
        "height": 48,
        "sample_rate": 48000,
        "num_frames": 62,
        "objects": [
            {"object_id": 0, "class": "f", "sounding": True, "main": True, "boxes": [[8, 8, 24, 24]] * 62}
        ],
        "events": [{"object_id": 0, "time_s": 1.2, "frame": 30, "kind": "flash"}],
    }
    (tmp_path / "a.json").write_text(json.dumps(meta))
    write_valid(
        cfg,
        [
            {"video_id": "a", "path": str(a), "annotation_path": str(tmp_path / "a.json")},
            {"video_id": "b", "path": str(b), "start_s": 0.25},
        ],
    )
    summary = run_segment(cfg)
    index = read_table(Path(cfg.paths.clips_dir) / "index.csv")
    assert list(index.columns[: len(CLIP_COLUMNS)]) == CLIP_COLUMNS
    assert list(index["clip_id"]) == ["a_00000", "a_00001", "b_00000"]
    assert list(index["audio_channels"]) == [1, 1, 2] and set(index["num_samples"]) == {16000}
    assert list(index["start_s"]) == [0.0, 1.0, 0.25]
    for rec in index.itertuples():
        assert Path(rec.video_path).is_file() and Path(rec.audio_path).is_file()
        assert rec.video_path == f"{cfg.paths.clips_dir}/{rec.video_id}/{rec.clip_id}.mp4"
    assert list(index["annotation_path"].fillna("")) == [
        f"{cfg.paths.clips_dir}/a/a_00000.json",
        f"{cfg.paths.clips_dir}/a/a_00001.json",
        "",
    ]
    sliced = json.loads(Path(index["annotation_path"][1]).read_text())
    assert sliced["events"] == [{"object_id": 0, "time_s": 0.2, "frame": 5, "kind": "flash"}]
    sx, sy = 42 / 64, 32 / 48  # 64x48 -> 42x32 (the long side rounded to even)
    assert sliced["objects"][0]["boxes"][0] == pytest.approx([8 * sx, 8 * sy, 24 * sx, 24 * sy], abs=1e-3)
    assert (sliced["width"], sliced["height"], sliced["clip_start_s"], sliced["source_video_id"]) == (
        42,
        32,
        1.0,
        "a",
    )
    assert (summary["num_videos"], summary["num_clips"], summary["num_videos_failed"]) == (2, 3, 0)
    assert summary["discarded_tail_seconds"] == pytest.approx(0.75, abs=0.05)
    metrics = json.loads((Path(cfg.paths.metrics_dir) / "segment.json").read_text())
    assert metrics["num_clips"] == 3 and metrics["clip_seconds_per_second"] > 0


def test_stage_resumes_and_redoes_on_parameter_change(tmp_path):
    cfg = make_config(tmp_path)
    a = write_av(tmp_path / "a.mp4", seconds=2.2)
    b = write_av(tmp_path / "b.mp4", seconds=1.2)
    write_valid(cfg, [{"video_id": "a", "path": str(a)}, {"video_id": "b", "path": str(b)}])
    run_segment(cfg)
    before = clip_mtimes(cfg)
    summary = run_segment(cfg)
    assert summary["num_videos_skipped"] == 2 and clip_mtimes(cfg) == before
    assert summary["num_clips"] == 3

    # A half-done video (no marker: killed mid-way) is redone; the finished one stays untouched.
    (Path(cfg.paths.clips_dir) / "b" / DONE_MARKER).unlink()
    summary = run_segment(cfg)
    after = clip_mtimes(cfg)
    assert summary["num_videos_skipped"] == 1 and summary["num_videos_segmented"] == 1
    assert {k: v for k, v in after.items() if k.startswith("a/")} == {
        k: v for k, v in before.items() if k.startswith("a/")
    }
    assert after["b/b_00000.mp4"] != before["b/b_00000.mp4"]

    cfg.segment = replace(cfg.segment, clip_seconds=2.0)  # changes what every clip is
    summary = run_segment(cfg)
    assert summary["num_videos_segmented"] == 2 and summary["num_clips"] == 1
    assert sorted(p.name for p in (Path(cfg.paths.clips_dir) / "a").iterdir()) == [
        DONE_MARKER,
        "a_00000.mp4",
        "a_00000.wav",
    ]  # no stale 1 s clips left behind
    assert not (Path(cfg.paths.clips_dir) / "b").exists() or not any(
        p.suffix == ".mp4" for p in (Path(cfg.paths.clips_dir) / "b").iterdir()
    )

    # A video that left valid.csv (quarantined now, or gone from the source) loses its clip folder.
    write_valid(cfg, [{"video_id": "a", "path": str(a)}])
    summary = run_segment(cfg)
    assert summary["num_stale_folders_removed"] == 1 and summary["num_videos_skipped"] == 1
    assert sorted(p.name for p in Path(cfg.paths.clips_dir).iterdir()) == ["a", "index.csv"]


def test_stage_reports_a_failing_video_and_goes_on(tmp_path, caplog):
    cfg = make_config(tmp_path, workers=2)  # the worker-process path
    good = write_av(tmp_path / "good.mp4", seconds=2.2)
    full = write_av(tmp_path / "full.mp4", seconds=6.0, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])  # corrupt data surfacing late
    write_valid(cfg, [{"video_id": "good", "path": str(good)}, {"video_id": "cut", "path": str(cut)}])
    summary = run_segment(cfg)
    assert summary["num_clips"] == 2 and summary["num_videos_failed"] == 1
    (failure,) = summary["failures"]
    assert failure["video_id"] == "cut" and str(cut) in failure["error"]
    assert "cut" in caplog.text and "failed" in caplog.text
    index = read_table(Path(cfg.paths.clips_dir) / "index.csv")
    assert set(index["video_id"]) == {"good"}
    assert not (Path(cfg.paths.clips_dir) / "cut").exists()  # partial clips removed, not left to confuse

    write_valid(cfg, [{"video_id": "cut", "path": str(cut)}])
    with pytest.raises(DataError, match="no clip produced"):
        run_segment(cfg)


def test_stage_crash_mid_clip_indexes_only_complete_videos(tmp_path, monkeypatch):
    cfg = make_config(tmp_path)
    a = write_av(tmp_path / "a.mp4", seconds=1.2)
    b = write_av(tmp_path / "b.mp4", seconds=3.0)
    write_valid(cfg, [{"video_id": "a", "path": str(a)}, {"video_id": "b", "path": str(b)}])
    original = clip_writers.ClipVideoWriter.write
    fail_clip_write(monkeypatch, "b_00001.mp4", at_frame=10, error=OSError("no space left on device"))
    summary = run_segment(cfg)
    assert summary["num_clips"] == 1 and "no space left" in summary["failures"][0]["error"]
    assert list(read_table(Path(cfg.paths.clips_dir) / "index.csv")["clip_id"]) == ["a_00000"]
    leftovers = [p for p in Path(cfg.paths.clips_dir).rglob("*") if ".part" in p.name]
    assert leftovers == []

    monkeypatch.setattr(clip_writers.ClipVideoWriter, "write", original)  # the disk is fixed: resume
    summary = run_segment(cfg)
    assert (summary["num_videos_skipped"], summary["num_videos_segmented"], summary["num_clips"]) == (1, 1, 4)


def test_invalid_clip_length_is_a_config_error(tmp_path):
    from avssl_core.errors import ConfigError

    cfg = make_config(tmp_path, clip_seconds=1.01)  # 25.25 frames
    with pytest.raises(ConfigError, match="whole number of frames"):
        run_segment(cfg)
