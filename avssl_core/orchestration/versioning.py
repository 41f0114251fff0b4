"""What a flow produces is versioned by DVC, exactly as `dvc repro` would version it.

After a task has run a stage function, ``dvc commit <stage>`` records the stage's outputs, dependencies
and parameters in dvc.lock and stores the outputs in the DVC cache (``dvc push`` then copies them to the
remote, where any GPU worker can ``dvc pull`` them). For that record to be true, the parameters the
stage ran with must be the ones params.yaml holds: ``check_overrides_versionable`` refuses, before any
work, overrides that change a parameter dvc.yaml tracks for a stage the flow will commit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from avssl_core.config import Config, to_dict
from avssl_core.errors import ConfigError
from avssl_core.pipeline_spec import foreach_items, lookup, tracked_params

DVC_MODES = ("commit", "push", "off")


class DvcCommandError(RuntimeError):
    """A dvc command failed for a reason other than a held lock (which is raised as BlockingIOError)."""


def check_project(project: str | Path, mode: str) -> None:
    if mode not in DVC_MODES:
        raise ConfigError(f"parameter dvc: expected one of {', '.join(DVC_MODES)}, got {mode!r}")
    if mode != "off" and not (Path(project) / ".dvc").is_dir():
        raise ConfigError(f"parameter dvc={mode!r}: {Path(project).resolve()} is not a DVC project (no .dvc "
                          "folder); run the flow from the project root or pass dvc='off'")


def check_overrides_versionable(effective: Config, from_file: Config, stages: dict[str, dict],
                                 flow_stages: list[str], overrides: list[str]) -> None:
    """Raise ConfigError naming the overrides when they change a parameter that dvc.yaml tracks for one
    of ``flow_stages``: dvc.lock would record params.yaml's value next to outputs made with another."""
    eff, ref = to_dict(effective), to_dict(from_file)
    for stage in flow_stages:
        # Every item the flow may commit: params.yaml's list and the overridden one.
        items = list(dict.fromkeys(foreach_items(stages, stage, ref) + foreach_items(stages, stage, eff)))
        changed = [k for k in tracked_params(stages, stage, items) if lookup(eff, k) != lookup(ref, k)]
        if changed:
            raise ConfigError(
                f"parameter overrides {overrides}: they change {', '.join(changed)}, which dvc.yaml tracks for "
                f"stage {stage!r}, so dvc.lock would not describe the outputs; write them into params.yaml, "
                "or run with dvc='off' (nothing is versioned then)")


def _dvc(args: list[str], project: str | Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, capture_output=True, text=True,
                          timeout=3600)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        if "lock" in text.lower() and "unable to acquire" in text.lower():
            raise BlockingIOError(f"dvc {' '.join(args)}: the repository lock is held: {text.strip()}")
        raise DvcCommandError(f"dvc {' '.join(args)} failed in {project} ({proc.returncode}): {text.strip()}")
    return text


def dvc_commit(project: str | Path, name: str, push: bool = False) -> str:
    """Record stage ``name``'s outputs in dvc.lock and the cache (and the remote when ``push``)."""
    out = _dvc(["commit", "--force", name], project)
    if push:
        out += _dvc(["push", name], project)
    return out


def dvc_add(project: str | Path, target: str, push: bool = False) -> str:
    """Track ``target`` (a folder the flows own, e.g. models/best) with a .dvc file."""
    out = _dvc(["add", target], project)
    if push:
        out += _dvc(["push", f"{target}.dvc"], project)
    return out


def dvc_pull(project: str | Path, targets: list[str]) -> str:
    """Fetch ``targets`` (stages or output paths) from the DVC remote into the workspace."""
    return _dvc(["pull", *targets], project) if targets else ""
