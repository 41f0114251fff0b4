"""A CSV list of videos: local paths, ``file://`` URLs or ``http(s)://`` URLs, with optional label, split and
segment columns.

Column names come from ``acquire.manifest`` (``path_column``, ``label_column``, ...; an empty name turns a
column off). Public lists map onto files you have downloaded with ``path_template``, which builds each
path from the row's columns, relative to ``media_dir``:

VGGSound (``vggsound.csv`` has no header; files cut to the 10 s clip, named by the usual downloaders)::

    manifest:
      csv: lists/vggsound.csv
      columns: [youtube_id, start_seconds, label, split]
      media_dir: /data/vggsound/video
      path_template: "{youtube_id}_{start_seconds:06d}.mp4"
      start_column: ""            # the files are already the clip; "start_seconds" if they are full videos
      segment_duration_s: 10.0    # (only used with a start column: end = start + 10 s)

AudioSet (``#`` comment lines; ``YTID, start_seconds, end_seconds, positive_labels``)::

      columns: [YTID, start_seconds, end_seconds, positive_labels]
      path_template: "{YTID}_{start_seconds:06d}.mp4"
      label_column: positive_labels
      start_column: ""
      end_column: ""

Kinetics (header ``label,youtube_id,time_start,time_end,split``)::

      path_template: "{split}/{label}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
      start_column: ""
      end_column: ""

Relative paths resolve against ``media_dir`` (relative to the project root), or the CSV's folder when it
is empty. A list may come from elsewhere, so every row must resolve (symlinks followed) inside a declared
root: that folder, ``acquire.manifest.allowed_roots`` (for absolute paths and ``file://`` URLs that point
elsewhere on purpose), or the download folder; its ``source_root`` says which, and acquire refuses a row
that resolves outside it (``../../etc/passwd``, ``/etc/shadow``, a symlink to ``/etc/hostname``) without
opening it.
URLs (http and https only) are downloaded once into ``<raw_dir>/manifest/``, each at most
``max_download_bytes`` and all of a run's together at most ``download_budget_bytes``; a URL that fails or
is refused keeps its row, with ``source_error`` saying why, and the run goes on. What is recorded of a URL
(``source_uri``, logs, reasons) has its credentials and query redacted (avssl_core.data.sources.redact).
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import requests
from tqdm import tqdm

from avssl_core.config import ManifestSourceConfig
from avssl_core.data.sources import http_download
from avssl_core.data.sources.common import make_row, make_video_id, sort_rows
from avssl_core.data.roots import resolved
from avssl_core.data.sources.manifest_csv import CsvRecord, fill_template, read_records, template_fields
from avssl_core.data.sources.redact import redact_url
from avssl_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test", "eval": "test"}
_DEFAULTS = ManifestSourceConfig()
_OPTIONAL_COLUMNS = ("label_column", "start_column", "end_column", "split_column")
_MAX_URL_SUFFIX_CHARS = 6  # ".webm" fits; a URL "suffix" longer than this is not an extension


@dataclass
class _Entry:
    """One CSV record, checked: where the file is and what the row says about it."""

    line: int
    location: str  # absolute local path, or the URL (as listed: only the download sees it unredacted)
    is_url: bool
    id_key: str  # what the video id is derived from: relative path, or host + path of the URL
    source_root: str
    label: str
    split: str
    start_s: float | str
    end_s: float | str


def list_files(cfg: ManifestSourceConfig, raw_dir: Path) -> list[dict]:
    """One row per CSV record; URLs are downloaded into ``<raw_dir>/manifest``."""
    csv_path = _csv_path(cfg)
    media_dir = _media_dir(cfg)
    extra_roots = _allowed_roots(cfg)
    header, records = read_records(csv_path, cfg.columns or None)
    _check_columns(cfg, csv_path, header)
    if not records:
        raise DataError(f"{csv_path}: no rows below the header")

    entries: list[_Entry] = []
    seen: dict[tuple, int] = {}
    for record in records:
        entry = _parse_record(cfg, csv_path, media_dir, extra_roots, record)
        key = (entry.location, entry.start_s, entry.end_s)
        if key in seen:
            log.warning("%s:%d repeats line %d (%s); keeping the first", csv_path, entry.line, seen[key],
                        redact_url(entry.location) if entry.is_url else entry.location)
            continue
        seen[key] = entry.line
        entries.append(entry)

    download_dir = (Path(raw_dir) / "manifest").absolute()
    downloads = _download_all(cfg, csv_path, [e for e in entries if e.is_url], download_dir)
    rows = []
    for e in entries:
        segment = "" if e.start_s == "" else f"{e.start_s}-{e.end_s}"
        path, error = downloads[e.location] if e.is_url else (e.location, "")
        rows.append(make_row(
            video_id=make_video_id(e.id_key, segment),
            path=path,
            source_error=error,
            source="manifest",
            source_uri=redact_url(e.location) if e.is_url else e.location,
            source_root=str(download_dir.resolve()) if e.is_url else e.source_root,
            label=e.label,
            split=e.split,
            start_s=e.start_s,
            end_s=e.end_s,
        ))
    log.info("manifest: %d rows from %s", len(rows), csv_path)
    return sort_rows(rows)


def _csv_path(cfg: ManifestSourceConfig) -> Path:
    if not cfg.csv.strip():
        raise ConfigError("acquire.manifest.csv is empty: set it to the CSV that lists your videos")
    path = Path(os.path.expanduser(cfg.csv.strip())).absolute()
    if not path.is_file():
        raise ConfigError(f"acquire.manifest.csv: file {path} not found")
    return path


def _media_dir(cfg: ManifestSourceConfig) -> Path | None:
    if not cfg.media_dir.strip():
        return None
    path = Path(os.path.expanduser(cfg.media_dir.strip())).absolute()
    if not path.is_dir():
        raise ConfigError(f"acquire.manifest.media_dir: folder {path} does not exist")
    return path.resolve()


def _allowed_roots(cfg: ManifestSourceConfig) -> list[Path]:
    roots = []
    for i, text in enumerate(cfg.allowed_roots):
        path = Path(os.path.expanduser(text.strip())).absolute()
        if not text.strip() or not path.is_dir():
            raise ConfigError(f"acquire.manifest.allowed_roots[{i}]: folder {path} does not exist")
        roots.append(path.resolve())
    return roots


def _check_columns(cfg: ManifestSourceConfig, csv_path: Path, header: list[str]) -> None:
    if cfg.path_template:
        missing = sorted(template_fields(cfg.path_template) - set(header))
        if missing:
            raise ConfigError(
                f"acquire.manifest.path_template {cfg.path_template!r} uses columns {missing} "
                f"that {csv_path} lacks (its columns: {header})"
            )
    elif cfg.path_column not in header:
        raise DataError(
            f"{csv_path}: no column {cfg.path_column!r} (its columns: {header}); "
            "set acquire.manifest.path_column, or path_template to build paths from other columns"
        )
    # Optional columns may be absent, but one the user named explicitly must not silently vanish.
    for option in _OPTIONAL_COLUMNS:
        name = getattr(cfg, option)
        if name and name not in header and name != getattr(_DEFAULTS, option):
            raise DataError(f"{csv_path}: no column {name!r} (acquire.manifest.{option}); its columns: {header}")


def _parse_record(cfg: ManifestSourceConfig, csv_path: Path, media_dir: Path | None, extra_roots: list[Path],
                  record: CsvRecord) -> _Entry:
    where = f"{csv_path}:{record.line}"
    values = record.values

    def cell(option: str) -> str:
        name = getattr(cfg, option)
        return values.get(name, "") if name else ""

    if cfg.path_template:
        try:
            raw = fill_template(cfg.path_template, values)
        except (ValueError, KeyError, IndexError) as exc:
            raise DataError(f"{where}: path_template {cfg.path_template!r} does not fit this row: {exc}") from exc
    else:
        raw = values[cfg.path_column]
    if not raw:
        raise DataError(f"{where}: empty {cfg.path_column!r}")

    start_s, end_s = _segment(where, cell("start_column"), cell("end_column"), cfg.segment_duration_s)
    split = cell("split_column").lower()
    if split and split not in SPLIT_ALIASES:
        raise DataError(f"{where}: split {split!r} is not one of train, val, test")
    label, split = cell("label_column"), SPLIT_ALIASES.get(split, "")
    location, is_url, id_key, root = _locate(where, raw, media_dir or csv_path.parent.resolve(), extra_roots,
                                             keyed_by_root=media_dir is not None)
    return _Entry(record.line, location, is_url, id_key, root, label, split, start_s, end_s)


def _locate(where: str, raw: str, base_dir: Path, extra_roots: list[Path], keyed_by_root: bool
            ) -> tuple[str, bool, str, str]:
    """(location, is_url, id_key, source_root) for a path or URL cell.

    ``base_dir`` (media_dir, else the CSV's folder) is where relative paths resolve and the root of every
    local row unless the path resolves under one of ``extra_roots``. Nothing here reads a file: resolving
    reads only directory entries and links, and the root check itself is acquire's.
    """
    parsed = urllib.parse.urlsplit(raw)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        if not parsed.hostname:
            raise DataError(f"{where}: URL {redact_url(raw)!r} has no host")
        return raw, True, _url_key(parsed), ""
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DataError(f"{where}: {redact_url(raw)!r} names a host; file:// URLs must be on this machine")
        path = Path(urllib.request.url2pathname(parsed.path))
    elif len(scheme) > 1 and "://" in raw:  # a one-letter "scheme" is a Windows drive letter
        raise DataError(
            f"{where}: {scheme}:// URLs are not supported ({redact_url(raw)!r}); only http(s):// and file:// "
            "are; download the files first, or use the lakefs source for lakeFS data"
        )
    else:
        path = Path(os.path.expanduser(raw))
        if not path.is_absolute():
            # normpath, not resolve: a symlink must stay visible, so acquire can say where it points.
            full = Path(os.path.normpath(base_dir / path))
            return str(full), False, PurePosixPath(*path.parts).as_posix(), str(_root_of(full, base_dir, extra_roots))
    full = Path(os.path.normpath(path))
    key = full.relative_to(base_dir).as_posix() if keyed_by_root and full.is_relative_to(base_dir) else full.as_posix()
    return str(full), False, key, str(_root_of(full, base_dir, extra_roots))


def _root_of(full: Path, base_dir: Path, extra_roots: list[Path]) -> Path:
    """The declared root ``full`` resolves under; ``base_dir`` when none (acquire then refuses it)."""
    target = resolved(full)
    return next((r for r in [base_dir, *extra_roots] if target.is_relative_to(r)), base_dir)


def _segment(where: str, start: str, end: str, default_duration_s: float | None) -> tuple[float | str, float | str]:
    """Parsed (start_s, end_s); both "" when the row names no segment."""
    start_s = _seconds(where, "start", start)
    end_s = _seconds(where, "end", end)
    if start_s == "" and end_s == "":
        return "", ""
    if start_s == "":
        start_s = 0.0
    if start_s < 0:
        raise DataError(f"{where}: start {start!r} is negative")
    if end_s == "" and default_duration_s is not None:
        end_s = start_s + default_duration_s
    if end_s != "" and end_s <= start_s:
        raise DataError(f"{where}: end {end_s} is not after start {start_s}")
    return start_s, end_s


def _seconds(where: str, what: str, text: str) -> float | str:
    if text == "":
        return ""
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {what} {text!r} is not a number of seconds") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise DataError(f"{where}: {what} {text!r} is not a finite number of seconds")
    return value


def _download_all(cfg: ManifestSourceConfig, csv_path: Path, entries: list[_Entry], download_dir: Path
                  ) -> dict[str, tuple[str, str]]:
    """URL -> (local path, source_error), for every URL: fetched now or earlier (error ""), or failed or
    refused (the path where it would be, and why it is not)."""
    local: dict[str, tuple[str, str]] = {}
    first_line: dict[str, int] = {}
    for e in entries:
        first_line.setdefault(e.location, e.line)
    if not first_line:
        return local
    failures = 0
    spent = 0  # bytes taken from the network in this run
    with requests.Session() as session:
        for url in tqdm(sorted(first_line), desc="download", unit="file", disable=None):
            dest = download_dir / download_name(url)
            left = cfg.download_budget_bytes - spent
            if left < cfg.max_download_bytes:
                limit, cap = left, f"what is left of acquire.manifest.download_budget_bytes ({left} bytes)"
            else:
                limit, cap = cfg.max_download_bytes, "acquire.manifest.max_download_bytes"
            if limit <= 0 and not http_download.sidecar_path(dest).is_file():
                result = http_download.DownloadResult(
                    ok=False, fetched=False, too_large=True,
                    reason=f"refused: this run's downloads reached acquire.manifest.download_budget_bytes "
                           f"({cfg.download_budget_bytes} bytes)")
            else:
                result = http_download.download(url, dest, cfg.download_timeout_s, cfg.download_retries, session,
                                                 max_bytes=max(limit, 0), cap_name=cap)
            spent += result.received_bytes
            error = ""
            if not result.ok:
                failures += 1
                what = "download refused" if result.too_large else "cannot download"
                error = f"{what}: {result.reason}"
                log.warning("%s:%d: %s %s (%s); its row is kept, with that reason", csv_path, first_line[url],
                            what, redact_url(url), result.reason)
            local[url] = (str(dest), error)
    if failures:
        log.warning("manifest: %d of %d URLs could not be downloaded", failures, len(first_line))
    return local


def download_name(url: str) -> str:
    """``<id><ext>`` for a URL: one file per URL, however many segments of it the list names."""
    parsed = urllib.parse.urlsplit(url)
    suffix = PurePosixPath(urllib.parse.unquote(parsed.path)).suffix.lower()
    # Keep the extension (demuxers and later stages look at it), but only a plausible one.
    if not (1 < len(suffix) <= _MAX_URL_SUFFIX_CHARS and suffix[1:].isalnum()):
        suffix = ""
    return make_video_id(_url_key(parsed)) + suffix


def _url_key(parsed: urllib.parse.SplitResult) -> str:
    """Host and path, the query only as a hash: the key becomes a readable file name and video id, and
    credentials (user info, a pre-signed query) must not."""
    host = urllib.parse.urlsplit(redact_url(parsed.geturl())).netloc
    query = f"?{hashlib.sha256(parsed.query.encode()).hexdigest()[:16]}" if parsed.query else ""
    return f"{host}{parsed.path}{query}"


__all__ = ["list_files", "download_name", "SPLIT_ALIASES"]
