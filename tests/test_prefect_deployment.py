"""The README's Prefect path against a real local server: work pool, worker, `prefect deploy --all` from
prefect.yaml, `prefect deployment run`, and the run reaching COMPLETED; bad parameters fail at once; a
schedule fires (the server's scheduler creates the run, a worker completes it); what `--watch` and the
run's logs show."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flow_project import fresh_project, push, push_to_new_origin
from prefect_server import PREFECT, TERMINAL, api, local_prefect_server, stop_workers, wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # server start, deploy and one tiny data run: about 1-3 minutes here
POOL = "avssl-process"


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


def _log_records(url: str, run_id: str) -> list[dict]:
    body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200, "sort": "TIMESTAMP_ASC"}
    return api(url, "/logs/filter", body)


def _logs(url: str, run_id: str) -> str:
    return "\n".join(entry["message"] for entry in _log_records(url, run_id))


def _final_logs(url: str, run_id: str, timeout_s: float = 30.0) -> list[dict]:
    """The run's log records once the engine's last lines arrived: logs are sent in batches every 2 s, so
    they can trail the state; wait for the final-state line, then one batch interval more."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and "Finished in state" not in _logs(url, run_id):
        time.sleep(1)
    time.sleep(3)
    return _log_records(url, run_id)


def _deployment_runs(url: str, flow_name: str, deployment: str) -> tuple[dict, list[dict]]:
    dep = api(url, f"/deployments/name/{flow_name}/{deployment}")
    body = {"deployments": {"id": {"any_": [dep["id"]]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 50}
    return dep, api(url, "/flow_runs/filter", body)




@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    timings: dict[str, float] = {}
    started = time.perf_counter()
    server = local_prefect_server()
    timings["server_start_s"] = server.started_s if server.started_s else time.perf_counter() - started
    project = fresh_project(tmp_path_factory.mktemp("deploy-project"), params_update={})
    push_to_new_origin(project, project.parent / "origin.git")  # the deployments' runs clone it
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
    stop_workers([(worker, log)])


def test_deployed_data_flow_completes_on_a_tiny_world(deployed, tmp_path):
    server, project, env = deployed["server"], deployed["project"], deployed["env"]
    world = tmp_path / "world"
    overrides = [f"paths.{key}={world / key}" for key in ("raw_dir", "acquired_dir", "validated_dir", "clips_dir",
                                                           "metrics_dir")]
    overrides += ["synth.num_videos=2", "synth.duration_s=4.0", "synth.width=64", "synth.height=64",
                  "synth.workers=1", "synth.split_fractions={train: 1}", "acquire.workers=1", "validate.workers=1", "segment.workers=1",
                  "segment.clip_seconds=2.0", "segment.short_side=64",
                  "pretrain.val_split=train", "evaluate.split=train"]  # 2 videos: all in train
    t = time.perf_counter()
    proc = _run_deployment("avssl-data/data", {"overrides": overrides, "dvc": "off"}, project, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = wait_for_run(server.url, _flow_run_id(proc.stdout), timeout_s=600)
    run_s = time.perf_counter() - t
    assert run["state_type"] == "COMPLETED", _logs(server.url, run["id"])
    assert (world / "clips_dir" / "index.csv").is_file()
    assert not (project / "data" / "clips").exists()  # the overrides, not params.yaml, decided where
    # the stages' own INFO lines (loggers under avssl_core) are in the run's logs on the server
    logs = "\n".join(r["message"] for r in _final_logs(server.url, run["id"]))
    assert re.search(r"acquired 2 files into \S+manifest\.csv", logs), logs
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
    run = wait_for_run(server.url, _flow_run_id(proc.stdout), timeout_s=300)
    assert run["state_type"] == "FAILED"
    assert "parameter overrides: override 'segment.crf'" in run["state"]["message"]
    assert not world.exists()  # nothing ran: acquire would have created raw_dir
    print(f"malformed override: FAILED {time.perf_counter() - t:.1f} s after `prefect deployment run`")


TICK = """from prefect import flow


@flow(name="avssl-tick")
def tick() -> str:
    print("tick")
    return "tick"
"""


def test_a_schedule_fires_and_a_worker_completes_the_run(deployed):
    """Deploy with a 10 s interval; the SERVER's scheduler (not `deployment run`) creates the runs and a
    process worker runs the first one to COMPLETED. With SQLAlchemy 2.1 the scheduler created none."""
    server, project, env = deployed["server"], deployed["project"], deployed["env"]
    (project / "tick_flow.py").write_text(TICK)
    push(project, "tick flow")  # its runs clone the deployed commit
    pool = "avssl-schedule"  # its own pool and a worker that runs one at a time: runs pile up every 10 s
    _prefect(["work-pool", "create", pool, "--type", "process", "--overwrite"], project, env)
    started = time.perf_counter()
    _prefect(["--no-prompt", "deploy", "tick_flow.py:tick", "--name", "every-10s", "--pool", pool,
              "--interval", "10"], project, env)
    log = open(project / "schedule-worker.log", "w")
    worker = subprocess.Popen([*PREFECT, "worker", "start", "--pool", pool, "--type", "process", "--limit", "1"],
                              cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, first = time.monotonic() + 240, None
        while time.monotonic() < deadline and first is None:
            deployment, runs = _deployment_runs(server.url, "avssl-tick", "every-10s")
            first = next((r for r in runs if r["state_type"] == "COMPLETED"), None)
            if first is None:
                failed = [r for r in runs if r["state_type"] in TERMINAL]
                assert not failed, _logs(server.url, failed[0]["id"])
                time.sleep(1)
        deploy_to_completed_s = time.perf_counter() - started
        server_log = server.log.read_text()
        assert first is not None, (f"no scheduled run completed within 240 s; runs: "
                                   f"{[(r['state_type'], r['auto_scheduled']) for r in runs]}\n{server_log[-3000:]}")
    finally:
        _prefect(["deployment", "delete", "avssl-tick/every-10s"], project, env, check=False)
        stop_workers([(worker, log)])
    # created by the server's scheduler: auto-scheduled, with the scheduler's idempotency key
    assert first["auto_scheduled"], first
    assert (first["idempotency_key"] or "").startswith(f"scheduled {deployment['id']}"), first
    assert "Can't evaluate bulk DML statement" not in server_log
    print(f"schedule: `prefect deploy` (10 s interval) to the first scheduled run COMPLETED: "
          f"{deploy_to_completed_s:.1f} s")


def test_the_nightly_deployment_gets_scheduled_runs(deployed):
    """prefect.yaml's nightly retrain (cron 03:00 UTC): the scheduler creates its upcoming runs."""
    server = deployed["server"]
    deadline, runs = time.monotonic() + 60, []
    while time.monotonic() < deadline and not runs:
        _, runs = _deployment_runs(server.url, "avssl-retrain", "nightly")
        runs = [r for r in runs if r["state_type"] == "SCHEDULED" and r["auto_scheduled"]]
        time.sleep(1)
    assert runs, f"the scheduler created no run of avssl-retrain/nightly:\n{server.log.read_text()[-3000:]}"
    starts = [r["expected_start_time"] for r in runs]
    assert all(re.search(r"T03:00:00(\.0+)?(Z|\+00:00)$", t) for t in starts), starts
    print(f"nightly: {len(runs)} scheduled runs, the first at {starts[0]}")


def test_watch_shows_a_mistyped_override_and_the_logs_hold_it_once(deployed):
    """The issue's command: the terminal that started the run shows the clear message; the run's logs
    hold it on one error line, with no traceback."""
    server, project, env = deployed["server"], deployed["project"], deployed["env"]
    proc = _prefect(["deployment", "run", "avssl-pipeline/pipeline", "--watch", "--watch-timeout", "300",
                     "--params", json.dumps({"overrides": ["pretrain.trian.seed=1"]})], project, env, check=False)
    terminal = proc.stdout + proc.stderr
    message = "unknown key 'trian' (did you mean 'train'?)"
    assert proc.returncode == 1 and message in terminal, terminal
    run = api(server.url, f"/flow_runs/{_flow_run_id(proc.stdout)}")
    assert run["state_type"] == "FAILED" and message in run["state"]["message"], run["state"]
    records = _final_logs(server.url, run["id"])
    errors = [r["message"] for r in records if r["level"] >= 40]
    assert len([m for m in errors if message in m]) == 1, errors
    assert not any("Traceback" in r["message"] for r in records), _logs(server.url, run["id"])
