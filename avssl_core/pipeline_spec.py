"""The pipeline as dvc.yaml describes it: each stage's code, data and tracked parameters.

dvc.yaml is the one description of the stages; everything else that needs a stage's dependencies (the
flows' cache keys, the pretrain stage's run key, the flows' override check) reads them here instead of
restating them. The file is read with PyYAML and resolved the way DVC resolves it for what we use:
``${section.key}`` from params.yaml (the project's, beside dvc.yaml) and a foreach stage's ``${item}``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

from avssl_core.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent  # avssl_core/
PROJECT = PACKAGE.parent                   # the checkout whose dvc.yaml describes this code

_REFERENCE = re.compile(r"\$\{\s*([^}\s]+)\s*\}")


def dvc_stages(project: str | Path = ".") -> dict[str, dict]:
    """The ``stages`` of ``project``'s dvc.yaml as written (unresolved); {} when it has no dvc.yaml."""
    path = Path(project) / "dvc.yaml"
    if not path.is_file():
        return {}
    try:
        return (yaml.safe_load(path.read_text()) or {}).get("stages", {}) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def stage_name(stages: dict[str, dict], stage: str, item: str | None = None) -> str | None:
    """dvc.yaml's name for ``stage`` (``pretrain@avc`` for a foreach stage), or None if it has none."""
    spec = stages.get(stage)
    if spec is None:
        return None
    if "foreach" in spec:
        return f"{stage}@{item}" if item else None
    return stage


def tracked_params(stages: dict[str, dict], stage: str, items: list[str] | None = None) -> list[str]:
    """The parameter keys dvc.yaml tracks for ``stage``; a foreach stage's ``${item}`` keys (e.g.
    ``pretrain.hparams.${item}``) once per name in ``items``."""
    spec = stages.get(stage) or {}
    spec = spec.get("do", spec)
    keys: list[str] = []
    for entry in spec.get("params", []) or []:
        if isinstance(entry, str):
            keys.append(entry)
        elif isinstance(entry, dict):  # {params.yaml: [keys]}
            for value in entry.values():
                keys.extend(value or [])
    expanded: list[str] = []
    for key in keys:
        expanded.extend([key.replace("${item}", str(item)) for item in items or []] if "${item}" in key else [key])
    return expanded


def foreach_items(stages: dict[str, dict], stage: str, params: dict) -> list[str]:
    """The names a foreach stage expands to: a literal list, or a ``${section.key}`` list of params."""
    spec = stages.get(stage) or {}
    found = spec.get("foreach")
    if isinstance(found, str) and found.startswith("${") and found.endswith("}"):
        found = lookup(params, found[2:-1])
    return [str(item) for item in found] if isinstance(found, list) else []


def lookup(tree: dict, key: str) -> Any:
    """The value at dotted ``key`` of a nested mapping, or None."""
    node: Any = tree
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One stage (for a foreach stage: one item) as dvc.yaml lists it, with ``${...}`` resolved."""

    name: str                 # dvc.yaml's name: "segment", "pretrain@avc"
    code: tuple[str, ...]     # deps under avssl_core/, relative to it ("stages/pretrain.py", "methods")
    data: tuple[str, ...]     # every other dep, relative to the project ("data/clips")
    params: tuple[str, ...]   # tracked parameter keys, dotted ("segment", "pretrain.hparams.avc")


def stage_spec(stage: str, item: str | None = None, project: str | Path | None = None) -> StageSpec:
    """What dvc.yaml in ``project`` (default: this checkout) says ``stage`` (and ``item``, for a foreach
    stage) depends on.

    A foreach stage may be asked for without ``item`` while none of its deps names ``${item}``. Raises
    ConfigError naming dvc.yaml when it or the stage is missing, or a ``${...}`` reference resolves to
    nothing.
    """
    project = Path(project or PROJECT)
    path = project / "dvc.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: missing; avssl reads each stage's dependencies from the dvc.yaml of the "
                          "checkout it is installed from (scripts/install.sh: pip install -e .)")
    stages = dvc_stages(project)
    if stage not in stages:
        raise ConfigError(f"{path}: no stage {stage!r} (stages: {', '.join(stages) or 'none'})")
    spec = stages[stage]
    spec = (spec.get("do") or {}) if "foreach" in spec else spec
    params_file = project / "params.yaml"
    params = (yaml.safe_load(params_file.read_text()) or {}) if params_file.is_file() else {}
    code: list[str] = []
    data: list[str] = []
    for dep in spec.get("deps", []) or []:
        resolved = _resolve(str(dep), params, item, f"{path}: stage {stage!r}")
        relative = Path(resolved)
        if relative.parts[:1] == ("avssl_core",):
            code.append(relative.relative_to("avssl_core").as_posix())
        else:
            data.append(relative.as_posix())
    keys = tracked_params(stages, stage, [item] if item is not None else None)
    return StageSpec(name=stage_name(stages, stage, item) or stage, code=tuple(code), data=tuple(data),
                     params=tuple(keys))


def _resolve(text: str, params: dict, item: str | None, where: str) -> str:
    def value(match: re.Match) -> str:
        key = match.group(1)
        if key == "item" and item is None:
            raise ConfigError(f"{where}: a dep names ${{item}}; ask for one item of the foreach stage")
        found = item if key == "item" else lookup(params, key)
        if found is None or isinstance(found, (dict, list)):
            raise ConfigError(f"{where}: ${{{key}}} names no value in params.yaml")
        return str(found)

    return _REFERENCE.sub(value, text)


def code_digest(*relative: str) -> str:
    """Hash of avssl_core source files or folders (``"stages/segment.py"``, ``"data"``), by path and content;
    a folder stands for every .py file below it. A missing one is an error, as it is for ``dvc repro``."""
    digest = hashlib.sha256()
    for rel in relative:
        path = PACKAGE / rel
        if not path.exists():
            raise ConfigError(f"{path}: a code dependency dvc.yaml lists, but there is no such file or folder")
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(PACKAGE).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def stage_code_digest(stage: str, item: str | None = None) -> str:
    """Hash of the code dvc.yaml lists for ``stage``: what reruns it under DVC re-keys it under Prefect."""
    return code_digest(*stage_spec(stage, item).code)


def code_fingerprint() -> str:
    """Hash of the training code (the pretrain stage's code deps, the same for every method), so a rerun
    after a code change trains anew rather than resuming a run made by other code."""
    return stage_code_digest("pretrain")
