"""Every validation threshold pinned from both sides: a value on the boundary passes, the nearest value
beyond it is quarantined for that threshold's reason.

Two layers, both with the default thresholds of ValidateConfig (so a changed default fails too):
- real encoded files (H.264 + 16-bit PCM in MOV, a few tenths of a second) through the whole validate
  stage, for the thresholds that encoding can reach exactly or within a measured hair: loudness (a tone
  at -59.8 / -60.2 dBFS RMS, as measured by the decoder), frame rate (10 and 9.99 fps, 120 and 121 fps),
  short side (64 / 62 pixels: H.264 4:2:0 needs even sizes), long side (4096 / 4098 pixels) and sample
  rate (16000 / 15999 Hz);
- the expectation suite itself on manifest rows of one real file whose measured values are replaced by
  the exact boundary values (duration 10.0 / 9.999 s, fps 10.0 / 9.999 and 120.0 / 120.001, sides
  64 / 63 and 4096 / 4097, 16000 / 15999 Hz, -60.0 / -60.001 dBFS, frame difference 0.5 / 0.4999), since
  no encoder produces a duration or a mean frame difference to the last digit;
- the decode shortfall allowed by duration_tolerance_s, on a decode accumulator holding exact counts.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from avssl_core.config import Config, PathsConfig, ValidateConfig
from avssl_core.data.probe import _DecodeAccumulator, _shortfall, decode_stats, probe_file
from avssl_core.data.tables import MANIFEST_COLUMNS, SOURCE_COLUMNS, read_table, write_table
from avssl_core.stages.validate import run_validate

pytestmark = pytest.mark.timeout(300)

DEFAULTS = ValidateConfig()


def write_mov(path: Path, *, width: int = 64, height: int = 64, fps: Fraction = Fraction(25), seconds: float = 0.4,
              sample_rate: int = 16000, rms_dbfs: float = -20.0, shade: int = 40) -> Path:
    """H.264 (a bar sliding over a ``shade`` background: each file its own pictures, so none is a
    duplicate of another) + mono 16-bit PCM sine whose RMS is ``rms_dbfs``: PCM keeps the loudness exact
    up to 16-bit rounding, and MOV keeps any frame rate and sample rate."""
    with av.open(str(path), "w", format="mov") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = container.add_stream("pcm_s16le", rate=sample_rate, layout="mono")
        for i in range(max(2, round(seconds * fps))):
            image = np.full((height, width, 3), shade, dtype=np.uint8)
            bar, step = width // 8, width // 10  # in proportion to the width: the motion survives thumbnails
            image[:, (i * step) % width:(i * step) % width + bar] = 220
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        n = round(seconds * sample_rate)
        amplitude = np.sqrt(2) * 10 ** (rms_dbfs / 20)  # a sine's RMS is its amplitude / sqrt(2)
        # Tens of whole 100 Hz periods: the sampled sine's RMS is amplitude / sqrt(2) to well under 0.01 dB.
        tone = amplitude * np.sin(2 * np.pi * 100 * np.arange(n) / sample_rate)
        pcm = np.round(tone * 32768).astype(np.int16)[None, :]
        for start in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, start:start + 1024]), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


# name -> (write_mov arguments, the reason it must be quarantined for, or None: valid)
REAL_FILES = {
    "loud_enough": ({"rms_dbfs": -59.8}, None),
    "too_quiet": ({"rms_dbfs": -60.2}, "silent_audio"),
    "fps_at_min": ({"fps": Fraction(10)}, None),
    "fps_below_min": ({"fps": Fraction(999, 100)}, "fps_out_of_range"),
    "fps_at_max": ({"fps": Fraction(120)}, None),
    "fps_above_max": ({"fps": Fraction(121)}, "fps_out_of_range"),
    "short_side_at_min": ({"width": 96, "height": 64}, None),
    "short_side_below_min": ({"width": 96, "height": 62}, "resolution_out_of_range"),
    "long_side_at_max": ({"width": 4096, "height": 64, "seconds": 0.2}, None),
    "long_side_above_max": ({"width": 4098, "height": 64, "seconds": 0.2}, "resolution_out_of_range"),
    "sample_rate_at_min": ({"sample_rate": 16000}, None),
    "sample_rate_below_min": ({"sample_rate": 15999}, "low_sample_rate"),
}


def _config(tmp_path: Path, **validate) -> Config:
    paths = PathsConfig(data_root=str(tmp_path / "data"), acquired_dir=str(tmp_path / "acquired"),
                        validated_dir=str(tmp_path / "validated"), metrics_dir=str(tmp_path / "metrics"))
    # min_duration_s is the only threshold not left at its default: the default (one 10 s clip) would
    # make every test file 10 s long. Its own boundary is pinned in the table test below.
    return Config(paths=paths, validate=ValidateConfig(**{"min_duration_s": 0.1, "workers": 1,
                                                          "min_valid_fraction": 0.0, **validate}))


def _row(video_id: str, path: Path) -> dict:
    row = dict.fromkeys(SOURCE_COLUMNS, "")
    row.update(video_id=video_id, path=str(path), source="local", source_uri=str(path), source_root=str(path.parent))
    return {**row, **probe_file(path)}


@pytest.fixture(scope="module")
def real_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("boundaries")
    return {name: write_mov(root / f"{name}.mov", shade=20 + 8 * k, **kwargs)
            for k, (name, (kwargs, _)) in enumerate(REAL_FILES.items())}


def test_real_files_measure_what_they_were_made_for(real_files):
    """The files sit where their names say: otherwise the stage test below would prove nothing."""
    loud, quiet = (decode_stats(real_files[n])["audio_rms_dbfs"] for n in ("loud_enough", "too_quiet"))
    assert -60.0 < loud < -59.7 and -60.3 < quiet < -60.0, (loud, quiet)
    probed = {name: probe_file(path) for name, path in real_files.items()}
    assert probed["fps_at_min"]["fps"] == 10.0 and probed["fps_below_min"]["fps"] == pytest.approx(9.99)
    assert probed["fps_at_max"]["fps"] == 120.0 and probed["fps_above_max"]["fps"] == 121.0
    assert (probed["short_side_below_min"]["width"], probed["short_side_below_min"]["height"]) == (96, 62)
    assert probed["long_side_above_max"]["width"] == 4098
    assert probed["sample_rate_below_min"]["audio_sample_rate"] == 15999


def test_validate_stage_quarantines_exactly_the_files_beyond_a_default_threshold(real_files, tmp_path):
    cfg = _config(tmp_path)
    rows = [_row(name, path) for name, path in real_files.items()]
    write_table(Path(cfg.paths.acquired_dir) / "manifest.csv", pd.DataFrame(rows, columns=MANIFEST_COLUMNS),
                MANIFEST_COLUMNS)
    run_validate(cfg)
    valid = read_table(Path(cfg.paths.validated_dir) / "valid.csv")
    quarantine = read_table(Path(cfg.paths.validated_dir) / "quarantine.csv")
    got = {row.video_id: row.reasons for row in quarantine.itertuples()}
    expected = {name: reason for name, (_, reason) in REAL_FILES.items() if reason}
    assert got == expected, dict(zip(quarantine["video_id"], quarantine["details"], strict=True))
    assert set(valid["video_id"]) == {name for name, (_, reason) in REAL_FILES.items() if reason is None}


# column -> [(value on the boundary, valid), (nearest value beyond it, quarantined for reason)]
EXACT = [
    ("duration_s", 10.0, 9.999, "too_short"),  # default min_duration_s: one 10 s clip
    ("fps", DEFAULTS.min_fps, 9.999, "fps_out_of_range"),
    ("fps", DEFAULTS.max_fps, 120.001, "fps_out_of_range"),
    ("height", DEFAULTS.min_short_side, 63, "resolution_out_of_range"),
    ("width", DEFAULTS.max_long_side, 4097, "resolution_out_of_range"),
    ("audio_sample_rate", DEFAULTS.min_audio_sample_rate, 15999, "low_sample_rate"),
    ("audio_rms_dbfs", DEFAULTS.min_audio_rms_dbfs, -60.001, "silent_audio"),
    ("mean_frame_diff", DEFAULTS.min_frame_diff, 0.4999, "static_video"),
]


def test_default_thresholds_are_the_documented_ones():
    """The figures the tests above and the README state; a changed default must be a deliberate edit."""
    assert (DEFAULTS.min_fps, DEFAULTS.max_fps, DEFAULTS.min_short_side, DEFAULTS.max_long_side) == (10, 120, 64, 4096)
    assert (DEFAULTS.min_audio_sample_rate, DEFAULTS.min_audio_rms_dbfs) == (16000, -60.0)
    assert (DEFAULTS.min_frame_diff, DEFAULTS.duration_tolerance_s, Config().min_duration_s) == (0.5, 0.5, 10.0)


def test_expectation_suite_on_exact_boundary_values(real_files, tmp_path):
    from avssl_core.data.expectations import check_sources

    path = real_files["short_side_at_min"]  # 96x64, fps 25, 16 kHz, loud, moving: valid on every check
    base = {**_row("base", path), **decode_stats(path), "duration_s": 12.0}
    rows, expected = [], []
    for k, (column, inside, outside, reason) in enumerate(EXACT):
        for side, value in (("inside", inside), ("outside", outside)):
            row = {**base, column: value, "video_id": f"{column}_{k}_{side}",
                   "sha256": f"{k}{side}", "content_hash": f"{k}{side}"}  # not duplicates of each other
            rows.append(row)
            expected.append([] if side == "inside" else [reason])
    outcome = check_sources(pd.DataFrame(rows), Config(), gx_dir=tmp_path / "gx", docs_dir=tmp_path / "docs")
    got = dict(zip((r["video_id"] for r in rows), outcome.reasons, strict=True))
    assert got == dict(zip((r["video_id"] for r in rows), expected, strict=True))


def test_duration_tolerance_allows_exactly_its_shortfall():
    acc = _DecodeAccumulator(thumb_size=8)
    acc.sample_rate = 16000
    announced = {"audio": 2.0}
    acc.num_samples = 24000  # 1.5 s: exactly the default 0.5 s short
    assert _shortfall(announced, acc, DEFAULTS.duration_tolerance_s) == ""
    acc.num_samples = 23999
    assert _shortfall(announced, acc, DEFAULTS.duration_tolerance_s) == \
        "audio decodes to 1.50 s but the file announces 2.00 s (truncated?)"
