"""The pretrain flow on several processes: its launch parameters, torchrun started from the flow (2 processes
on the CPU, gloo) giving what `torchrun -m avssl_core.cli pretrain` gives, two flow runs as two nodes of one
c10d rendezvous, and a failing rank named in the run's state. Setup of tests/torchrun_cmac.py: CMAC, the
real pretrain stage, the real tiny clips, 2 optimizer steps."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect_server import run_log_records

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # flows/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(REPO))

from avssl_core.errors import ConfigError  # noqa: E402
from avssl_core.orchestration.torchrun import (  # noqa: E402
    TorchrunError,
    TorchrunLaunch,
    check_launch,
    run_torchrun,
    torchrun_command,
)

VENV_BIN = Path(sys.executable).parent
# What depends on the machine or the moment, not on the training: left out of the comparison.
VOLATILE = {"seconds", "samples_per_s", "data_wait_fraction", "peak_rss_mb", "model", "run_dir"}


def _overrides(clips: Path, out: Path) -> list[str]:
    """tests/torchrun_cmac.py's settings, with this run's output folders."""
    return [f"paths.clips_dir={clips.parent}", f"paths.metrics_dir={out / 'metrics'}",
            f"pretrain.out_dir={out / 'pretrain'}", "pretrain.val_split=train", "pretrain.val_pairs=8",
            "pretrain.pairs_per_clip=1", "pretrain.train.batch_size=4", "pretrain.train.max_steps=2",
            "pretrain.train.epochs=1", "pretrain.train.progress=false", "pretrain.train.device=cpu"]


def _result(out: Path) -> tuple[str, dict]:
    model = out / "pretrain" / "cmac" / "model.pt"
    metrics = json.loads((out / "metrics" / "pretrain_cmac.json").read_text())
    return hashlib.sha256(model.read_bytes()).hexdigest(), {k: v for k, v in metrics.items() if k not in VOLATILE}


def _communicate(proc: subprocess.Popen, timeout_s: float) -> str:
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: torchrun and every worker
        output, _ = proc.communicate()
        pytest.fail(f"{proc.args[:4]} hung:\n{output[-3000:]}")
    return output


# -- parameters ----------------------------------------------------------------------------------------------

@pytest.mark.timeout(30)
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"nproc_per_node": 0, "nnodes": 1}, r"parameter nproc_per_node: expected an integer >= 1, got 0"),
    ({"nproc_per_node": 2, "nnodes": 0}, r"parameter nnodes: expected an integer >= 1, got 0"),
    ({"nproc_per_node": True, "nnodes": 1}, r"parameter nproc_per_node: expected an integer >= 1, got True"),
    ({"nproc_per_node": 2, "nnodes": 1, "rdzv_id": "job"}, r"parameter rdzv_id: only used with nnodes > 1"),
    ({"nproc_per_node": 1, "nnodes": 2, "rdzv_id": "job"}, r"parameter rdzv_endpoint: nnodes=2 needs the host:port"),
    ({"nproc_per_node": 1, "nnodes": 2, "rdzv_endpoint": "node1", "rdzv_id": "job"},
     r"parameter rdzv_endpoint: expected host:port .*got 'node1'"),
    ({"nproc_per_node": 1, "nnodes": 2, "rdzv_endpoint": "node1:70000", "rdzv_id": "job"},
     r"parameter rdzv_endpoint: expected host:port"),
    ({"nproc_per_node": 1, "nnodes": 2, "rdzv_endpoint": "node1:29400"}, r"parameter rdzv_id: nnodes=2 needs a job id"),
    ({"nproc_per_node": 1, "nnodes": 2, "rdzv_endpoint": "node1:29400", "rdzv_id": "a job"},
     r"parameter rdzv_id: 'a job': use letters"),
    ({"nproc_per_node": 4, "nnodes": 1, "gpus_visible": 2},
     r"parameter nproc_per_node=4: this machine has 2 GPU\(s\)"),
])
def test_launch_parameters_are_refused_naming_the_parameter(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        check_launch(**kwargs)


@pytest.mark.timeout(30)
def test_launch_commands_one_node_standalone_several_nodes_c10d(tmp_path):
    one = torchrun_command(check_launch(4, 1), ["pretrain", "--method", "avts"], tmp_path)
    assert one[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert " ".join(one[3:]) == (f"--nproc_per_node 4 --standalone --nnodes 1 --tee 3 --log_line_prefix_template "
                                 f"[rank${{rank}}]: --log_dir {tmp_path} -m avssl_core.cli pretrain --method avts")
    many = torchrun_command(check_launch(8, 2, "gpu-1:29400", "pretrain-avts-1"), ["pretrain"], tmp_path)
    assert " ".join(many[3:13]) == ("--nproc_per_node 8 --nnodes 2 --rdzv_backend c10d --rdzv_endpoint gpu-1:29400 "
                                    "--rdzv_id pretrain-avts-1")
    assert check_launch(1, 1) == TorchrunLaunch() and not TorchrunLaunch().multi_process


@pytest.mark.timeout(120)
def test_a_failing_rank_is_named_with_its_last_line(tmp_path):
    """Both processes refuse a missing parameters file (the CLI's exit code 2 and one error line); the
    error names the rank torchrun saw fail first and what that rank said."""
    missing = tmp_path / "nope.yaml"
    with pytest.raises(TorchrunError) as info:
        run_torchrun(check_launch(2, 1), ["--params", str(missing), "pretrain"], cwd=tmp_path,
                     env={**os.environ, "OMP_NUM_THREADS": "1"})
    message = str(info.value)
    assert message.startswith("torchrun: rank "), message
    assert " failed with exit code 2: avssl pretrain: error: " in message and str(missing) in message, message


# -- flow runs against the test session's local Prefect server ---------------------------------------------

@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    from prefect_server import client_settings

    yield from client_settings(tmp_path_factory)


@pytest.fixture(scope="module")
def direct_run(tiny_clips, tmp_path_factory) -> tuple[str, dict]:
    """Today's torchrun path, as the README gives it: `torchrun --standalone --nproc_per_node 2 -m
    avssl_core.cli pretrain`."""
    out = tmp_path_factory.mktemp("direct")
    sets = [arg for o in _overrides(tiny_clips, out) for arg in ("--set", o)]
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "avssl_core.cli",
           "--params", str(REPO / "params.yaml"), *sets, "pretrain", "--method", "cmac", "--preset", "tiny"]
    proc = subprocess.Popen(cmd, cwd=out, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    started = time.perf_counter()
    output = _communicate(proc, 300)
    assert proc.returncode == 0, output[-3000:]
    result = _result(out)
    print(f"torchrun -m avssl_core.cli pretrain, 2 processes: {time.perf_counter() - started:.1f} s, "
          f"model.pt sha256 {result[0]}")
    return result


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_flow_on_two_processes_gives_what_torchrun_of_the_cli_gives(prefect_api, tiny_clips, direct_run,
                                                                        tmp_path, monkeypatch):
    from flows.pretrain import pretrain_flow

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    state = pretrain_flow(method="cmac", preset="tiny", params_file=str(REPO / "params.yaml"),
                          overrides=_overrides(tiny_clips, tmp_path / "flow"), dvc="off", nproc_per_node=2,
                          return_state=True)
    assert state.is_completed(), state.message
    sha, metrics = _result(tmp_path / "flow")
    print(f"pretrain flow, nproc_per_node=2: {time.perf_counter() - started:.1f} s, model.pt sha256 {sha}")
    assert (sha, metrics) == direct_run
    assert state.result()["pretext_accuracy"] == metrics["pretext_accuracy"]  # rank 0's metrics, read back
    logs = [r["message"] for r in run_log_records(prefect_api.url, state.state_details.flow_run_id)]
    # Both ranks' own lines reached the run's logs, tagged with the rank (the CLI's summary ends each).
    for rank in (0, 1):
        assert any(line.startswith(f"[rank{rank}]:") for line in logs), logs[-20:]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_flow_runs_as_two_nodes_of_one_rendezvous(prefect_api, tiny_clips, direct_run, tmp_path):
    """`python -m flows pretrain --nnodes 2` twice, as two machines would run it (1 process each, the same
    world of 2 as above, so the same model); they share a folder, as nodes share a filesystem. The c10d
    store is hosted here, on a port the OS chose, so that no free port is guessed: both nodes find its
    address is theirs, fail to host it, and join it as clients, as torchrun does on the second process of
    one machine."""
    from torch.distributed import TCPStore

    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    workdir = tmp_path / "node"
    workdir.mkdir()
    shutil.copy(REPO / "params.yaml", workdir / "params.yaml")
    sets = [arg for o in _overrides(tiny_clips, tmp_path / "shared") for arg in ("--set", o)]
    cmd = [sys.executable, "-m", "flows", "pretrain", "--method", "cmac", "--dvc", "off", *sets,
           "--nproc-per-node", "1", "--nnodes", "2", "--rdzv-endpoint", f"127.0.0.1:{store.port}",
           "--rdzv-id", "test-two-nodes"]
    env = prefect_api.env(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), PREFECT_LOGGING_LEVEL="INFO")
    nodes = [subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) for _ in range(2)]
    started = time.perf_counter()
    outputs = [_communicate(node, 400) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n=====\n".join(o[-3000:] for o in outputs)
    assert _result(tmp_path / "shared") == direct_run
    print(f"two pretrain flow runs as 2 nodes x 1 process: {time.perf_counter() - started:.1f} s, "
          f"model.pt sha256 {direct_run[0]}")
    # One run ran rank 0 (and would version the result); the other says so.
    elsewhere = [o for o in outputs if "global rank 0 ran on another node" in o]
    assert len(elsewhere) == 1, "\n=====\n".join(o[-3000:] for o in outputs)
    del store


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_failing_rank_fails_the_flow_run_naming_the_rank(prefect_api, tmp_path, monkeypatch):
    from flows.pretrain import pretrain_flow

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    no_clips = tmp_path / "no_clips"
    no_clips.mkdir()
    state = pretrain_flow(method="cmac", params_file=str(REPO / "params.yaml"), dvc="off", nproc_per_node=2,
                          overrides=[f"paths.clips_dir={no_clips}", f"pretrain.out_dir={tmp_path / 'out'}",
                                     "pretrain.train.device=cpu"], return_state=True)
    assert state.is_failed()
    assert state.message.startswith("torchrun: rank "), state.message
    assert "failed with exit code 2: avssl pretrain: error: " in state.message, state.message
    assert str(no_clips / "index.csv") in state.message, state.message
    print(f"failed run's state message: {state.message}")
