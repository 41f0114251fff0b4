"""No module below the front ends imports a stage (DESIGN.md, "Seams"), checked by scripts/upward_imports.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)



def _run(root: Path, repo_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(repo_root / "scripts" / "upward_imports.py"), str(root)],
                          capture_output=True, text=True, timeout=50)


def _below(stdout: str) -> set[str]:
    """``below <file>:<line> -> <name>`` lines, without the line number (it moves with edits)."""
    found = set()
    for line in stdout.splitlines():
        if line.startswith("below "):
            where, name = line.removeprefix("below").strip().split(" -> ")
            found.add(f"{where.rsplit(':', 1)[0]} -> {name}")
    return found


def test_no_module_below_the_front_ends_imports_a_stage(repo_root):
    result = _run(repo_root, repo_root)
    assert _below(result.stdout) == set(), result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_finds_upward_imports_and_allows_front_ends_and_stages(tmp_path, repo_root):
    pkg = tmp_path / "avssl_core"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "lib").mkdir()
    (pkg / "stages" / "one.py").write_text("from avssl_core.stages.two import run\n")
    (pkg / "stages" / "two.py").write_text("def run(): ...\n")
    (pkg / "cli.py").write_text("from avssl_core.stages import one\n")
    (pkg / "lib" / "fine.py").write_text("import os\n")
    clean = _run(tmp_path, repo_root)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "stage avssl_core/stages/one.py:1 -> avssl_core.stages.two.run" in clean.stdout
    assert "cli.py" not in clean.stdout  # a front end

    (pkg / "lib" / "bad.py").write_text(
        "import importlib\n\ndef f():\n    from ..stages import one\n"
        "    return importlib.import_module('avssl_core.stages.two')\n")
    dirty = _run(tmp_path, repo_root)
    assert dirty.returncode == 1
    assert _below(dirty.stdout) == {"avssl_core/lib/bad.py -> avssl_core.stages.one",
                                    "avssl_core/lib/bad.py -> avssl_core.stages.two"}
    assert dirty.stdout.rstrip().endswith("2 import(s) of a stage from below the front ends, 1 from one stage to another")
