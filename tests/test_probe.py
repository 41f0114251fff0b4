"""probe_file and decode_stats on real media and on crafted broken files."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import pytest
from media_factory import write_clip

from avssl_core.data.probe import DECODE_COLUMNS, decode_stats, probe_file
from avssl_core.data.tables import PROBE_COLUMNS


def test_probe_real_clip(bigbuckbunny):
    info = probe_file(bigbuckbunny)
    assert info["probe_error"] == ""
    assert info["sha256"] == hashlib.sha256(bigbuckbunny.read_bytes()).hexdigest()
    assert info["size_bytes"] == bigbuckbunny.stat().st_size
    assert info["container"].startswith("mov,mp4")
    assert info["duration_s"] == pytest.approx(5.3, abs=0.05)
    assert (info["num_video_streams"], info["num_audio_streams"]) == (1, 1)
    assert (info["video_codec"], info["width"], info["height"]) == ("h264", 1280, 720)
    assert (info["pix_fmt"], info["bit_depth"]) == ("yuv420p", 8)
    assert info["fps"] == pytest.approx(25.0)
    assert info["fps_is_variable"] is False
    assert (info["audio_codec"], info["audio_channels"], info["audio_sample_rate"]) == ("aac", 6, 48000)
    streams = json.loads(info["streams_json"])
    assert [s["type"] for s in streams] == ["video", "audio"]
    assert streams[1]["layout"] == "5.1"


def test_decode_real_clip(bigbuckbunny):
    tracemalloc.start()
    try:
        stats = decode_stats(bigbuckbunny)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert set(stats) == set(DECODE_COLUMNS)
    assert stats["decodable"] is True and stats["decode_error"] == ""
    assert stats["decoded_video_s"] == pytest.approx(5.28, abs=0.05)
    assert stats["decoded_audio_s"] == pytest.approx(5.31, abs=0.05)
    assert -60 < stats["audio_rms_dbfs"] < 0
    assert stats["mean_frame_diff"] > 0.5
    assert len(stats["content_hash"]) == 64
    # Streaming: holding the decoded 5.1 audio alone would take 6 MB.
    assert peak_bytes < 2_000_000


SIZE = "<size>"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("zero_bytes", "empty file (0 bytes)"),
        ("truncated_no_moov", f"unknown container ({SIZE} bytes): moov atom not found"),
        ("text", "not a media file: text (400 bytes)"),
    ],
)
def test_probe_reports_why_a_file_cannot_be_opened(media_zoo, name, expected):
    info = probe_file(media_zoo[name])
    assert set(info) == set(PROBE_COLUMNS)
    # What the file is and its size, never its bytes: reasons reach logs, CSVs and Data Docs.
    assert info["probe_error"] == expected.replace(SIZE, str(media_zoo[name].stat().st_size))
    assert info["duration_s"] is None and info["video_codec"] == ""


def test_probe_missing_file_and_folder(tmp_path):
    assert probe_file(tmp_path / "gone.mp4")["probe_error"] == "file not found"
    assert probe_file(tmp_path)["probe_error"] == "not a regular file"


def test_probe_never_raises_and_returns_exactly_the_probe_columns(media_zoo):
    for name, path in media_zoo.items():
        if name not in ("root", "outside"):
            assert list(probe_file(path)) == PROBE_COLUMNS, name


def test_probe_detects_variable_frame_rate(media_zoo):
    assert probe_file(media_zoo["good_vfr"])["fps_is_variable"] is True
    assert probe_file(media_zoo["good_a"])["fps_is_variable"] is False
    # Stream copy into Matroska's 1 ms time base keeps the rate constant.
    assert probe_file(media_zoo["remuxed_duplicate"])["fps_is_variable"] is False


def test_probe_fields_of_unusual_files(media_zoo):
    assert probe_file(media_zoo["good_10bit"])["bit_depth"] == 10
    assert probe_file(media_zoo["good_10bit"])["pix_fmt"] == "yuv420p10le"
    assert probe_file(media_zoo["low_sample_rate"])["audio_sample_rate"] == 8000
    assert probe_file(media_zoo["low_fps"])["fps"] == pytest.approx(5.0)
    multi = probe_file(media_zoo["good_multistream"])
    assert (multi["num_video_streams"], multi["num_audio_streams"]) == (2, 2)
    assert len(json.loads(multi["streams_json"])) == 4
    no_audio = probe_file(media_zoo["no_audio"])
    assert (no_audio["num_video_streams"], no_audio["num_audio_streams"]) == (1, 0)
    assert no_audio["audio_codec"] == "" and no_audio["audio_sample_rate"] is None
    no_video = probe_file(media_zoo["no_video"])
    assert (no_video["num_video_streams"], no_video["num_audio_streams"]) == (0, 1)
    assert no_video["width"] is None and no_video["fps"] is None


def test_truncated_files_are_not_decodable(media_zoo):
    # Opens (moov first) but the data stops early: the demuxer hits the end of the file mid-sample.
    cut_mp4 = decode_stats(media_zoo["truncated_mid_mdat"])
    assert probe_file(media_zoo["truncated_mid_mdat"])["probe_error"] == ""
    assert cut_mp4["decodable"] is False
    assert "of 2.00 s announced" in cut_mp4["decode_error"]
    # Matroska just ends: no decode error, only a stream shorter than the header announces.
    cut_mkv = decode_stats(media_zoo["truncated_mkv"])
    assert cut_mkv["decodable"] is False
    assert "but the file announces 2.06 s" in cut_mkv["decode_error"]
    assert cut_mkv["decoded_video_s"] < 1.5


def test_decode_stats_on_a_missing_file(tmp_path):
    stats = decode_stats(tmp_path / "gone.mp4")
    assert stats["decodable"] is False and stats["decode_error"].startswith("cannot open")


def test_silence_and_still_pictures_are_measured(media_zoo):
    good = decode_stats(media_zoo["good_a"])
    silent = decode_stats(media_zoo["silent_audio"])
    static = decode_stats(media_zoo["static_video"])
    assert good["audio_rms_dbfs"] == pytest.approx(-13.5, abs=1.0)  # 0.3-amplitude sine
    assert silent["audio_rms_dbfs"] == -120.0
    assert good["mean_frame_diff"] > 2.0
    assert static["mean_frame_diff"] < 0.5
    assert decode_stats(media_zoo["no_audio"])["audio_rms_dbfs"] is None


def test_content_hash_survives_remux_but_tells_clips_apart(media_zoo):
    good_b = decode_stats(media_zoo["good_b"])
    assert decode_stats(media_zoo["remuxed_duplicate"])["content_hash"] == good_b["content_hash"]
    assert decode_stats(media_zoo["good_a"])["content_hash"] != good_b["content_hash"]
    assert probe_file(media_zoo["exact_duplicate"])["sha256"] == probe_file(media_zoo["good_a"])["sha256"]


def test_content_hash_sees_colour(tmp_path):
    # Seeds 25 and 30 draw bars of equal luma (125.9) moving alike: only the hue tells them apart.
    first = decode_stats(write_clip(tmp_path / "a.mp4", seed=25, seconds=0.5))
    second = decode_stats(write_clip(tmp_path / "b.mp4", seed=30, seconds=0.5))
    assert first["mean_frame_diff"] == pytest.approx(second["mean_frame_diff"], abs=0.05)
    assert first["content_hash"] != second["content_hash"]
