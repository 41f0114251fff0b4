"""Optuna studies shared through a journal file (ablate.storage=journal:PATH): two `avssl ablate` workers
(two processes) run one study's grid through one journal file, each grid point once, and optuna-dashboard
serves the journal with the command the study's table prints."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import optuna
import pytest
from ablate_workers import run_ablate_workers
from optuna.storages.journal import JournalFileBackend
from test_ablate import _overrides

from avssl_core.ablate.storage import StorageError, absolute_url, display_url, journal_path, open_storage
from avssl_core.ablate.workers import progress

TRIALS = 4  # of avts_curriculum's six grid points: enough for both workers to take some


def test_journal_urls_name_a_file_absolute_or_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert journal_path("journal:///shared/fs/optuna.journal") == Path("/shared/fs/optuna.journal")
    assert journal_path("journal:data/ablate/optuna.journal") == Path("data/ablate/optuna.journal")
    assert journal_path("sqlite:///data/ablate/optuna.db") is None
    assert absolute_url("journal:data/o.journal") == str(tmp_path / "data" / "o.journal")  # optuna-dashboard's form
    assert display_url("journal:///shared/fs/o.journal") == "journal:///shared/fs/o.journal"
    storage = open_storage("journal:data/o.journal")
    assert isinstance(storage, optuna.storages.JournalStorage)
    optuna.create_study(study_name="s", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    reread = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(tmp_path / "data" / "o.journal"))))
    assert len(reread.trials) == 2


def test_bad_journal_urls_name_the_file_and_the_reason(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(StorageError, match=f"cannot create the folder {blocked}"):
        open_storage(f"journal://{blocked}/sub/optuna.journal")
    with pytest.raises(StorageError, match=f"no study database at {tmp_path}/missing.journal"):
        open_storage(f"journal://{tmp_path}/missing.journal", must_exist=True)
    with pytest.raises(StorageError, match="names no journal file"):
        open_storage("journal://")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serves(url: str, deadline_s: float) -> tuple[int, bytes] | None:
    """The first answer from ``url`` (status, body) within ``deadline_s``: a refused or timed-out request
    (the dashboard starting, or slow on busy cores) is asked again."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=15) as response:
                return response.status, response.read()
        except OSError:
            time.sleep(0.5)
    return None


@pytest.mark.slow
@pytest.mark.timeout(600)  # two workers train 4 trials: about 50 s on two busy cores
def test_two_workers_share_one_study_through_a_journal_file(tiny_clips, tmp_path):
    journal = tmp_path / "shared" / "optuna.journal"
    workers = run_ablate_workers(_overrides(tiny_clips, tmp_path, f"ablate.trials={TRIALS}"), f"journal://{journal}",
                                 tmp_path, timeout_s=450)

    study = optuna.load_study(study_name="avts_curriculum",
                              storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    trials = study.trials
    assert progress(study).done == TRIALS and len(trials) == TRIALS
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    rows = Counter(t.params["negatives"] for t in trials)
    assert len(rows) == TRIALS and set(rows.values()) == {1}, rows  # no grid point twice
    # As with PostgreSQL (test_ablate_postgres.py): how many trials each worker won depends on how fast each
    # started on busy cores, so none is required to have won any; every trial was run by one of the two.
    won = Counter(t.user_attrs["worker"]["pid"] for t in trials)
    assert set(won) <= {w.pid for w in workers}
    print(f"trials won per worker: {[won[w.pid] for w in workers]}")  # shown with -s

    table = (tmp_path / "ablate" / "avts_curriculum" / "trials.md").read_text()
    assert table.count("| COMPLETE |") == TRIALS
    assert f"- dashboard: `optuna-dashboard {journal}`" in table
    # The printed command opens the journal: optuna-dashboard serves the study over HTTP.
    port = _free_port()
    args = shlex.split(f"optuna-dashboard {journal}")
    dashboard = subprocess.Popen([str(Path(sys.executable).parent / args[0]), *args[1:], "--host", "127.0.0.1",
                                  "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        answer = _serves(f"http://127.0.0.1:{port}/api/studies", 60)
        assert answer is not None and answer[0] == 200 and b"avts_curriculum" in answer[1], answer
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
