"""The pretrain flow: one method on the current clips, versioned as dvc.yaml's pretrain@<method>."""

from __future__ import annotations

from prefect import flow

from avssl_core.orchestration.parameters import check_method
from flows.params import MethodName
from flows.run_logging import fail_on_judged_errors
from flows.tasks import DvcMode, FlowSetup, Preset, run_pretrain_method


@flow(name="avssl-pretrain", flow_run_name="pretrain-{method}", log_prints=True)
@fail_on_judged_errors
def pretrain_flow(method: MethodName = "avc", preset: Preset | None = None, params_file: str = "params.yaml",
                  overrides: list[str] | None = None, dvc: DvcMode = "commit", refresh_cache: bool = False) -> dict:
    """Pretrain ``method`` with ``preset`` (default: pretrain.preset) on the clips in paths.clips_dir."""
    check_method(method)
    setup = FlowSetup(params_file, overrides, dvc, ["pretrain"], refresh_cache)
    return run_pretrain_method(setup, method, preset)


if __name__ == "__main__":
    pretrain_flow()
