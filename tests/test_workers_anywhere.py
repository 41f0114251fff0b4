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
import requests
import yaml
from flow_project import TINY, fresh_project
from prefect_server import PREFECT, local_prefect_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # deploy + a whole tiny pipeline in 4 flow runs
POOL = "avssl-process"
METHODS = ["avc", "avts"]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t", "GIT_AUTHOR_EMAIL": "t@avssl.invalid",
           "GIT_COMMITTER_EMAIL": "t@avssl.invalid", "PATH": "/usr/bin:/bin"}


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _wait(url: str, run_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = requests.get(f"{url}/flow_runs/{run_id}", timeout=10).json()
        if run["state_type"] in TERMINAL:
            return run
        time.sleep(2)
    raise AssertionError(f"flow run {run_id} not finished after {timeout_s} s: {run['state_type']}")


def _logs(url: str, run_ids: list[str]) -> str:
    body = {"logs": {"flow_run_id": {"any_": run_ids}}, "limit": 200, "sort": "TIMESTAMP_ASC"}
    return "\n".join(r["message"] for r in requests.post(f"{url}/logs/filter", json=body, timeout=10).json())


def _children(url: str, parent: dict) -> list[dict]:
    """The pretrain flow runs the pipeline started (run_deployment as a subflow of its tasks)."""
    dep = requests.get(f"{url}/deployments/name/avssl-pretrain/pretrain", timeout=10).json()
    body = {"deployments": {"id": {"any_": [dep["id"]]}}, "limit": 50}
    runs = requests.post(f"{url}/flow_runs/filter", json=body, timeout=10).json()
    return [r for r in runs if r["parameters"].get("lock_ref", "").endswith(parent["id"])]


def _handoff_records(url: str, run_id: str) -> list[dict]:
    body = {"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"like_": "avssl-handoff"}}, "limit": 20}
    arts = requests.post(f"{url}/artifacts/filter", json=body, timeout=10).json()
    return [dict(line.strip("| ").replace("`", "").split(" | ") for line in a["data"].splitlines()
                 if line.startswith("| ") and "---" not in line and line.strip() != "| | |") for a in arts]


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory):
    server = local_prefect_server()
    root = tmp_path_factory.mktemp("anywhere")
    origin, dvc_remote = root / "origin.git", root / "dvc-remote"
    _run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], root)
    project = fresh_project(root / "dev", params_update={**TINY, "pretrain": {**TINY["pretrain"], "methods": METHODS}})
    python = [sys.executable, "-m"]
    _run([*python, "dvc", "remote", "modify", "local", "url", str(dvc_remote)], project)
    _run(["git", "remote", "add", "origin", str(origin)], project)
    _run(["git", "commit", "-q", "-am", "DVC remote for the test"], project, GIT_ENV)
    _run(["git", "push", "-q", "origin", "main"], project, GIT_ENV)
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    env = server.env(PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="1", PATH=path,
                     OMP_NUM_THREADS="1")
    _run([*PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite"], project, env)
    _run([*PREFECT, "--no-prompt", "deploy", "--all"], project, env)
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
    for worker, log in workers:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def test_two_machines_run_the_pipeline_with_pretraining_fanned_out(two_machines):
    server, root, origin = two_machines["server"], two_machines["root"], two_machines["origin"]
    started = time.perf_counter()
    out = _run([*PREFECT, "deployment", "run", "avssl-pipeline/pipeline", "--params",
                json.dumps({"dvc": "push", "handoff_git": True})], two_machines["project"], two_machines["env"])
    run_id = next(w for w in out.split() if len(w) == 36 and w.count("-") == 4)
    run = _wait(server.url, run_id, timeout_s=1300)
    wall_s = time.perf_counter() - started
    children = _children(server.url, run)
    assert run["state_type"] == "COMPLETED", _logs(server.url, [run_id, *(c["id"] for c in children)])[-6000:]

    # each method pretrained in its own flow run, the two at once, on the two machines
    assert sorted(c["parameters"]["method"] for c in children) == METHODS
    assert all(c["state_type"] == "COMPLETED" for c in children)
    spans = [(_when(c["start_time"]), _when(c["end_time"])) for c in children]
    overlap_s = min(end for _, end in spans) - max(start for start, _ in spans)
    assert overlap_s > 0, spans
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
          f"runs {durations}, overlap {overlap_s:.1f} s; machines {machines}")
