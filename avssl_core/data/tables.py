"""The tables that flow between data stages, with their columns in one place.

acquire  -> data/acquired/manifest.csv   one row per source file, probed (PROBE_COLUMNS)
validate -> data/validated/valid.csv     the manifest rows that passed, plus decode statistics
            data/validated/quarantine.csv  the rows that failed, with ``reasons``
segment  -> data/clips/index.csv         one row per clip (CLIP_COLUMNS)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avssl_core.errors import DataError
from avssl_core.io_utils import write_csv_atomic

# Columns a source fills in for each file it finds.
SOURCE_COLUMNS = [
    "video_id",  # unique, stable, filesystem-safe id
    "path",  # local path of the file (downloaded copy for remote sources)
    "source",  # synthetic | local | manifest | lakefs
    "source_uri",  # where it came from: path, URL or lakefs://repo/commit/path
    "source_root",  # the folder the file must lie under (validate rejects paths escaping it)
    "label",  # class name, or empty
    "split",  # train | val | test, or empty
    "start_s",  # optional segment of interest in the source (manifest lists), or empty
    "end_s",
    "annotation_path",  # synthetic world metadata JSON, or empty
    "source_error",  # why the source could not provide the file (a refused or failed download), or empty
]

# Columns avssl_core.data.probe.probe_file adds.
PROBE_COLUMNS = [
    "size_bytes",
    "sha256",
    "probe_error",  # empty when the container opened; else why it did not
    "container",
    "duration_s",
    "num_video_streams",
    "num_audio_streams",
    "video_codec",
    "width",
    "height",
    "pix_fmt",
    "bit_depth",
    "fps",
    "fps_is_variable",
    "audio_codec",
    "audio_sample_rate",
    "audio_channels",
    "audio_stream_index",  # the file's stream index of the audio stream described above (and decoded later)
    "streams_json",  # every stream, as JSON, for anything the columns above leave out
]

MANIFEST_COLUMNS = SOURCE_COLUMNS + PROBE_COLUMNS

CLIP_COLUMNS = [
    "clip_id",
    "video_id",
    "source_uri",
    "start_s",  # in the source video
    "end_s",
    "label",
    "split",
    "video_path",  # H.264 mp4, constant frame rate, short keyframe interval
    "audio_path",  # PCM WAV at the target sample rate, channels kept
    "annotation_path",  # per-clip slice of the synthetic ground truth, or empty
    "fps",
    "num_frames",
    "width",
    "height",
    "sample_rate",
    "audio_channels",
    "num_samples",
]


def read_table(path: str | Path, required: list[str] | None = None) -> pd.DataFrame:
    """Read a stage table, keeping empty cells as empty strings, and check its columns."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: table not found (run the stage that writes it first)")
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"video_id": str, "clip_id": str,
                                                                              "label": str, "split": str})
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: empty table") from exc
    missing = [c for c in (required or []) if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}")
    for col in ("label", "split", "annotation_path", "probe_error", "source_uri"):
        if col in frame.columns:
            frame[col] = frame[col].fillna("").astype(str)
    return frame


def write_table(path: str | Path, frame: pd.DataFrame, columns: list[str] | None = None) -> None:
    """Write a stage table atomically; ``columns`` first, in order, then any extra columns."""
    if columns is not None:
        for col in columns:
            if col not in frame.columns:
                frame[col] = ""
        extra = [c for c in frame.columns if c not in columns]
        frame = frame[columns + extra]
    write_csv_atomic(path, frame)
