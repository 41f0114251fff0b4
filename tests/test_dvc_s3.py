"""A DVC remote on S3 (dvc-s3) against a real S3 API on loopback (moto's server): `dvc push` from one
clone, `dvc pull` in a `git clone` of it, byte-identical; the credentials come only from the environment
and appear in no config, no .dvc file, no git history and no log of the commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIGBUCKBUNNY
from flow_project import fresh_project
from planted_secrets import SECRETS, leaks, plant_secrets
from s3_loopback import REGION, s3_server, stored_bytes

BUCKET = "avssl-dvc-test"
PREFIX = "team/dvcstore"


def _env(home: Path) -> dict:
    env = dict(os.environ)
    env["HOME"] = str(home)  # no user's DVC or AWS configuration takes part
    env["AWS_CONFIG_FILE"] = str(home / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "no-aws-credentials")
    env["AWS_DEFAULT_REGION"] = REGION
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "avssl test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@avssl.invalid"
    return env


def _run(cmd: list[str], cwd: Path, env: dict, logs: dict[str, str]) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    logs[f"log of `{' '.join(cmd[2:] if cmd[0] == sys.executable else cmd)}` in {cwd.name}"] = (
        proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"


def _tiny_data(folder: Path) -> dict[str, bytes]:
    """A few small files, one of them real encoded media, keyed by their path under ``folder``."""
    files = {"clip_head.mp4": BIGBUCKBUNNY.read_bytes()[:48_000], "labels.csv": b"video,label\na,0\nb,1\n",
             "nested/empty.bin": b"", "nested/bytes.bin": bytes(range(256)) * 16}
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return files


def _git(project: Path, env: dict, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project, env=env, capture_output=True, text=True,
                          check=True).stdout


def _project_texts(project: Path, env: dict) -> dict[str, str]:
    """What the test's commands wrote into the project: every file outside git's object store and DVC's
    cache that the first commit (the copied project, whose tests/planted_secrets.py holds the secrets by
    design) does not hold unchanged, and the git history after that commit as patches."""
    root = _git(project, env, "rev-list", "--max-parents=0", "HEAD").split()[0]
    changed = set(_git(project, env, "diff", "--name-only", root).split())
    copied = set(_git(project, env, "ls-tree", "-r", "--name-only", root).split()) - changed
    texts = {}
    for path in project.rglob("*"):
        rel = path.relative_to(project).as_posix()
        if path.is_file() and rel not in copied and not rel.startswith((".git/objects/", ".dvc/cache/")):
            texts[f"{project.name}/{rel}"] = path.read_bytes().decode("utf-8", "replace")
    texts[f"git history of {project.name}"] = _git(project, env, "log", "--all", "-p", "--format=%H %an %s",
                                                   f"^{root}")
    return texts


@pytest.mark.timeout(300)
def test_s3_remote_push_then_pull_in_a_clone(tmp_path, monkeypatch):
    assert BIGBUCKBUNNY.is_file(), f"missing {BIGBUCKBUNNY}; set AVSSL_SHARED_DIR"
    plant_secrets(monkeypatch)  # the AWS credentials DVC (and moto's client here) use are planted values
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    dvc = [sys.executable, "-m", "dvc"]
    logs: dict[str, str] = {}
    first = fresh_project(tmp_path / "first")
    files = _tiny_data(first / "data" / "tiny")
    with s3_server(BUCKET) as endpoint:
        _run([*dvc, "remote", "add", "-d", "s3", f"s3://{BUCKET}/{PREFIX}"], first, env, logs)
        _run([*dvc, "remote", "modify", "s3", "endpointurl", endpoint], first, env, logs)
        _run([*dvc, "add", "data/tiny"], first, env, logs)
        _run(["git", "add", "-A"], first, env, logs)
        _run(["git", "commit", "-q", "-m", "track data/tiny on the S3 remote"], first, env, logs)
        _run([*dvc, "push", "-v"], first, env, logs)
        objects, size = stored_bytes(endpoint, BUCKET, PREFIX)
        # Each file is one object (the empty one too), plus the folder's listing (.dir).
        assert objects == len(files) + 1, f"{objects} objects under s3://{BUCKET}/{PREFIX}"
        assert size > sum(len(data) for data in files.values())

        second = tmp_path / "second"
        _run(["git", "clone", "-q", str(first), str(second)], tmp_path, env, logs)
        assert not (second / "data" / "tiny").exists()
        # The target names the tracked data: a bare `dvc pull` would also try the pipeline outputs dvc.yaml
        # declares, which no `dvc repro` made in this project.
        _run([*dvc, "pull", "-v", "data/tiny.dvc"], second, env, logs)

    for rel, data in files.items():
        pulled = second / "data" / "tiny" / rel
        assert pulled.read_bytes() == data, f"{pulled} differs from what was pushed"
    assert sorted(p.relative_to(second / "data" / "tiny").as_posix()
                  for p in (second / "data" / "tiny").rglob("*") if p.is_file()) == sorted(files)
    assert f"s3://{BUCKET}/{PREFIX}" in (second / ".dvc" / "config").read_text()
    texts = {**logs, **_project_texts(first, env), **_project_texts(second, env)}
    assert not leaks(texts)
    # The search looked where the secrets would be: the configs and the push/pull logs were read.
    assert {"first/.dvc/config", "second/.dvc/config", "first/data/tiny.dvc"} <= texts.keys()
    assert "track data/tiny" in texts["git history of second"]
    assert "files/md5" in texts["log of `dvc push -v` in first"]  # DVC's debug log of the upload was read
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == SECRETS["AWS_SECRET_ACCESS_KEY"]  # the planted one was used
