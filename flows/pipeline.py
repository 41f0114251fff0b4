"""The whole pipeline: data, pretraining of every method, evaluation and the report."""

from __future__ import annotations

from prefect import flow
from prefect.states import Failed

from avssl_core import pipeline_spec
from avssl_core.orchestration.parameters import check_methods
from flows import handoff
from flows.fan_out import pretrain_and_evaluate
from flows.params import MethodName
from flows.run_logging import fail_on_judged_errors
from flows.tasks import (
    DvcMode,
    FlowSetup,
    Preset,
    publish_metrics_table,
    report_task,
    run_data,
    run_evaluate_method,
    run_pretrain_method,
)


@flow(name="avssl-pipeline", log_prints=True)
@fail_on_judged_errors
def pipeline_flow(methods: list[MethodName] | None = None, preset: Preset | None = None,
                  params_file: str = "params.yaml", overrides: list[str] | None = None, dvc: DvcMode = "commit",
                  refresh_cache: bool = False, pretrain_deployment: str | None = None,
                  handoff_git: bool = False):
    """Everything `dvc repro` runs: data stages, pretrain and evaluate per method (default:
    pretrain.methods), then the report.

    ``pretrain_deployment`` (e.g. "avssl-pretrain/pretrain"): each method pretrains in its own flow run of
    that deployment, all at once; None: one after another in this process. ``handoff_git`` (needs
    dvc='push'): this run and those flow runs hand dvc.lock on through run branches of the git remote, so
    each may run in its own clone on its own machine."""
    setup = FlowSetup(params_file, overrides, dvc, list(pipeline_spec.dvc_stages(".")), refresh_cache)
    names = check_methods(methods) if methods is not None else check_methods(setup.cfg.pretrain.methods,
                                                                               "pretrain.methods")
    if handoff_git:
        handoff.check(dvc, "handoff_git")
    result: dict = {"data": run_data(setup)}
    failed: dict[str, str] = {}
    if pretrain_deployment is None:
        result["pretrain"] = {m: run_pretrain_method(setup, m, preset) for m in names}
        result["evaluate"] = {m: run_evaluate_method(setup, m) for m in names}
    else:
        lock_ref = handoff.publish("data")["branch"] if handoff_git else None
        child = {"params_file": params_file, "overrides": overrides, "dvc": dvc, "refresh_cache": refresh_cache}
        result["pretrain"], result["evaluate"], failed = pretrain_and_evaluate(
            setup, names, preset, pretrain_deployment, child, lock_ref)
    if failed:
        # The report is of every method; the finished methods' results are versioned and kept.
        done = sorted(result["evaluate"])
        publish_metrics_table(setup.cfg, done)
        if handoff_git:
            result["handoff"] = handoff.publish("pipeline")
        return Failed(message=f"methods failed: {', '.join(sorted(failed))} ({'; '.join(failed.values())}); "
                              f"finished and kept: {', '.join(done) or 'none'}; report not made", data=result)
    result["report"] = report_task(setup.cfg)
    setup.version("report")
    result["metrics_table"] = publish_metrics_table(setup.cfg, names)
    if handoff_git:
        result["handoff"] = handoff.publish("pipeline")
    return result


if __name__ == "__main__":
    pipeline_flow()
