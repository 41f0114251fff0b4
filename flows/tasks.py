"""The stage tasks every flow is built from, and the steps flows share (parameter checks, versioning).

Only orchestration lives here: the work is done by the same functions `avssl <stage>` and dvc.yaml run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff

from avssl_core import pipeline_spec
from avssl_core.config import Config
from avssl_core.orchestration import cache, versioning
from avssl_core.orchestration.artifacts import artifact_key, metrics_table, stage_markdown
from avssl_core.orchestration.parameters import flow_config
from avssl_core.orchestration.retry import retry_if_transient
from avssl_core.orchestration.torchrun import TorchrunError, TorchrunLaunch, run_torchrun

DvcMode = Literal["commit", "push", "off"]
Preset = Literal["tiny", "paper"]

# Transient failures (I/O, timeouts, a held DVC lock) are retried twice, 10 s then 20 s later (+-50%);
# a ConfigError or DataError fails at once. AVSSL_RETRY_DELAY_S shortens the wait (tests).
RETRIES = 2
RETRY_DELAY_S = float(os.environ.get("AVSSL_RETRY_DELAY_S", "10"))
RETRY_OPTIONS: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=RETRY_DELAY_S),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
}


def _from_key(ctx, parameters: dict) -> str | None:
    """Cache key fn: the content key the flow computed for this call (None: do not cache)."""
    return parameters.get("content_key")


CACHED = {**RETRY_OPTIONS, "cache_key_fn": _from_key, "persist_result": True}
UNCACHED = {**RETRY_OPTIONS, "cache_policy": NO_CACHE, "persist_result": False}


def _logger() -> logging.Logger:
    try:
        return get_run_logger()  # type: ignore[return-value]
    except Exception:  # outside a run (called directly)
        return logging.getLogger("avssl.flows")


# -- flow set-up -------------------------------------------------------------------------------------------

class FlowSetup:
    """A flow's configuration and versioning mode, checked before any stage runs."""

    def __init__(self, params_file: str, overrides: list[str] | None, dvc: str, stages: list[str],
                 refresh_cache: bool = False) -> None:
        self.cfg, file_cfg = flow_config(params_file, list(overrides or []))
        self.params_file, self.overrides = params_file, list(overrides or [])
        versioning.check_project(".", dvc)
        self.dvc = dvc
        self.refresh_cache = refresh_cache
        self.dvc_stages = pipeline_spec.dvc_stages(".") if dvc != "off" else {}
        if dvc != "off":
            versioning.check_overrides_versionable(self.cfg, file_cfg, self.dvc_stages, stages, list(overrides or []))

    def cli_args(self, *stage_args: str) -> list[str]:
        """The ``avssl`` arguments that run a stage with this flow's parameters file and overrides."""
        overrides = [arg for override in self.overrides for arg in ("--set", override)]
        return ["--params", str(Path(self.params_file).resolve()), *overrides, *stage_args]

    def version(self, stage: str, item: str | None = None) -> str:
        """dvc commit (and push) the dvc.yaml stage matching ``stage``; returns a line for the artifact."""
        if self.dvc == "off":
            return "Not versioned (dvc='off')."
        name = pipeline_spec.stage_name(self.dvc_stages, stage, item)
        if name is None:
            _logger().warning("dvc.yaml has no stage %r: its outputs are not versioned", stage)
            return f"Not versioned: dvc.yaml has no stage {stage!r}."
        dvc_commit_task(name, push=self.dvc == "push")
        return f"Versioned by DVC: `dvc commit {name}`{' + `dvc push`' if self.dvc == 'push' else ''} (see dvc.lock)."

    def run_cached(self, task_fn, stage: str, key: str | None, *args, method: str | None = None):
        """Run a cached stage task, reusing a cached result only while its outputs are intact."""
        outputs = cache.stage_outputs(self.cfg, stage, method)
        refresh = self.refresh_cache or not cache.is_fresh(key, outputs)
        result = task_fn.with_options(refresh_cache=refresh)(self.cfg, *args, content_key=key)
        cache.write_stamp(key, outputs)
        return result


def _artifact(stage: str, summary: dict, note: str, *suffix: str) -> None:
    create_markdown_artifact(stage_markdown(stage, summary, dvc_note=note), key=artifact_key("avssl", stage, *suffix),
                             description=f"avssl {stage} {' '.join(suffix)}".strip())


# -- tasks -----------------------------------------------------------------------------------------------

@task(name="dvc-commit", **UNCACHED)
def dvc_commit_task(name: str, push: bool = False) -> str:
    return versioning.dvc_commit(".", name, push=push)


@task(name="dvc-add", **UNCACHED)
def dvc_add_task(target: str, push: bool = False) -> str:
    return versioning.dvc_add(".", target, push=push)


# Acquire always runs, as in dvc.yaml: sources outside the project change without anyone seeing it, and
# its output (the manifest's sha256 column) is what keys the later stages' caches.
@task(name="acquire", **UNCACHED)
def acquire_task(cfg: Config) -> dict:
    from avssl_core.stages.acquire import run_acquire

    return run_acquire(cfg)


@task(name="validate", **CACHED)
def validate_task(cfg: Config, content_key: str | None = None) -> dict:
    from avssl_core.stages.validate import run_validate

    return run_validate(cfg)


@task(name="segment", **CACHED)
def segment_task(cfg: Config, content_key: str | None = None) -> dict:
    from avssl_core.stages.segment import run_segment

    return run_segment(cfg)


@task(name="pretrain", task_run_name="pretrain-{method}", **CACHED)
def pretrain_task(cfg: Config, method: str, preset: str, content_key: str | None = None) -> dict:
    from avssl_core.stages.pretrain import run_pretrain

    return run_pretrain(cfg, method, preset)


@task(name="pretrain-torchrun", task_run_name="pretrain-{method}-torchrun", **CACHED)
def pretrain_torchrun_task(cfg: Config, method: str, preset: str, launch: TorchrunLaunch, cli_args: list[str],
                           content_key: str | None = None) -> dict:
    """``avssl <cli_args>`` (an ``avssl pretrain``) in every process of a torchrun launch. The node that ran
    global rank 0 returns the metrics that rank wrote (what run_pretrain returns in one process); another
    node says which ranks it ran."""
    result = run_torchrun(launch, cli_args)
    if launch.nnodes > 1 and not result.has_rank0:
        return {"method": method, "preset": preset, "ranks_here": sorted(result.ranks_here),
                "note": "global rank 0 ran on another node: the flow run there holds the metrics and versions them"}
    metrics_path = Path(cfg.paths.metrics_dir) / f"pretrain_{method}.json"
    try:
        return json.loads(metrics_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TorchrunError(f"torchrun finished, but rank 0 left no readable {metrics_path}: {exc}") from exc


@task(name="evaluate", task_run_name="evaluate-{method}", **CACHED)
def evaluate_task(cfg: Config, method: str, content_key: str | None = None) -> dict:
    from avssl_core.stages.evaluate import run_evaluate

    return run_evaluate(cfg, method)


@task(name="report", **UNCACHED)
def report_task(cfg: Config) -> dict:
    from avssl_core.stages.report import run_report

    return run_report(cfg)


# An Optuna study resumes from its own storage, so a Prefect cache would only hide new trials.
@task(name="ablate", task_run_name="ablate-{study}", **UNCACHED)
def ablate_task(cfg: Config, study: str) -> dict:
    from avssl_core.stages.ablate import run_ablate

    return run_ablate(cfg, study)


# -- steps shared by the flows ------------------------------------------------------------------------------

def run_acquire(setup: FlowSetup) -> dict:
    acquired = acquire_task(setup.cfg)
    _artifact("acquire", acquired, setup.version("acquire"))
    return acquired


def run_data(setup: FlowSetup, acquired: dict | None = None) -> dict:
    """acquire (unless ``acquired`` is its summary from earlier in the flow), validate, segment."""
    cfg = setup.cfg
    acquired = acquired if acquired is not None else run_acquire(setup)
    validated = setup.run_cached(validate_task, "validate", cache.validate_key(cfg))
    _artifact("validate", validated, setup.version("validate"))
    segmented = setup.run_cached(segment_task, "segment", cache.segment_key(cfg))
    _artifact("segment", segmented, setup.version("segment"))
    return {"acquire": acquired, "validate": validated, "segment": segmented}


def run_pretrain_method(setup: FlowSetup, method: str, preset: str | None,
                        launch: TorchrunLaunch | None = None) -> dict:
    """Pretrain in this process, or, when ``launch`` asks for several processes, under torchrun."""
    preset = preset or setup.cfg.pretrain.preset
    key = cache.pretrain_key(setup.cfg, method, preset)
    if launch is None or not launch.multi_process:
        summary = setup.run_cached(pretrain_task, "pretrain", key, method, preset, method=method)
    elif launch.nnodes == 1:
        summary = setup.run_cached(pretrain_torchrun_task, "pretrain", key, method, preset, launch,
                                   setup.cli_args("pretrain", "--method", method, "--preset", preset), method=method)
    else:
        # Never from the cache: every node must join the rendezvous, or the others wait for it in vain.
        summary = pretrain_torchrun_task.with_options(refresh_cache=True)(
            setup.cfg, method, preset, launch, setup.cli_args("pretrain", "--method", method, "--preset", preset))
        if "ranks_here" in summary:  # rank 0 ran elsewhere: its outputs are not in this checkout
            _logger().info("pretrain %s: this node ran ranks %s; %s", method, summary["ranks_here"], summary["note"])
            return summary
    _artifact("pretrain", summary, setup.version("pretrain", method), method)
    return summary


def run_evaluate_method(setup: FlowSetup, method: str) -> dict:
    summary = setup.run_cached(evaluate_task, "evaluate", cache.evaluate_key(setup.cfg, method), method,
                               method=method)
    table = metrics_table({method: summary})
    if table:
        create_table_artifact(table, key=artifact_key("avssl", "metrics", method),
                              description=f"metrics/{method}.json")
    setup.version("evaluate", method)
    return summary


def publish_metrics_table(cfg: Config, methods: list[str], key: str = "avssl-metrics") -> list[dict]:
    """One table of every method's metrics: metrics/<m>.json where evaluate ran, else pretrain's."""
    by_method = {}
    for m in methods:
        for name in (f"{m}.json", f"pretrain_{m}.json"):
            path = Path(cfg.paths.metrics_dir) / name
            if path.is_file():
                by_method[m] = json.loads(path.read_text())
                break
    table = metrics_table(by_method)
    if table:
        create_table_artifact(table, key=key, description="metrics per method")
    return table
