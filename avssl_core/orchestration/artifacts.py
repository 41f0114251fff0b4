"""Markdown summaries and metric tables for the Prefect UI's Artifacts page, built from the dicts the
stage functions return (the same numbers the metrics/*.json files hold)."""

from __future__ import annotations

import json
import re
from typing import Any

# Keys worth a line in a stage's summary, in order; the full summary is in metrics/<stage>.json.
_HEADLINES = {
    "acquire": ("source", "num_files", "num_probe_errors", "total_duration_s", "source_fingerprint", "lakefs_commit"),
    "validate": ("total", "valid", "quarantined", "reasons", "quarantine_csv", "data_docs_index"),
    "segment": ("num_videos", "num_videos_segmented", "num_videos_skipped", "num_videos_failed", "num_clips",
                "total_clip_seconds", "clip_seconds_per_second", "failures"),
    "pretrain": ("method", "preset", "pretext_accuracy", "train_loss", "steps", "samples_per_s", "failed_samples",
                 "model"),
}


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes only."""
    key = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    return re.sub(r"-{2,}", "-", key)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return "`" + json.dumps(value, sort_keys=True, default=str).replace("|", "\\|") + "`"
    return str(value).replace("|", "\\|")


def stage_markdown(stage: str, summary: dict, *, cached: bool = False, dvc_note: str = "") -> str:
    keys = [k for k in _HEADLINES.get(stage, tuple(summary)) if k in summary]
    lines = [f"# {stage}", ""]
    if dvc_note:
        lines += [dvc_note, ""]
    lines += ["| | |", "| --- | --- |"]
    lines += [f"| {k} | {_cell(summary[k])} |" for k in keys]
    if "seconds" in summary:
        lines.append(f"| seconds | {_cell(summary['seconds'])} |")
    return "\n".join(lines) + "\n"


def flatten_metrics(metrics: dict) -> dict[str, float]:
    """metrics/<method>.json's tasks as flat ``task.pretrained.metric`` columns, pretrain's pretext
    accuracies as ``pretext_accuracy.<protocol>``."""
    flat: dict[str, float] = {}
    for task, entry in (metrics.get("tasks") or {}).items():
        for arm in ("pretrained", "scratch"):
            for name, value in (entry.get(arm) or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    flat[f"{task}.{arm}.{name}"] = float(value)
    for protocol, value in (metrics.get("pretext_accuracy") or {}).items():
        flat[f"pretext_accuracy.{protocol}"] = float(value)
    return flat


def metrics_table(by_method: dict[str, dict]) -> list[dict[str, Any]]:
    """One row per method, one column per metric any method has (blank where a method lacks it)."""
    flat = {m: flatten_metrics(metrics) for m, metrics in by_method.items()}
    columns = sorted({c for values in flat.values() for c in values})
    return [{"method": m, **{c: round(values[c], 4) if c in values else "" for c in columns}}
            for m, values in sorted(flat.items())]
