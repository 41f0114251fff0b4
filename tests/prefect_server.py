"""One real local Prefect server (SQLite) per test process, shared by every test that needs one.

Started on first use as a subprocess with its own PREFECT_HOME in a temporary folder, stopped at exit.
The singleton lives in this module rather than in a fixture so that two test files asking for it in one
session still get the same server.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

PREFECT = [sys.executable, "-m", "prefect"]


@dataclass
class LocalPrefectServer:
    home: Path
    url: str  # the API URL, http://127.0.0.1:PORT/api
    process: subprocess.Popen
    log: Path
    started_s: float  # seconds from launch to a healthy API

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for prefect CLI calls, workers and flow runs that talk to this server."""
        env = dict(os.environ)
        env.update({
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "AVSSL_RETRY_DELAY_S": "0.1",
        })
        env.update(extra)
        return env

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.home, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` (or a child of it) listens on ``port``: the proof that a healthy answer on
    the port comes from our server, not from another one that took the port first."""
    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for process in processes:
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                   for c in process.net_connections(kind="tcp")):
                return True
        except psutil.NoSuchProcess:
            continue
    return False


_SERVER: LocalPrefectServer | None = None
_PORT_ATTEMPTS = 5


def local_prefect_server(timeout_s: float = 120.0) -> LocalPrefectServer:
    """The shared server, started on first use. A free port is only free until someone binds it (other
    test runs on the machine start servers too): a server that could not bind its port is started again
    on another one."""
    global _SERVER
    if _SERVER is not None and _SERVER.process.poll() is None:
        return _SERVER
    for _ in range(_PORT_ATTEMPTS):
        server = _start_server(_free_port(), timeout_s)
        if server is not None:
            atexit.register(server.stop)
            _SERVER = server
            return server
    raise RuntimeError(f"prefect server: the port was taken by another process {_PORT_ATTEMPTS} times in a row")


def _start_server(port: int, timeout_s: float) -> LocalPrefectServer | None:
    """A healthy server listening on ``port``, or None when another process holds the port."""
    home = Path(tempfile.mkdtemp(prefix="avssl-prefect-home-"))
    url = f"http://127.0.0.1:{port}/api"
    # Log streaming on (off by default): `prefect deployment run --watch` then prints the run's logs.
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false", PREFECT_API_URL=url, PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED="true",
               PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED="true")
    log = home / "server.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = LocalPrefectServer(home, url, process, log, 0.0)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text()
            server.stop()
            if "already in use" in text.lower():  # prefect's own check, or uvicorn's bind error
                return None
            raise RuntimeError(f"prefect server exited ({process.returncode}):\n{text[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).ok and _listens_on(process.pid, port):
                server.started_s = time.perf_counter() - started
                return server
        except requests.RequestException:
            pass
        time.sleep(0.5)
    text = log.read_text()[-3000:]
    server.stop()
    raise RuntimeError(f"prefect server not healthy after {timeout_s} s:\n{text}")


_API_TIMEOUT_S = 30.0  # one request's read timeout
_API_PATIENCE_S = 120.0  # how long a busy server may keep one question unanswered, retries included


def api(url: str, path: str, body: dict | None = None) -> Any:
    """The decoded answer of the server's REST API at ``url`` to GET ``path``, or to POST ``body`` there (the
    filters are POSTs that read). On this machine's two cores, shared by two test processes, their flow runs
    and the server's own scheduler, a SQLite-backed server has left a plain GET unanswered for over 10 s (a
    CI run failed on that): a timed-out or refused request is asked again until ``_API_PATIENCE_S`` is spent;
    an answer with an error status fails at once with its text."""
    deadline = time.monotonic() + _API_PATIENCE_S
    while True:
        try:
            if body is None:
                response = requests.get(f"{url}{path}", timeout=_API_TIMEOUT_S)
            else:
                response = requests.post(f"{url}{path}", json=body, timeout=_API_TIMEOUT_S)
        except (requests.Timeout, requests.ConnectionError) as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"prefect API {path}: no answer within {_API_PATIENCE_S:.0f} s: {error}") from error
            time.sleep(1)
            continue
        assert response.ok, f"prefect API {path}: {response.status_code} {response.text}"
        return response.json()


TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}  # flow run state types that no longer change


def wait_for_run(url: str, run_id: str, timeout_s: float, poll_s: float = 1.0) -> dict:
    """The flow run ``run_id`` once its state is terminal; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    run = api(url, f"/flow_runs/{run_id}")
    while run["state_type"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise AssertionError(f"flow run {run_id} not finished after {timeout_s} s: {run['state_type']}")
        time.sleep(poll_s)
        run = api(url, f"/flow_runs/{run_id}")
    return run


def run_log_records(url: str, run_id, timeout_s: float = 30.0) -> list[dict]:
    """The run's log records once its final-state line arrived (logs reach the server in batches, so they
    trail the state by up to a batch), or whatever arrived within ``timeout_s``."""
    body = {"logs": {"flow_run_id": {"any_": [str(run_id)]}}, "limit": 200, "sort": "TIMESTAMP_ASC"}
    deadline = time.monotonic() + timeout_s
    while True:
        records = api(url, "/logs/filter", body)
        if any("Finished in state" in r["message"] for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(1)


def client_settings(tmp_path_factory):
    """Generator for a module fixture: the session's local Prefect server, with this process's results and
    stamps in a temporary folder (``yield from client_settings(tmp_path_factory)``)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    server = local_prefect_server()
    home = tmp_path_factory.mktemp("prefect-client")
    with temporary_settings({PREFECT_API_URL: server.url, PREFECT_HOME: home,
                             PREFECT_LOCAL_STORAGE_PATH: home / "storage"}):
        yield server


def stop_workers(workers: list[tuple[subprocess.Popen, Any]], grace_s: float = 10.0) -> None:
    """Stop the workers a test started, and every process each of them started, by process id: SIGTERM to
    every worker at once, SIGKILL to whatever of their process trees is left after ``grace_s``; then close
    their logs. `prefect worker start` answers SIGTERM by sending SIGINT to its worker process, which, once
    it has run flows, took longer than 30 s to exit (three workers stopped one after another held a module's
    teardown for 90 s); nothing here needs a graceful shutdown, and its process must not outlive the test."""
    trees: list[psutil.Process] = []
    for worker, _ in workers:
        try:
            parent = psutil.Process(worker.pid)
            trees += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
        worker.terminate()
    _, alive = psutil.wait_procs(trees, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    for worker, log in workers:
        worker.wait(10)
        log.close()
