"""Promotion of a retrained model: compare it with the current best under the same protocol, copy it to
<best_dir>/<method>/ only when it is better, and record every decision in <best_dir>/decisions.jsonl.

Layout of <best_dir> (tracked by DVC as one folder, models/best.dvc):
    <method>/model.pt      the promoted checkpoint (as the pretrain stage wrote it)
    <method>/metrics.json  the metrics file the decision was taken on
    <method>/record.json   what was promoted: metric, value, protocol, data fingerprint, model sha256
    decisions.jsonl        one line per decision, promoted or refused
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from avssl_core.config import Config
from avssl_core.errors import ConfigError, DataError
from avssl_core.io_utils import write_json_atomic
from avssl_core.orchestration.fingerprints import file_sha256


@dataclass
class Reading:
    """One metric value and where it came from."""

    value: float | None
    metric: str  # dotted path inside the metrics file
    metrics_file: str
    protocol: Any  # what the number was measured on (split, pairs, task protocol), for the record
    error: str = ""  # why there is no value


@dataclass
class Decision:
    method: str
    promoted: bool
    reason: str
    metric: str
    direction: str
    min_improvement: float
    candidate: float | None
    incumbent: float | None
    protocol: Any = None
    data_fingerprint: str = ""
    lakefs_commit: str = ""
    candidate_model_sha256: str = ""
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    extra: dict[str, Any] = field(default_factory=dict)


def lookup_metric(metrics: dict, dotted: str) -> float:
    """``metrics["tasks"]["pretext_easy"]["pretrained"]["accuracy"]`` for ``tasks.pretext_easy.pretrained.accuracy``.

    Task names hold no dots, but metric names may (none today); the longest matching key wins."""
    node: Any = metrics
    parts = dotted.split(".")
    i = 0
    while i < len(parts):
        if not isinstance(node, dict):
            raise KeyError(dotted)
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if key in node:
                node, i = node[key], j
                break
        else:
            raise KeyError(dotted)
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise KeyError(dotted)
    return float(node)


def read_metric(metrics_file: str | Path, dotted: str) -> Reading:
    path = Path(metrics_file)
    if not path.is_file():
        return Reading(None, dotted, str(path), None, error=f"{path}: no such metrics file")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return Reading(None, dotted, str(path), None, error=f"{path}: not valid JSON: {exc}")
    try:
        value = lookup_metric(metrics, dotted)
    except KeyError:
        return Reading(None, dotted, str(path), None, error=f"{path}: no numeric metric {dotted!r}")
    return Reading(value, dotted, str(path), protocol_of(metrics, dotted))


def protocol_of(metrics: dict, dotted: str) -> Any:
    """The protocol a metric was measured under: the evaluate task's dataset and protocol, or the pretrain
    stage's held-out pairs."""
    parts = dotted.split(".")
    if parts[0] == "tasks" and len(parts) > 1:
        task = metrics.get("tasks", {}).get(parts[1], {})
        return {"task": parts[1], "dataset": task.get("dataset"), "protocol": task.get("protocol"),
                "data": metrics.get("data")}
    return {"protocol": metrics.get("protocol"), "data": metrics.get("data")}


def decide(candidate: Reading, incumbent: Reading | None, direction: str, min_improvement: float) -> tuple[bool, str]:
    """Promote only a measured candidate that beats the incumbent by more than ``min_improvement``."""
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"retrain.direction: expected maximize or minimize, got {direction!r}")
    if candidate.value is None or math.isnan(candidate.value):
        return False, f"not promoted: the new model has no {candidate.metric} ({candidate.error or 'NaN'})"
    if incumbent is None:
        return True, f"promoted: no current best model; new {candidate.metric} = {candidate.value:.4f}"
    if incumbent.value is None or math.isnan(incumbent.value):
        return False, (f"not promoted: the current best could not be measured under the same protocol "
                       f"({incumbent.error or 'NaN'}); promote by hand after checking it")
    gain = candidate.value - incumbent.value if direction == "maximize" else incumbent.value - candidate.value
    figures = f"new {candidate.value:.4f} vs best {incumbent.value:.4f} ({direction}, min improvement {min_improvement})"
    if gain > min_improvement:
        return True, f"promoted: {figures}"
    return False, f"not promoted: {figures}"


def best_dir(cfg: Config, method: str) -> Path:
    return Path(cfg.retrain.best_dir) / method


def current_best(cfg: Config, method: str) -> dict | None:
    record = best_dir(cfg, method) / "record.json"
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{record}: not valid JSON ({exc}); restore it with `dvc checkout models/best.dvc`") from exc


def last_fingerprint(cfg: Config, method: str) -> str | None:
    """The source data fingerprint the last retrain of ``method`` compared on (promoted or not). A retrain
    whose new model could not be measured does not count, so the next run tries that data again."""
    path = Path(cfg.retrain.best_dir) / "decisions.jsonl"
    if not path.is_file():
        return None
    last = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not a JSON decision record ({exc})") from exc
        if entry.get("method") == method and entry.get("data_fingerprint") and entry.get("candidate") is not None:
            last = entry["data_fingerprint"]
    return last


def promote(cfg: Config, decision: Decision, model_path: str | Path, metrics_file: str | Path) -> Path:
    """Replace <best_dir>/<method>/ with the candidate, as one rename, so a reader never sees half of it."""
    target = best_dir(cfg, decision.method)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{decision.method}-", dir=target.parent))
    try:
        shutil.copyfile(model_path, staging / "model.pt")
        shutil.copyfile(metrics_file, staging / "metrics.json")
        write_json_atomic(staging / "record.json", {
            "method": decision.method, "metric": decision.metric, "value": decision.candidate,
            "direction": decision.direction, "protocol": decision.protocol,
            "data_fingerprint": decision.data_fingerprint, "lakefs_commit": decision.lakefs_commit,
            "model_sha256": file_sha256(staging / "model.pt"), "promoted_at": decision.time,
        })
        os.chmod(staging, 0o755)
        old = None
        if target.exists():
            old = target.with_name(f".{decision.method}-old-{os.getpid()}")
            target.rename(old)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def record_decision(cfg: Config, decision: Decision) -> Path:
    path = Path(cfg.retrain.best_dir) / "decisions.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(asdict(decision), sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def decision_markdown(decision: Decision) -> str:
    verdict = "**promoted**" if decision.promoted else "**kept the current best**"
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [
        f"# Retrain {decision.method}: {verdict}",
        "",
        decision.reason,
        "",
        "| | value |",
        "| --- | --- |",
        f"| metric | `{decision.metric}` |",
        f"| new model | {fmt(decision.candidate)} |",
        f"| current best, same protocol | {fmt(decision.incumbent)} |",
        f"| direction / min improvement | {decision.direction} / {decision.min_improvement} |",
        f"| data fingerprint | `{decision.data_fingerprint[:16]}` |",
    ]
    if decision.lakefs_commit:
        lines.append(f"| lakeFS commit | `{decision.lakefs_commit}` |")
    lines += ["", f"Protocol: `{json.dumps(decision.protocol, default=str)}`"]
    return "\n".join(lines) + "\n"
