"""Two `avssl ablate` workers (two processes) share one study on a real PostgreSQL server, started here
in a temporary folder (Debian's postgresql package; scripts/install.sh installs it), without running any
grid point twice."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import optuna
import pytest
from ablate_workers import run_ablate_workers
from test_ablate import _overrides

from avssl_core.ablate.storage import with_driver
from avssl_core.ablate.workers import progress


def _postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="avssl-pg-"))
    if os.geteuid() == 0:
        # The server refuses to run as root: run it as Debian's postgres user.
        try:
            import pwd

            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL server as")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    # A free port is only free until someone binds it (other test runs on the machine): a server that could
    # not bind is started again on another port.
    for _ in range(5):
        port = _free_port()
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        (root / "server.log").unlink(missing_ok=True)
        started = subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "server.log"),
                                  "-w", "start"], capture_output=True, text=True)
        if started.returncode == 0:
            break
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        if "could not bind" not in log and "already in use" not in log:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start: {started.stdout}{started.stderr}\n{log[-3000:]}")
    else:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError("PostgreSQL: the port was taken by another process 5 times in a row")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(900)  # end to end; see [tool.pytest.ini_options] in pyproject.toml
def test_two_workers_share_one_study_without_duplicate_grid_points(tiny_clips, tmp_path, postgres_url):
    workers = run_ablate_workers(_overrides(tiny_clips, tmp_path), postgres_url, tmp_path, timeout_s=500)

    # Read as a user would: SQLAlchemy 2.0 needs the installed driver named (storage.with_driver).
    study = optuna.load_study(study_name="avts_curriculum", storage=with_driver(postgres_url))
    trials = study.trials
    assert progress(study).done == 6 and len(trials) == 6  # AVTS Table 1's six rows, once each
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    rows = Counter(t.params["negatives"] for t in trials)
    assert len(rows) == 6 and set(rows.values()) == {1}, rows
    # Every trial was run by one of the two workers. How many each won depends on how fast each started
    # (on busy cores one may find the grid done), so no worker is required to have won any.
    assert {t.user_attrs["worker"]["pid"] for t in trials} <= {w.pid for w in workers}
    table = (tmp_path / "ablate" / "avts_curriculum" / "trials.md").read_text()
    assert table.count("| COMPLETE |") == 6 and "optuna-dashboard postgresql+psycopg://postgres@127.0.0.1:" in table
