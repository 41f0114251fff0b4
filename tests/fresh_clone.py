"""The files a fresh clone of the project has, copied from a working checkout for tests that run DVC or
the flows in a project of their own.

A checkout where the README's first command ran (`bash scripts/quickstart.sh`, i.e. `dvc repro`) also
holds what the main job left: dvc.lock (staged by DVC's autostage, or committed, as the README suggests,
with metrics/), the .gitignore files DVC writes beside its outputs, the metrics, the data, the report and
the retrain flow's models/best. A test's project that took them would start from another run's state
(dvc.lock naming all four methods, for one), so they are left behind whether untracked, staged or
committed; the project's own files are copied as the working tree holds them (edits not yet committed
included, as a developer runs the tests before committing).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Folders the pipeline, `dvc pull` and the retrain flow write into, and the files they keep there that are
# the project's own (documentation, the placeholder that keeps metrics/ in git).
PRODUCT_DIRS = ("data/", "metrics/", "models/", "dashboards/report/")
PROJECT_FILES_IN_PRODUCT_DIRS = frozenset({"data/README.md", "metrics/.gitkeep"})
# Files DVC writes at the top level or beside an output folder.
PRODUCT_FILES = frozenset({"dvc.lock", "dashboards/.gitignore"})


def is_pipeline_product(rel: str) -> bool:
    if rel in PRODUCT_FILES:
        return True
    return rel.startswith(PRODUCT_DIRS) and rel not in PROJECT_FILES_IN_PRODUCT_DIRS


def clone_files(repo: Path) -> list[str]:
    """Paths (relative to ``repo``) of the project's files: tracked or new and not ignored, as git lists
    them, without the pipeline's products; only files that exist in the working tree."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    return sorted({rel for rel in listed if rel and not is_pipeline_product(rel) and (repo / rel).is_file()})


def copy_clone_files(repo: Path, dest: Path) -> list[str]:
    files = clone_files(repo)
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, dest / rel)
    return files
