"""Pretraining on several processes (GPUs) and machines from a flow: torchrun, started as a subprocess,
runs ``avssl pretrain`` -- the same stage the CLI and dvc.yaml run -- in every process. Its output is
streamed line by line to the run's logs, each line tagged with the global rank that wrote it; a failure
names the rank torchrun saw fail first, with that rank's last line.

One node: ``torchrun --standalone`` (a c10d rendezvous on a free local port). Several nodes: one flow run
per node, all with the same ``nnodes``, ``rdzv_endpoint`` and ``rdzv_id``; the c10d rendezvous (a TCP
store at the endpoint, hosted by the node whose address it is) assigns the ranks, so no node rank is
given. Global rank 0 writes the outputs, and only the flow run on its node versions them.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from avssl_core.errors import AvsslError, ConfigError

log = logging.getLogger(__name__)

# Every line a worker writes starts with this; torchrun's own lines (its agent, its failure report) do not.
RANK_PREFIX = re.compile(r"^\[rank(\d+)\]:")
_RDZV_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_STOP_GRACE_S = 30  # torchrun passes SIGTERM on to its workers; SIGKILL after this


class TorchrunError(AvsslError):
    """A torchrun launch failed: the message names the rank at fault, or says torchrun itself failed."""


@dataclass(frozen=True)
class TorchrunLaunch:
    """How many processes pretrain one method: ``nproc_per_node`` on each of ``nnodes`` machines."""

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None  # host:port of the c10d rendezvous (several nodes only)
    rdzv_id: str | None = None  # the same on every node of one job, new for the next job (several nodes only)

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    @property
    def multi_process(self) -> bool:
        return self.world_size > 1


def check_launch(nproc_per_node: int, nnodes: int, rdzv_endpoint: str | None = None,
                 rdzv_id: str | None = None, *, gpus_visible: int | None = None) -> TorchrunLaunch:
    """The launch the parameters ask for; a ConfigError names the parameter at fault.

    ``gpus_visible``: the GPUs this node's processes would train on (None: they train on the CPU); each
    process needs one of its own.
    """
    for name, value in (("nproc_per_node", nproc_per_node), ("nnodes", nnodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"parameter {name}: expected an integer >= 1, got {value!r}")
    if nnodes == 1:
        given = [name for name, value in (("rdzv_endpoint", rdzv_endpoint), ("rdzv_id", rdzv_id)) if value]
        if given:
            raise ConfigError(f"parameter {' and '.join(given)}: only used with nnodes > 1 (one node runs "
                              "torchrun --standalone, on a free local port)")
    else:
        if not rdzv_endpoint:
            raise ConfigError(f"parameter rdzv_endpoint: nnodes={nnodes} needs the host:port of the c10d "
                              "rendezvous, the same on every node (a free port on one of the nodes)")
        _check_endpoint(rdzv_endpoint)
        if not rdzv_id:
            raise ConfigError(f"parameter rdzv_id: nnodes={nnodes} needs a job id, the same on every node "
                              "of this run and new for the next (e.g. pretrain-avts-20261201)")
        if not _RDZV_ID.match(rdzv_id):
            raise ConfigError(f"parameter rdzv_id: {rdzv_id!r}: use letters, digits, '.', '_' and '-' "
                              "(at most 128), starting with a letter or digit")
    if gpus_visible is not None and nproc_per_node > gpus_visible:
        raise ConfigError(f"parameter nproc_per_node={nproc_per_node}: this machine has {gpus_visible} GPU(s) "
                          "and each process trains on one of its own; lower nproc_per_node, or set "
                          "pretrain.train.device=cpu")
    return TorchrunLaunch(nproc_per_node, nnodes, rdzv_endpoint or None, rdzv_id or None)


def _check_endpoint(endpoint: str) -> None:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"parameter rdzv_endpoint: expected host:port (e.g. gpu-node-1:29400), got {endpoint!r}")


def torchrun_command(launch: TorchrunLaunch, cli_args: list[str], log_dir: str | Path) -> list[str]:
    """torchrun (this interpreter's, so the workers run in the same environment) running
    ``python -m avssl_core.cli <cli_args>`` in each process."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(launch.nproc_per_node)]
    if launch.nnodes == 1:
        cmd += ["--standalone", "--nnodes", "1"]
    else:
        cmd += ["--nnodes", str(launch.nnodes), "--rdzv_backend", "c10d",
                "--rdzv_endpoint", str(launch.rdzv_endpoint), "--rdzv_id", str(launch.rdzv_id)]
    # --tee 3: every worker's stdout and stderr come to torchrun's console (and files in log_dir), each
    # line prefixed with its global rank.
    cmd += ["--tee", "3", "--log_line_prefix_template", "[rank${rank}]:", "--log_dir", str(log_dir),
            "-m", "avssl_core.cli", *cli_args]
    return cmd


@dataclass(frozen=True)
class TorchrunResult:
    ranks_here: frozenset[int]  # the global ranks that ran on this node

    @property
    def has_rank0(self) -> bool:
        return 0 in self.ranks_here


def run_torchrun(launch: TorchrunLaunch, cli_args: list[str], *, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None) -> TorchrunResult:
    """Run torchrun to the end, logging every line it and its workers write; raise TorchrunError on failure."""
    last_lines: dict[int, collections.deque[str]] = collections.defaultdict(lambda: collections.deque(maxlen=20))
    own_lines: collections.deque[str] = collections.deque(maxlen=400)  # torchrun's, for its failure report
    with tempfile.TemporaryDirectory(prefix="avssl-torchrun-") as log_dir:
        cmd = torchrun_command(launch, cli_args, log_dir)
        log.info("torchrun: %d process(es) per node x %d node(s): %s", launch.nproc_per_node, launch.nnodes,
                 " ".join(cmd[1:]))
        # Its own session: stopping the run (flow cancelled, worker stopped) ends torchrun and its workers.
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1, start_new_session=True)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                match = RANK_PREFIX.match(line)
                if match:
                    last_lines[int(match.group(1))].append(line[match.end():])
                else:
                    own_lines.append(line)
                log.info("%s", line)
            code = proc.wait()
        finally:
            _stop(proc)
    if code != 0:
        raise TorchrunError(failure_message(code, list(own_lines), last_lines))
    return TorchrunResult(frozenset(last_lines))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


_ROOT_CAUSE = "Root Cause (first observed failure):"
_FIELD = re.compile(r"^\s*(host|rank|exitcode)\s*:\s*(.*?)\s*$")


def root_cause(own_lines: list[str]) -> dict[str, str]:
    """host, rank and exitcode of the entry torchrun's failure report gives as the root cause ({} when
    it printed no such report: it failed before any worker did)."""
    start = next((i for i, line in enumerate(own_lines) if _ROOT_CAUSE in line), None)
    if start is None:
        return {}
    fields: dict[str, str] = {}
    for line in own_lines[start + 1:]:
        match = _FIELD.match(line)
        if match:
            fields.setdefault(match.group(1), match.group(2))
    return fields


def failure_message(code: int, own_lines: list[str], last_lines: dict[int, collections.deque[str]]) -> str:
    cause = root_cause(own_lines)
    rank = re.match(r"(\d+)(?:\s*\(local_rank:\s*(\d+)\))?", cause.get("rank", ""))
    if rank is None:
        tail = next((line.strip() for line in reversed(own_lines) if line.strip()), "")
        return (f"torchrun exited with code {code} before any rank failed (a rendezvous that did not "
                f"complete, or a launch error): {tail}")
    global_rank = int(rank.group(1))
    exit_text = cause.get("exitcode", "")
    number = re.match(r"(-?\d+)", exit_text)
    if number is None:
        how = f"exit code {exit_text or '?'}"
    elif int(number.group(1)) < 0:  # a signal: torchrun adds its name, e.g. "-9 (pid: 12)  (SIGKILL)"
        name = re.search(r"\((SIG\w+)\)", exit_text)
        how = f"killed by {name.group(1) if name else 'signal ' + number.group(1)[1:]}"
    else:
        how = f"exit code {number.group(1)}"
    where = ", ".join(filter(None, [f"local rank {rank.group(2)}" if rank.group(2) else "",
                                    f"on {cause['host']}" if cause.get("host") else ""]))
    said = next((line.strip() for line in reversed(last_lines.get(global_rank, ())) if line.strip()), None)
    said_text = f": {said}" if said else " (its output is in the logs of the flow run on its node)"
    return f"torchrun: rank {global_rank}{f' ({where})' if where else ''} failed with {how}{said_text}"
