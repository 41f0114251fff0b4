"""The leaderboard says what the metrics files say: every number of leaderboard.md, read back from its
tables, equals the value in metrics/<method>.json for the same method, task, weights and metric, and every
pretrained / scratch / baseline entry of the files has its row.

Each value of the crafted files is distinct (pretrained and scratch of the same metric never coincide), so
a report that swapped pretrained and scratch, shifted a column or mixed up two methods fails here, where a
test that only looks for each number somewhere on the page passes.
"""

from __future__ import annotations

import json
import re

import pytest

from avssl_core.config import load_config
from avssl_core.eval.report import TASK_TITLES, fmt
from avssl_core.stages.report import run_report

pytestmark = pytest.mark.timeout(120)


def _metrics_file(method: str, preset: str, base: float) -> dict:
    """An evaluation with distinct values: base + 0.011 * k for the k-th number written."""
    counter = iter(range(1000))

    def v() -> float:
        return round(base + 0.011 * next(counter), 4)

    return {
        "method": method, "preset": preset, "data": f"data/clips/index.csv [test] ({method})", "seconds": 12.5,
        "tasks": {
            "pretext_easy": {"dataset": "d", "protocol": "fixed pairs", "pretrained": {"accuracy": v()},
                             "scratch": {"accuracy": v()}, "skipped": 0},
            "retrieval_video": {"dataset": "d", "protocol": "cosine",
                                "pretrained": {"R@1": v(), "R@5": v(), "R@10": v(), "median_rank": 11.0 + v()},
                                "scratch": {"R@1": v(), "R@5": v(), "R@10": v(), "median_rank": 30.0 + v()},
                                "skipped": 1},
            "localization": {"dataset": "d", "protocol": "cIoU", "pretrained": {"cIoU@0.5": v(), "AUC": v()},
                             "scratch": {"cIoU@0.5": v(), "AUC": v()}, "centre_prior": {"cIoU@0.5": v(), "AUC": v()},
                             "single_source": {"samples": 30, "pretrained": {"cIoU@0.5": v(), "AUC": v()},
                                               "centre_prior": {"cIoU@0.5": v(), "AUC": v()}},
                             "samples": 48, "skipped": 0, "overlays": []},
        },
        "pictures": {},
    }


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def leaderboard_values(md: str) -> dict[tuple[str, str, str, str, str], str]:
    """(method, preset, table key, weights, metric) -> printed value, from every result table."""
    keys = {title: key for key, title in TASK_TITLES.items()}
    out: dict[tuple[str, str, str, str, str], str] = {}
    for section in md.split("\n## ")[1:]:
        title, _, body = section.partition("\n")
        base, _, sub = title.partition(": ")
        if base not in keys:
            continue  # methods, pretraining, pictures, protocols
        key = keys[base] + (f"/{sub.replace(' ', '_')}" if sub else "")
        lines = [line for line in body.splitlines() if line.startswith("|")]
        header = _cells(lines[0])
        metrics = header[3:header.index("samples")]
        for line in lines[2:]:
            row = _cells(line)
            for metric, value in zip(metrics, row[3:3 + len(metrics)], strict=True):
                if value != "–":  # the metric belongs to another method's rows
                    out[(row[0], row[1], key, row[2], metric)] = value
    return out


def metrics_values(evaluations: dict[str, dict]) -> dict[tuple[str, str, str, str, str], str]:
    """The same keys from the metrics files, formatted as the report prints numbers."""
    out = {}
    for method, ev in evaluations.items():
        for task, entry in ev["tasks"].items():
            groups = [(task, entry)] + [(f"{task}/{k}", g) for k, g in entry.items()
                                        if isinstance(g, dict) and "pretrained" in g]
            for key, group in groups:
                for weights, values in group.items():
                    if isinstance(values, dict) and values and all(isinstance(x, (int, float)) for x in values.values()):
                        for metric, value in values.items():
                            out[(method, ev["preset"], key, weights, metric)] = fmt(value)
    return out


def test_every_leaderboard_number_is_the_one_in_its_metrics_file(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    evaluations = {"avts": _metrics_file("avts", "tiny", 0.101), "cmac": _metrics_file("cmac", "paper", 0.5003)}
    for method, ev in evaluations.items():
        (metrics / f"{method}.json").write_text(json.dumps(ev))
    cfg = load_config(None, [f"paths.metrics_dir={metrics}", f"pretrain.out_dir={tmp_path / 'pretrain'}"])
    run_report(cfg, tmp_path / "report")
    got = leaderboard_values((tmp_path / "report" / "leaderboard.md").read_text())
    expected = metrics_values(evaluations)
    assert len(expected) == 2 * (2 + 8 + 6 + 4)  # every pretrained, scratch and baseline value of both files
    assert got == expected
    # The check itself is sharp: the same file with one method's pretrained and scratch swapped differs.
    swapped = json.loads(json.dumps(evaluations))
    task = swapped["avts"]["tasks"]["retrieval_video"]
    task["pretrained"], task["scratch"] = task["scratch"], task["pretrained"]
    assert metrics_values(swapped) != got
