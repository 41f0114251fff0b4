"""Helpers every data source shares: stable video ids, complete rows, extension filters, class labels."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from avssl_core.data.tables import SOURCE_COLUMNS

# Long ids make unwieldy file names downstream (clips are named after them); the hash keeps them unique.
MAX_READABLE_ID_CHARS = 80
ID_HASH_CHARS = 10
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def make_video_id(relative_path: str, qualifier: str = "") -> str:
    """A unique, stable, filesystem-safe id for the file at ``relative_path`` (relative to its source root).

    The readable part is the sanitized path without its extension; the hash of the exact relative path
    (plus ``qualifier``, e.g. a segment of the same file listed twice) keeps ids apart when sanitizing
    maps two paths to the same text (``a b.mp4`` and ``a_b.mp4``, ``x.mp4`` and ``x.mkv``).
    """
    posix = PurePosixPath(str(relative_path).replace("\\", "/"))
    stem = posix.with_suffix("") if posix.suffix else posix
    readable = _UNSAFE_ID_CHARS.sub("_", "__".join(p for p in stem.parts if p not in ("", "/")))
    readable = readable.strip("_-")[:MAX_READABLE_ID_CHARS] or "video"
    digest = hashlib.sha1(f"{posix}\0{qualifier}".encode()).hexdigest()[:ID_HASH_CHARS]
    return f"{readable}-{digest}"


def make_row(**fields) -> dict:
    """A source row with every SOURCE_COLUMNS key: omitted ones are empty strings, unknown ones an error."""
    unknown = set(fields) - set(SOURCE_COLUMNS)
    if unknown:
        raise KeyError(f"not source columns: {sorted(unknown)}")
    return {col: fields.get(col, "") for col in SOURCE_COLUMNS}


def sort_rows(rows: Iterable[dict]) -> list[dict]:
    """Deterministic order, whatever order the file system or server listed things in."""
    return sorted(rows, key=lambda r: (str(r["source_uri"]), str(r["video_id"])))


def normalize_extensions(extensions: Iterable[str]) -> set[str]:
    """``["MP4", ".mkv"]`` -> ``{".mp4", ".mkv"}``: extension matching is case-insensitive."""
    out = set()
    for ext in extensions:
        ext = ext.strip().lower()
        if ext:
            out.add(ext if ext.startswith(".") else f".{ext}")
    return out


def has_extension(name: str, extensions: set[str]) -> bool:
    return PurePosixPath(name).suffix.lower() in extensions


# Audio-only file types: named as such when skipped, since "not a listed extension" would hide why.
AUDIO_ONLY_EXTENSIONS = {".m4a", ".mp3", ".wav", ".flac", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aiff"}


def skip_reason(name: str, option: str) -> str:
    """Why a file a source found is not taken, naming the parameter that would change it."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in AUDIO_ONLY_EXTENSIONS:
        return f"audio-only file type {suffix} (no video stream); not in {option}"
    return f"extension {suffix or '(none)'} not in {option}"


def class_folder_labels(relative_paths: list[str]) -> list[str]:
    """Labels from the layout ``<class>/<file>`` (UCF101, HMDB51, extracted Kinetics splits).

    Only when *every* file lies exactly one folder deep is the layout read as class folders; a mixed or
    deeper tree gives no labels at all, because a partial labelling would silently mislabel files.
    """
    parts = [PurePosixPath(p.replace("\\", "/")).parts for p in relative_paths]
    if not parts or any(len(p) != 2 for p in parts):
        return [""] * len(relative_paths)
    return [p[0] for p in parts]
