"""The clip index (data/clips/index.csv) as a compact in-memory table for pair sampling.

pandas reads the CSV once; after that every column is a numpy array, so looking up a clip in a
DataLoader worker costs an array index, and the table pickles small and fast to spawned workers.
Clips are grouped by ``video_id`` (rows of one video are contiguous and ordered by ``start_s``) because
hard, superhard and shifted negatives take their audio from the same source video.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from avssl_core.data.tables import read_table
from avssl_core.errors import DataError

# The columns pair sampling and decoding read; the rest of CLIP_COLUMNS is not needed here.
INDEX_COLUMNS = [
    "clip_id", "video_id", "start_s", "end_s", "label", "split", "video_path", "audio_path",
    "fps", "num_frames", "width", "height", "sample_rate", "audio_channels", "num_samples",
]
_FLOAT_COLUMNS = ["start_s", "end_s", "fps"]
_INT_COLUMNS = ["num_frames", "width", "height", "sample_rate", "audio_channels", "num_samples"]


@dataclass(frozen=True)
class ClipIndex:
    """One row per clip, columns as numpy arrays, rows grouped by video and ordered by start time."""

    source: str  # the CSV it came from, for error messages
    clip_id: np.ndarray  # str
    video_id: np.ndarray  # str
    label: np.ndarray  # str
    split: np.ndarray  # str
    video_path: np.ndarray  # str, absolute
    audio_path: np.ndarray  # str, absolute
    start_s: np.ndarray  # float64, start of the clip in its source video
    end_s: np.ndarray  # float64
    fps: np.ndarray  # float64, constant frame rate of the clip
    num_frames: np.ndarray  # int64
    width: np.ndarray  # int64
    height: np.ndarray  # int64
    sample_rate: np.ndarray  # int64
    audio_channels: np.ndarray  # int64
    num_samples: np.ndarray  # int64
    video_group: np.ndarray  # int64, 0..num_videos-1, the video each row belongs to
    group_begin: np.ndarray  # int64 [num_videos + 1]: rows of video g are group_begin[g]:group_begin[g+1]

    @classmethod
    def from_csv(cls, path: str | Path, *, splits: str | Iterable[str] | None = ("train",),
                 root: str | Path | None = None) -> ClipIndex:
        """Load ``path``, keep the rows of ``splits`` (None: all), resolve media paths against ``root``.

        ``root`` defaults to the current directory (the project root when run from the CLI); paths are
        made absolute here so that workers started elsewhere still find the files.
        """
        frame = read_table(path, required=INDEX_COLUMNS)
        if isinstance(splits, str):
            splits = (splits,)
        if splits is not None:
            wanted = list(splits)
            frame = frame[frame["split"].isin(wanted)]
            if frame.empty:
                raise DataError(f"{path}: no clips in split(s) {wanted}")
        elif frame.empty:
            raise DataError(f"{path}: no clips")
        for col in _FLOAT_COLUMNS + _INT_COLUMNS:
            numbers = pd.to_numeric(frame[col], errors="coerce")
            if numbers.isna().any():
                raise DataError(f"{path}: column {col!r} has empty or non-numeric cells")
            frame[col] = numbers
        base = Path(root) if root is not None else Path.cwd()
        # Group rows by video, in source order: sampling relies on contiguous groups.
        frame = frame.sort_values(["video_id", "start_s"], kind="stable").reset_index(drop=True)
        video_ids = frame["video_id"].to_numpy(dtype=str)
        _, group_of_row = np.unique(video_ids, return_inverse=True)
        group_sizes = np.bincount(group_of_row)
        return cls(
            source=str(path),
            clip_id=frame["clip_id"].to_numpy(dtype=str),
            video_id=video_ids,
            label=frame["label"].to_numpy(dtype=str),
            split=frame["split"].to_numpy(dtype=str),
            video_path=np.array([_resolve(p, base) for p in frame["video_path"]], dtype=str),
            audio_path=np.array([_resolve(p, base) for p in frame["audio_path"]], dtype=str),
            **{col: frame[col].to_numpy(dtype=np.float64) for col in _FLOAT_COLUMNS},
            **{col: _as_int(frame[col], col, path) for col in _INT_COLUMNS},
            video_group=group_of_row.astype(np.int64),
            group_begin=np.concatenate([[0], np.cumsum(group_sizes)]).astype(np.int64),
        )

    def __len__(self) -> int:
        return len(self.clip_id)

    @property
    def num_videos(self) -> int:
        return len(self.group_begin) - 1

    def rows_of_video(self, group: int) -> np.ndarray:
        """Rows of video ``group`` in source order."""
        return np.arange(self.group_begin[group], self.group_begin[group + 1])

    def subset(self, rows: Sequence[int] | np.ndarray) -> ClipIndex:
        """The table restricted to ``rows`` (kept in order), with groups renumbered."""
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        if len(rows) == 0:
            raise DataError(f"{self.source}: no clips left")
        _, group_of_row = np.unique(self.video_group[rows], return_inverse=True)
        columns = {name: getattr(self, name)[rows] for name in (
            "clip_id", "video_id", "label", "split", "video_path", "audio_path", "start_s", "end_s", "fps",
            "num_frames", "width", "height", "sample_rate", "audio_channels", "num_samples")}
        sizes = np.bincount(group_of_row)
        return ClipIndex(source=self.source, **columns, video_group=group_of_row.astype(np.int64),
                         group_begin=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))


def _resolve(path: str, base: Path) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else base / p)


def _as_int(column, name: str, path) -> np.ndarray:
    values = column.to_numpy(dtype=np.float64)
    if not np.all(values == np.round(values)):
        raise DataError(f"{path}: column {name!r} must hold whole numbers")
    return values.astype(np.int64)
