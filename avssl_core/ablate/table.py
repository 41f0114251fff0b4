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

from avssl_core.ablate.objective import FAIL_REASON_ATTR, ITEMS_ATTR, SEED_VALUES_ATTR
from avssl_core.ablate.separation import Point, point_items, separate
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


# The previous release recorded only pretext pairs, as {seed: {correct, index, clip, source}} under this
# name; a study it ran keeps its intervals when read by this one.
LEGACY_PAIRS_ATTR = "pretext_pairs"


def _items_of(trial: optuna.trial.FrozenTrial) -> dict | None:
    """The trial's test items, also from a study recorded before downstream objectives had them."""
    if trial.user_attrs.get(ITEMS_ATTR):
        return trial.user_attrs[ITEMS_ATTR]
    legacy = trial.user_attrs.get(LEGACY_PAIRS_ATTR)
    if not legacy:
        return None
    return {seed: {"item": [f"pair {i} clip {c}" for i, c in zip(r["index"], r["clip"], strict=True)],
                   "group": [str(v) for v in r["source"]], "score": [float(x) for x in r["correct"]]}
            for seed, r in legacy.items()}


def study_separation(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """Intervals, differences from the best point and ranks of the study's finished trials that recorded
    their test items (avssl_core/ablate/separation.py)."""
    points = [Point(t.number, float(t.value), point_items(_items_of(t)))
              for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if _items_of(t) and t.value is not None]
    return separate(points, maximize=study.direction == optuna.study.StudyDirection.MAXIMIZE)


def trial_rows(study: optuna.Study, definition: StudyDefinition,
               separation: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per trial; ``separation`` (study_separation's) adds each point's interval, its difference
    from the best point and its rank."""
    separation = study_separation(study) if separation is None else separation
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
            **_separation_columns(separation.get(t.number)),
            "seed_values": json.dumps(t.user_attrs[SEED_VALUES_ATTR], sort_keys=True)
            if SEED_VALUES_ATTR in t.user_attrs else None,
            "last_val_accuracy": intermediate[max(intermediate)] if intermediate else None,
            "epochs_reported": len(intermediate),
            "seconds": round(seconds, 1) if seconds is not None else None,
            "paper": definition.paper_value(t.params),
            "note": _note(t, retried_as),
        })
    return rows


def _separation_columns(record: dict[str, Any] | None) -> dict[str, Any]:
    vs_best = (record or {}).get("vs_best") or {}
    return {"low": (record or {}).get("low"), "high": (record or {}).get("high"),
            "vs_best": vs_best.get("difference"), "vs_best_low": vs_best.get("low"),
            "vs_best_high": vs_best.get("high"), "verdict": vs_best.get("verdict"),
            "rank": (record or {}).get("rank")}


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
