"""Content hashes that key the flows' task caches.

A cache key is made of what decides a stage's result -- the bytes of its inputs, its parameter
sections and its code (hashed in avssl_core/pipeline_spec.py, beside the stage's list of code) -- never
of path strings, so moving a project or renaming a folder does not invalidate it, and changing one byte
of the data does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from avssl_core.config import Config, to_dict
from avssl_core.errors import ConfigError, DataError

# Manifest / valid.csv columns that say what a source video *is*: its bytes, its labels and the audio stream
# chosen to use. Paths are left out on purpose (the same bytes elsewhere give the same clips).
CONTENT_COLUMNS = ("video_id", "sha256", "label", "split", "start_s", "end_s", "audio_stream_index")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def table_digest(csv: str | Path, columns: tuple[str, ...] = CONTENT_COLUMNS,
                 file_column: str | None = "annotation_path") -> str:
    """Hash of a stage table's content columns (rows sorted by video_id), plus the bytes of the files
    ``file_column`` names (the synthetic world's ground truth, which segment slices into clips)."""
    path = Path(csv)
    if not path.is_file():
        raise DataError(f"{path}: missing; run the stage that writes it first")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("video_id", "sha256") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} to fingerprint")
    present = [c for c in columns if c in frame.columns]
    frame = frame.sort_values("video_id")
    digest = hashlib.sha256()
    for row in frame[present].itertuples(index=False):
        digest.update("\t".join(row).encode() + b"\n")
    if file_column and file_column in frame.columns:
        for rel in frame[file_column]:
            if rel and Path(rel).is_file():
                digest.update(file_sha256(rel).encode())
    return digest.hexdigest()


def section_digest(cfg: Config, *keys: str) -> str:
    """Hash of parameter sections or single keys (``"segment"``, ``"segment.clip_seconds"``).

    An entry missing from a free-form mapping (``pretrain.hparams.<method>`` for a method with no overrides
    written) is hashed as absent; a key the typed config does not have is an error."""
    picked: dict[str, Any] = {}
    for key in keys:
        node: Any = cfg
        for part in key.split("."):
            if dataclasses.is_dataclass(node) and part in {f.name for f in dataclasses.fields(node)}:
                node = getattr(node, part)
            elif isinstance(node, dict):
                node = node.get(part)
            else:
                raise ConfigError(f"no parameter {key!r} to fingerprint")
        picked[key] = to_dict(node) if dataclasses.is_dataclass(node) else node
    return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()


def combine(stage: str, **parts: str) -> str:
    """One cache key from named parts, prefixed by the stage so keys of different stages never meet."""
    blob = json.dumps(parts, sort_keys=True)
    return f"avssl-{stage}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}"
