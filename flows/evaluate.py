"""The evaluate flow: downstream evaluation of pretrained methods, and the report over all of them."""

from __future__ import annotations

from prefect import flow

from avssl_core.orchestration.parameters import check_methods
from flows.params import MethodName
from flows.run_logging import fail_on_judged_errors
from flows.tasks import (
    DvcMode,
    FlowSetup,
    publish_metrics_table,
    report_task,
    run_evaluate_method,
)


@flow(name="avssl-evaluate", log_prints=True)
@fail_on_judged_errors
def evaluate_flow(methods: list[MethodName] | None = None, report: bool = True, params_file: str = "params.yaml",
                  overrides: list[str] | None = None, dvc: DvcMode = "commit", refresh_cache: bool = False) -> dict:
    """Evaluate ``methods`` (default: pretrain.methods) and, with ``report``, rebuild the report."""
    setup = FlowSetup(params_file, overrides, dvc, ["evaluate", "report"] if report else ["evaluate"],
                      refresh_cache)
    names = check_methods(methods) if methods is not None else check_methods(setup.cfg.pretrain.methods,
                                                                               "pretrain.methods")
    results = {m: run_evaluate_method(setup, m) for m in names}
    publish_metrics_table(setup.cfg, names)
    if report:
        results["report"] = report_task(setup.cfg)
        setup.version("report")
    return results


if __name__ == "__main__":
    evaluate_flow()
