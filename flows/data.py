"""The data flow: acquire -> validate -> segment, each versioned by DVC as it completes."""

from __future__ import annotations

from prefect import flow

from flows.run_logging import fail_on_judged_errors
from flows.tasks import DvcMode, FlowSetup, run_data

DATA_STAGES = ["acquire", "validate", "segment"]


@flow(name="avssl-data", log_prints=True)
@fail_on_judged_errors
def data_flow(params_file: str = "params.yaml", overrides: list[str] | None = None, dvc: DvcMode = "commit",
              refresh_cache: bool = False) -> dict:
    """Acquire, validate and segment the source videos.

    Args:
        params_file: parameters file, relative to the project root.
        overrides: ``section.key=value`` items, as `avssl --set` takes them.
        dvc: commit (record outputs in dvc.lock and the DVC cache), push (also to the remote), off.
        refresh_cache: run every stage even when a cached result with the same content key exists.
    """
    setup = FlowSetup(params_file, overrides, dvc, DATA_STAGES, refresh_cache)
    return run_data(setup)


if __name__ == "__main__":
    data_flow()
