"""The whole pipeline: data, pretraining of every method, evaluation and the report."""

from __future__ import annotations

from prefect import flow

from avssl_core import pipeline_spec
from avssl_core.orchestration.parameters import check_methods
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
                  refresh_cache: bool = False) -> dict:
    """Everything `dvc repro` runs: data stages, pretrain and evaluate per method (default:
    pretrain.methods), then the report."""
    setup = FlowSetup(params_file, overrides, dvc, list(pipeline_spec.dvc_stages(".")), refresh_cache)
    names = check_methods(methods) if methods is not None else check_methods(setup.cfg.pretrain.methods,
                                                                               "pretrain.methods")
    result: dict = {"data": run_data(setup)}
    result["pretrain"] = {m: run_pretrain_method(setup, m, preset) for m in names}
    result["evaluate"] = {m: run_evaluate_method(setup, m) for m in names}
    result["report"] = report_task(setup.cfg)
    setup.version("report")
    result["metrics_table"] = publish_metrics_table(setup.cfg, names)
    return result


if __name__ == "__main__":
    pipeline_flow()
