"""The host half's cheap reads (issue 14, AVC paper under 8 cores per H100): the WAV window read by one
``os.preadv`` from a header parsed once per file gives the samples the standard ``wave`` module reads; the
item's augmentation seed touches only torch's CPU generator and gives the draws ``torch.manual_seed`` gave.

The WAVs are real: the segment stage's clips (FFmpeg's writer, conftest's ``tiny_clips``) and files
written by ``wave`` with a chunk before the samples.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.dataset import seeded_cpu_rng
from avssl_core.pretext.decode import DecodeError, read_audio_window, read_wav_window

pytestmark = pytest.mark.timeout(180)  # the session's tiny_clips fixture may be built here


def wave_window(path: str, start: int, count: int) -> np.ndarray:
    """The reference: the window as the ``wave`` module reads it."""
    with wave.open(path, "rb") as wav:
        wav.setpos(start)
        raw = wav.readframes(count)
        return np.frombuffer(raw, dtype="<i2").reshape(count, wav.getnchannels())


def write_wav(path: Path, samples: np.ndarray, *, chunk_before_data: bytes = b"") -> Path:
    """16-bit PCM at 16 kHz; ``chunk_before_data`` (odd length allowed: padded) goes between fmt and data."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(samples.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(samples.astype("<i2").tobytes())
    if chunk_before_data:
        data = path.read_bytes()
        at = data.index(b"data")
        extra = b"LIST" + len(chunk_before_data).to_bytes(4, "little") + chunk_before_data
        extra += b"\0" * (len(chunk_before_data) & 1)
        body = data[12:at] + extra + data[at:]
        path.write_bytes(b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WAVE" + body)
    return path


def test_segmented_clips_read_as_the_wave_module_reads_them(tiny_clips):
    index = ClipIndex.from_csv(tiny_clips, splits=None)
    rng = np.random.default_rng(0)
    for row in range(len(index)):
        path, total = str(index.audio_path[row]), int(index.num_samples[row])
        for count in (1, 16000, total):
            start = int(rng.integers(total - count + 1))
            got = read_wav_window(path, start, count)
            assert got.dtype == np.int16 and got.shape == (count, int(index.audio_channels[row]))
            assert np.array_equal(got, wave_window(path, start, count)), (path, start, count)


@pytest.mark.parametrize("chunk", [b"", b"INFOodd", b"INFO" + bytes(range(200))])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_a_chunk_before_the_samples_is_skipped(tmp_path, chunk, channels):
    samples = np.random.default_rng(channels).integers(-32768, 32768, (4000, channels))
    path = str(write_wav(tmp_path / "a.wav", samples, chunk_before_data=chunk))
    assert np.array_equal(read_wav_window(path, 123, 3000), wave_window(path, 123, 3000))
    assert np.array_equal(read_wav_window(path, 123, 3000), samples[123:3123])


def test_a_rewritten_file_is_read_afresh(tmp_path):
    """The parsed header is kept per file version (size, mtime): the segment stage may rewrite a clip."""
    path = tmp_path / "a.wav"
    write_wav(path, np.full((1000, 2), 7))
    assert read_wav_window(str(path), 0, 10)[0, 0] == 7
    write_wav(path, np.full((3000, 1), -5), chunk_before_data=b"INFOx")
    os.utime(path, ns=(1, 1))  # a new mtime even on a file system with coarse timestamps
    assert read_wav_window(str(path), 2000, 10).tolist() == [[-5]] * 10
    with pytest.raises(DecodeError, match="the file has 3000"):
        read_wav_window(str(path), 2500, 1000)


def test_a_wav_without_samples_names_the_file(tmp_path):
    path = tmp_path / "empty.wav"
    write_wav(path, np.zeros((10, 1)))
    data = path.read_bytes()
    at = data.index(b"data")
    path.write_bytes(data[:at])  # the header ends before any data chunk
    with pytest.raises(DecodeError) as err:
        read_wav_window(str(path), 0, 1)
    assert err.value.path == str(path) and "WAV" in err.value.reason


def test_item_seed_gives_manual_seeds_draws_and_leaves_the_stream_alone():
    def draws():
        return torch.randint(1000, (5,)).tolist(), torch.rand(3).tolist(), torch.randperm(6).tolist()

    torch.manual_seed(99)
    expected = draws()
    torch.manual_seed(5)
    before = torch.get_rng_state()
    with seeded_cpu_rng(99):
        got = draws()
    assert got == expected
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(RuntimeError), seeded_cpu_rng(99):  # an error inside still puts the stream back
        torch.rand(1)
        raise RuntimeError("boom")
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 8])
def test_the_mono_mix_is_the_float_mean_of_the_channels(tmp_path, channels):
    """A power-of-two channel count is mixed as an integer sum; every count gives the float mean bit for bit."""
    samples = np.random.default_rng(channels).integers(-32768, 32768, (3000, channels))
    samples[:10] = 0
    samples[10:20] = -32768  # the extremes, and zeros whose sign must come out +0.0
    samples[20:30, 0], samples[20:30, 1:] = -32768, 32767
    path = str(write_wav(tmp_path / "a.wav", samples))
    got = read_audio_window(path, 0, 3000, channels=1, clip_rate=16000, target_rate=None, target_len=3000)
    want = torch.from_numpy(samples.T.astype(np.float32) / 32768.0).mean(dim=0, keepdim=True)
    assert got.dtype == torch.float32 and torch.equal(got, want)
    assert torch.equal(torch.signbit(got), torch.signbit(want))
