"""The Prefect flows and their helpers: retries only on transient errors, content-hash cache keys, DVC
versioning, promotion decisions, parameter checks; flow runs on tiny data against one local server."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # flows/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(REPO))

from flow_project import fresh_project  # noqa: E402
from prefect_server import api, run_log_records  # noqa: E402

from avssl_core import pipeline_spec  # noqa: E402
from avssl_core.config import load_config  # noqa: E402
from avssl_core.errors import ConfigError, DataError  # noqa: E402
from avssl_core.orchestration import cache, promotion, versioning  # noqa: E402
from avssl_core.orchestration.artifacts import artifact_key, metrics_table, stage_markdown  # noqa: E402
from avssl_core.orchestration.fingerprints import section_digest, table_digest  # noqa: E402
from avssl_core.orchestration.parameters import check_method, flow_config  # noqa: E402
from avssl_core.orchestration.retry import is_transient  # noqa: E402
from avssl_core.orchestration.server import PrefectServerUnreachable, check_api_reachable  # noqa: E402

# -- no server -------------------------------------------------------------------------------------------


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status


def _http_error(status: int) -> Exception:
    exc = requests.HTTPError(f"{status}")
    exc.response = _Response(status)
    return exc


@pytest.mark.parametrize("exc, transient", [
    (TimeoutError("read timed out"), True),
    (ConnectionResetError("reset by peer"), True),
    (OSError(errno.EIO, "I/O error"), True),
    (requests.ConnectionError("refused"), True),
    (_http_error(503), True),
    (_http_error(429), True),
    (_http_error(404), False),
    (FileNotFoundError("gone"), False),
    (PermissionError("denied"), False),
    (OSError(errno.ENOSPC, "disk full"), False),
    (ConfigError("segment.crf: expected an integer"), False),
    (DataError("no valid videos"), False),
    (ValueError("bug"), False),
    (BlockingIOError(errno.EAGAIN, "dvc lock held"), True),
])
def test_only_transient_failures_are_retried(exc, transient):
    assert is_transient(exc) is transient


def test_a_data_error_caused_by_an_os_error_is_not_retried():
    try:
        try:
            raise TimeoutError("slow disk")
        except TimeoutError as inner:
            raise DataError("manifest.csv unreadable") from inner
    except DataError as exc:
        assert not is_transient(exc)


def _manifest(path: Path, rows: list[tuple[str, str]], prefix: str) -> Path:
    frame = pd.DataFrame([{"video_id": v, "sha256": s, "label": "a", "split": "train", "start_s": "", "end_s": "",
                           "path": f"{prefix}/{v}.mp4", "annotation_path": ""} for v, s in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def test_cache_keys_follow_content_not_paths(tmp_path):
    rows = [("v1", "aa"), ("v2", "bb")]
    one = table_digest(_manifest(tmp_path / "a" / "manifest.csv", rows, "/data/one"))
    moved = table_digest(_manifest(tmp_path / "b" / "manifest.csv", list(reversed(rows)), "/elsewhere"))
    changed = table_digest(_manifest(tmp_path / "c" / "manifest.csv", [("v1", "aa"), ("v2", "bc")], "/data/one"))
    assert one == moved  # other folder, other paths, other row order: same content
    assert one != changed  # one file's bytes changed
    cfg = load_config(None)
    assert section_digest(cfg, "segment") != section_digest(load_config(None, ["segment.crf=23"]), "segment")
    assert section_digest(cfg, "segment") == section_digest(load_config(None, ["validate.min_fps=5"]), "segment")
    with pytest.raises(DataError, match="missing"):
        table_digest(tmp_path / "nope.csv")


def test_a_cached_result_is_reused_only_while_its_outputs_are_intact(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSSL_FLOW_STAMPS", str(tmp_path / "stamps"))
    out = tmp_path / "index.csv"
    out.write_text("clip_id\nA\n")
    assert not cache.is_fresh("k1", [out])
    cache.write_stamp("k1", [out])
    assert cache.is_fresh("k1", [out]) and not cache.is_fresh("k2", [out])
    out.write_text("clip_id\nB\n")  # another run (other inputs) overwrote the outputs
    assert not cache.is_fresh("k1", [out])
    out.unlink()
    assert not cache.is_fresh("k1", [out])


def test_parameter_errors_name_the_parameter(tmp_path):
    with pytest.raises(ConfigError, match=r"parameter method: unknown method 'nope'"):
        check_method("nope")
    with pytest.raises(ConfigError, match=r"parameter overrides: override 'segment\.crf'"):
        flow_config("params.yaml", ["segment.crf"])
    with pytest.raises(ConfigError, match=r"parameter overrides: .*unknown key 'crff'.*did you mean 'crf'"):
        flow_config("params.yaml", ["segment.crff=3"])
    with pytest.raises(ConfigError, match="parameter params_file"):
        flow_config(str(tmp_path / "missing.yaml"), [])
    with pytest.raises(ConfigError, match="parameter overrides: expected a list"):
        flow_config("params.yaml", "segment.crf=3")  # type: ignore[arg-type]


def test_overrides_of_tracked_params_cannot_be_versioned():
    stages = pipeline_spec.dvc_stages(REPO)
    ref = load_config(None)
    eff = load_config(None, ["segment.crf=23"])
    versioning.check_overrides_versionable(eff, ref, stages, ["acquire", "validate"], ["segment.crf=23"])
    with pytest.raises(ConfigError, match=r"segment.*stage 'segment'.*dvc='off'"):
        versioning.check_overrides_versionable(eff, ref, stages, ["segment"], ["segment.crf=23"])
    # validate tracks only segment.clip_seconds of the segment section
    eff = load_config(None, ["segment.clip_seconds=4"])
    with pytest.raises(ConfigError, match=r"segment\.clip_seconds.*'validate'"):
        versioning.check_overrides_versionable(eff, ref, stages, ["validate"], ["segment.clip_seconds=4"])
    assert pipeline_spec.stage_name(stages, "pretrain", "avc") == "pretrain@avc"
    assert pipeline_spec.stage_name(stages, "nope") is None
    with pytest.raises(ConfigError, match="parameter dvc"):
        versioning.check_project(REPO, "sometimes")


def test_unreachable_server_message_names_the_url_and_the_fix():
    with pytest.raises(PrefectServerUnreachable) as info:
        check_api_reachable("http://127.0.0.1:9/api", timeout_s=2)
    message = str(info.value)
    assert "http://127.0.0.1:9/api" in message and "PREFECT_API_URL" in message
    assert "prefect server start" in message


def _metrics_file(path: Path, accuracy: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": "avc", "data": "clips/index.csv split 'test'", "tasks": {
        "pretext_easy": {"dataset": "clips", "protocol": "128 fixed pairs", "pretrained": {"accuracy": accuracy},
                         "scratch": {"accuracy": 0.5}, "skipped": 0}}}))
    return path


def test_promotion_promotes_a_better_model_and_refuses_a_worse_one(tmp_path):
    cfg = load_config(None, [f"retrain.best_dir={tmp_path / 'best'}", "retrain.min_improvement=0.01"])
    metric = cfg.retrain.metric
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights v1")

    first = promotion.read_metric(_metrics_file(tmp_path / "m1" / "avc.json", 0.70), metric)
    ok, reason = promotion.decide(first, None, "maximize", 0.01)
    assert ok and "no current best" in reason
    decision = promotion.Decision("avc", ok, reason, metric, "maximize", 0.01, first.value, None,
                                  data_fingerprint="f1")
    promotion.promote(cfg, decision, model, first.metrics_file)
    promotion.record_decision(cfg, decision)
    record = promotion.current_best(cfg, "avc")
    assert record["value"] == 0.70 and (tmp_path / "best/avc/model.pt").read_bytes() == b"weights v1"

    # better by 0.02 > 0.01: promoted; better by 0.005: refused; worse: refused; unmeasured: refused
    better = promotion.read_metric(_metrics_file(tmp_path / "m2" / "avc.json", 0.72), metric)
    assert promotion.decide(better, first, "maximize", 0.01)[0]
    slightly = promotion.read_metric(_metrics_file(tmp_path / "m3" / "avc.json", 0.705), metric)
    ok, reason = promotion.decide(slightly, first, "maximize", 0.01)
    assert not ok and "new 0.7050 vs best 0.7000" in reason
    worse = promotion.read_metric(_metrics_file(tmp_path / "m4" / "avc.json", 0.60), metric)
    assert not promotion.decide(worse, first, "maximize", 0.0)[0]
    assert promotion.decide(worse, first, "minimize", 0.0)[0]
    missing = promotion.read_metric(tmp_path / "m5" / "avc.json", metric)
    ok, reason = promotion.decide(missing, first, "maximize", 0.0)
    assert not ok and "no such metrics file" in reason
    refused = promotion.Decision("avc", False, reason, metric, "maximize", 0.0, None, 0.70, data_fingerprint="f2")
    promotion.record_decision(cfg, refused)
    lines = (tmp_path / "best/decisions.jsonl").read_text().splitlines()
    assert [json.loads(line)["promoted"] for line in lines] == [True, False]
    # an unmeasured retrain does not count as having seen its data
    assert promotion.last_fingerprint(cfg, "avc") == "f1"
    assert "kept the current best" in promotion.decision_markdown(refused)


def test_metric_lookup_and_reading(tmp_path):
    path = tmp_path / "pretrain_avc.json"
    path.write_text(json.dumps({"protocol": {"split": "val", "pairs": 256}, "data": "x",
                                "pretext_accuracy": {"easy": 0.625}}))
    reading = promotion.read_metric(path, "pretext_accuracy.easy")
    assert reading.value == 0.625 and reading.protocol["protocol"]["pairs"] == 256
    assert promotion.read_metric(path, "pretext_accuracy.hard").error.endswith("no numeric metric 'pretext_accuracy.hard'")
    assert promotion.lookup_metric({"tasks": {"retrieval_video": {"pretrained": {"R@1": 0.25}}}},
                                   "tasks.retrieval_video.pretrained.R@1") == 0.25


def test_artifact_builders():
    assert artifact_key("avssl", "Pretrain", "avc_tiny") == "avssl-pretrain-avc-tiny"
    md = stage_markdown("segment", {"num_clips": 8, "failures": [], "seconds": 1.5, "other": 1}, dvc_note="Versioned")
    assert "| num_clips | 8 |" in md and "other" not in md and "Versioned" in md
    table = metrics_table({"avc": {"pretext_accuracy": {"easy": 0.6}},
                           "avts": {"tasks": {"pretext_easy": {"pretrained": {"accuracy": 0.55}}}}})
    assert table[0]["method"] == "avc" and table[0]["pretext_accuracy.easy"] == 0.6
    assert table[1]["pretext_easy.pretrained.accuracy"] == 0.55 and table[1]["pretext_accuracy.easy"] == ""


# -- flow runs against the test session's local Prefect server (slow: it starts in 15-35 s here) -----------

@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """The session's local Prefect server, with this process's results and stamps in a temporary folder."""
    from prefect_server import client_settings

    yield from client_settings(tmp_path_factory)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return fresh_project(tmp_path_factory.mktemp("project"))


@pytest.mark.slow  # the local server starts in 15-35 s here
@pytest.mark.timeout(900)  # end to end; see [tool.pytest.ini_options] in pyproject.toml
def test_retry_condition_in_a_real_task(prefect_api):
    from prefect import flow, task

    from flows.tasks import RETRY_OPTIONS

    calls = {"flaky": 0, "bad": 0}
    options = {**RETRY_OPTIONS, "retry_delay_seconds": 0}

    @task(**options)
    def flaky():
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise TimeoutError("the share did not answer")
        return "ok"

    @task(**options)
    def bad():
        calls["bad"] += 1
        raise ConfigError("segment.crf: expected an integer")

    @flow
    def both():
        return flaky(), bad(return_state=True)

    value, bad_state = both()
    assert value == "ok" and calls["flaky"] == 2
    assert bad_state.is_failed() and calls["bad"] == 1


@pytest.mark.slow  # the local server starts in 15-35 s here
@pytest.mark.timeout(900)  # end to end; see [tool.pytest.ini_options] in pyproject.toml
def test_data_flow_versions_every_stage_and_reuses_cached_stages(prefect_api, project, monkeypatch):
    from flows.data import data_flow

    monkeypatch.chdir(project)
    started = time.perf_counter()
    first = data_flow(return_state=True)
    first_s = time.perf_counter() - started
    assert first.is_completed(), first.message
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for stage, out in (("acquire", "data/acquired"), ("validate", "data/validated"), ("segment", "data/clips")):
        assert out in [o["path"] for o in lock[stage]["outs"]], stage
    assert lock["segment"]["params"]["params.yaml"]["segment"]["clip_seconds"] == 2.0
    # dvc status agrees that the outputs on disk are the ones dvc.lock records
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "validate", "segment"], cwd=project,
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stderr  # a dvc that failed prints no "changed" either
    assert "changed" not in status.stdout and "up to date" in status.stdout, status.stdout
    index = pd.read_csv(project / "data/clips/index.csv")
    assert len(index) == 8

    started = time.perf_counter()
    second = data_flow(return_state=True)
    second_s = time.perf_counter() - started
    assert second.is_completed()
    summary = second.result()
    assert summary["segment"] == first.result()["segment"]  # restored from the cache, not recomputed
    print(f"data flow: first run {first_s:.1f} s, second (validate + segment cached) {second_s:.1f} s")


@pytest.mark.slow  # the local server starts in 15-35 s here
@pytest.mark.timeout(900)  # end to end; see [tool.pytest.ini_options] in pyproject.toml
def test_flows_refuse_bad_parameters_before_any_stage(prefect_api, project, monkeypatch):
    from prefect.exceptions import ParameterTypeError

    from flows.data import data_flow
    from flows.pretrain import pretrain_flow

    monkeypatch.chdir(project)
    with pytest.raises(ParameterTypeError, match="method"):
        pretrain_flow(method="nope")
    with pytest.raises(ConfigError, match=r"parameter overrides: override 'segment\.crf'"):
        data_flow(overrides=["segment.crf"], dvc="off")
    with pytest.raises(ConfigError, match=r"parameter overrides \['segment.crf=30'\].*dvc='off'"):
        data_flow(overrides=["segment.crf=30"])


@pytest.mark.slow
@pytest.mark.timeout(900)  # end to end; see [tool.pytest.ini_options] in pyproject.toml
def test_retrain_promotes_then_refuses_an_equal_model(prefect_api, project, monkeypatch):
    from flows.retrain import retrain_flow

    monkeypatch.chdir(project)
    first = retrain_flow(method="avc")
    assert first["promoted"] and "no current best" in first["reason"]
    assert (project / "models/best/avc/model.pt").is_file()
    assert (project / "models/best.dvc").is_file()  # versioned by DVC

    # Same data: nothing to do.
    assert retrain_flow(method="avc") == {"retrained": False, "reason": "no new data",
                                          "data_fingerprint": first["data_fingerprint"]}
    # Forced on the same data: the same model (cached pretraining), re-measured under the same protocol,
    # is not better than itself.
    again = retrain_flow(method="avc", force=True)
    assert not again["promoted"] and again["candidate"] == again["incumbent"]
    decisions = [json.loads(line) for line in (project / "models/best/decisions.jsonl").read_text().splitlines()]
    assert [d["promoted"] for d in decisions] == [True, False]
    assert decisions[1]["incumbent"] == decisions[0]["candidate"]
    print("retrain decisions:", *[d["reason"] for d in decisions], sep="\n  ")


@pytest.mark.slow
def test_runs_are_named_by_the_resolved_method_and_a_data_error_is_one_line(prefect_api, project, monkeypatch,
                                                                             tmp_path):
    from flows.pretrain import pretrain_flow
    from flows.retrain import retrain_flow

    monkeypatch.chdir(project)
    empty = tmp_path / "empty"
    empty.mkdir()
    # no `method`: the run is named by retrain.method (here overridden), not retrain-None
    state = retrain_flow(overrides=["retrain.method=cmac", "acquire.source=local", f"acquire.local.path={empty}",
                                    f"paths.raw_dir={tmp_path / 'raw'}"], dvc="off", return_state=True)
    assert state.is_failed()
    with pytest.raises(DataError) as info:  # the stage's own exception, for a caller in this process
        state.result()
    assert state.message == str(info.value) and str(empty) in state.message
    run = api(prefect_api.url, f"/flow_runs/{state.state_details.flow_run_id}")
    assert run["name"] == "retrain-cmac" and run["state"]["message"] == str(info.value)
    records = run_log_records(prefect_api.url, run["id"])
    errors = [r["message"] for r in records if r["level"] >= 40]
    assert len([m for m in errors if str(empty) in m]) == 1, errors  # once, on one line: no traceback
    assert not any("Traceback" in r["message"] for r in records), [r["message"] for r in records]

    state = pretrain_flow(overrides=["pretrain.trian.seed=1"], dvc="off", return_state=True)
    run = api(prefect_api.url, f"/flow_runs/{state.state_details.flow_run_id}")
    assert run["name"] == "pretrain-avc"  # the typed default of `method`
    assert state.message == "parameter overrides: params.yaml.pretrain: unknown key 'trian' (did you mean 'train'?)"


@pytest.mark.slow  # the local server starts in 15-35 s here
@pytest.mark.timeout(600)
def test_data_flow_writes_no_credentials(prefect_api, tmp_path_factory, monkeypatch, caplog, capfd):
    """The data flow on a list whose URL carries a password and a token, with lakeFS and AWS credentials in
    the environment: no planted secret may reach the project (dvc.lock, tables, metrics, Data Docs, the DVC
    cache), the Prefect server's database (flow-run parameters, logs, artifacts) or the captured output."""
    from http_file_server import Server
    from media_factory import write_clip
    from planted_secrets import URL_PASSWORD, URL_TOKEN, leaks, plant_secrets

    from flows.data import data_flow

    plant_secrets(monkeypatch)
    outside = tmp_path_factory.mktemp("list")  # the list and its media live outside the project
    write_clip(outside / "media" / "local.mp4", seconds=2.0, seed=31)
    clip = write_clip(outside / "served.mp4", seconds=2.0, seed=32)
    with Server({"/v/clip.mp4": clip.read_bytes()}) as server:
        host = server.url.removeprefix("http://")
        (outside / "list.csv").write_text(f"path\nlocal.mp4\nhttp://bob:{URL_PASSWORD}@{host}/v/clip.mp4?t={URL_TOKEN}\n")
        project = fresh_project(tmp_path_factory.mktemp("secrets-project"), params_update={
            **TINY_DATA,
            "acquire": {"source": "manifest", "workers": 1,
                        "manifest": {"csv": str(outside / "list.csv"), "media_dir": str(outside / "media"),
                                     "download_retries": 0}},
        })
        monkeypatch.chdir(project)
        state = data_flow(return_state=True)
    assert state.is_completed(), state.message
    assert len(pd.read_csv(project / "data/clips/index.csv")) == 4  # both videos made it: the download worked
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # logs reach the server in batches: send the last one before searching
    texts = {"captured log": caplog.text, **dict(zip(("stdout", "stderr"), capfd.readouterr(), strict=True))}
    for folder in (project, prefect_api.home):
        for path in folder.rglob("*"):
            # tests/ of the copied checkout holds the planted values themselves (planted_secrets.py)
            if path.is_file() and not path.is_symlink() and not path.is_relative_to(project / "tests"):
                texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert any("prefect.db" in name for name in texts)  # the server's database was searched
    assert leaks(texts) == []
    assert URL_PASSWORD in (outside / "list.csv").read_text()  # planted where the run read it


TINY_DATA = {"synth": {"num_videos": 4}, "validate": {"workers": 1, "min_duration_s": 1.0},
             "segment": {"clip_seconds": 1.0, "short_side": 64, "workers": 1}}
