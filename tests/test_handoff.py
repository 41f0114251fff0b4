"""The git side of the hand-off between workers (avssl_core/orchestration/handoff.py), on real git
repositories: a bare origin and two clones standing for two machines. No DVC and no server: the flows'
use of it runs end to end in tests/test_workers_anywhere.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from flow_project import GIT_ENV

from avssl_core.errors import ConfigError
from avssl_core.orchestration import handoff

pytestmark = pytest.mark.timeout(60)

DVC_YAML = {"stages": {
    "segment": {"cmd": "avssl segment", "deps": ["data/validated/valid.csv"], "outs": ["data/clips"],
                "metrics": [{"metrics/segment.json": {"cache": False}}]},
    "pretrain": {"foreach": ["avc", "avts"], "do": {
        "cmd": "avssl pretrain --method ${item}", "deps": ["data/clips", "avssl_core/stages/pretrain.py"],
        "outs": ["data/pretrain/${item}/model.pt"], "metrics": [{"metrics/pretrain_${item}.json": {"cache": False}}]}},
    "evaluate": {"foreach": ["avc", "avts"], "do": {
        "cmd": "avssl evaluate --method ${item}", "deps": ["data/clips", "data/pretrain/${item}"],
        "outs": ["data/evaluate/${item}"]}},
}}


def _entry(outs: list[str], md5: str = "0" * 32) -> dict:
    return {"cmd": "x", "outs": [{"path": o, "md5": md5, "size": 1} for o in outs]}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=GIT_ENV).stdout


@pytest.fixture
def machines(tmp_path):
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    dev = tmp_path / "dev"
    dev.mkdir()
    _git(dev, "init", "-q", "-b", "main")
    (dev / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (dev / "params.yaml").write_text("{}\n")
    (dev / ".gitignore").write_text("/data/\n")
    lock = {"schema": "2.0", "stages": {"segment": _entry(["data/clips", "metrics/segment.json"])}}
    (dev / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    (dev / "metrics").mkdir()
    (dev / "metrics" / "segment.json").write_text("{}\n")
    _git(dev, "add", "-A")
    _git(dev, "commit", "-q", "-m", "data")
    _git(dev, "remote", "add", "origin", str(origin))
    _git(dev, "push", "-q", "origin", "main")
    clones = []
    for name in ("a", "b"):
        _git(tmp_path, "clone", "-q", str(origin), name)
        clones.append(tmp_path / name)
    return origin, clones


def test_a_stage_pulls_exactly_the_outputs_its_dependencies_name(machines):
    _, (a, _) = machines
    assert handoff.stage_inputs(a, "pretrain", "avc") == ["data/clips"]  # not metrics/segment.json: git has it
    lock = handoff.read_lock(a)
    lock["stages"]["pretrain@avc"] = _entry(["data/pretrain/avc/model.pt"])
    lock["stages"]["pretrain@avts"] = _entry(["data/pretrain/avts/model.pt"])
    (a / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    # an output inside a folder the stage depends on counts; another method's does not
    assert handoff.stage_inputs(a, "evaluate", "avc") == ["data/clips", "data/pretrain/avc/model.pt"]


def test_two_runs_publish_and_a_third_takes_both_entries_without_conflict(machines):
    origin, (a, b) = machines
    made = {}
    for clone, method in ((a, "avc"), (b, "avts")):  # two machines, each from the same start
        assert handoff.start_from(clone, "main") == _git(origin, "rev-parse", "main").strip()
        lock = handoff.read_lock(clone)
        lock["stages"][f"pretrain@{method}"] = _entry([f"data/pretrain/{method}/model.pt",
                                                       f"metrics/pretrain_{method}.json"], md5=method.ljust(32, "0"))
        (clone / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
        (clone / "metrics" / f"pretrain_{method}.json").write_text(f'{{"method": "{method}"}}\n')
        made[method] = handoff.publish(clone, handoff.run_branch(f"run-{method}"), f"pretrain {method}")
        assert made[method]["commit"] == _git(origin, "rev-parse", f"avssl-runs/run-{method}").strip()
        shown = _git(origin, "show", f"avssl-runs/run-{method}:metrics/pretrain_{method}.json")
        assert method in shown  # the uncached metrics file went with dvc.lock
    # machine a (the pipeline's) takes avts's entry back after its own
    commit = handoff.take_stages(a, handoff.run_branch("run-avts"), ["pretrain@avts"])
    assert commit == made["avts"]["commit"]
    stages = handoff.read_lock(a)["stages"]
    assert stages["pretrain@avts"]["outs"][0]["md5"].startswith("avts")
    assert stages["pretrain@avc"]["outs"][0]["md5"].startswith("avc")  # its own entry untouched
    assert "segment" in stages
    assert (a / "metrics" / "pretrain_avts.json").read_text() == '{"method": "avts"}\n'


def test_a_missing_entry_or_remote_is_named(machines, tmp_path):
    _, (a, _) = machines
    with pytest.raises(handoff.HandoffError, match=r"main .* of origin: its dvc.lock has no stage pretrain@avc"):
        handoff.take_stages(a, "main", ["pretrain@avc"])
    with pytest.raises(handoff.HandoffError, match="git fetch .* failed in"):
        handoff.start_from(a, "avssl-runs/nope")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    _git(lonely, "init", "-q")
    with pytest.raises(ConfigError, match="needs a remote named 'origin'"):
        handoff.check_remote(lonely)
