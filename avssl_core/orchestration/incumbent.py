"""Measure the current best model under the protocol the new one was just measured under, so the two
numbers compare models, not data: after new data arrives, the held-out pairs and evaluation clips change,
and the number recorded when the best model was promoted no longer says how it does on them."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avssl_core.config import Config
from avssl_core.eval.tasks.pretext import INSTANCE
from avssl_core.orchestration.promotion import Reading, read_metric

# The evaluate stage (avssl_core.stages.evaluate.run_evaluate), passed in by the caller (flows/retrain.py):
# nothing below the front ends imports a stage.
EvaluateStage = Callable[[Config, str], Any]


# The evaluate stage's task for each metric family (metric names: tasks.<task>.<arm>.<metric>).
_TASK_OF = {"action_recognition": "action_recognition", "audio_probe": "audio_probe", "retrieval_video": "retrieval",
            "retrieval_cross": "retrieval", "localization": "localization", "frozen_video": "frozen",
            "frozen_audio": "frozen"}


def narrowed_evaluation(ec, dotted: str):
    """The evaluate settings restricted to the one task (and pretext protocol) ``dotted`` comes from: every
    task is seeded on its own, so its numbers do not depend on which other tasks run."""
    parts = dotted.split(".")
    if len(parts) < 4 or parts[0] != "tasks":
        return ec
    task, arm = parts[1], parts[2]
    scratch = ec.scratch and arm == "scratch"
    if task.startswith("pretext_"):
        protocol = task.removeprefix("pretext_")
        # Instance discrimination is no negative mix in evaluate.pretext.protocols: a contrastive method
        # (CMAC) is scored that way whatever the list holds.
        pretext = ec.pretext if protocol == INSTANCE else dataclasses.replace(ec.pretext, protocols=[protocol])
        return dataclasses.replace(ec, tasks=["pretext"], pretext=pretext, scratch=scratch)
    if task in _TASK_OF:
        return dataclasses.replace(ec, tasks=[_TASK_OF[task]], scratch=scratch)
    return ec


def evaluate_reading(cfg: Config, method_name: str, model_path: str | Path, dotted: str,
                     evaluate: EvaluateStage) -> Reading:
    """The evaluate stage's metric for a saved model: ``evaluate`` (the stage) on a copy of the configuration
    whose methods folder holds that model, writing into scratch folders."""
    with tempfile.TemporaryDirectory(prefix="avssl-incumbent-") as tmp:
        staged = Path(tmp) / "methods" / method_name
        staged.mkdir(parents=True)
        (staged / "model.pt").symlink_to(Path(model_path).resolve())
        ec = dataclasses.replace(narrowed_evaluation(cfg.evaluate, dotted), methods_dir=str(Path(tmp) / "methods"),
                                 out_dir=str(Path(tmp) / "evaluate"))
        scratch_cfg = dataclasses.replace(cfg, evaluate=ec,
                                          paths=dataclasses.replace(cfg.paths, metrics_dir=str(Path(tmp) / "metrics")))
        evaluate(scratch_cfg, method_name)
        reading = read_metric(Path(tmp) / "metrics" / f"{method_name}.json", dotted)
        reading.metrics_file = str(model_path)
        return reading


def incumbent_reading(cfg: Config, method_name: str, model_path: str | Path, candidate: Reading, *,
                      evaluate: EvaluateStage) -> Reading:
    """The best model's value of the candidate's metric, measured the way the candidate's was: by ``evaluate``
    (the evaluate stage), on the same data under the same task protocol."""
    try:
        return evaluate_reading(cfg, method_name, model_path, candidate.metric, evaluate)
    except Exception as exc:  # recorded in the decision: a best model that cannot be measured is not replaced blindly
        return Reading(None, candidate.metric, str(model_path), None, error=f"{type(exc).__name__}: {exc}")

