"""The ablate flow: one Optuna ablation study (avssl_core.stages.ablate.run_ablate)."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from avssl_core.errors import ConfigError
from avssl_core.orchestration.artifacts import artifact_key, stage_markdown
from flows.run_logging import fail_on_judged_errors
from flows.tasks import DvcMode, FlowSetup, ablate_task


@flow(name="avssl-ablate", flow_run_name="ablate-{study}", log_prints=True)
@fail_on_judged_errors
def ablate_flow(study: str, params_file: str = "params.yaml", overrides: list[str] | None = None,
                dvc: DvcMode = "commit") -> dict:
    """Run (or resume) the ablation ``study``."""
    if not study or not isinstance(study, str):
        raise ConfigError(f"parameter study: expected a study name, got {study!r}")
    setup = FlowSetup(params_file, overrides, dvc, ["ablate"])
    summary = ablate_task(setup.cfg, study)
    note = setup.version("ablate", study)
    create_markdown_artifact(stage_markdown("ablate", summary, dvc_note=note),
                             key=artifact_key("avssl", "ablate", study), description=f"ablation {study}")
    return summary


if __name__ == "__main__":
    import sys

    ablate_flow(sys.argv[1])
