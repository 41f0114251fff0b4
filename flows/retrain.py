"""The retrain flow: when the source data changed, rerun the pipeline for one method and promote its new
model only if it beats the current best under the same protocol. Every comparison is recorded in
<retrain.best_dir>/decisions.jsonl and as a Markdown artifact; <best_dir> is versioned by DVC
(models/best.dvc)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from avssl_core.errors import AvsslError
from avssl_core.orchestration import promotion
from avssl_core.orchestration.artifacts import artifact_key
from avssl_core.orchestration.fingerprints import file_sha256
from avssl_core.orchestration.incumbent import incumbent_reading
from avssl_core.orchestration.parameters import check_method, flow_config
from flows.params import MethodName
from flows.run_logging import fail_on_judged_errors
from flows.tasks import (
    DvcMode,
    FlowSetup,
    Preset,
    dvc_add_task,
    run_acquire,
    run_data,
    run_evaluate_method,
    run_pretrain_method,
)


def candidate_reading(setup: FlowSetup, method: str) -> promotion.Reading:
    """The new model's metric: retrain.metric, from the evaluate stage."""
    cfg = setup.cfg
    metrics_dir = Path(cfg.paths.metrics_dir)
    try:
        run_evaluate_method(setup, method)
    except Exception as exc:
        return promotion.Reading(None, cfg.retrain.metric, str(metrics_dir / f"{method}.json"), None,
                                 error=f"evaluation failed: {type(exc).__name__}: {exc}")
    return promotion.read_metric(metrics_dir / f"{method}.json", cfg.retrain.metric)


def run_name() -> str:
    """retrain-<method>: the ``method`` parameter or, when it is not given, retrain.method of the run's
    ``params_file`` and ``overrides`` (what the flow will retrain)."""
    params = flow_run.parameters
    method = params.get("method")
    if method is None:
        try:
            cfg, _ = flow_config(params.get("params_file") or "params.yaml", list(params.get("overrides") or []))
            method = cfg.retrain.method
        except AvsslError:
            method = "unresolved"  # the run fails at start with the message naming the parameter
    return f"retrain-{method}"


@flow(name="avssl-retrain", flow_run_name=run_name, log_prints=True)
@fail_on_judged_errors
def retrain_flow(method: MethodName | None = None, preset: Preset | None = None, force: bool | None = None,
                 params_file: str = "params.yaml", overrides: list[str] | None = None, dvc: DvcMode = "commit",
                 refresh_cache: bool = False) -> dict:
    """Retrain ``method`` (default: retrain.method) when the data changed (or ``force``), then promote or not."""
    setup = FlowSetup(params_file, overrides, dvc, ["acquire", "validate", "segment", "pretrain", "evaluate"],
                      refresh_cache)
    cfg = setup.cfg
    name = check_method(method or cfg.retrain.method, "method" if method else "retrain.method")
    force = cfg.retrain.force if force is None else force

    acquired = run_acquire(setup)
    fingerprint = acquired["source_fingerprint"]
    previous = promotion.last_fingerprint(cfg, name)
    if previous == fingerprint and not force:
        note = (f"# Retrain {name}: no new data\n\nThe source fingerprint `{fingerprint[:16]}` is the one the last "
                "retrain compared on; nothing was retrained. Pass force=true to retrain anyway.\n")
        create_markdown_artifact(note, key=artifact_key("avssl", "retrain", name), description="retrain decision")
        return {"retrained": False, "reason": "no new data", "data_fingerprint": fingerprint}

    run_data(setup, acquired)
    pretrained = run_pretrain_method(setup, name, preset)

    candidate = candidate_reading(setup, name)
    best = promotion.current_best(cfg, name)
    incumbent = None
    if best is not None and candidate.value is not None:
        from avssl_core.stages.evaluate import run_evaluate

        incumbent = incumbent_reading(cfg, name, promotion.best_dir(cfg, name) / "model.pt", candidate,
                                      evaluate=run_evaluate)
    promote, reason = promotion.decide(candidate, incumbent, cfg.retrain.direction, cfg.retrain.min_improvement)
    if best is not None and candidate.value is None:
        reason += f" (current best recorded {best.get('metric')} = {best.get('value')})"
    decision = promotion.Decision(
        method=name, promoted=promote, reason=reason, metric=candidate.metric, direction=cfg.retrain.direction,
        min_improvement=cfg.retrain.min_improvement, candidate=candidate.value,
        incumbent=None if incumbent is None else incumbent.value,
        protocol=candidate.protocol, data_fingerprint=fingerprint, lakefs_commit=acquired.get("lakefs_commit", ""),
        candidate_model_sha256=file_sha256(pretrained["model"]),
        extra={"flow_run": flow_run.get_id(), "metrics_file": candidate.metrics_file,
               "incumbent_recorded": None if best is None else best.get("value"),
               "incumbent_error": "" if incumbent is None else incumbent.error},
    )
    if promote:
        promotion.promote(cfg, decision, pretrained["model"], candidate.metrics_file)
    promotion.record_decision(cfg, decision)
    if setup.dvc != "off":
        dvc_add_task(cfg.retrain.best_dir, push=setup.dvc == "push")
    create_markdown_artifact(promotion.decision_markdown(decision), key=artifact_key("avssl", "retrain", name),
                             description="retrain decision")
    if candidate.value is None:
        raise RuntimeError(f"retrain {name}: {reason}")  # the run shows as failed; the decision is on record
    return {"retrained": True, "promoted": promote, "reason": reason, "candidate": candidate.value,
            "incumbent": decision.incumbent, "data_fingerprint": fingerprint}


if __name__ == "__main__":
    retrain_flow()
