"""Running a study's trials in one worker, beside any others on the same storage, and recovering the trials
of workers that died.

A trial whose process was killed stays RUNNING in the storage. It is failed and retried (once, with the same
grid point) when a worker finds its process gone: at once on the same host (its pid is recorded), or by
Optuna's heartbeat after the grace period for a worker on another machine. The retried trial does not count
towards the study's trial count; its retry does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from avssl_core.ablate.objective import FAIL_REASON_ATTR, WORKER_ATTR

log = logging.getLogger(__name__)

MAX_RETRIES = 1  # a trial that kills its worker twice is a real failure, not bad luck
_GRID_ATTRS = ("grid_id", "search_space")  # the GridSampler's: the retry reruns the same grid point


def retry_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a rerun of ``trial`` (failed because its worker died) with the same parameters and grid point."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRIES:
        log.warning("trial %d: its worker died again; not retried (retries: %s)", trial.number, history)
        return
    system_attrs = {k: trial.system_attrs[k] for k in _GRID_ATTRS if k in trial.system_attrs}
    system_attrs.update(failed_trial=trial.number, retry_history=history)
    study.add_trial(optuna.create_trial(state=TrialState.WAITING, params=trial.params,
                                        distributions=trial.distributions, system_attrs=system_attrs))
    log.warning("trial %d: its worker died; queued a retry with the same parameters %s", trial.number,
                trial.params)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def fail_dead_workers_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Fail (and retry) the RUNNING trials of ``study`` (held in ``storage``) whose worker process on this
    host no longer exists."""
    host, me = socket.gethostname(), os.getpid()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR) or {}
        pid = worker.get("pid")
        if worker.get("host") != host or pid == me or pid is None or _pid_alive(int(pid)):
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, FAIL_REASON_ATTR,
                                        f"worker pid {pid} on {host} died while running it")
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        failed.append(trial.number)
        retry_trial(study, storage.get_trial(trial._trial_id))
    return failed


@dataclasses.dataclass
class Progress:
    done: int  # finished trials that count: COMPLETE, PRUNED, FAIL (not those retried after their worker died)
    running: int
    waiting: int  # queued retries
    claimed_grid_ids: set[int]  # grid points finished, running or queued


def progress(study: optuna.Study) -> Progress:
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs}
    done = sum(1 for t in trials if t.state.is_finished() and t.number not in retried)
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
    claimed = {int(t.system_attrs["grid_id"]) for t in trials if "grid_id" in t.system_attrs}
    return Progress(done, running, waiting, claimed)


def run_worker(study: optuna.Study, storage: optuna.storages.BaseStorage,
               objective: Callable[[optuna.Trial], float], *, target: int, grid_size: int,
               timeout_s: float | None = None) -> str:
    """Run trials one at a time until the study holds ``target`` counted trials (with other workers' running
    ones), every grid point is taken, or ``timeout_s`` passed. Returns why it stopped."""
    started = time.monotonic()
    while True:
        fail_dead_workers_trials(study, storage)
        optuna.storages.fail_stale_trials(study)  # heartbeat: workers on other machines (retried by callback)
        state = progress(study)
        if state.waiting == 0:
            if state.done + state.running >= target:
                return "trial count reached"
            if len(state.claimed_grid_ids) >= grid_size and state.done + state.running >= grid_size:
                return "grid exhausted"
        if timeout_s is not None and time.monotonic() - started >= timeout_s:
            return "timeout"
        # One trial per call: the stop test above runs between trials, against what every worker did.
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
