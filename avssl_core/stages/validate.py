"""validate stage: decode every acquired file, check it with Great Expectations, quarantine the bad ones.

Reads  <acquired_dir>/manifest.csv (one probed row per source file).
Writes <validated_dir>/valid.csv        manifest columns + decode statistics, for the files that passed
       <validated_dir>/quarantine.csv   manifest columns + ``reasons`` (codes) + ``details`` (values)
       <validated_dir>/datadocs/        Great Expectations Data Docs (open index.html)
       <validated_dir>/gx/              the Great Expectations project: suite, checkpoint, results
       <metrics_dir>/validate.json      counts per reason, for DVC

The suite itself lives in avssl_core/data/expectations.py. A file fails only through an expectation, so
the Data Docs and quarantine.csv always tell the same story.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from avssl_core.config import Config
from avssl_core.data.probe import DECODE_COLUMNS, decode_stats
from avssl_core.data.roots import outside_root_reason
from avssl_core.data.tables import MANIFEST_COLUMNS, read_table, write_table
from avssl_core.errors import DataError
from avssl_core.io_utils import write_json_atomic
from avssl_core.parallel import imap_unordered

log = logging.getLogger(__name__)

VALID_COLUMNS = MANIFEST_COLUMNS + DECODE_COLUMNS
QUARANTINE_COLUMNS = MANIFEST_COLUMNS + ["reasons", "details"] + DECODE_COLUMNS


def run_validate(cfg: Config) -> dict[str, Any]:
    """Validate the acquired files; return the summary that also lands in <metrics_dir>/validate.json.

    Raises DataError when there is no file, no valid file, or fewer valid files than
    ``validate.min_valid_fraction`` -- after writing every output, so the quarantine list can be read.
    """
    started = time.perf_counter()
    # GX logs its own bookkeeping at INFO while importing; keep the stage's log about the data.
    if logging.getLogger("great_expectations").level == logging.NOTSET:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from avssl_core.data.expectations import REASON_CODES, check_sources  # imports GX: slow, so lazily

    validated_dir = Path(cfg.paths.validated_dir)
    manifest_path = Path(cfg.paths.acquired_dir) / "manifest.csv"
    manifest = read_table(manifest_path, required=MANIFEST_COLUMNS).reset_index(drop=True)
    table = _with_decode_stats(manifest, cfg)

    if len(table):
        check = check_sources(table, cfg, gx_dir=validated_dir / "gx", docs_dir=validated_dir / "datadocs")
        reasons, details, docs_index = check.reasons, check.details, check.docs_index
    else:
        reasons, details, docs_index = [], [], None
    table["reasons"] = [";".join(codes) for codes in reasons]
    table["details"] = ["; ".join(parts) for parts in details]
    is_valid = table["reasons"] == ""
    valid, quarantine = table[is_valid], table[~is_valid]

    outputs = {
        "valid_csv": validated_dir / "valid.csv",
        "quarantine_csv": validated_dir / "quarantine.csv",
        "metrics_json": Path(cfg.paths.metrics_dir) / "validate.json",
    }
    write_table(outputs["valid_csv"], valid.drop(columns=["reasons", "details"]), VALID_COLUMNS)
    write_table(outputs["quarantine_csv"], quarantine.copy(), QUARANTINE_COLUMNS)
    metrics = _metrics(reasons, REASON_CODES, seconds=time.perf_counter() - started)
    write_json_atomic(outputs["metrics_json"], metrics)
    _log_quarantine(quarantine, len(table), outputs["quarantine_csv"], docs_index)

    _raise_if_unusable(metrics, cfg, manifest_path, outputs["quarantine_csv"])
    return {**metrics, **{k: str(v) for k, v in outputs.items()},
            "data_docs_index": str(docs_index) if docs_index else ""}


def _metrics(reasons: list[list[str]], codes: list[str], seconds: float) -> dict[str, Any]:
    """Flat counts for DVC; every reason code is listed, zeros included, so runs compare key by key."""
    total = len(reasons)
    valid = sum(1 for r in reasons if not r)
    counts = Counter(code for row in reasons for code in row)
    return {
        "total": total,
        "valid": valid,
        "quarantined": total - valid,
        "valid_fraction": round(valid / total, 4) if total else 0.0,
        "reasons": {code: counts.get(code, 0) for code in codes},
        "seconds": round(seconds, 2),
    }


def _log_quarantine(quarantine: pd.DataFrame, total: int, quarantine_csv: Path, docs_index: Path | None) -> None:
    for _, row in quarantine.iterrows():
        log.warning("quarantined %s (%s): %s", row["path"], row["reasons"], row["details"])
    if len(quarantine):
        log.warning("%d of %d files quarantined; the list with reasons is %s", len(quarantine), total, quarantine_csv)
    if docs_index is not None:
        log.info("Great Expectations Data Docs: %s", docs_index)


def _with_decode_stats(manifest: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The manifest plus DECODE_COLUMNS; files whose container did not open are not decoded, nor are files
    that resolve outside their root now (a link changed since acquire): those are never opened."""
    table = manifest.copy()
    for col in DECODE_COLUMNS:
        table[col] = None
    table["decode_error"] = ""
    table["content_hash"] = ""
    opened = [i for i in table.index[table["probe_error"] == ""]
              if not outside_root_reason(table.at[i, "path"], _text(table.at[i, "source_root"]))]
    items = [(int(i), str(table.at[i, "path"]), cfg.validate.duration_tolerance_s,
              _stream_index(table.at[i, "audio_stream_index"])) for i in opened]
    workers = min(cfg.validate.workers, max(1, len(items)))  # no idle worker processes to spawn
    for index, stats in imap_unordered(_decode_one, items, workers=workers, desc="validate",
                                       executor=cfg.parallel.executor,
                                       dask_scheduler=cfg.parallel.dask_scheduler):
        for col, value in stats.items():
            table.at[index, col] = value
    return table


def _decode_one(item: tuple[int, str, float, int | None]) -> tuple[int, dict[str, Any]]:
    # Module level so worker processes (spawned) can import it.
    index, path, tolerance_s, audio_stream_index = item
    return index, decode_stats(path, duration_tolerance_s=tolerance_s, audio_stream_index=audio_stream_index)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _stream_index(value: Any) -> int | None:
    """The audio stream probe chose (a CSV cell: a number, or empty for a file without audio)."""
    number = pd.to_numeric(value, errors="coerce")
    return None if pd.isna(number) else int(number)


def _raise_if_unusable(metrics: dict, cfg: Config, manifest_path: Path, quarantine_csv: Path) -> None:
    total, valid = metrics["total"], metrics["valid"]
    if total == 0:
        raise DataError(f"{manifest_path}: no files to validate (the acquire stage found none)")
    top = sorted(((code, n) for code, n in metrics["reasons"].items() if n), key=lambda item: (-item[1], item[0]))
    top_text = ", ".join(f"{code}: {n}" for code, n in top[:5])
    if valid == 0:
        problem = f"none of the {total} files is valid"
    elif metrics["valid_fraction"] < cfg.validate.min_valid_fraction:
        problem = (f"only {valid} of {total} files are valid ({metrics['valid_fraction']:.0%} < "
                   f"validate.min_valid_fraction {cfg.validate.min_valid_fraction:.0%})")
    else:
        return
    raise DataError(f"{problem}; top reasons: {top_text}; see {quarantine_csv} for each file and why")
