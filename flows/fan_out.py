"""The pipeline's pretraining fanned out: each method is its own flow run of the pretrain deployment, so
N workers of its work pool train N methods at once; each method's evaluation starts as soon as its own
pretraining ends, and one method failing leaves the others' results in place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment
from prefect.futures import as_completed

from avssl_core.orchestration.handoff import run_branch
from avssl_core.pipeline_spec import stage_name
from flows.handoff import take_stage
from flows.tasks import FlowSetup, _logger, run_evaluate_method


class StageRunFailed(RuntimeError):
    """A flow run the pipeline started did not complete; the message names it and its state."""


# No retries here: the pretrain flow retries its own transient failures, and a second flow run of a
# failed one would train again from the start.
@task(name="pretrain-on-deployment", task_run_name="pretrain-{method}-on-deployment", cache_policy=NO_CACHE,
      persist_result=False)
def pretrain_on_deployment(deployment: str, method: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Start the flow run and wait for it; returns what the pipeline needs to find its results."""
    run = run_deployment(deployment, parameters=parameters, timeout=None, poll_interval=2)
    state = run.state
    if state is None or not state.is_completed():
        kind = state.type.value if state else "without a state"
        message = state.message if state else ""
        raise StageRunFailed(f"pretrain of {method}: flow run {run.name} ({run.id}) of {deployment} ended "
                             f"{kind}: {message}")
    return {"flow_run_id": str(run.id), "flow_run_name": run.name}


def pretrain_and_evaluate(setup: FlowSetup, names: list[str], preset: str | None, deployment: str,
                          child_parameters: dict[str, Any], lock_ref: str | None) -> tuple[dict, dict, dict]:
    """Fan the methods' pretraining out on ``deployment``; evaluate each here as it finishes. With
    ``lock_ref`` (the pipeline's run branch) the runs start from it and hand their dvc.lock back through
    their own run branches. Returns (pretrain summaries, evaluate summaries, {method: why it failed})."""
    futures = {}
    for method in names:
        parameters = {**child_parameters, "method": method, "preset": preset}
        if lock_ref is not None:
            parameters["lock_ref"] = lock_ref
        futures[pretrain_on_deployment.submit(deployment, method, parameters)] = method
    pretrained: dict[str, dict] = {}
    evaluated: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for future in as_completed(list(futures)):
        method = futures[future]
        try:
            run = future.result()
            if lock_ref is not None:
                take_stage(run_branch(run["flow_run_id"]), _stage_name(setup, method))
            pretrained[method] = _pretrain_summary(setup, method, run)
            evaluated[method] = run_evaluate_method(setup, method)
        except Exception as exc:  # noqa: BLE001 - one method's failure must not stop the others
            _logger().error("%s: %s", method, exc)
            failed[method] = str(exc)
    return pretrained, evaluated, failed


def _stage_name(setup: FlowSetup, method: str) -> str:
    return stage_name(setup.dvc_stages, "pretrain", method) or f"pretrain@{method}"


def _pretrain_summary(setup: FlowSetup, method: str, run: dict) -> dict:
    """The stage's own summary, metrics/pretrain_<method>.json, as the flow run left it (on a shared
    filesystem, or taken back from its run branch), with the flow run that made it."""
    path = Path(setup.cfg.paths.metrics_dir) / f"pretrain_{method}.json"
    if not path.is_file():
        raise StageRunFailed(f"pretrain of {method}: flow run {run['flow_run_name']} completed but {path} is not "
                             "here: the run wrote it elsewhere (run it with dvc='push' and the hand-off, or "
                             "point paths.metrics_dir at a folder every worker shares)")
    return {**json.loads(path.read_text()), **run}
