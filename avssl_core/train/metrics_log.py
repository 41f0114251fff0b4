"""Training logs: JSON lines for everything, small CSVs that ``dvc plots`` draws directly.

    metrics.jsonl            {"type": "step", ...} every log step; {"type": "epoch", ...} every epoch
    plots/loss.csv           step,loss
    plots/val_accuracy.csv   epoch,val_accuracy (rows only with a validation set)

Lines are appended and flushed one by one, so a killed run keeps what it logged. On resume, lines
logged after the checkpoint being resumed from are dropped first: those steps run again, and the
files must read as one uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from avssl_core.io_utils import write_text_atomic

METRICS_FILE = "metrics.jsonl"
LOSS_PLOT = "plots/loss.csv"
VAL_PLOT = "plots/val_accuracy.csv"


class MetricsWriter:
    """Only the main process writes (``enabled``); the others hold a writer that does nothing."""

    def __init__(self, out_dir: str | Path, *, enabled: bool) -> None:
        self.out_dir = Path(out_dir)
        self.enabled = enabled

    # -- resume ------------------------------------------------------------------------------------
    def truncate_after(self, *, global_step: int, epochs_completed: int) -> None:
        """Keep step lines up to ``global_step`` and epoch lines of the ``epochs_completed`` first
        epochs; 0 and 0 (a fresh start) empties the files."""
        if not self.enabled:
            return

        def keep(record: dict[str, Any]) -> bool:
            if record.get("type") == "epoch":
                return record["epoch"] < epochs_completed
            return record.get("step", math.inf) <= global_step

        metrics = self.out_dir / METRICS_FILE
        kept: list[dict[str, Any]] = []
        if metrics.is_file():
            for line in metrics.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the torn last line of a killed run
                if keep(record):
                    kept.append(record)
        write_text_atomic(metrics, "".join(json.dumps(r) + "\n" for r in kept))
        self._rewrite_csv(LOSS_PLOT, ["step", "loss"],
                          [[r["step"], r["loss"]] for r in kept if r.get("type") == "step"])
        val_rows = [[r["epoch"], r["val_accuracy"]] for r in kept
                    if r.get("type") == "epoch" and r.get("val_accuracy") is not None]
        # Written even before (or without) a validated epoch: dvc.yaml declares it, and DVC needs every
        # declared output to exist when the stage ends.
        self._rewrite_csv(VAL_PLOT, ["epoch", "val_accuracy"], val_rows)

    def _rewrite_csv(self, name: str, header: list[str], rows: list[list[Any]]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        write_text_atomic(self.out_dir / name, buf.getvalue())

    # -- appending ---------------------------------------------------------------------------------
    def log_step(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._append_json({"type": "step", **record})
        self._append_csv(LOSS_PLOT, ["step", "loss"], [record["step"], record["loss"]])

    def log_epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._append_json({"type": "epoch", **record})
        if record.get("val_accuracy") is not None:
            self._append_csv(VAL_PLOT, ["epoch", "val_accuracy"], [record["epoch"], record["val_accuracy"]])

    def _append_json(self, record: dict[str, Any]) -> None:
        path = self.out_dir / METRICS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def _append_csv(self, name: str, header: list[str], row: list[Any]) -> None:
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        with path.open("a", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            if new:
                writer.writerow(header)
            writer.writerow(row)
