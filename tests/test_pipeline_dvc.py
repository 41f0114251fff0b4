"""End to end: `dvc repro` on a fresh copy of the project, then push/pull to a second clone.

This is the path a user takes (README), with the synthetic world shrunk so it runs in about a minute.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fresh_clone import clone_files, copy_clone_files

REPO = Path(__file__).resolve().parents[1]
# test_dvc_repro_push_pull took 320 s alone on two cores shared with other jobs (687 s before its data-stage
# checks stopped retraining): a wider limit.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

TINY = {
    # The shapes world, every video in train: DVC's behaviour under test, not params.yaml's world.
    "synth": {"world": "shapes", "num_videos": 4, "duration_s": 5.0, "width": 64, "height": 64, "workers": 1,
              "split_fractions": {"train": 1.0, "val": 0.0, "test": 0.0}},
    "segment": {"clip_seconds": 2.0, "short_side": 64, "workers": 1},
    "acquire": {"workers": 1},
    "validate": {"workers": 1},
    # Two optimizer steps per method; the 4 videos are all in the train split, so hold out from it.
    "pretrain": {"val_split": "train", "val_pairs": 8, "pairs_per_clip": 1, "methods": ["avts", "avc"],
                 "train": {"batch_size": 4, "epochs": 1, "max_steps": 2, "progress": False}},
    # Only held-out pairs: the 4 videos leave no test split for the downstream tasks.
    "evaluate": {"split": "train", "tasks": ["pretext"], "scratch": False, "pretext": {"pairs": 8}},
}


def _env(home: Path) -> dict:
    env = dict(os.environ)
    # `avssl` must be on PATH for dvc.yaml's commands, as scripts/quickstart.sh arranges.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["HOME"] = str(home)  # keeps the default remote (~/.cache/avssl/dvc-remote) inside the test
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "avssl test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@avssl.invalid"
    return env


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _ran(out: str) -> list[str]:
    """The stages a `dvc repro` ran, in order."""
    return re.findall(r"Running stage '([^']+)'", out)


def _fresh_copy(dest: Path, env: dict, params_update: dict | None = None) -> list[str]:
    """What `git clone` of this working tree would give, without what a run of the main job left in it
    (tests/fresh_clone.py); returns the files copied."""
    files = copy_clone_files(REPO, dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in (params_update or TINY).items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q", "-b", "main"], dest, env)
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-q", "-m", "fresh"], dest, env)
    return files


def test_dvc_repro_push_pull(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    proj = tmp_path / "proj"
    proj.mkdir()
    project_files = _fresh_copy(proj, env)
    dvc = [sys.executable, "-m", "dvc"]

    out = _run([*dvc, "repro"], proj, env)
    # What the main job leaves in a checkout (dvc.lock staged by autostage, metrics, data, the report) is
    # not what a fresh clone has: a test's copy of this project leaves it behind.
    assert (proj / "dvc.lock").is_file() and (proj / "metrics/avts.json").is_file()
    assert clone_files(proj) == project_files
    stages = {"acquire", "validate", "segment", "pretrain@avts", "pretrain@avc", "evaluate@avts", "evaluate@avc",
              "report"}
    for stage in stages:
        assert f"Running stage '{stage}'" in out
    lock = yaml.safe_load((proj / "dvc.lock").read_text())
    assert set(lock["stages"]) == stages
    for method in ("avts", "avc"):
        assert (proj / f"data/pretrain/{method}/model.pt").is_file()
        assert (proj / f"metrics/pretrain_{method}.json").is_file()
        assert "pretext_easy" in json.loads((proj / f"metrics/{method}.json").read_text())["tasks"]
    assert (proj / "dashboards/report/index.html").is_file()

    index = pd.read_csv(proj / "data/clips/index.csv")
    # 4 videos of 5 s cut into 2 s clips: 2 clips each, the 1 s tails discarded.
    assert len(index) == 8
    assert all((proj / p).is_file() for p in index["video_path"])
    assert all((proj / p).is_file() for p in index["audio_path"])

    # Nothing changed: acquire runs (it always does), finds the same data, and the rest is skipped, the
    # report included (acquire leaves metrics/acquire.json as it was).
    out = _run([*dvc, "repro"], proj, env)
    assert _ran(out) == ["acquire"]
    assert "Stage 'report' didn't change, skipping" in out

    # One method's hyper-parameters: only that method's stages are stale, and only they rerun.
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["pretrain"]["hparams"]["avc"] = {"lr": 0.0005}
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run([*dvc, "status"], proj, env)
    assert "pretrain@avc:" in status and "pretrain.hparams.avc" in status and "pretrain@avts" not in status
    assert _ran(_run([*dvc, "repro"], proj, env)) == ["acquire", "pretrain@avc", "evaluate@avc", "report"]

    # A tracked setting that leaves every run's key as it was (progress bars): DVC reruns pretrain, which
    # finds each run finished and leaves model.pt and the metrics byte for byte, so nothing after it reruns.
    before = {rel: (proj / rel).read_bytes() for rel in ("data/pretrain/avts/model.pt", "metrics/pretrain_avts.json")}
    params["pretrain"]["train"]["progress"] = True
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _ran(_run([*dvc, "repro"], proj, env)) == ["acquire", "pretrain@avts", "pretrain@avc"]
    assert {rel: (proj / rel).read_bytes() for rel in before} == before
    assert json.loads(before["metrics/pretrain_avts.json"])["samples_per_s"] > 0

    # Version it: push to the default remote, pull into a second clone, get the same clips.
    _run([*dvc, "push"], proj, env)
    assert (home / ".cache/avssl/dvc-remote/files").is_dir()
    _run(["git", "add", "-A"], proj, env)
    _run(["git", "commit", "-q", "-m", "run"], proj, env)
    assert clone_files(proj) == project_files  # committed, as the README suggests: still left behind
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(proj), str(clone)], tmp_path, env)
    _run([*dvc, "pull"], clone, env)
    # Only acquire (which always runs) is reported; every output matches dvc.lock.
    assert _run([*dvc, "status"], clone, env).split() == ["acquire:", "always", "changed"]
    first = pd.read_csv(clone / "data/clips/index.csv")
    for rel in first["video_path"]:
        assert (clone / rel).read_bytes() == (proj / rel).read_bytes()
    # A new worker that pulled reproduces the run without recomputing it: acquire finds the pulled
    # synthetic videos (nothing regenerated), and validate and segment are skipped.
    out = _run([*dvc, "repro"], clone, env)
    assert "0 written, 4 kept" in out
    assert "Stage 'validate' didn't change, skipping" in out
    assert "Stage 'segment' didn't change, skipping" in out

    # Back in the first project: the data stages' parameters. `dvc repro segment` brings the stages up to
    # segment up to date (what reruns is what the parameters stale) without retraining on the new clips.
    # An encoding parameter changes: only segment reruns.
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["segment"]["crf"] = 23
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run([*dvc, "repro", "segment"], proj, env)
    assert _ran(out) == ["acquire", "segment"]
    assert "Stage 'validate' didn't change, skipping" in out

    # The clip length is also validate's minimum duration: both rerun.
    params["segment"]["clip_seconds"] = 2.4
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run([*dvc, "repro", "segment"], proj, env)
    assert _ran(out) == ["acquire", "validate", "segment"]
    index = pd.read_csv(proj / "data/clips/index.csv")
    assert len(index) == 8 and (index["end_s"] - index["start_s"]).round(3).eq(2.4).all()
    # What trained on the old clips is now stale, and `dvc status` says so.
    assert "pretrain@avts:" in _run([*dvc, "status"], proj, env)


def test_dvc_repro_on_a_local_folder_of_mixed_files(tmp_path, media_zoo):
    """A user's own folder, good files among broken ones: the pipeline finishes, quarantining the bad."""
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    proj = tmp_path / "proj"
    proj.mkdir()
    _fresh_copy(proj, env, {
        "acquire": {"source": "local", "local": {"path": str(media_zoo["root"])}, "workers": 1},
        "validate": {"min_valid_fraction": 0.1, "workers": 1},
        "segment": {"clip_seconds": 1.0, "short_side": 64, "workers": 1},
    })
    # Up to segment: these files carry no labels or splits to pretrain on.
    out = _run([sys.executable, "-m", "dvc", "repro", "segment"], proj, env)
    assert "quarantined" in out
    validate = yaml.safe_load((proj / "metrics/validate.json").read_text())
    assert validate["total"] == len(list(Path(media_zoo["root"]).iterdir()))
    assert validate["valid"] >= 5 and validate["quarantined"] > 0
    index = pd.read_csv(proj / "data/clips/index.csv")
    valid = pd.read_csv(proj / "data/validated/valid.csv")
    assert set(index["video_id"]) == set(valid["video_id"])
