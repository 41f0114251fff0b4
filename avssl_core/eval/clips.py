"""Evaluation clips: windows of labelled media files decoded at a method's own PairSpec (frames, frame
rate, audio length and rate) into the raw samples its ``preprocess`` expects, then preprocessed.

A window is named by its centre time; the video window and the audio window (the geometry of
pretext/windows.py) are both centred there, as in a positive pair. At test
time a file gives ``n`` uniformly spaced windows; training windows start at random (seeded) times.

Decoding and preprocessing happen once per window: ``WindowSet`` keeps the preprocessed tensors in memory
(up to a budget), so the pretrained and the from-scratch runs, which see identical inputs by design (same
windows, same augmentation draws, same normalisation statistics), share the work.

A task that needs only one modality still hands ``preprocess`` a full raw sample: the other modality is
a constant placeholder that no network of that task reads (``preprocess`` insists on both).
"""

from __future__ import annotations

import math
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchcodec.decoders import AudioDecoder, VideoDecoder

from avssl_core.eval.layouts import LabelledMedia
from avssl_core.pretext.dataset import FailedSample, augmentation_seed, seeded_cpu_rng
from avssl_core.pretext.decode import DecodeError, VideoFrameReader, read_audio_window
from avssl_core.pretext.spec import PairKind, PairSpec
from avssl_core.pretext.windows import centred_audio_start_s, centred_frames, video_window_s

_PLACEHOLDER_SIDE = 16  # pixels of the placeholder frames for audio-only files


def uniform_centres(duration_s: float, span_s: float, n: int) -> list[float]:
    """``n`` window centres evenly spaced so that windows of ``span_s`` stay inside the file (n = 1: the
    middle). Spacing: the centres of n equal segments of the admissible range."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    low, high = span_s / 2, duration_s - span_s / 2
    if high < low:
        raise ValueError(f"a {duration_s:.3f} s file cannot hold a {span_s:.3f} s window")
    return [low + (high - low) * (k + 0.5) / n for k in range(n)]


def random_centres(duration_s: float, span_s: float, n: int, rng: np.random.Generator) -> list[float]:
    low, high = span_s / 2, duration_s - span_s / 2
    if high < low:
        raise ValueError(f"a {duration_s:.3f} s file cannot hold a {span_s:.3f} s window")
    return [float(x) for x in rng.uniform(low, high, size=n)]


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    fps: float | None  # None: no video stream
    num_frames: int
    audio_rate: int | None  # None: no audio


class ClipReader:
    """Raw samples (see avssl_core.methods.base) at a PairSpec's windows from labelled media files."""

    def __init__(self, spec: PairSpec, *, need_video: bool = True, need_audio: bool = True) -> None:
        self.spec, self.need_video, self.need_audio = spec, need_video, need_audio
        self.frames = VideoFrameReader(capacity=4)
        self._info: dict[Path, MediaInfo] = {}

    def span_s(self, info: MediaInfo) -> float:
        """Seconds a window occupies: the longer of the video and audio windows (both share a centre)."""
        video = video_window_s(self.spec, info.fps) if info.fps and self.need_video else 0.0
        return max(video, self.spec.audio_seconds if self.need_audio else 0.0)

    def info(self, item: LabelledMedia) -> MediaInfo:
        """Duration and streams of a file (cached); DecodeError when it cannot be opened."""
        if item.path in self._info:
            return self._info[item.path]
        fps = None
        num_frames = 0
        duration = math.inf
        if self.need_video:
            try:
                meta = VideoDecoder(str(item.path), seek_mode="exact", num_ffmpeg_threads=1).metadata
            except Exception as exc:  # torchcodec reports FFmpeg's reason as RuntimeError/ValueError
                raise DecodeError(str(item.path), f"cannot open video: {exc}") from exc
            fps, num_frames = float(meta.average_fps or 0), int(meta.num_frames or 0)
            if fps <= 0 or num_frames <= 0:
                raise DecodeError(str(item.path), "no decodable video frames")
            if self.spec.video_fps and self.spec.video_fps > fps + 1e-6:
                raise DecodeError(str(item.path), f"{fps:g} fps is below the method's {self.spec.video_fps:g} fps")
            duration = num_frames / fps
        rate = None
        if self.need_audio:
            rate, audio_duration = _audio_info(item)
            duration = min(duration, audio_duration)
        info = MediaInfo(duration_s=duration, fps=fps, num_frames=num_frames, audio_rate=rate)
        if info.duration_s < self.span_s(info) - 1e-6:
            raise DecodeError(str(item.path), f"{info.duration_s:.2f} s is shorter than one "
                              f"{self.span_s(info):.2f} s evaluation window")
        self._info[item.path] = info
        return info

    def raw_sample(self, item: LabelledMedia, centre_s: float, index: int) -> dict:
        info = self.info(item)
        spec = self.spec
        if self.need_video:
            video = self.frames.read(str(item.path), centred_frames(centre_s, spec, info.fps, info.num_frames))
        else:
            video = torch.zeros(spec.video_frames, _PLACEHOLDER_SIDE, _PLACEHOLDER_SIDE, 3, dtype=torch.uint8)
        target_rate = spec.audio_sample_rate or info.audio_rate or 16000
        length = round(spec.audio_seconds * target_rate)
        if self.need_audio:
            audio = _read_audio(item, centred_audio_start_s(centre_s, spec), spec, info.audio_rate, target_rate,
                                length)
        else:
            audio = torch.zeros(spec.audio_channels, length)
        return {"video": video, "audio": audio, "label": 1, "kind": int(PairKind.POSITIVE), "index": index,
                "clip": index}


def _audio_source(item: LabelledMedia) -> Path:
    return item.audio_path or item.path


def _audio_info(item: LabelledMedia) -> tuple[int, float]:
    path = _audio_source(item)
    if path.suffix.lower() == ".wav":
        try:
            with wave.open(str(path), "rb") as wav:
                return wav.getframerate(), wav.getnframes() / wav.getframerate()
        except (wave.Error, EOFError, OSError) as exc:
            raise DecodeError(str(path), f"WAV read failed: {exc}") from exc
    try:
        meta = AudioDecoder(str(path)).metadata
    except Exception as exc:
        raise DecodeError(str(path), f"no decodable audio stream: {exc}") from exc
    if not meta.sample_rate or not meta.duration_seconds:
        raise DecodeError(str(path), "audio stream without sample rate or duration")
    return int(meta.sample_rate), float(meta.duration_seconds)


def _read_audio(item: LabelledMedia, start_s: float, spec: PairSpec, rate: int, target_rate: int,
                length: int) -> torch.Tensor:
    path = _audio_source(item)
    start_s = max(0.0, start_s)
    if path.suffix.lower() == ".wav":
        native = math.ceil(length * rate / target_rate)
        return read_audio_window(str(path), round(start_s * rate), native, channels=spec.audio_channels,
                                 clip_rate=rate, target_rate=target_rate, target_len=length)
    try:
        decoder = AudioDecoder(str(path), sample_rate=target_rate)
        data = decoder.get_samples_played_in_range(start_s, start_s + spec.audio_seconds + 1.0 / target_rate).data
    except Exception as exc:
        raise DecodeError(str(path), f"audio decode failed: {exc}") from exc
    if data.shape[0] >= spec.audio_channels:
        data = data.mean(0, keepdim=True) if spec.audio_channels == 1 else data[: spec.audio_channels]
    else:
        raise DecodeError(str(path), f"{data.shape[0]} audio channel(s), {spec.audio_channels} wanted")
    if data.shape[1] < length:
        raise DecodeError(str(path), f"audio window has {data.shape[1]} samples, {length} wanted")
    return data[:, :length].float().contiguous()


class CacheBudget:
    """Bytes of preprocessed windows that may still be kept in memory, shared by several WindowSets."""

    def __init__(self, megabytes: float) -> None:
        self.left = int(megabytes * 2**20)

    def take(self, size: int) -> bool:
        if size > self.left:
            return False
        self.left -= size
        return True


@dataclass(frozen=True)
class Window:
    item: int  # position in the WindowSet's items
    centre_s: float
    epoch: int = 0  # training windows: the epoch they serve (augmentation seeds differ per epoch)


class WindowSet(Dataset):
    """Preprocessed windows of labelled files. Item i -> {"video", "audio", "target", "item"} or a
    FailedSample (an undecodable file: the caller skips and counts it). Augmentations draw from a torch
    seed of (seed, epoch, i), so a window looks the same to every model that is shown it."""

    def __init__(self, reader: ClipReader, items: Sequence[LabelledMedia], windows: Sequence[Window],
                 preprocess: Callable[[dict], dict], class_index: dict[str, int], *, seed: int,
                 cache: CacheBudget | None = None,
                 extra: Callable[[dict], dict[str, torch.Tensor]] | None = None) -> None:
        """``extra``: more tensors computed from each raw window while it is decoded anyway (e.g. the
        input statistics of a trivial baseline), kept beside the preprocessed ones."""
        self.reader, self.items, self.windows = reader, list(items), list(windows)
        self.preprocess, self.class_index, self.seed = preprocess, class_index, seed
        self.extra = extra
        self.budget = cache
        self._cache: dict[int, dict | FailedSample] = {}
        self.failed_items: dict[int, str] = {}  # item -> "path: reason"

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict | FailedSample:
        if i in self._cache:
            return self._cache[i]
        w = self.windows[i]
        item = self.items[w.item]
        try:
            raw = self.reader.raw_sample(item, w.centre_s, i)
        except DecodeError as exc:
            self.failed_items[w.item] = str(exc)
            out: dict | FailedSample = FailedSample(index=i, path=exc.path, reason=exc.reason)
        else:
            extra = self.extra(raw) if self.extra is not None else {}
            # Seeded as the pair dataset seeds its items (pretext/dataset.py), and as cheaply.
            with seeded_cpu_rng(augmentation_seed(self.seed, w.epoch, i)):
                pre = self.preprocess(raw)
            out = {"video": pre["video"], "audio": pre["audio"], "target": self.class_index[item.label],
                   "item": w.item, "window": i, **extra}
        size = sum(v.numel() * v.element_size() for v in out.values() if torch.is_tensor(v)) \
            if isinstance(out, dict) else 0
        if self.budget is not None and self.budget.take(size):
            self._cache[i] = out
        return out


def centred_windows(reader: ClipReader, items: Sequence[LabelledMedia], n: int,
                    skipped: dict[int, str]) -> list[Window]:
    """``n`` uniformly spaced windows per file; a file that cannot be opened goes to ``skipped``."""
    windows = []
    for k, item in enumerate(items):
        try:
            info = reader.info(item)
        except DecodeError as exc:
            skipped[k] = str(exc)
            continue
        windows += [Window(k, c) for c in uniform_centres(info.duration_s, reader.span_s(info), n)]
    return windows


def subclip_windows(reader: ClipReader, items: Sequence[LabelledMedia], n: int, seconds: float,
                    skipped: dict[int, str]) -> tuple[list[Window], int]:
    """``n`` uniformly spaced sub-clips of ``seconds`` per file, each tiled by ``k`` consecutive windows of
    the method's audio length (its networks take that length only), k = max(1, round(seconds / window)):
    (windows, file by file and sub-clip by sub-clip, k). The caller averages each sub-clip's k windows. A
    file too short for one sub-clip, or that cannot be opened, goes to ``skipped``."""
    window = reader.spec.audio_seconds
    k = max(1, round(seconds / window))
    span = max(seconds, k * window)
    windows = []
    for i, item in enumerate(items):
        try:
            info = reader.info(item)
            centres = uniform_centres(info.duration_s, span, n)
        except DecodeError as exc:
            skipped[i] = str(exc)
            continue
        except ValueError as exc:
            skipped[i] = f"{item.path}: {exc}"
            continue
        windows += [Window(i, c + (j - (k - 1) / 2) * window) for c in centres for j in range(k)]
    return windows, k


def random_windows(reader: ClipReader, items: Sequence[LabelledMedia], per_item: int, epochs: int, seed: int,
                   skipped: dict[int, str]) -> list[Window]:
    """``per_item`` windows per file and epoch at random centres drawn from (seed, epoch, file)."""
    windows = []
    for epoch in range(epochs):
        for k, item in enumerate(items):
            if k in skipped:
                continue
            try:
                info = reader.info(item)
            except DecodeError as exc:
                skipped[k] = str(exc)
                continue
            rng = np.random.default_rng([seed, epoch, k])
            windows += [Window(k, c, epoch) for c in random_centres(info.duration_s, reader.span_s(info),
                                                                    per_item, rng)]
    return windows


@torch.no_grad()
def extract_features(encode: Callable[[dict], torch.Tensor], dataset: WindowSet, *, batch_size: int,
                     device: torch.device | str = "cpu") -> tuple[torch.Tensor, np.ndarray]:
    """``encode(batch) -> [B, D]`` over every decodable window: (features [M, D] float32 on the CPU, the
    file position of each row [M]). Undecodable windows are left out (``dataset.failed_items`` names them)."""
    from torch.utils.data import DataLoader

    from avssl_core.pretext.dataset import FAILED_KEY, batch_size_of, collate_skipping_failures

    feats, items = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0,
                        collate_fn=collate_skipping_failures)
    for batch in loader:
        batch.pop(FAILED_KEY, None)
        if batch_size_of(batch) == 0:
            continue
        on_device = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        feats.append(encode(on_device).float().cpu())
        items.append(batch["item"].numpy())
    if not feats:
        return torch.zeros(0, 0), np.zeros(0, dtype=np.int64)
    return torch.cat(feats), np.concatenate(items)


def average_by_item(values: torch.Tensor, items: np.ndarray, exclude: set[int] | None = None
                    ) -> tuple[torch.Tensor, np.ndarray]:
    """Mean of the rows of each file (N-clip averaging): ([F, D], the file positions, ascending). Files in
    ``exclude`` (some window failed) are left out."""
    exclude = exclude or set()
    keep = [k for k in np.unique(items).tolist() if k not in exclude]
    if not keep:
        return values.new_zeros(0, values.shape[1] if values.dim() == 2 else 0), np.zeros(0, dtype=np.int64)
    rows = torch.stack([values[torch.from_numpy(items == k)].mean(0) for k in keep])
    return rows, np.asarray(keep, dtype=np.int64)
