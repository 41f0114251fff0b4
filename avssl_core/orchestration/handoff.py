"""How a stage run on one worker hands its dvc.lock to the next, through the git remote `origin`.

A deployed flow runs in a fresh clone of the repository (prefect.yaml's pull steps), so nothing it writes
stays anywhere another worker can see, except what it pushes:
- the outputs' bytes go to the DVC remote (``dvc push``), and
- the record of them, dvc.lock (with the small uncached metrics files DVC lists beside it), goes to git:
  a commit on a run branch ``avssl-runs/<flow run id>`` of ``origin``.

The next stage's flow starts from that branch (``start_from``), pulls from the DVC remote exactly the
outputs its own dvc.yaml dependencies name (``stage_inputs``), and publishes its own branch in turn. A flow
that fans stages out takes each finished stage's dvc.lock entries back from the branch it pushed
(``take_stages``): entries of other stages never conflict, since each is replaced whole, by name.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml

from avssl_core.errors import ConfigError
from avssl_core.pipeline_spec import stage_spec

REMOTE = "origin"
BRANCH_PREFIX = "avssl-runs/"
# Commits made on a worker need an author; a checkout's own git identity wins when it has one.
_IDENTITY = ("-c", "user.name=avssl flow", "-c", "user.email=avssl-flow@localhost")


class HandoffError(RuntimeError):
    """A git command of the hand-off failed; the message names the project, the command and git's words."""


def _git(project: str | Path, *args: str, identity: bool = False) -> str:
    cmd = ["git", *(_IDENTITY if identity and not _has_identity(project) else ()), *args]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise HandoffError(f"git {' '.join(args)} failed in {Path(project).resolve()} ({proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def _has_identity(project: str | Path) -> bool:
    proc = subprocess.run(["git", "config", "user.email"], cwd=project, capture_output=True, text=True)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def run_branch(run_id: str) -> str:
    return f"{BRANCH_PREFIX}{run_id}"


def check_remote(project: str | Path) -> str:
    """The URL of ``origin``; ConfigError when the checkout has none (nothing to hand off through)."""
    try:
        return _git(project, "remote", "get-url", REMOTE).strip()
    except HandoffError as exc:
        raise ConfigError(f"{Path(project).resolve()}: the hand-off through git needs a remote named "
                          f"{REMOTE!r} (a deployment's pull steps clone one): {exc}") from exc


def start_from(project: str | Path, ref: str) -> str:
    """Check out ``ref`` of ``origin`` (a run branch or a commit) detached; returns its commit."""
    _git(project, "fetch", "--quiet", REMOTE, ref)
    _git(project, "checkout", "--quiet", "--detach", "FETCH_HEAD")
    return _git(project, "rev-parse", "HEAD").strip()


def read_lock(project: str | Path, rev: str | None = None) -> dict:
    """dvc.lock of the working tree, or of commit ``rev``; {} where there is none."""
    if rev is None:
        path = Path(project) / "dvc.lock"
        text = path.read_text() if path.is_file() else ""
    else:
        proc = subprocess.run(["git", "show", f"{rev}:dvc.lock"], cwd=project, capture_output=True, text=True)
        text = proc.stdout if proc.returncode == 0 else ""
    return yaml.safe_load(text) or {}


def _outs(entry: dict) -> list[str]:
    return [o["path"] for o in entry.get("outs", []) or []]


def _tracked_by_git(project: str | Path, path: str) -> bool:
    return bool(_git(project, "ls-files", "--", path).strip())


def stage_inputs(project: str | Path, stage: str, item: str | None = None) -> list[str]:
    """The outputs recorded in dvc.lock that ``stage``'s dvc.yaml data dependencies name (the output
    itself, one inside it, or one holding it), less those git carries (uncached metrics): what
    ``dvc pull`` must fetch for the stage to run."""
    deps = stage_spec(stage, item, project).data
    lock = read_lock(project).get("stages", {}) or {}
    found: list[str] = []
    for entry in lock.values():
        for out in _outs(entry):
            if any(out == d or out.startswith(d.rstrip("/") + "/") or d.startswith(out.rstrip("/") + "/")
                   for d in deps) and out not in found and not _tracked_by_git(project, out):
                found.append(out)
    return found


def take_stages(project: str | Path, ref: str, names: list[str]) -> str:
    """Replace dvc.lock's entries ``names`` with those of ``ref`` on ``origin`` and check out the files of
    their outputs that git carries; returns ref's commit. The outputs DVC caches are then ``dvc pull``-ed."""
    _git(project, "fetch", "--quiet", REMOTE, ref)
    commit = _git(project, "rev-parse", "FETCH_HEAD").strip()
    theirs = read_lock(project, commit).get("stages", {}) or {}
    missing = [n for n in names if n not in theirs]
    if missing:
        raise HandoffError(f"{ref} ({commit[:12]}) of {REMOTE}: its dvc.lock has no stage {', '.join(missing)}")
    ours = read_lock(project) or {"schema": "2.0"}
    stages = ours.setdefault("stages", {})
    carried: list[str] = []
    for name in names:
        stages[name] = theirs[name]
        for out in _outs(theirs[name]):
            if _git(project, "ls-tree", "-r", "--name-only", commit, "--", out).strip():
                carried.append(out)
    (Path(project) / "dvc.lock").write_text(yaml.safe_dump(ours, sort_keys=False))
    if carried:
        _git(project, "checkout", commit, "--", *carried)
    return commit


def publish(project: str | Path, branch: str, message: str) -> dict[str, str]:
    """Commit dvc.lock and the stage outputs git carries (DVC lists the cached ones in .gitignore files),
    push the commit to ``branch`` of ``origin``; returns what the run's artifact records."""
    lock = read_lock(project).get("stages", {}) or {}
    carried = [o for entry in lock.values() for o in _outs(entry) if (Path(project) / o).exists()]
    changed = _git(project, "ls-files", "--modified", "--others", "--exclude-standard", "--", *carried,
                   ":(glob)**/.gitignore").split()
    _git(project, "add", "--", "dvc.lock", *changed)
    _git(project, "commit", "--quiet", "--allow-empty", "-m", message, identity=True)
    commit = _git(project, "rev-parse", "HEAD").strip()
    _git(project, "push", "--quiet", REMOTE, f"HEAD:refs/heads/{branch}")
    lock_bytes = (Path(project) / "dvc.lock").read_bytes()
    return {"branch": branch, "commit": commit, "dvc_lock_sha256": hashlib.sha256(lock_bytes).hexdigest()}
