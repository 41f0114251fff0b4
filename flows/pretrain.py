"""The pretrain flow: one method on the current clips, versioned as dvc.yaml's pretrain@<method>."""

from __future__ import annotations

from prefect import flow

from avssl_core.orchestration.parameters import check_method
from flows import handoff
from flows.params import MethodName
from flows.run_logging import fail_on_judged_errors
from flows.tasks import DvcMode, FlowSetup, Preset, run_pretrain_method


@flow(name="avssl-pretrain", flow_run_name="pretrain-{method}", log_prints=True)
@fail_on_judged_errors
def pretrain_flow(method: MethodName = "avc", preset: Preset | None = None, params_file: str = "params.yaml",
                  overrides: list[str] | None = None, dvc: DvcMode = "commit", refresh_cache: bool = False,
                  lock_ref: str | None = None) -> dict:
    """Pretrain ``method`` with ``preset`` (default: pretrain.preset) on the clips in paths.clips_dir.
    ``lock_ref``: a run branch of the git remote to start from; the clips are pulled from the DVC remote and
    this run's dvc.lock is pushed to its own run branch (the pipeline's fan-out passes it)."""
    check_method(method)
    if lock_ref is not None:
        handoff.check(dvc, "lock_ref")
        handoff.start_from(lock_ref)
    setup = FlowSetup(params_file, overrides, dvc, ["pretrain"], refresh_cache)
    if lock_ref is not None:
        handoff.pull_inputs("pretrain", method)
    summary = run_pretrain_method(setup, method, preset)
    if lock_ref is not None:
        handoff.publish(f"pretrain {method}")
    return summary


if __name__ == "__main__":
    pretrain_flow()
