"""report: the leaderboard of every evaluated method, as Markdown and a static HTML page.

Reads  <metrics_dir>/<method>.json (the evaluate stage), <metrics_dir>/pretrain_<method>.json and
       <pretrain.out_dir>/<method>/plots/loss.csv (the pretrain stage), and the pictures they name.
Writes dashboards/report/leaderboard.md, dashboards/report/index.html and dashboards/report/img/
       (pictures copied beside the page, linked relatively, so the folder can be moved or served as is).

Methods of the registry (avssl_core/methods/registry.py) without an evaluation file are named as missing;
the report is still written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from avssl_core.config import Config
from avssl_core.eval.report import build_report

log = logging.getLogger(__name__)

REPORT_DIR = Path("dashboards/report")


def run_report(cfg: Config, out_dir: str | Path = REPORT_DIR) -> dict[str, Any]:
    summary = build_report(Path(cfg.paths.metrics_dir), Path(out_dir), pretrain_dir=Path(cfg.pretrain.out_dir),
                           bases=[Path.cwd()])
    if summary["missing"]:
        log.warning("report: no evaluation yet for %s", ", ".join(summary["missing"]))
    for source in summary["missing_pictures"]:
        log.warning("report: picture %s named in the metrics does not exist", source)
    log.info("report: %s (open in a browser) and %s", Path(summary["report"]).resolve().as_uri(),
             summary["leaderboard"])
    return summary
