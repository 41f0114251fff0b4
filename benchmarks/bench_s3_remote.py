"""`dvc push` to and `dvc pull` from an S3 remote, timed on a project's data: bytes and seconds each way.

The S3 API is moto's server (the test dependency of tests/test_dvc_s3.py) on loopback, so the figures
measure DVC and dvc-s3 (hashing, listing, transfers, checkout) with no network in between; a real
bucket adds the network's latency and bandwidth. The project must be a git repository whose DVC cache
holds the outputs of ``--targets`` (e.g. after `dvc repro segment`); this script commits its dvc.lock and
a remote named ``bench`` there, clones it with git into a temporary folder, pulls there, and checks the
pulled files are byte-identical to the project's.

    .venv/bin/python benchmarks/bench_s3_remote.py PROJECT --targets acquire validate segment
"""

from __future__ import annotations

import argparse
import filecmp
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import yaml
from moto.server import ThreadedMotoServer

BUCKET, PREFIX = "avssl-bench", "dvcstore"


def _run(cmd: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed in {cwd} ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--targets", nargs="+", required=True, help="stages (or .dvc files) to push and pull")
    args = parser.parse_args(argv)
    project = args.project.resolve()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "GIT_AUTHOR_NAME": "bench", "GIT_COMMITTER_NAME": "bench",
           "GIT_AUTHOR_EMAIL": "bench@avssl.invalid", "GIT_COMMITTER_EMAIL": "bench@avssl.invalid"}
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    dvc = [sys.executable, "-m", "dvc"]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request on stderr
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket=BUCKET)
        _run([*dvc, "remote", "add", "-f", "-d", "bench", f"s3://{BUCKET}/{PREFIX}"], project, env)
        _run([*dvc, "remote", "modify", "bench", "endpointurl", endpoint], project, env)
        _run(["git", "add", "-A"], project, env)
        _run(["git", "commit", "-q", "--allow-empty", "-m", "bench: S3 remote"], project, env)
        push_s = _run([*dvc, "push", *args.targets], project, env)
        objects = stored = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
            for item in page.get("Contents", []):
                objects, stored = objects + 1, stored + item["Size"]
        with tempfile.TemporaryDirectory(prefix="avssl-s3-bench-") as tmp:
            clone = Path(tmp) / "clone"
            _run(["git", "clone", "-q", str(project), str(clone)], Path(tmp), env)
            pull_s = _run([*dvc, "pull", *args.targets], clone, env)
            lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
            outs = [out["path"] for target in args.targets for out in lock[target].get("outs", [])]
            files, pulled, differing = 0, 0, []
            for out in outs:
                for path in ([clone / out] if (clone / out).is_file() else sorted((clone / out).rglob("*"))):
                    if path.is_file():
                        files, pulled = files + 1, pulled + path.stat().st_size
                        if not filecmp.cmp(path, project / path.relative_to(clone), shallow=False):
                            differing.append(str(path.relative_to(clone)))
    finally:
        server.stop()
    print(json.dumps({"targets": args.targets, "push_s": round(push_s, 1), "pushed_objects": objects,
                      "pushed_bytes": stored, "pull_s": round(pull_s, 1), "pulled_files": files,
                      "pulled_bytes": pulled, "differing_files": differing}, indent=1))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
