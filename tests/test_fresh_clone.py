"""A test's copy of the project leaves behind what the README's first command (the main job) left in the
checkout, so `.venv/bin/python -m pytest` after `bash scripts/quickstart.sh` tests the project, not the
leftovers of that run (issue 11). tests/test_pipeline_dvc.py shows the same on a real `dvc repro`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fresh_clone import clone_files, copy_clone_files

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(60)

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t", "GIT_AUTHOR_EMAIL": "t@avssl.invalid",
           "GIT_COMMITTER_EMAIL": "t@avssl.invalid"}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True)


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def test_the_copy_leaves_the_main_jobs_leftovers_behind(tmp_path):
    # A fresh clone of the project ...
    src = tmp_path / "checkout"
    src.mkdir()
    project = copy_clone_files(REPO, src)
    assert {"dvc.yaml", "params.yaml", ".dvc/config", "data/README.md", "metrics/.gitkeep"} <= set(project)
    _git(src, "init", "-q", "-b", "main")
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "clone")
    assert clone_files(src) == project

    # ... after the quickstart's `dvc repro`: dvc.lock and DVC's .gitignore files staged (autostage), the
    # metrics untracked, the outputs ignored or not, the report, a promoted model.
    _write(src, "dvc.lock", "schema: '2.0'\nstages:\n  pretrain@cmac: {}\n")
    _write(src, "data/.gitignore", "/raw\n/acquired\n/clips\n")
    _write(src, "dashboards/.gitignore", "/report\n")
    _git(src, "add", "dvc.lock", "data/.gitignore", "dashboards/.gitignore")
    for rel in ("metrics/acquire.json", "metrics/pretrain_cmac.json", "metrics/cmac.json",
                "data/clips/index.csv", "data/pretrain/cmac/model.pt", "data/evaluate/cmac/details.json",
                "data/validated/valid.csv", "dashboards/report/index.html", "models/best.dvc"):
        _write(src, rel, "left by the main job\n")
    # and a developer's uncommitted work on the project itself, which the tests must see.
    _write(src, "params.yaml", (src / "params.yaml").read_text() + "# edited\n")
    _write(src, "avssl_core/new_module.py", "VALUE = 1\n")

    expected = sorted([*project, "avssl_core/new_module.py"])
    assert clone_files(src) == expected
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "data run")  # the README: git add dvc.lock metrics && git commit
    assert clone_files(src) == expected

    dest = tmp_path / "copy"
    dest.mkdir()
    assert copy_clone_files(src, dest) == expected
    assert not (dest / "dvc.lock").exists() and not (dest / "dashboards/report").exists()
    assert sorted(p.name for p in (dest / "metrics").iterdir()) == [".gitkeep"]
    assert sorted(p.name for p in (dest / "data").iterdir()) == ["README.md"]
    assert (dest / "params.yaml").read_text().endswith("# edited\n")
