"""What one ablation trial does: pretrain the study's method with the trial's hyper-parameters on the tiny
budget, in the trial's own folder, report validation accuracy after every epoch (so a pruner can stop it),
and return the objective.

Objectives:
  pretext            held-out pretext accuracy under the study's protocol (AVTS Table 1: easy negatives;
                     co-attention: shifted audio), from the pretrain stage's own measurement
  pretext:<protocol> the same under another protocol of avssl_core.methods.protocols.PROTOCOLS
  <task>.<metric>    a downstream figure of the evaluate stage's metrics/<method>.json, e.g.
                     action_recognition.video@1

Seeds: one trial is one grid point, trained once per training seed of ``ablate.seeds`` (pretrain.train.seed),
and its value is the mean over the seeds. Repeats live inside the trial, not as trials of their own, so that
what Optuna and optuna-dashboard see per trial (the value, the best trial, parameter importances) is the
point's mean, the figure the table ranks, never one lucky seed. The first seed's per-epoch accuracy is the
trial's intermediate value, so the pruner judges a point on its first run before paying for the others.

Every objective whose figure is a mean over test items also keeps what an interval needs: each item's score
and source video, per seed (user attribute ``ITEMS_ATTR`` and trial.json), and avssl_core/ablate/separation.py
bootstraps over source videos from them. For a pretext objective the items are the held-out pairs (named by
pair index and clip); for a downstream one they are the evaluate stage's test clips or videos of that figure,
from its details.json ("per_item": every figure the evaluate stage gives an interval, e.g. the frozen probes,
action_recognition.video@1 with one split, retrieval_video.R@1). A downstream figure without them (a mean
over folds, a median rank) is still the trial's value, with no items.

The stages a trial runs (pretrain, evaluate) are passed in by the ablate stage: nothing below the front ends
imports a stage.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from avssl_core.ablate.studies import StudyDefinition, TrialPlan
from avssl_core.config import Config
from avssl_core.errors import ConfigError
from avssl_core.io_utils import write_json_atomic
from avssl_core.methods.protocols import PROTOCOLS, measure_pretext
from avssl_core.methods.saved import load_model

log = logging.getLogger(__name__)

TRIAL_RESULT = "trial.json"
WORKER_ATTR = "worker"  # {"host", "pid"} of the process running the trial: a dead one is failed at once
FAIL_REASON_ATTR = "fail_reason"
SEED_VALUES_ATTR = "seed_values"  # {seed: the objective of that seed's run}
# {seed: {"item", "group", "score"}}: one entry per test item (held-out pair, or test clip or video), with its
# source video ("group") and its score; the objective of that seed is the mean of the scores.
ITEMS_ATTR = "test_items"
# Lower is better for these downstream metrics; everything else is maximised.
_MINIMISED = ("median_rank",)

# The stages a trial runs (avssl_core.stages.pretrain.run_pretrain and avssl_core.stages.evaluate.run_evaluate).
PretrainStage = Callable[..., dict[str, Any]]  # (cfg, method, preset, *, on_epoch_end) -> metrics
EvaluateStage = Callable[[Config, str], dict[str, Any]]  # (cfg, method) -> metrics


@dataclasses.dataclass(frozen=True)
class Objective:
    text: str  # as given in ablate.objective
    protocol: str | None  # pretext objectives
    task: str | None  # downstream objectives
    metric: str | None
    direction: str  # maximize | minimize

    @property
    def reports_accuracy(self) -> bool:
        """Whether per-epoch validation accuracy points the same way as the objective (for pruning)."""
        return self.direction == "maximize"

    @property
    def items(self) -> str:
        """What the objective's test items are (the items of its intervals), in words."""
        if self.protocol is not None:
            return f"held-out pairs of pretext protocol {self.protocol}, 1/0 correctness"
        return (f"the evaluate stage's test clips or videos scored for {self.task}.{self.metric}, where it scores "
                f"them one by one (figures it gives an interval)")


def parse_objective(text: str, definition: StudyDefinition) -> Objective:
    text = text.strip()
    if text == "pretext" or text.startswith("pretext:"):
        protocol = definition.protocol if text == "pretext" else text.split(":", 1)[1]
        if protocol not in PROTOCOLS:
            raise ConfigError(f"ablate.objective={text!r}: unknown pretext protocol {protocol!r}; choose one of "
                              f"{sorted(PROTOCOLS)}")
        return Objective(text, protocol, None, None, "maximize")
    task, dot, metric = text.partition(".")
    if not dot or not task or not metric:
        raise ConfigError(f"ablate.objective={text!r}: expected pretext, pretext:<protocol> or <task>.<metric> "
                          f"(e.g. action_recognition.video@1)")
    direction = "minimize" if metric.endswith(_MINIMISED) else "maximize"
    return Objective(text, None, task, metric, direction)


def seed_dir(trial_dir: Path, seed: int, seeds: list[int]) -> Path:
    """Where one seed's run of a trial lives: <trial>/pretrain with one seed, <trial>/seed_<s>/pretrain with
    several."""
    return trial_dir if len(seeds) == 1 else trial_dir / f"seed_{seed}"


def trial_config(cfg: Config, definition: StudyDefinition, plan: TrialPlan, trial_dir: Path,
                 seed: int | None = None) -> Config:
    """``cfg`` with the trial's folder, the ablation budget, the trial's hyper-parameters and the training
    ``seed`` (default: the first of ``ablate.seeds``), its run in that seed's folder."""
    ab, pc, tc = cfg.ablate, cfg.pretrain, cfg.pretrain.train
    seed = ab.seeds[0] if seed is None else seed
    trial_dir = seed_dir(trial_dir, seed, ab.seeds)
    hparams = {**pc.hparams, definition.method: {**pc.hparams.get(definition.method, {}), **plan.hparams}}
    train = dataclasses.replace(
        tc, seed=seed, epochs=plan.epochs or ab.epochs or tc.epochs,
        max_steps=ab.max_steps if ab.max_steps is not None else tc.max_steps,
        batch_size=ab.batch_size or tc.batch_size, progress=False, keep_checkpoints=1)
    pretrain = dataclasses.replace(
        pc, out_dir=str(trial_dir / "pretrain"), hparams=hparams, train=train,
        pairs_per_clip=ab.pairs_per_clip or pc.pairs_per_clip, val_pairs=ab.val_pairs or pc.val_pairs)
    paths = dataclasses.replace(cfg.paths, metrics_dir=str(trial_dir / "metrics"))
    # A downstream objective evaluates the trial's own model, and its pictures stay in its folder.
    evaluate = dataclasses.replace(cfg.evaluate, methods_dir=str(trial_dir / "pretrain"),
                                   out_dir=str(trial_dir / "evaluate"))
    return dataclasses.replace(cfg, paths=paths, pretrain=pretrain, evaluate=evaluate)


def pretext_items(trial_cfg: Config, definition: StudyDefinition, protocol: str,
                  metrics: dict[str, Any]) -> tuple[float, dict[str, list]]:
    """The trained model's held-out pretext accuracy under ``protocol`` and each held-out pair as a test item
    (named by pair index and clip; its source video; its correctness), measured on the pretrain stage's own
    held-out pairs. The accuracy is the pretrain stage's figure when it measured that protocol (the same
    pairs, the same model)."""
    method = load_model(metrics["model"], definition.method)
    measured = measure_pretext(trial_cfg, method, (protocol,), per_pair=True)
    value = metrics.get("pretext_accuracy", {}).get(protocol, measured["pretext_accuracy"][protocol])
    pairs = measured["pretext_pairs"][protocol]
    return float(value), {"item": [f"pair {i} clip {c}" for i, c in zip(pairs["index"], pairs["clip"], strict=True)],
                          "group": [str(v) for v in pairs["source"]], "score": list(pairs["correct"])}


def downstream_items(trial_cfg: Config, definition: StudyDefinition, objective: Objective,
                     evaluate: EvaluateStage) -> tuple[float, dict[str, list] | None]:
    """The evaluate stage's figure for the trial's model and, where the stage scored it per test item (its
    details.json's "per_item"), the pretrained model's score of each test clip or video with its source
    video; None where the figure has no per-item scores."""
    result = evaluate(trial_cfg, definition.method)
    try:
        value = float(result["tasks"][objective.task]["pretrained"][objective.metric])
    except KeyError as exc:
        tasks = {t: sorted(v.get("pretrained", {})) for t, v in result.get("tasks", {}).items()}
        raise ConfigError(f"ablate.objective={objective.text!r}: the evaluate stage measured no such figure "
                          f"(it measured {tasks})") from exc
    details_json = Path(trial_cfg.evaluate.out_dir) / definition.method / "details.json"
    per_item = json.loads(details_json.read_text()).get("per_item", {})
    record = per_item.get(objective.task, {}).get(objective.metric)
    if record is None:
        return value, None
    scores = record["pretrained"]
    # The interval is about this figure only if the figure is the mean of these scores.
    if not scores or abs(sum(scores) / len(scores) - value) > 1e-6:
        raise ValueError(f"{details_json}: per-item scores of {objective.text} average "
                         f"{sum(scores) / max(len(scores), 1):.6f}, but the figure is {value:.6f}")
    return value, {"item": record["item"], "group": record["group"], "score": scores}


def epoch_reporter(trial: optuna.Trial, objective: Objective,
                   reported: dict[int, float]) -> Callable[[int, dict[str, Any]], None]:
    """The trainer's per-epoch callback: held-out accuracy as the trial's intermediate value (also kept in
    ``reported``), and the pruner's verdict."""

    def on_epoch_end(epoch: int, record: dict[str, Any]) -> None:
        value = record.get("val_accuracy")
        if value is None or not math.isfinite(value) or not objective.reports_accuracy:
            return
        trial.report(float(value), step=epoch)
        reported[epoch] = float(value)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: held-out accuracy {value:.3f}")

    return on_epoch_end


def suggest(trial: optuna.Trial, definition: StudyDefinition) -> dict[str, Any]:
    return {name: trial.suggest_categorical(name, list(values)) for name, values in definition.grid.items()}


def make_objective(cfg: Config, definition: StudyDefinition, objective: Objective, study_dir: Path, *,
                   pretrain: PretrainStage, evaluate: EvaluateStage) -> Callable[[optuna.Trial], float]:
    """One trial: ``pretrain`` (the pretrain stage) in the trial's folder, then the objective, from its
    metrics or, for a downstream objective, from ``evaluate`` (the evaluate stage) on its model."""

    def run_trial(trial: optuna.Trial) -> float:
        started = time.perf_counter()
        trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
        trial_dir = study_dir / f"trial_{trial.number}"
        result: dict[str, Any] = {"number": trial.number, "study": definition.key, "objective": objective.text}
        reported: dict[int, float] = {}
        try:
            params = suggest(trial, definition)
            plan = definition.plan(params, cfg.ablate.epochs)
            seeds = list(cfg.ablate.seeds)
            first_cfg = trial_config(cfg, definition, plan, trial_dir)
            result.update(params=params, hparams=plan.hparams, epochs=first_cfg.pretrain.train.epochs, seeds=seeds)
            trial.set_user_attr("hparams", plan.hparams)
            trial.set_user_attr("epochs", first_cfg.pretrain.train.epochs)
            trial.set_user_attr("seeds", seeds)
            trial.set_user_attr("trial_dir", str(trial_dir))
            # Trial numbers are unique within a study: a folder already there is left by a deleted study of
            # the same name, and resuming its checkpoints would mix two runs.
            shutil.rmtree(trial_dir, ignore_errors=True)
            values: dict[str, float] = {}
            items: dict[str, dict[str, list]] = {}
            for seed in seeds:
                trial_cfg = trial_config(cfg, definition, plan, trial_dir, seed)
                # Only the first seed reports per-epoch accuracy: a point is pruned on its first run.
                reporter = epoch_reporter(trial, objective, reported) if seed == seeds[0] else None
                metrics = pretrain(trial_cfg, definition.method, cfg.ablate.preset, on_epoch_end=reporter)
                if objective.protocol is not None:
                    value, record = pretext_items(trial_cfg, definition, objective.protocol, metrics)
                else:
                    value, record = downstream_items(trial_cfg, definition, objective, evaluate)
                if not math.isfinite(value):
                    raise ValueError(f"objective {objective.text} is {value} (seed {seed})")
                values[str(seed)] = value
                if record is not None:
                    items[str(seed)] = record
                if seed == seeds[0]:
                    trial.set_user_attr("pretext_accuracy", metrics.get("pretext_accuracy"))
                    result.update(pretext_accuracy=metrics.get("pretext_accuracy"))
            value = sum(values.values()) / len(values)
            trial.set_user_attr(SEED_VALUES_ATTR, values)
            if items:
                trial.set_user_attr(ITEMS_ATTR, items)
            result.update(state="COMPLETE", value=value, seed_values=values, test_items=items or None)
            return value
        except optuna.TrialPruned as exc:
            result.update(state="PRUNED", reason=str(exc))
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(FAIL_REASON_ATTR, reason[:2000])
            result.update(state="FAIL", reason=reason)
            raise
        finally:
            result["seconds"] = round(time.perf_counter() - started, 2)
            result["intermediate"] = reported
            write_json_atomic(trial_dir / TRIAL_RESULT, result)  # the trial's own record, beside its run

    return run_trial
