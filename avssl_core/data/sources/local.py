"""Videos already on disk: a folder searched recursively, or a glob such as ``/videos/**/*.mp4``.

Files are listed with their own path, symlinks included, and never resolved here: validate checks that
each one resolves inside ``source_root`` and quarantines those that escape it.
Hidden files and folders (``.DS_Store``, macOS ``._clip.mp4`` resource forks, our own ``.*.part`` temporary
files) are skipped: they are never videos a user meant to train on.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

from avssl_core.config import LocalSourceConfig
from avssl_core.data.sources.common import (
    class_folder_labels,
    has_extension,
    make_row,
    make_video_id,
    normalize_extensions,
    skip_reason,
    sort_rows,
)
from avssl_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

_GLOB_CHARS = set("*?[")


def list_files(cfg: LocalSourceConfig, raw_dir: Path, skipped: list[dict] | None = None) -> list[dict]:
    """One row per video file under ``cfg.path`` (``raw_dir`` is unused: local files are not copied).

    Every other file found is appended to ``skipped`` as {path, reason}, so none is passed over silently.
    """
    del raw_dir
    if not cfg.path.strip():
        raise ConfigError("acquire.local.path is empty: set it to a folder of videos or a glob like /videos/**/*.mp4")
    extensions = normalize_extensions(cfg.extensions)
    if not extensions:
        raise ConfigError("acquire.local.extensions is empty: list the video extensions to pick up, e.g. [.mp4]")
    pattern = os.path.expanduser(cfg.path.strip())
    if is_glob(pattern):
        root, candidates = _glob_files(pattern)
        where = f"glob {cfg.path!r}"
    else:
        root = Path(os.path.abspath(pattern))
        if not root.exists():
            raise ConfigError(f"acquire.local.path: folder {root} does not exist")
        if not root.is_dir():
            raise ConfigError(f"acquire.local.path: {root} is a file; give the folder that holds the videos, or a glob")
        candidates = _walk_files(root)
        where = f"folder {root}"

    files = [p for p in candidates if has_extension(p.name, extensions)]
    if skipped is not None:
        skipped.extend({"path": str(p), "reason": skip_reason(p.name, "acquire.local.extensions")}
                       for p in candidates if not has_extension(p.name, extensions))
    if not files:
        skipped = len(candidates)
        detail = f"; {skipped} other files were skipped" if skipped else ""
        raise DataError(
            f"{where}: no files with extensions {sorted(extensions)}{detail} "
            "(add yours to acquire.local.extensions)"
        )
    relative = [p.relative_to(root).as_posix() for p in files]
    labels = class_folder_labels(relative) if cfg.label_from_parent else [""] * len(files)
    # The root is stored resolved so that validate's "does the file resolve under it" check is not fooled
    # by a root that is itself reached through a symlink (/data -> /mnt/disk/data).
    source_root = str(root.resolve())
    rows = [
        make_row(
            video_id=make_video_id(rel),
            path=str(path),
            source="local",
            source_uri=str(path),
            source_root=source_root,
            label=label,
        )
        for path, rel, label in zip(files, relative, labels, strict=True)
    ]
    log.info("local: %d files in %s%s", len(rows), where, " (labels from class folders)" if labels[0] else "")
    return sort_rows(rows)


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def glob_root(pattern: str) -> Path:
    """The longest leading folder of ``pattern`` without glob characters: ``/v/**/*.mp4`` -> ``/v``."""
    parts = Path(os.path.abspath(pattern)).parts
    fixed = []
    for part in parts:
        if is_glob(part):
            break
        fixed.append(part)
    return Path(*fixed)


def _glob_files(pattern: str) -> tuple[Path, list[Path]]:
    root = glob_root(pattern)
    if not root.is_dir():
        raise ConfigError(f"acquire.local.path: folder {root} (the fixed part of glob {pattern!r}) does not exist")
    matches = glob.glob(os.path.abspath(pattern), recursive=True)
    # A broken symlink is still a file the user pointed at: keep it so probing reports it.
    files = [Path(m) for m in matches if not os.path.isdir(m) and not _is_hidden(Path(m).relative_to(root))]
    return root, sorted(files)


def _walk_files(root: Path) -> list[Path]:
    files = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(folder)
        # Symlinked folders are not descended into (a link cycle would never end); say so, since the
        # files behind them are silently missing otherwise.
        for name in list(dirnames):
            if name.startswith("."):
                dirnames.remove(name)
            elif (here / name).is_symlink():
                log.warning("local: not following symlinked folder %s; link its files instead", here / name)
        dirnames.sort()
        files.extend(here / name for name in sorted(filenames) if not name.startswith("."))
    return files


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
