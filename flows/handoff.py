"""The steps of a flow that runs in a worker's own clone and hands its work on through the git and DVC
remotes (avssl_core/orchestration/handoff.py says how): start from a run branch, pull the stage's inputs,
take a fanned-out stage's results back, publish the run's dvc.lock on its own branch."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

import avssl_core
from avssl_core.errors import ConfigError
from avssl_core.orchestration import handoff, versioning
from avssl_core.orchestration.artifacts import artifact_key
from flows.tasks import UNCACHED


def check(dvc: str, what: str) -> None:
    """Before any work: a hand-off needs the outputs on the DVC remote and a git remote to push to."""
    if dvc != "push":
        raise ConfigError(f"parameter {what}: the next worker reads the outputs from the DVC remote, so it "
                          f"needs dvc='push' (got dvc={dvc!r})")
    handoff.check_remote(".")


@task(name="start-from", **UNCACHED)
def start_from(ref: str) -> str:
    """Check out the run branch (or commit) ``ref`` of origin: its dvc.lock records this run's inputs."""
    return handoff.start_from(".", ref)


@task(name="dvc-pull-inputs", task_run_name="dvc-pull-inputs-{stage}", **UNCACHED)
def pull_inputs(stage: str, item: str | None = None) -> list[str]:
    """``dvc pull`` exactly the outputs ``stage``'s dependencies name, nothing else."""
    targets = handoff.stage_inputs(".", stage, item)
    versioning.dvc_pull(".", targets)
    return targets


@task(name="take-stage", task_run_name="take-{name}", **UNCACHED)
def take_stage(ref: str, name: str) -> str:
    """dvc.lock's entry ``name`` from the run branch ``ref`` another worker pushed, and its outputs."""
    commit = handoff.take_stages(".", ref, [name])
    versioning.dvc_pull(".", [name])
    return commit


@task(name="publish-run", **UNCACHED)
def publish(what: str) -> dict[str, str]:
    """Commit this run's dvc.lock to avssl-runs/<flow run id> on origin; record it as an artifact."""
    run_id, run_name = str(flow_run.id), flow_run.name
    record = handoff.publish(".", handoff.run_branch(run_id), f"avssl {what}: flow run {run_name} ({run_id})")
    record["checkout"] = str(Path.cwd())
    record["code"] = str(Path(avssl_core.__file__).parent)  # the clone's own code, not an installed copy
    lines = ["# hand-off", "", f"{what}: the next stage starts from branch `{record['branch']}` of origin.", "",
             "| | |", "| --- | --- |", *(f"| {k} | `{v}` |" for k, v in record.items())]
    create_markdown_artifact("\n".join(lines) + "\n", key=artifact_key("avssl", "handoff", what),
                             description=f"avssl {what}: the commit and dvc.lock it produced")
    return record
