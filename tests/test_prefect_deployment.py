"""The README's Prefect path against a real local server: work pool, worker, `prefect deploy --all` from
prefect.yaml, `prefect deployment run`, and the run reaching COMPLETED; bad parameters fail at once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from flow_project import fresh_project
from prefect_server import PREFECT, local_prefect_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # server start, deploy and one tiny data run: about 1-3 minutes here
POOL = "avssl-process"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _prefect(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*PREFECT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _run_deployment(name: str, params: dict, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return _prefect(["deployment", "run", name, "--params", json.dumps(params)], cwd, env, check=False)


def _flow_run_id(output: str) -> str:
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    assert match, output
    return match.group(1)


def _wait(url: str, run_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = requests.get(f"{url}/flow_runs/{run_id}", timeout=10).json()
        if run["state_type"] in TERMINAL:
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} not finished after {timeout_s} s: {run['state_type']}")


def _logs(url: str, run_id: str) -> str:
    body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}
    return "\n".join(entry["message"] for entry in requests.post(f"{url}/logs/filter", json=body, timeout=10).json())


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    timings: dict[str, float] = {}
    started = time.perf_counter()
    server = local_prefect_server()
    timings["server_start_s"] = server.started_s if server.started_s else time.perf_counter() - started
    project = fresh_project(tmp_path_factory.mktemp("deploy-project"), params_update={})
    env = server.env(PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="1",
                     PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin", OMP_NUM_THREADS="1")

    t = time.perf_counter()
    _prefect(["work-pool", "create", POOL, "--type", "process", "--overwrite"], project, env)
    out = _prefect(["--no-prompt", "deploy", "--all"], project, env).stdout
    timings["deploy_s"] = time.perf_counter() - t
    for name in ("avssl-data/data", "avssl-pipeline/pipeline", "avssl-retrain/nightly", "avssl-pretrain/pretrain"):
        assert name in out, out
    log = open(project / "worker.log", "w")
    worker = subprocess.Popen([*PREFECT, "worker", "start", "--pool", POOL, "--type", "process"], cwd=project,
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield {"server": server, "project": project, "env": env, "timings": timings, "started": started}
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
    log.close()


def test_deployed_data_flow_completes_on_a_tiny_world(deployed, tmp_path):
    server, project, env = deployed["server"], deployed["project"], deployed["env"]
    world = tmp_path / "world"
    overrides = [f"paths.{key}={world / key}" for key in ("raw_dir", "acquired_dir", "validated_dir", "clips_dir",
                                                           "metrics_dir")]
    overrides += ["synth.num_videos=2", "synth.duration_s=4.0", "synth.width=64", "synth.height=64",
                  "synth.workers=1", "acquire.workers=1", "validate.workers=1", "segment.workers=1",
                  "segment.clip_seconds=2.0", "segment.short_side=64",
                  "pretrain.val_split=train", "evaluate.split=train"]  # 2 videos: all in train
    t = time.perf_counter()
    proc = _run_deployment("avssl-data/data", {"overrides": overrides, "dvc": "off"}, project, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = _wait(server.url, _flow_run_id(proc.stdout), timeout_s=600)
    run_s = time.perf_counter() - t
    assert run["state_type"] == "COMPLETED", _logs(server.url, run["id"])
    assert (world / "clips_dir" / "index.csv").is_file()
    assert not (project / "data" / "clips").exists()  # the overrides, not params.yaml, decided where
    timings = {**deployed["timings"], "deployment_run_to_completed_s": run_s,
               "server_start_to_completed_s": time.perf_counter() - deployed["started"]}
    print("prefect deployment timings:", json.dumps({k: round(v, 1) for k, v in timings.items()}))


def test_unknown_method_is_refused_when_the_run_is_created(deployed):
    proc = _run_deployment("avssl-pretrain/pretrain", {"method": "nope"}, deployed["project"], deployed["env"])
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "method" in text and "nope" in text, text


def test_malformed_override_fails_at_flow_start_before_any_stage(deployed, tmp_path):
    server = deployed["server"]
    world = tmp_path / "world"
    t = time.perf_counter()
    proc = _run_deployment("avssl-data/data", {"overrides": [f"paths.raw_dir={world}", "segment.crf"], "dvc": "off"},
                           deployed["project"], deployed["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = _wait(server.url, _flow_run_id(proc.stdout), timeout_s=300)
    assert run["state_type"] == "FAILED"
    assert "parameter overrides: override 'segment.crf'" in run["state"]["message"]
    assert not world.exists()  # nothing ran: acquire would have created raw_dir
    print(f"malformed override: FAILED {time.perf_counter() - t:.1f} s after `prefect deployment run`")
