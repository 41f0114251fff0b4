"""Open the Prefect UI: flow runs, task retries, cached stages, artifacts (stage summaries, metric
tables, retrain decisions) and deployments of the avssl flows.

    python dashboards/prefect_ui.py            # prints the UI address of the server PREFECT_API_URL names
    python dashboards/prefect_ui.py --start    # starts `prefect server start` here and prints its address
                                               # (remote machine: ssh -L 4200:127.0.0.1:4200 host)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from avssl_core.orchestration.server import PrefectServerUnreachable, api_url, check_api_reachable  # noqa: E402


def ui_url(api: str) -> str:
    return api.rstrip("/").removesuffix("/api")


def start_server(host: str, port: int, timeout_s: float = 120.0) -> tuple[subprocess.Popen, str]:
    api = f"http://{host}:{port}/api"
    # log streaming on: `prefect deployment run ... --watch` then prints the run's logs (flows/README.md)
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED="true",
               PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED="true")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
                            env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"prefect server start exited with {proc.returncode}; is port {port} already in use?")
        try:
            if requests.get(f"{api}/health", timeout=2).ok:
                return proc, api
        except requests.RequestException:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"the Prefect server at {api} did not answer within {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", action="store_true", help="start a local server and keep it running")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args(argv)
    if args.start:
        proc, api = start_server(args.host, args.port)
        print(f"Prefect UI at {ui_url(api)}  (flows report there with: "
              f"prefect config set PREFECT_API_URL={api}; Ctrl-C stops the server)", flush=True)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            return proc.wait()
    api = api_url()
    if not api:
        print("No Prefect server configured (PREFECT_API_URL is unset). Start one with "
              "`python dashboards/prefect_ui.py --start` or `prefect server start`, then "
              "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`.", file=sys.stderr)
        return 1
    try:
        check_api_reachable(api)
    except PrefectServerUnreachable as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"Prefect UI at {ui_url(api)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
