"""Clips that break after they were indexed: a WAV cut off mid-file, frames requested past the end of a
shortened video, a WAV with the wrong channel count or bit depth, an mp4 cut off mid-file.

Each reaches a DecodeError naming the file and the reason in the readers, and in the pair dataset a
FailedSample that the collate function leaves out of the batch and counts under ``_failed`` (the count
the trainer stops on), never a zero-filled or silently replaced sample.

The clips are real: H.264 mp4 (PyAV) and 16-bit PCM WAV (the standard library's ``wave``), 2 s each,
listed in an index.csv in the segment stage's format.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media_factory import truncate_copy, write_clip

from avssl_core.pretext.clip_index import INDEX_COLUMNS, ClipIndex
from avssl_core.pretext.dataset import FailedSample, PairDataset, batch_size_of, collate_skipping_failures
from avssl_core.pretext.decode import DecodeError, VideoFrameReader, read_audio_window, read_wav_window
from avssl_core.pretext.sampling import PairSampler
from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairSpec

pytestmark = pytest.mark.timeout(120)

SR, FPS, SECONDS = 16000, 25, 2.0


def write_wav(path: Path, *, seconds: float = SECONDS, channels: int = 2, sample_width: int = 2,
              rate: int = SR) -> Path:
    n = round(seconds * rate)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)
    if sample_width == 1:
        data = np.round(tone * 127 + 128).astype(np.uint8)  # 8-bit WAV is unsigned
    else:
        data = np.round(tone * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(sample_width)
        wav.setframerate(rate)
        wav.writeframes(np.repeat(data[:, None], channels, axis=1).tobytes())
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("decode_errors")
    files = {}
    for k in range(3):
        files[f"video{k}"] = write_clip(root / f"v{k}.mp4", seconds=SECONDS, fps=FPS, audio_streams=0, seed=k,
                                        faststart=True)
        files[f"audio{k}"] = write_wav(root / f"a{k}.wav")
    files["short_video"] = write_clip(root / "short.mp4", seconds=0.4, fps=FPS, audio_streams=0, seed=7)
    files["cut_wav"] = truncate_copy(files["audio0"], root / "cut.wav", 0.5)  # header still says 2 s
    files["cut_mp4"] = truncate_copy(files["video0"], root / "cut.mp4", 0.5)  # moov first: header intact
    files["mono_wav"] = write_wav(root / "mono.wav", channels=1)
    files["wav_8bit"] = write_wav(root / "eight.wav", sample_width=1)
    files["wav_24bit"] = root / "twentyfour.wav"
    with wave.open(str(files["wav_24bit"]), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(3)
        wav.setframerate(SR)
        wav.writeframes(b"\x00\x10\x00" * 2 * SR)
    return files


# -- the readers -------------------------------------------------------------------------------------


def test_truncated_wav_names_the_file_and_the_shortfall(clips):
    path = str(clips["cut_wav"])
    assert read_wav_window(path, 0, SR // 2).shape == (SR // 2, 2)  # the part before the cut still reads
    with pytest.raises(DecodeError) as err:
        read_wav_window(path, SR, SR // 2)  # 1.0-1.5 s: past the cut at about 1 s
    assert err.value.path == path
    assert err.value.reason.endswith("of 8000 (truncated file?)") and err.value.reason.startswith("read ")
    assert str(err.value) == f"{path}: {err.value.reason}"


def test_window_past_the_end_of_a_wav(clips):
    path = str(clips["audio1"])
    with pytest.raises(DecodeError, match=r"samples 31000\.\.33000 requested, the file has 32000") as err:
        read_wav_window(path, 31000, 2000)
    assert err.value.path == path


@pytest.mark.parametrize(("name", "reason"), [("wav_8bit", "8-bit WAV, expected 16-bit PCM"),
                                              ("wav_24bit", "24-bit WAV, expected 16-bit PCM")])
def test_wrong_bit_depth(clips, name, reason):
    with pytest.raises(DecodeError) as err:
        read_wav_window(str(clips[name]), 0, 100)
    assert (err.value.path, err.value.reason) == (str(clips[name]), reason)


def test_wrong_channel_count(clips):
    path = str(clips["mono_wav"])
    with pytest.raises(DecodeError) as err:
        read_audio_window(path, 0, SR, channels=2, clip_rate=SR, target_rate=None, target_len=SR)
    assert (err.value.path, err.value.reason) == (path, "1 audio channel(s), 2 wanted")
    # Mono wanted from stereo is a downmix, not an error.
    assert read_audio_window(str(clips["audio0"]), 0, SR, channels=1, clip_rate=SR, target_rate=None,
                             target_len=SR).shape == (1, SR)


def test_frame_past_the_end(clips):
    reader = VideoFrameReader()
    path = str(clips["short_video"])
    assert reader.read(path, [0, 9]).shape == (2, 64, 64, 3)
    with pytest.raises(DecodeError) as err:
        reader.read(path, [8, 9, 10, 30])
    assert (err.value.path, err.value.reason) == (path, "frame 30 requested, the file has 10")


def test_mp4_cut_off_mid_file(clips):
    path = str(clips["cut_mp4"])
    with pytest.raises(DecodeError) as err:
        VideoFrameReader().read(path, list(range(40, 50)))  # the last 0.4 s lie beyond the cut
    assert err.value.path == path and err.value.reason


# -- the pair dataset: skipped and counted -----------------------------------------------------------


def _index(tmp_path: Path, clips: dict[str, Path], replace: dict[int, dict[str, str]]) -> ClipIndex:
    rows = []
    for k in range(3):
        row = {"clip_id": f"c{k}", "video_id": f"v{k}", "start_s": 0.0, "end_s": SECONDS, "label": "x",
               "split": "train", "video_path": str(clips[f"video{k}"]), "audio_path": str(clips[f"audio{k}"]),
               "fps": FPS, "num_frames": round(SECONDS * FPS), "width": 64, "height": 64, "sample_rate": SR,
               "audio_channels": 2, "num_samples": round(SECONDS * SR)}
        rows.append({**row, **replace.get(k, {})})
    pd.DataFrame(rows, columns=INDEX_COLUMNS).to_csv(tmp_path / "index.csv", index=False)
    return ClipIndex.from_csv(tmp_path / "index.csv")


@pytest.mark.parametrize(("column", "name", "reason_part"), [
    ("audio_path", "cut_wav", "truncated file?"),
    ("audio_path", "wav_8bit", "8-bit WAV, expected 16-bit PCM"),
    ("audio_path", "mono_wav", "1 audio channel(s), 2 wanted"),
    ("video_path", "short_video", "the file has 10"),
])
def test_dataset_skips_and_counts_each_pair_that_touches_a_broken_clip(clips, tmp_path, column, name, reason_part):
    index = _index(tmp_path, clips, {0: {column: str(clips[name])}})
    spec = PairSpec(video_frames=10, audio_seconds=1.0, audio_channels=2,
                    curriculum=(CurriculumStage(0, NegativeMix(easy=1.0)),))
    sampler = PairSampler(index, spec, seed=0, samples_per_epoch=24)
    dataset = PairDataset(sampler)
    items = [dataset[i] for i in range(24)]
    broken = str(clips[name])
    row = int(np.flatnonzero(getattr(sampler.index, column) == broken)[0])
    recipes = [sampler.recipe(0, i) for i in range(24)]
    touches = [(r.audio_row if column == "audio_path" else r.video_row) == row for r in recipes]
    # For a cut WAV or a shortened video, which pairs fail depends on the window each one reads (the
    # part before the cut still decodes): every failure is a pair that reads the broken file.
    failed = [isinstance(item, FailedSample) for item in items]
    assert any(failed), "no pair reached the broken clip: the test would prove nothing"
    assert all(t for t, f in zip(touches, failed, strict=True) if f)
    if name in ("wav_8bit", "mono_wav"):
        assert failed == touches  # every read of these files fails
    batch = collate_skipping_failures(items)
    report = batch["_failed"]
    assert report["num_failed"] == sum(failed) and batch_size_of(batch) == 24 - sum(failed)
    assert set(report["failed"]) == {broken}
    assert all(reason_part in reason for reason in report["reasons"]), report["reasons"]
    assert report["indices"] == [i for i, f in enumerate(failed) if f]
    assert [f.path for f in dataset.failures] == [broken] * sum(failed)
