"""The table of a study's trials, as CSV (for tools) and Markdown (for people), beside the trial folders."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from avssl_core.ablate.objective import FAIL_REASON_ATTR
from avssl_core.ablate.studies import StudyDefinition
from avssl_core.io_utils import write_text_atomic


def _note(trial: optuna.trial.FrozenTrial, retried_as: dict[int, int]) -> str:
    if trial.number in retried_as:
        return f"worker died; retried as trial {retried_as[trial.number]}"
    if trial.state == TrialState.FAIL:
        return str(trial.user_attrs.get(FAIL_REASON_ATTR, "failed (no reason recorded)"))
    if trial.state == TrialState.PRUNED:
        last = max(trial.intermediate_values) if trial.intermediate_values else None
        return f"pruned after epoch {last}" if last is not None else "pruned"
    if "failed_trial" in trial.system_attrs:
        return f"retry of trial {trial.system_attrs['failed_trial']}"
    return ""


def trial_rows(study: optuna.Study, definition: StudyDefinition) -> list[dict[str, Any]]:
    trials = study.get_trials(deepcopy=False)
    retried_as = {int(t.system_attrs["failed_trial"]): t.number for t in trials if "failed_trial" in t.system_attrs}
    rows = []
    for t in trials:
        intermediate = t.intermediate_values
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        rows.append({
            "trial": t.number,
            "state": t.state.name,
            **{name: t.params.get(name) for name in definition.grid},
            "hparams": json.dumps(t.user_attrs.get("hparams", {}), sort_keys=True),
            "epochs": t.user_attrs.get("epochs"),
            "value": t.value,
            "last_val_accuracy": intermediate[max(intermediate)] if intermediate else None,
            "epochs_reported": len(intermediate),
            "seconds": round(seconds, 1) if seconds is not None else None,
            "paper": definition.paper_value(t.params),
            "note": _note(t, retried_as),
        })
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_tables(rows: list[dict[str, Any]], out_dir: Path, *, header: list[str]) -> tuple[Path, Path]:
    """Write ``trials.csv`` and ``trials.md`` (``header`` lines above the table) under ``out_dir``."""
    columns = list(rows[0]) if rows else ["trial", "state", "value"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path, md_path = out_dir / "trials.csv", out_dir / "trials.md"
    write_text_atomic(csv_path, buffer.getvalue())
    lines = [*header, "", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row[c]) for c in columns) + " |" for row in rows]
    write_text_atomic(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path
