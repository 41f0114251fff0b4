"""Decode exactly the frames and samples a pair needs, and nothing else.

Video: torchcodec's VideoDecoder, kept open in a small per-process LRU cache (opening a file costs about
as much as decoding a short window, and consecutive pairs often share a clip). Audio: clips are 16-bit PCM
WAV, so a window is one positioned read of its bytes; the header is parsed (by the standard ``wave``
module) once per file.

Video can be decoded by the GPU's NVDEC (``device="cuda"``, torchcodec's CUDA decoding), which takes the
decoding off the CPU cores. The frames still come back to the CPU as uint8 at the stored resolution, where
the method's preprocess runs. Where CUDA decoding cannot run (no GPU; a DataLoader worker forked after CUDA
was initialised; a torchcodec build without CUDA) the reader decodes on the CPU instead, after one warning
that names the reason: a setting made for a GPU machine must not stop a run on a laptop.
"""

from __future__ import annotations

import functools
import os
import warnings
import wave
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torchaudio.functional as audio_functional

from avssl_core.errors import FileError

if TYPE_CHECKING:
    from torchcodec.decoders import VideoDecoder


class DecodeError(FileError):
    """A clip file could not give the requested frames or samples; ``path`` and ``reason`` say which, why."""


VideoDevice = Literal["cpu", "cuda"]
VIDEO_DEVICES: tuple[str, ...] = ("cpu", "cuda")


class CudaDecodingUnavailable(UserWarning):
    """CUDA video decoding was asked for and cannot run here; the reader decodes on the CPU."""


def cuda_decoding_unavailable() -> str | None:
    """Why this process cannot decode video with CUDA, or None when it can try."""
    if not torch.cuda.is_available():
        return "no CUDA device is available (torch.cuda.is_available() is False)"
    if torch.cuda._is_in_bad_fork():
        return ("this process was forked after CUDA was initialised (a DataLoader worker started by fork) and "
                "cannot use CUDA")
    return None


class VideoFrameReader:
    """Reads given frames of mp4 clips as uint8 [T, H, W, 3], keeping up to ``capacity`` decoders open.

    ``seek_mode="exact"`` scans the file once when it is opened (cheap for short clips) so that frame i is
    always frame i; "approximate" trusts the container's metadata. ``device="cuda"`` decodes with NVDEC
    where it can and falls back to the CPU with one ``CudaDecodingUnavailable`` warning where it cannot;
    ``self.device`` says which is in use.
    """

    def __init__(self, capacity: int = 8, seek_mode: str = "exact", device: VideoDevice = "cpu") -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        if device not in VIDEO_DEVICES:
            raise ValueError(f"video decoding device must be one of {VIDEO_DEVICES}, got {device!r}")
        self.capacity, self.seek_mode, self.device = capacity, seek_mode, device
        self._decoders: OrderedDict[str, VideoDecoder] = OrderedDict()
        self._owner_pid = os.getpid()
        if device == "cuda" and (reason := cuda_decoding_unavailable()) is not None:
            self._fall_back_to_cpu(reason)

    def _fall_back_to_cpu(self, reason: str) -> None:
        warnings.warn(f"CUDA video decoding is unavailable: {reason}; decoding video on the CPU instead",
                      CudaDecodingUnavailable, stacklevel=3)
        self.device = "cpu"
        self._decoders.clear()

    def _open(self, path: str) -> VideoDecoder:
        # Imported here, not at the top: a training run that reads the frame store never opens an mp4, and
        # torchcodec's import adds 0.4-0.6 s to a process that has already imported torch and torchvision.
        from torchcodec.decoders import VideoDecoder  # noqa: PLC0415

        if self.device == "cuda":
            if (reason := cuda_decoding_unavailable()) is not None:
                self._fall_back_to_cpu(reason)
            else:
                try:
                    return VideoDecoder(path, dimension_order="NHWC", seek_mode=self.seek_mode, device="cuda")
                except Exception as exc:  # noqa: BLE001  (torchcodec raises RuntimeError or ValueError)
                    cpu = VideoDecoder(path, dimension_order="NHWC", seek_mode=self.seek_mode,
                                       num_ffmpeg_threads=1)  # a broken file fails here too, as a DecodeError
                    self._fall_back_to_cpu(f"torchcodec could not open {path} on CUDA ({exc})")
                    return cpu
        return VideoDecoder(path, dimension_order="NHWC", seek_mode=self.seek_mode, num_ffmpeg_threads=1)

    def _decoder(self, path: str) -> VideoDecoder:
        if self._owner_pid != os.getpid():
            # A forked worker inherited the parent's open decoders, whose file offsets it would share
            # with its sibling workers: start afresh instead.
            self._decoders, self._owner_pid = OrderedDict(), os.getpid()
        decoder = self._decoders.get(path)
        if decoder is not None:
            self._decoders.move_to_end(path)
            return decoder
        decoder = self._open(path)
        self._decoders[path] = decoder
        if len(self._decoders) > self.capacity:
            self._decoders.popitem(last=False)
        return decoder

    def read(self, path: str, frame_indices: Sequence[int]) -> torch.Tensor:
        try:
            decoder = self._decoder(path)
            available = decoder.metadata.num_frames
            if available is not None and max(frame_indices) >= available:
                raise DecodeError(path, f"frame {max(frame_indices)} requested, the file has {available}")
            # NVDEC's frames come back to the CPU, where the preprocess runs (uint8 at the stored size: small).
            frames = decoder.get_frames_at(list(frame_indices)).data.cpu()
        except DecodeError:
            self._decoders.pop(path, None)
            raise
        except Exception as exc:  # torchcodec raises RuntimeError/ValueError with FFmpeg's reason
            self._decoders.pop(path, None)
            raise DecodeError(path, f"video decode failed: {exc}") from exc
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise DecodeError(path, f"decoded frames have shape {tuple(frames.shape)} {frames.dtype}, "
                              "expected uint8 [T, H, W, 3]")
        return frames

    def __getstate__(self) -> dict:
        # Open decoders do not cross process boundaries; each worker opens its own.
        return {"capacity": self.capacity, "seek_mode": self.seek_mode, "device": self.device,
                "_decoders": OrderedDict(), "_owner_pid": -1}


@functools.lru_cache(maxsize=4096)
def _wav_layout(path: str, size: int, mtime_ns: int) -> tuple[int, int, int]:
    """(byte offset of the samples, channels, frames) of a 16-bit PCM WAV, read once per file version
    (``size`` and ``mtime_ns`` are part of the key, so a rewritten file is read again). The standard
    ``wave`` module checks the format; the offset of the data chunk is found by walking the RIFF chunks."""
    with open(path, "rb") as f:
        with wave.open(f, "rb") as wav:
            if wav.getsampwidth() != 2:
                raise DecodeError(path, f"{8 * wav.getsampwidth()}-bit WAV, expected 16-bit PCM")
            channels, frames = wav.getnchannels(), wav.getnframes()
        f.seek(12)  # past "RIFF", the size and "WAVE"
        while len(head := f.read(8)) == 8:
            size_of = int.from_bytes(head[4:], "little")
            if head[:4] == b"data":
                return f.tell(), channels, frames
            f.seek(size_of + (size_of & 1), os.SEEK_CUR)  # chunks are padded to an even size
    raise DecodeError(path, "WAV has no data chunk")


def read_wav_window(path: str, start: int, count: int) -> np.ndarray:
    """Samples ``start:start+count`` of a 16-bit PCM WAV as int16 [count, channels], reading only those.

    One positioned read (``os.preadv``) of the window's bytes; the header is parsed once per file. Opening
    the file with ``wave`` for every window cost more than the read itself (about 30 us against 5 us for
    a second of 16 kHz stereo), and this sits in every training sample.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            stat = os.fstat(fd)
            offset, channels, total = _wav_layout(path, stat.st_size, stat.st_mtime_ns)
            if start < 0 or start + count > total:
                raise DecodeError(path, f"samples {start}..{start + count} requested, the file has {total}")
            samples = np.empty((count, channels), dtype="<i2")  # read into directly: writable, one copy
            got = os.preadv(fd, [samples], offset + start * channels * 2) // (2 * max(channels, 1))
        finally:
            os.close(fd)
    except (wave.Error, EOFError, OSError) as exc:
        raise DecodeError(path, f"WAV read failed: {exc}") from exc
    if got != count:
        raise DecodeError(path, f"read {got} samples of {count} (truncated file?)")
    return samples


def read_audio_window(path: str, start: int, count: int, *, channels: int, clip_rate: int,
                      target_rate: int | None, target_len: int) -> torch.Tensor:
    """An audio window as float32 [channels, target_len] in [-1, 1]: mono by averaging, resampled if asked."""
    samples = read_wav_window(path, start, count)
    have = samples.shape[1]
    if channels == 1 and have in (2, 4, 8):
        # The mean of the channels' k / 32768 is (sum of k) / (32768 * channels) exactly, in any order, for
        # a power-of-two count (the sum and the division are exact in float32): summed as integers it skips
        # a float copy of every channel, in every training sample.
        mixed = torch.from_numpy(samples).sum(dim=1, dtype=torch.int32).float().div_(32768.0 * have)
        waveform = mixed.unsqueeze(0)
    else:
        # [channels, count] in row-major order: the channel mean is 10x slower on the transposed view.
        waveform = torch.from_numpy(np.ascontiguousarray(samples.T, dtype=np.float32) / 32768.0)
    if channels == 1 and waveform.shape[0] > 1:
        waveform = waveform.mean(dim=0, keepdim=True)
    elif waveform.shape[0] < channels:
        raise DecodeError(path, f"{waveform.shape[0]} audio channel(s), {channels} wanted")
    else:
        waveform = waveform[:channels]
    if target_rate is not None and target_rate != clip_rate:
        waveform = audio_functional.resample(waveform, clip_rate, target_rate)
    if waveform.shape[1] < target_len:
        raise DecodeError(path, f"audio window has {waveform.shape[1]} samples, {target_len} wanted")
    return waveform[:, :target_len].contiguous()
