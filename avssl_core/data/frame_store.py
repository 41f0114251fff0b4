"""The frame store: every clip's video decoded once, kept as raw uint8 frames that training memory-maps.

Training reads a few frames at random places of random clips. From an mp4 that costs opening the file
(a scan of its packets for exact seeking) and decoding from the previous keyframe, about 55% of a tiny
preset's CPU time per sample (README, Measured); from this store it is a copy out of the page cache.
The segment stage writes it (``segment.frame_store``) beside the clips, in ``<clips_dir>_frames``:

    <frames_dir>/<video_id>/<clip_id>.npy   uint8 [num_frames, height, width, 3], NumPy's .npy format
    <frames_dir>/<video_id>/_done.json      which segmenting of the video the frames come from, written last

The frames are torchcodec's decoding of the clip's mp4 with the settings the reader uses (exact seeking,
one FFmpeg thread), so a frame read here is bit for bit the frame the mp4 gives (tests/test_frame_store.py).
Raw frames are large (128 px clips: 12.3 MB per 10 s clip at 25 fps, about 100 times the mp4): zlib
shrank them 2.4-2.7x here but took longer to undo (0.33 ms per frame) than H.264 takes to decode (0.17 ms
per frame, sequentially), so the store stays raw. It is derived from the clips and rebuilt in seconds, so
it is no DVC output (not worth DVC's cache and remote; dvc.yaml's segment stage says so) and git ignores
it; a machine that pulled the clips builds it with ``avssl segment``, which skips the segmented videos.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from avssl_core.errors import FileError
from avssl_core.io_utils import write_json_atomic

FRAMES_MARKER = "_done.json"
_WRITE_CHUNK = 64  # frames decoded and written at a time, so a long clip never sits in memory whole


class FrameStoreError(FileError):
    """A frame-store file exists but cannot give the frames; ``path`` and ``reason`` say which and why."""


class FrameStoreEntryMissing(UserWarning):
    """A clip has no frame-store file; its frames are decoded from the mp4 instead."""


def frames_dir_of(clips_dir: str | Path) -> Path:
    """The frame store of the clips in ``clips_dir``: beside it, so whatever moves the clips moves both."""
    return Path(f"{str(clips_dir).rstrip('/')}_frames")


def configured_frames_dir(cfg, split: str | None = None) -> Path | None:
    """The frame store a run with config ``cfg`` reads: None when ``segment.frame_store`` is off, or when
    ``split`` is given and the store leaves it out (``segment.frame_store_splits``)."""
    if not cfg.segment.frame_store or not stores_split(cfg, split):
        return None
    return frames_dir_of(cfg.paths.clips_dir)


def stores_split(cfg, split: str | None) -> bool:
    """Whether the store holds the clips of ``split`` (None: the run's training split, always kept; a clip
    without a split is kept too, since any run may read it)."""
    splits = list(cfg.segment.frame_store_splits)
    return split is None or not splits or not str(split) or str(split) in splits


def frames_path(frames_dir: str | Path, video_id: str, clip_id: str) -> Path:
    return Path(frames_dir) / video_id / f"{clip_id}.npy"


def write_clip_frames(mp4: str | Path, out: str | Path) -> int:
    """Decode every frame of ``mp4`` into ``out`` (.npy, written under a temporary name, then renamed);
    returns the file's size in bytes."""
    # Imported here, not at the top: a training process imports this module to read the store and need not
    # pay torchcodec's import (0.4-0.6 s beside torch and torchvision, measured; see pretext/decode.py).
    from torchcodec.decoders import VideoDecoder  # noqa: PLC0415

    out = Path(out)
    decoder = VideoDecoder(str(mp4), dimension_order="NHWC", seek_mode="exact", num_ffmpeg_threads=1)
    meta = decoder.metadata
    count, height, width = int(meta.num_frames), int(meta.height), int(meta.width)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(count, height, width, 3))
        for start in range(0, count, _WRITE_CHUNK):
            stop = min(count, start + _WRITE_CHUNK)
            frames[start:stop] = decoder.get_frames_in_range(start, stop).data.numpy()
        frames.flush()
        del frames
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out.stat().st_size


def write_video_frames(frames_dir: str | Path, video_id: str, clips: Sequence[tuple[str, str | Path]],
                       identity: dict) -> int:
    """(Re)write the frames of one video's clips, ``(clip_id, mp4)`` each; ``identity`` (what made the
    clips: the segment marker's key and source hash) goes into the marker, written last. Returns bytes."""
    folder = Path(frames_dir) / video_id
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    size = sum(write_clip_frames(mp4, frames_path(frames_dir, video_id, clip_id)) for clip_id, mp4 in clips)
    write_json_atomic(folder / FRAMES_MARKER, {**identity, "clips": [clip_id for clip_id, _ in clips]})
    return size


def video_frames_current(frames_dir: str | Path, video_id: str, identity: dict) -> bool:
    """Whether the store holds every clip of the video, from the segmenting that ``identity`` names."""
    folder = Path(frames_dir) / video_id
    try:
        marker = json.loads((folder / FRAMES_MARKER).read_text())
    except (OSError, ValueError):
        return False
    if any(marker.get(key) != value for key, value in identity.items()):
        return False
    return all((folder / f"{clip_id}.npy").is_file() for clip_id in marker.get("clips", []))


class FrameStore:
    """Reads frames of clips from a frame store, keeping each clip's file memory-mapped once opened.

    ``read`` returns None for a clip the store lacks (the caller decodes the mp4; one
    ``FrameStoreEntryMissing`` warning per reader says so) and raises FrameStoreError for a file that is
    there but unreadable or not the clip the index describes.
    """

    def __init__(self, frames_dir: str | Path) -> None:
        self.frames_dir = str(frames_dir)
        self._maps: dict[tuple[str, str], np.ndarray] = {}  # (video_id, clip_id) -> the clip's map
        self._warned = False

    def read(self, video_id: str, clip_id: str, frame_indices: Sequence[int],
             expected_shape: tuple[int, int, int]) -> torch.Tensor | None:
        """Frames ``frame_indices`` as uint8 [T, H, W, 3]; ``expected_shape`` is the index's
        (num_frames, height, width) for the clip."""
        # Keyed by the ids: building the file's Path costs more than copying a frame out of its map.
        frames = self._maps.get((video_id, clip_id))
        path = None
        if frames is None:
            path = str(frames_path(self.frames_dir, video_id, clip_id))
            if not os.path.isfile(path):
                if not self._warned:
                    self._warned = True
                    warnings.warn(f"frame store {self.frames_dir} has no {path}; decoding the clips it lacks "
                                  "from their mp4 (rerun `avssl segment` to complete the store)",
                                  FrameStoreEntryMissing, stacklevel=3)
                return None
            frames = self._maps[(video_id, clip_id)] = self._open(path, expected_shape)
        if max(frame_indices) >= frames.shape[0] or min(frame_indices) < 0:
            path = path or str(frames_path(self.frames_dir, video_id, clip_id))
            raise FrameStoreError(path, f"frames {min(frame_indices)}..{max(frame_indices)} requested, "
                                  f"the file has {frames.shape[0]}")
        # Fancy indexing copies the frames out of the map: the sample owns its memory.
        return torch.from_numpy(frames[list(frame_indices)])

    def _open(self, path: str, expected_shape: tuple[int, int, int]) -> np.ndarray:
        try:
            frames = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise FrameStoreError(path, f"unreadable frame-store file ({exc}); rerun `avssl segment`") from exc
        wanted = (*expected_shape, 3)
        if frames.dtype != np.uint8 or frames.shape != wanted:
            raise FrameStoreError(path, f"holds {frames.dtype} {tuple(frames.shape)}, the clip index says uint8 "
                                  f"{wanted}; the store is stale: rerun `avssl segment`")
        # A plain array over the same pages (it keeps the map alive): np.memmap's indexing adds Python
        # overhead to every read.
        return frames.view(np.ndarray)

    def __getstate__(self) -> dict:
        # Maps are reopened in each process (cheap), not pickled with their pages.
        return {"frames_dir": self.frames_dir, "_maps": {}, "_warned": self._warned}
