"""acquire: gather source videos from the configured source and probe every one of them.

Nothing is dropped here: a file that cannot even be opened is still listed, with ``probe_error`` saying
why, so that validate can quarantine it with its reason and the user sees every file accounted for.
A file that resolves outside its source's data root (``source_root``) is listed too, but never opened:
its ``probe_error`` says where it points. Files a source passed over (an extension not listed) are named
with their reason in ``<acquired_dir>/skipped.csv`` and the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from avssl_core.config import Config
from avssl_core.data.probe import probe_file, unprobed_row
from avssl_core.data.roots import outside_root_reason
from avssl_core.data.split_check import check_synthetic_splits
from avssl_core.data.tables import MANIFEST_COLUMNS, write_table
from avssl_core.errors import ConfigError, DataError
from avssl_core.io_utils import write_json_atomic
from avssl_core.parallel import imap_unordered

log = logging.getLogger(__name__)

SOURCES = ("synthetic", "local", "manifest", "lakefs")
PATH_COLUMNS = ("path", "source_root", "annotation_path")
SKIPPED_COLUMNS = ["path", "reason"]


def list_source(cfg: Config, skipped: list[dict] | None = None) -> list[dict]:
    """Rows of tables.SOURCE_COLUMNS from the source named by ``acquire.source``; files the source passed
    over are appended to ``skipped`` as {path, reason}."""
    raw_dir = Path(cfg.paths.raw_dir)
    name = cfg.acquire.source
    if name == "synthetic":
        from avssl_core.data.sources import synthetic

        return synthetic.list_files(cfg.synth, raw_dir)
    if name == "local":
        from avssl_core.data.sources import local

        return local.list_files(cfg.acquire.local, raw_dir, skipped)
    if name == "manifest":
        from avssl_core.data.sources import manifest

        return manifest.list_files(cfg.acquire.manifest, raw_dir)
    if name == "lakefs":
        from avssl_core.data.sources import lakefs

        return lakefs.list_files(cfg.acquire.lakefs, raw_dir, skipped)
    raise ConfigError(f"acquire.source: unknown source {name!r}; choose one of {', '.join(SOURCES)}")


def _probe_row(row: dict) -> dict:
    # Roots before reads: a refused path is described by where it points, and not a byte of it is read.
    refused = row.get("source_error") or outside_root_reason(row["path"], row["source_root"])
    return {**row, **(unprobed_row(refused) if refused else probe_file(row["path"]))}


def _project_relative(value: str) -> str:
    """Paths inside the project are stored relative to it, so the manifest (a DVC output) is the same
    on every machine that clones the project; paths outside it stay absolute."""
    if not value:
        return value
    path = Path(value).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def source_fingerprint(frame: pd.DataFrame) -> str:
    """One hash of what was acquired (where from, and the bytes): it changes when the data changes."""
    digest = hashlib.sha256()
    for uri, sha in sorted(zip(frame["source_uri"], frame["sha256"].fillna(""), strict=True)):
        digest.update(f"{uri}\t{sha}\n".encode())
    return digest.hexdigest()


def run_acquire(cfg: Config) -> dict:
    started = time.perf_counter()
    if cfg.acquire.source == "synthetic":
        check_synthetic_splits(cfg)  # before generating anything, not at pretrain after the data stages
    # raw_dir is a DVC output even for sources that download nothing (a local folder): it must exist.
    Path(cfg.paths.raw_dir).mkdir(parents=True, exist_ok=True)
    skipped: list[dict] = []
    rows = list_source(cfg, skipped)
    skipped_csv = Path(cfg.paths.acquired_dir) / "skipped.csv"
    skipped_frame = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    skipped_frame["path"] = skipped_frame["path"].astype(str).map(_project_relative)
    write_table(skipped_csv, skipped_frame, SKIPPED_COLUMNS)
    for item in skipped:
        log.warning("skipped %s: %s", item["path"], item["reason"])
    if not rows:
        raise DataError(f"acquire: source {cfg.acquire.source!r} found no files ({_describe_source(cfg)})")
    ids = Counter(r["video_id"] for r in rows)
    clashes = [vid for vid, n in ids.items() if n > 1]
    if clashes:
        raise DataError(f"acquire: video ids are not unique: {clashes[:5]}")
    probed = list(imap_unordered(_probe_row, rows, workers=cfg.acquire.workers, desc="probe"))
    frame = pd.DataFrame(probed).sort_values("video_id").reset_index(drop=True)
    for col in PATH_COLUMNS:
        frame[col] = frame[col].fillna("").astype(str).map(_project_relative)
    out = Path(cfg.paths.acquired_dir) / "manifest.csv"
    write_table(out, frame, MANIFEST_COLUMNS)

    bad = frame[frame["probe_error"].fillna("") != ""]
    for rec in bad.itertuples():
        log.warning("cannot probe %s: %s", rec.path, rec.probe_error)
    summary = {
        "source": cfg.acquire.source,
        "num_files": int(len(frame)),
        "num_probe_errors": int(len(bad)),
        "num_skipped": len(skipped),
        "total_duration_s": round(float(pd.to_numeric(frame["duration_s"], errors="coerce").fillna(0).sum()), 3),
        "total_bytes": int(pd.to_numeric(frame["size_bytes"], errors="coerce").fillna(0).sum()),
        "source_fingerprint": source_fingerprint(frame),
        "seconds": round(time.perf_counter() - started, 2),
        "manifest": str(out),
        "skipped": str(skipped_csv),
    }
    if cfg.acquire.source == "lakefs":
        # source_uri is lakefs://<repo>/<commit>/<path>: the commit pins what this run used.
        summary["lakefs_commit"] = frame["source_uri"].iloc[0].split("/")[3]
    metrics = Path(cfg.paths.metrics_dir) / "acquire.json"
    previous = _previous_summary(metrics)
    if previous is not None and _without_timing(previous) == _without_timing(summary):
        # acquire runs on every `dvc repro`: rewriting the file for a new `seconds` alone would make the
        # report (which depends on metrics/) rerun although nothing it shows changed. The kept file
        # describes the acquisition that produced this data, its time included.
        log.info("acquired %d files into %s (%d could not be probed, %d skipped: %s) in %.2f s; unchanged, so %s "
                 "is kept", len(frame), out, len(bad), len(skipped), skipped_csv, summary["seconds"], metrics)
        return previous
    write_json_atomic(metrics, summary)
    log.info("acquired %d files into %s (%d could not be probed, %d skipped: %s)", len(frame), out, len(bad),
             len(skipped), skipped_csv)
    return summary


def _previous_summary(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # none yet, or unreadable: written anew
    return data if isinstance(data, dict) else None


def _without_timing(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key != "seconds"}


def _describe_source(cfg: Config) -> str:
    name = cfg.acquire.source
    if name == "local":
        return f"path {cfg.acquire.local.path!r}"
    if name == "manifest":
        return f"csv {cfg.acquire.manifest.csv!r}"
    if name == "lakefs":
        lk = cfg.acquire.lakefs
        return f"lakefs://{lk.repository}/{lk.ref}/{lk.prefix}"
    return f"synth.num_videos={cfg.synth.num_videos}"


__all__ = ["run_acquire", "list_source", "source_fingerprint", "SOURCES"]
