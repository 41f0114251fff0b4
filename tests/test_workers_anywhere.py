"""Workers anywhere, pretraining fanned out (issue 13, items 1-2), on loopback: the project's own
prefect.yaml deployed from a checkout whose origin is a bare git repository and whose DVC remote is a
local folder; two "machines" (two folders, each with its own TMPDIR and PREFECT_HOME: a process worker
runs each flow run in a fresh clone under its TMPDIR) share only the Prefect server and those two remotes.
Machine A runs the pipeline worker and a GPU-queue worker, machine B a GPU-queue worker; the pipeline
fans the two methods' pretraining out to the GPU queue, each worker taking one (--limit 1)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from flow_project import GIT_ENV, TINY, fresh_project, push_to_new_origin
from prefect_server import PREFECT, api, local_prefect_server, stop_workers, wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # deploy + a whole tiny pipeline in 4 flow runs: 10-20 min on 2 busy cores
POOL = "avssl-process"
METHODS = ["avc", "avts"]


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _start_run(params: dict, machines: dict) -> str:
    """`prefect deployment run` of the pipeline; returns the flow run's id. A 503 (the server's SQLite
    busy while two cores are shared by many test runs) is tried again, as a user would."""
    cmd = [*PREFECT, "deployment", "run", "avssl-pipeline/pipeline", "--params", json.dumps(params)]
    for _ in range(3):
        proc = subprocess.run(cmd, cwd=machines["project"], env=machines["env"], capture_output=True, text=True,
                              timeout=300)
        if proc.returncode == 0 or "503 Service Unavailable" not in proc.stdout + proc.stderr:
            break
        time.sleep(10)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return next(w for w in proc.stdout.split() if len(w) == 36 and w.count("-") == 4)


def _when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _logs(url: str, run_ids: list[str]) -> str:
    body = {"logs": {"flow_run_id": {"any_": run_ids}}, "limit": 200, "sort": "TIMESTAMP_ASC"}
    return "\n".join(r["message"] for r in api(url, "/logs/filter", body))


def _children(url: str, parent: dict) -> list[dict]:
    """The pretrain flow runs the pipeline started (run_deployment as a subflow of its tasks), found by
    the run branch it handed them."""
    dep = api(url, "/deployments/name/avssl-pretrain/pretrain")
    body = {"deployments": {"id": {"any_": [dep["id"]]}}, "limit": 50}
    runs = api(url, "/flow_runs/filter", body)
    return [r for r in runs if (r["parameters"].get("lock_ref") or "").endswith(parent["id"])]


def _handoff_records(url: str, run_id: str) -> list[dict]:
    body = {"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"like_": "avssl-handoff"}}, "limit": 20}
    arts = api(url, "/artifacts/filter", body)
    return [dict(line.strip("| ").replace("`", "").split(" | ") for line in a["data"].splitlines()
                 if line.startswith("| ") and "---" not in line and line.strip() != "| | |") for a in arts]


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory):
    server = local_prefect_server(timeout_s=300)  # first start of the session's server, cores shared
    root = tmp_path_factory.mktemp("anywhere")
    project = fresh_project(root / "dev", params_update={**TINY, "pretrain": {**TINY["pretrain"], "methods": METHODS}})
    _run([sys.executable, "-m", "dvc", "remote", "modify", "local", "url", str(root / "dvc-remote")], project)
    origin = push_to_new_origin(project, root / "origin.git")
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    env = server.env(PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="1", PATH=path,
                     OMP_NUM_THREADS="1")
    _run([*PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite"], project, env)
    started = time.perf_counter()
    _run([*PREFECT, "--no-prompt", "deploy", "--all"], project, env)
    print(f"prefect deploy --all (6 deployments, build steps): {time.perf_counter() - started:.1f} s")
    workers = []
    for machine, queue, extra in (("a", "default", []), ("a", "gpu", ["--limit", "1"]), ("b", "gpu", ["--limit", "1"])):
        folder = root / f"machine-{machine}"
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        worker_env = {**env, "TMPDIR": str(folder / "tmp"), "PREFECT_HOME": str(folder / "prefect-home"),
                      **GIT_ENV, "PATH": path}
        log = open(folder / f"worker-{queue}.log", "w")
        workers.append((subprocess.Popen([*PREFECT, "worker", "start", "--pool", POOL, "--type", "process",
                                          "--work-queue", queue, *extra], cwd=folder, env=worker_env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True), log))
    yield {"server": server, "root": root, "project": project, "origin": origin, "env": env}
    stop_workers(workers)


def test_two_machines_run_the_pipeline_with_pretraining_fanned_out(two_machines):
    """prefect.yaml's pipeline deployment as it is: dvc='push', handoff_git=true."""
    server, root, origin = two_machines["server"], two_machines["root"], two_machines["origin"]
    started = time.perf_counter()
    run_id = _start_run({}, two_machines)
    run = wait_for_run(server.url, run_id, timeout_s=1800, poll_s=2)
    wall_s = time.perf_counter() - started
    children = _children(server.url, run)
    assert run["state_type"] == "COMPLETED", _logs(server.url, [run_id, *(c["id"] for c in children)])[-6000:]

    # each method pretrained in its own flow run, both submitted at once, on the two machines. Not that the
    # two runs overlapped in time: a worker picks a run up at its next poll (seconds), and a tiny pretraining
    # can end before then, so overlap depends on timing; the fan-out is that neither run was waited for
    # before the other was created.
    assert sorted(c["parameters"]["method"] for c in children) == METHODS
    assert all(c["state_type"] == "COMPLETED" for c in children)
    spans = [(_when(c["start_time"]), _when(c["end_time"])) for c in children]
    created = [_when(c["created"]) for c in children]
    assert max(created) < min(end for _, end in spans), (created, spans)
    overlap_s = min(end for _, end in spans) - max(start for start, _ in spans)
    checkouts = {c["parameters"]["method"]: _handoff_records(server.url, c["id"])[0]["checkout"] for c in children}
    machines = {m: Path(p).relative_to(root).parts[0] for m, p in checkouts.items()}
    assert sorted(machines.values()) == ["machine-a", "machine-b"], checkouts
    code = {Path(r["code"]).parent for c in children for r in _handoff_records(server.url, c["id"])}
    assert all(str(c).startswith(str(root)) for c in code), code  # the clone's code ran, not this checkout's

    # what the pipeline published: one branch whose dvc.lock records every stage, from the remotes alone
    branch = f"avssl-runs/{run_id}"
    lock = yaml.safe_load(_run(["git", "--git-dir", str(origin), "show", f"{branch}:dvc.lock"], root))
    expected = {"acquire", "validate", "segment", "report", *(f"{s}@{m}" for s in ("pretrain", "evaluate")
                                                             for m in METHODS)}
    assert expected <= set(lock["stages"]), sorted(lock["stages"])
    third = root / "machine-c"
    _run(["git", "clone", "-q", "--branch", branch, str(origin), str(third)], root)
    _run([sys.executable, "-m", "dvc", "pull", *(f"pretrain@{m}" for m in METHODS)], third, timeout=600)
    for m in METHODS:
        assert (third / "data" / "pretrain" / m / "model.pt").stat().st_size > 0
        assert json.loads((third / "metrics" / f"{m}.json").read_text())
    durations = ", ".join(f"{c['parameters']['method']} {end - start:.1f} s"
                          for c, (start, end) in zip(children, spans, strict=True))
    print(f"two-worker pipeline on loopback: wall {wall_s:.1f} s (deployment run to COMPLETED); pretraining "
          f"runs {durations}, overlap {overlap_s:.1f} s (negative: one ended before the other started); machines {machines}")


def test_one_method_failing_keeps_the_others_and_the_run_names_it(two_machines, tmp_path):
    """Shared-filesystem mode (dvc='off', every path on a folder both machines see): avts's pretraining
    fails (an unknown hyper-parameter, which only its own run reads), avc's is evaluated and kept."""
    server = two_machines["server"]
    world = tmp_path / "world"
    paths = {"paths.raw_dir": "raw", "paths.acquired_dir": "acquired", "paths.validated_dir": "validated",
             "paths.clips_dir": "clips", "paths.metrics_dir": "metrics", "pretrain.out_dir": "pretrain",
             "evaluate.methods_dir": "pretrain", "evaluate.out_dir": "evaluate"}
    overrides = [f"{key}={world / name}" for key, name in paths.items()] + ["pretrain.hparams.avts.nope=1"]
    run_id = _start_run({"dvc": "off", "handoff_git": False, "overrides": overrides}, two_machines)
    run = wait_for_run(server.url, run_id, timeout_s=1000, poll_s=2)
    assert run["state_type"] == "FAILED", _logs(server.url, [run_id])[-4000:]
    message = run["state"]["message"]
    assert message.startswith("methods failed: avts (pretrain of avts: flow run ") and "FAILED" in message, message
    assert "finished and kept: avc;" in message, message
    assert json.loads((world / "metrics" / "avc.json").read_text())
    assert (world / "pretrain" / "avc" / "model.pt").is_file()
    assert not (world / "metrics" / "avts.json").exists()
