"""A fresh copy of the project for flow tests: what `git clone` of this working tree gives, with tiny
parameters, so flows can run and `dvc commit` in it without touching /work/main."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from fresh_clone import copy_clone_files

REPO = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t", "GIT_AUTHOR_EMAIL": "t@avssl.invalid",
           "GIT_COMMITTER_EMAIL": "t@avssl.invalid", "PATH": "/usr/bin:/bin"}

TINY = {
    # The shapes world, every video in train: the flows' machinery under test, not params.yaml's world.
    "synth": {"world": "shapes", "num_videos": 4, "duration_s": 5.0, "width": 64, "height": 64, "workers": 1,
              "split_fractions": {"train": 1.0, "val": 0.0, "test": 0.0}},
    "segment": {"clip_seconds": 2.0, "short_side": 64, "workers": 1},
    "acquire": {"workers": 1},
    "validate": {"workers": 1},
    "pretrain": {"methods": ["avc"], "val_split": "train", "val_pairs": 8, "pairs_per_clip": 1,
                 "train": {"batch_size": 4, "epochs": 1, "max_steps": 2, "progress": False}},
    "evaluate": {"split": "train", "scratch": False, "tasks": ["pretext"], "batch_size": 8,
                 "pretext": {"protocols": ["easy"], "pairs": 8}},
}


def fresh_project(dest: Path, params_update: dict | None = None) -> Path:
    """What `git clone` of this working tree gives, without what the working tree's own runs left in it
    (tests/fresh_clone.py), with tiny parameters."""
    copy_clone_files(REPO, dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in (TINY if params_update is None else params_update).items():
        _merge(params.setdefault(section, {}), values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "fresh"]):
        subprocess.run(cmd, cwd=dest, check=True, env=GIT_ENV, capture_output=True)
    return dest


def push_to_new_origin(project: Path, origin: Path) -> Path:
    """Commit what changed in ``project`` and push it to ``origin``, a new bare repository: prefect.yaml's
    deployments clone the commit they were deployed from out of the remote named origin."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True, capture_output=True)
    for cmd in (["git", "remote", "add", "origin", str(origin)], ["git", "add", "-A"]):
        subprocess.run(cmd, cwd=project, check=True, env=GIT_ENV, capture_output=True)
    push(project, "the test's changes")
    return origin


def push(project: Path, message: str) -> None:
    """Commit everything new in ``project`` (if anything) and push it to origin's main."""
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, env=GIT_ENV, capture_output=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", message], cwd=project, check=True, env=GIT_ENV,
                   capture_output=True)
    subprocess.run(["git", "push", "-q", "origin", "main"], cwd=project, check=True, env=GIT_ENV, capture_output=True)


def _merge(into: dict, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
