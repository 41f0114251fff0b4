"""dvc.yaml is the one description of the stages: the flows' cache keys and the pretrain run key follow what
it lists for a stage (avssl_core/pipeline_spec.py reads it), our reading of it matches DVC's own, and each
stage's code deps cover the code the stage really imports."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avssl_core import pipeline_spec
from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.orchestration import cache

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)


def _project(root: Path, stages: dict) -> Path:
    """A project folder with its own dvc.yaml, params.yaml and a small avssl_core/ of stand-in modules."""
    package = root / "avssl_core"
    for rel in ("stages/segment.py", "stages/pretrain.py", "data/transcode.py", "data/unlisted.py", "train/loop.py"):
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text("VALUE = 1\n")
    (root / "params.yaml").write_text(yaml.safe_dump({"paths": {"validated_dir": "data/validated",
                                                                "clips_dir": "data/clips"},
                                                      "pretrain": {"methods": ["avc", "cmac"]}}))
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return root


SEGMENT = {"cmd": "avssl segment", "params": ["segment"],
           "deps": ["${paths.validated_dir}/valid.csv", "avssl_core/stages/segment.py", "avssl_core/data/transcode.py"]}
PRETRAIN = {"foreach": "${pretrain.methods}",
            "do": {"cmd": "avssl pretrain --method ${item}", "params": ["pretrain.train", "pretrain.hparams.${item}"],
                   "deps": ["${paths.clips_dir}", "avssl_core/stages/pretrain.py", "avssl_core/train"]}}


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = _project(tmp_path / "project", {"segment": SEGMENT, "pretrain": PRETRAIN})
    monkeypatch.setattr(pipeline_spec, "PROJECT", root)
    monkeypatch.setattr(pipeline_spec, "PACKAGE", root / "avssl_core")
    return root


def _segment_cfg(tmp_path: Path, *overrides: str):
    valid = tmp_path / "validated" / "valid.csv"
    valid.parent.mkdir(exist_ok=True)
    valid.write_text("video_id,sha256\nv1,aa\n")
    return load_config(None, [f"paths.validated_dir={valid.parent}", *overrides])


def test_a_stage_key_follows_the_code_dvc_yaml_lists_for_it(project, tmp_path):
    cfg = _segment_cfg(tmp_path)
    base = cache.segment_key(cfg)
    (project / "avssl_core" / "data" / "unlisted.py").write_text("VALUE = 2\n")
    assert cache.segment_key(cfg) == base  # a file dvc.yaml does not list for segment
    (project / "avssl_core" / "data" / "transcode.py").write_text("VALUE = 2\n")
    edited = cache.segment_key(cfg)
    assert edited != base  # one it lists
    # Listing the other file in dvc.yaml is all it takes for the key to follow it.
    stages = {"segment": {**SEGMENT, "deps": [*SEGMENT["deps"], "avssl_core/data/unlisted.py"]}, "pretrain": PRETRAIN}
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    listed = cache.segment_key(cfg)
    assert listed != edited
    (project / "avssl_core" / "data" / "unlisted.py").write_text("VALUE = 3\n")
    assert cache.segment_key(cfg) != listed


def test_a_stage_key_follows_the_params_dvc_yaml_tracks_for_it(project, tmp_path):
    base = cache.segment_key(_segment_cfg(tmp_path))
    assert cache.segment_key(_segment_cfg(tmp_path, "segment.crf=23")) != base  # in the tracked section
    assert cache.segment_key(_segment_cfg(tmp_path, "validate.min_fps=5")) == base  # not tracked for segment
    # Track one key instead of the section: the section's other keys no longer change the key.
    stages = {"segment": {**SEGMENT, "params": ["segment.clip_seconds"]}, "pretrain": PRETRAIN}
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    narrowed = cache.segment_key(_segment_cfg(tmp_path))
    assert cache.segment_key(_segment_cfg(tmp_path, "segment.crf=23")) == narrowed
    assert cache.segment_key(_segment_cfg(tmp_path, "segment.clip_seconds=4")) != narrowed


def test_pretrain_keys_follow_its_code_deps_and_each_methods_own_params(project, tmp_path):
    (tmp_path / "index.csv").write_text("clip_id\nc0\n")

    def keys(*overrides: str) -> dict[str, str | None]:
        cfg = load_config(None, [f"paths.clips_dir={tmp_path}", *overrides])
        return {m: cache.pretrain_key(cfg, m, "tiny") for m in ("avc", "cmac")}

    base, fingerprint = keys(), pipeline_spec.code_fingerprint()
    changed = keys("pretrain.hparams.cmac.lr=0.5")
    assert changed["avc"] == base["avc"] and changed["cmac"] != base["cmac"]
    assert keys("pretrain.val_pairs=7") == base  # dvc.yaml here does not track it
    (project / "avssl_core" / "data" / "transcode.py").write_text("VALUE = 2\n")
    assert keys() == base and pipeline_spec.code_fingerprint() == fingerprint
    (project / "avssl_core" / "train" / "loop.py").write_text("VALUE = 2\n")  # under a listed folder
    changed = keys()
    assert changed["avc"] != base["avc"] and changed["cmac"] != base["cmac"]
    assert pipeline_spec.code_fingerprint() != fingerprint  # the run key's code part, the same list


def test_spec_resolves_params_and_items_and_names_what_it_cannot(project):
    spec = pipeline_spec.stage_spec("pretrain", "cmac")
    assert spec.name == "pretrain@cmac" and spec.data == ("data/clips",)
    assert spec.code == ("stages/pretrain.py", "train")
    assert spec.params == ("pretrain.train", "pretrain.hparams.cmac")
    assert pipeline_spec.stage_spec("segment").data == ("data/validated/valid.csv",)
    with pytest.raises(ConfigError, match=r"dvc\.yaml: no stage 'evaluate'"):
        pipeline_spec.stage_spec("evaluate")
    stages = {"segment": {**SEGMENT, "deps": ["${paths.nope}/valid.csv"]},
              "pretrain": {**PRETRAIN, "do": {**PRETRAIN["do"], "deps": ["data/${item}"]}},
              "report": {"cmd": "avssl report", "deps": ["avssl_core/stages/report.py"]}}
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    with pytest.raises(ConfigError, match=r"dvc\.yaml: stage 'segment': \$\{paths\.nope\} names no value"):
        pipeline_spec.stage_spec("segment")
    with pytest.raises(ConfigError, match=r"stage 'pretrain': a dep names \$\{item\}"):
        pipeline_spec.stage_spec("pretrain")
    with pytest.raises(ConfigError, match=r"stages/report\.py: a code dependency dvc\.yaml lists"):
        pipeline_spec.code_digest(*pipeline_spec.stage_spec("report").code)
    (project / "dvc.yaml").unlink()
    with pytest.raises(ConfigError, match=r"dvc\.yaml: missing; avssl reads each stage's dependencies"):
        pipeline_spec.code_fingerprint()


def test_our_reading_of_dvc_yaml_is_dvcs():
    """Every stage's deps and tracked params as DVC itself resolves them (templating, foreach)."""
    from dvc.repo import Repo

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = pipeline_spec.dvc_stages(REPO)
    ours = {}
    for stage in stages:
        for item in pipeline_spec.foreach_items(stages, stage, params) or [None]:
            spec = pipeline_spec.stage_spec(stage, item, REPO)
            deps = [*spec.data, *(f"avssl_core/{rel}" for rel in spec.code)]
            ours[spec.name] = (sorted(deps), sorted(spec.params))
    theirs = {}
    for stage in Repo(str(REPO)).index.stages:
        deps = [d.def_path for d in stage.deps if d.def_path != "params.yaml"]
        tracked = [key for d in stage.deps if d.def_path == "params.yaml" for key in d.params]
        theirs[stage.addressing] = (sorted(deps), sorted(tracked))
    assert ours == theirs


# Modules every stage imports that change nothing a stage computes, so no stage lists them: config.py types
# and checks the parameters (their values are what dvc.yaml tracks), errors.py words failures, io_utils.py
# writes files atomically, parallel.py spreads work over processes, offline_html.py inlines report assets,
# pipeline_spec.py reads this very list (for the pretrain run key).
NOT_RESULT_CODE = {"config.py", "errors.py", "io_utils.py", "parallel.py", "offline_html.py", "pipeline_spec.py"}


def _imports(module: Path) -> set[Path]:
    """The avssl_core modules ``module`` imports (at any depth of its body), with their packages' __init__."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for name in (n for n in names if n.split(".")[0] == "avssl_core"):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                base = REPO.joinpath(*parts[:depth])
                found |= {p for p in (base / "__init__.py", base.with_suffix(".py")) if p.is_file()}
    return found


def _closure(module: Path) -> set[str]:
    seen: set[Path] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(_imports(current))
    package = REPO / "avssl_core"
    return {p.relative_to(package).as_posix() for p in seen if not _only_constants(p)}


def _only_constants(module: Path) -> bool:
    """A package __init__ holding only its docstring and constants (``__version__``) computes nothing."""
    return module.name == "__init__.py" and all(
        isinstance(node, (ast.Expr, ast.Assign)) and isinstance(node.value, ast.Constant)
        for node in ast.parse(module.read_text()).body)


@pytest.mark.parametrize("stage", ["validate", "segment", "pretrain", "evaluate", "report"])
def test_a_stages_code_deps_are_the_code_it_imports(stage):
    """A module the stage runs but dvc.yaml does not list would change results without rerunning the stage;
    a listed path the stage no longer imports reruns it for nothing."""
    stages = pipeline_spec.dvc_stages(REPO)
    item = pipeline_spec.foreach_items(stages, stage, yaml.safe_load((REPO / "params.yaml").read_text()))
    listed = pipeline_spec.stage_spec(stage, item[0] if item else None, REPO).code
    imported = _closure(REPO / "avssl_core" / "stages" / f"{stage}.py") - NOT_RESULT_CODE

    def covers(dep: str, module: str) -> bool:
        return module == dep or module.startswith(dep + "/")

    unlisted = sorted(m for m in imported if not any(covers(dep, m) for dep in listed))
    unused = [dep for dep in listed if not any(covers(dep, m) for m in imported)]
    assert not unlisted, f"dvc.yaml stage {stage!r} does not list code it imports: {unlisted}"
    assert not unused, f"dvc.yaml stage {stage!r} lists code it does not import: {unused}"


def test_bytecode_written_beside_the_code_leaves_a_stages_code_deps_unchanged(tmp_path):
    """A stage imports the code folders it depends on, and Python may write __pycache__ into them during the
    run (or on another machine, in another Python version): with the project's .dvcignore, DVC leaves those
    files out of the folder's hash, so the stage is still up to date afterwards."""
    root = tmp_path / "project"
    (root / "code").mkdir(parents=True)
    (root / "code" / "m.py").write_text("VALUE = 1\n")
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"use": {
        "cmd": f"{sys.executable} -c \"open('out.txt', 'w').write('done')\"", "deps": ["code"], "outs": ["out.txt"]}}}))

    def dvc(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    subprocess.run(["git", "init", "-q"], cwd=root, check=True, timeout=30)
    dvc("init", "-q")
    dvc("repro", "-q")
    (root / "code" / "__pycache__").mkdir()
    (root / "code" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\x00bytecode")
    assert "up to date" in dvc("status")
    (root / "code" / "m.py").write_text("VALUE = 2\n")  # a real change to the code still shows
    assert "changed deps" in dvc("status")
