"""A real method under a 2-process torchrun on CPU (gloo): CMAC, whose memory banks must hold every
rank's keys after each step (gathered in rank order), trained by the real pretrain stage on the real tiny
clips. The script that runs in each process is tests/torchrun_cmac.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("torchrun_cmac.py")
REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
STEPS = 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cmac_under_torchrun_gathers_both_ranks_keys_into_identical_banks(tiny_clips, tmp_path):
    report = tmp_path / "report"
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(SCRIPT),
           "--clips-dir", str(tiny_clips.parent), "--out", str(tmp_path / "run"), "--report", str(report),
           "--steps", str(STEPS)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}
    # Own session, so that a hang (a collective one rank never joins) can be ended with all workers.
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun hung:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]

    ranks = [json.loads((report / f"rank{r}.json").read_text()) for r in (0, 1)]
    banks = [torch.load(report / f"bank_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [len(r["local_clips"]) for r in ranks] == [STEPS, STEPS]  # the run completed its steps
    own = [{c for step in r["local_clips"] for c in step} for r in ranks]
    assert own[1] - own[0], "rank 1 wrote no clip rank 0 did not: the gather would be untested"
    # Every clip either rank encoded has its key in the banks of both ranks, and the banks are identical.
    for bank in banks:
        filled = {int(c) for c in bank["clips"].tolist() if c >= 0}
        assert filled == own[0] | own[1]
    for name in ("video_keys", "audio_keys", "clips", "sources"):
        assert torch.equal(banks[0][name], banks[1][name]), name
    # Rank 0 also wrote the model, whose bank is that same gathered bank.
    model = torch.load(tmp_path / "run" / "pretrain" / "cmac" / "model.pt", weights_only=True)["state_dict"]
    assert torch.equal(model["video_bank.clips"], banks[0]["clips"])
