"""The pretrain flow: one method on the current clips, versioned as dvc.yaml's pretrain@<method>.

With ``nproc_per_node`` * ``nnodes`` > 1 the flow launches torchrun, which runs ``avssl pretrain`` (the
stage the CLI and dvc.yaml run) in every process (avssl_core/orchestration/torchrun.py). Several nodes:
start one run of this flow on each, with the same ``nnodes``, ``rdzv_endpoint`` and ``rdzv_id``; the run
on the node that gets global rank 0 versions the result.
"""

from __future__ import annotations

from prefect import flow

from avssl_core.orchestration.parameters import check_method
from avssl_core.orchestration.torchrun import check_launch
from flows import handoff
from flows.params import MethodName
from flows.run_logging import fail_on_judged_errors
from flows.tasks import DvcMode, FlowSetup, Preset, run_pretrain_method


def _gpus_visible(device: str) -> int | None:
    """The GPUs each node's processes would train on (None: the CPU), as choose_device decides."""
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return None
    return torch.cuda.device_count()


@flow(name="avssl-pretrain", flow_run_name="pretrain-{method}", log_prints=True)
@fail_on_judged_errors
def pretrain_flow(method: MethodName = "avc", preset: Preset | None = None, params_file: str = "params.yaml",
                  overrides: list[str] | None = None, dvc: DvcMode = "commit", refresh_cache: bool = False,
                  nproc_per_node: int = 1, nnodes: int = 1, rdzv_endpoint: str | None = None,
                  rdzv_id: str | None = None, lock_ref: str | None = None) -> dict:
    """Pretrain ``method`` with ``preset`` (default: pretrain.preset) on the clips in paths.clips_dir, in
    ``nproc_per_node`` processes (one per GPU) on each of ``nnodes`` machines; several machines meet at
    the c10d rendezvous ``rdzv_endpoint`` (host:port) under the job id ``rdzv_id``.
    ``lock_ref``: a run branch of the git remote to start from; the clips are pulled from the DVC remote and
    this run's dvc.lock is pushed to its own run branch (the pipeline's fan-out passes it)."""
    check_method(method)
    if lock_ref is not None:
        handoff.check(dvc, "lock_ref")
        handoff.start_from(lock_ref)
    setup = FlowSetup(params_file, overrides, dvc, ["pretrain"], refresh_cache)
    launch = check_launch(nproc_per_node, nnodes, rdzv_endpoint, rdzv_id,
                          gpus_visible=_gpus_visible(setup.cfg.pretrain.train.device))
    if lock_ref is not None:
        handoff.pull_inputs("pretrain", method)
    summary = run_pretrain_method(setup, method, preset, launch)
    if lock_ref is not None:
        handoff.publish(f"pretrain {method}")
    return summary


if __name__ == "__main__":
    pretrain_flow()
