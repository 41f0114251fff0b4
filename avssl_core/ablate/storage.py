"""Optuna storages: URLs, reachability checks with messages a user can act on, and the heartbeat that lets
a study outlive a killed worker.

SQLite (the default, a file under data/) serves one machine; a PostgreSQL URL, or an Optuna journal file
on a filesystem every machine mounts (``journal:///shared/fs/optuna.journal``), lets workers on several
machines share one study.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

from avssl_core.errors import ConfigError

SCHEMES = ("sqlite", "postgresql", "mysql")
# journal:PATH is an Optuna JournalStorage in the file PATH: journal:///shared/fs/optuna.journal (absolute)
# or journal:data/ablate/optuna.journal (relative to the working folder). Optuna's journal locks the file
# with a symlink (its default lock, which Optuna documents as working on NFS).
JOURNAL_SCHEME = "journal:"
_DRIVER_PACKAGES = {"postgresql": "psycopg and psycopg-binary", "mysql": "PyMySQL"}
# SQLAlchemy 2.0 (pinned: 2.1 breaks Prefect's scheduler) reads a bare postgresql:// URL as psycopg2, which
# the lock does not ship; psycopg 3 is the driver it installs, so a URL that names no driver gets that one.
_DEFAULT_DRIVERS = {"postgresql": "psycopg"}
CONNECT_TIMEOUT_S = 10
TABLE_RACE_ATTEMPTS = 5


class StorageError(ConfigError):
    """The Optuna storage URL is malformed, or its database cannot be reached."""


def journal_path(url: str) -> Path | None:
    """The file of a journal: URL (None for database URLs)."""
    if not url.startswith(JOURNAL_SCHEME):
        return None
    rest = url[len(JOURNAL_SCHEME):]
    return Path(rest[2:] if rest.startswith("//") else rest)


def display_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    if journal_path(url) is not None:
        return url  # a file has no password
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def with_driver(url: str) -> str:
    """``url`` with the installed driver named where it names none (postgresql:// -> postgresql+psycopg://)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return url
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=f"{parsed.drivername}+{driver}").render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite:/// URL (None for other URLs and in-memory SQLite)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def absolute_url(url: str) -> str:
    """sqlite:///relative.db -> sqlite:////abs/relative.db, so a printed command works from any folder; other
    URLs get the installed driver named, so optuna-dashboard (SQLAlchemy too) can open them. A journal gives
    its file's absolute path, which is how optuna-dashboard and the optuna CLI open a journal."""
    journal = journal_path(url)
    if journal is not None:
        return str(journal.resolve())
    path = sqlite_path(url)
    if path is None:
        return with_driver(url)
    if path.is_absolute():
        return url
    return sqlalchemy.engine.make_url(url).set(database=str(path.resolve())).render_as_string(hide_password=False)


def _what_to_do(url: str) -> str:
    local = sqlite_path(url) or journal_path(url)
    return (f"fix the URL with --storage or ablate.storage in params.yaml (the default is a SQLite file: "
            f"sqlite:///data/ablate/optuna.db){'' if local else ', or start the database server'}")


def check_storage_url(url: str, *, must_exist: bool = False) -> None:
    """Raise StorageError when ``url`` cannot be an Optuna storage: empty, unknown scheme, missing driver,
    a SQLite or journal file whose folder cannot be made, or (``must_exist``) one that does not exist."""
    if not url.strip():
        raise StorageError("ablate.storage is empty; " + _what_to_do(url))
    journal = journal_path(url)
    if journal is not None:
        if not journal.name:
            raise StorageError(f"ablate.storage {url}: names no journal file; expected e.g. "
                               f"journal:///shared/fs/optuna.journal")
        _check_local_file(url, journal, must_exist)
        return
    try:
        parsed = sqlalchemy.engine.make_url(with_driver(url))
    except sqlalchemy.exc.ArgumentError as exc:
        raise StorageError(f"ablate.storage {url!r} is not a database URL ({exc}); expected e.g. "
                           f"sqlite:///data/ablate/optuna.db, postgresql://user:password@host:5432/db or "
                           f"journal:///shared/fs/optuna.journal") from exc
    backend = parsed.get_backend_name()
    if backend not in SCHEMES:
        raise StorageError(f"ablate.storage {display_url(url)}: unsupported database {backend!r}; use one of "
                           f"{', '.join(SCHEMES)}, or journal:PATH for an Optuna journal file")
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError as exc:
        package = _DRIVER_PACKAGES.get(backend, "its database driver")
        raise StorageError(f"ablate.storage {display_url(url)}: the Python driver is missing ({exc}); install "
                           f"{package} (.venv/bin/pip install -r requirements.lock)") from exc
    path = sqlite_path(url)
    if path is not None:
        _check_local_file(url, path, must_exist)


def _check_local_file(url: str, path: Path, must_exist: bool) -> None:
    """A SQLite database or journal file: present if ``must_exist``, in a folder that exists (made here)
    and is writable."""
    if must_exist and not path.is_file():
        raise StorageError(f"ablate.storage {url}: no study database at {path.resolve()}; run "
                           f"`avssl ablate --study NAME` first, or " + _what_to_do(url))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"ablate.storage {url}: cannot create the folder {path.parent} ({exc}); "
                           + _what_to_do(url)) from exc
    if not os.access(path.parent, os.W_OK):
        raise StorageError(f"ablate.storage {url}: the folder {path.parent} is not writable; "
                           + _what_to_do(url))


def _engine_kwargs(url: str) -> dict:
    if sqlite_path(url) is not None:
        # Two workers on one SQLite file wait for each other's writes instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    if sqlalchemy.engine.make_url(url).get_backend_name() == "postgresql":
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    return {"pool_pre_ping": True}


def open_storage(url: str, *, heartbeat_interval_s: int | None = None, grace_period_s: int | None = None,
                 on_stale_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
                 must_exist: bool = False) -> optuna.storages.BaseStorage:
    """An RDBStorage for ``url``, connected and with Optuna's tables, or a JournalStorage on a journal: file;
    a StorageError naming the URL when it cannot be opened.

    Optuna's journal keeps no heartbeats: a killed worker's trial is recovered by the next worker on the same
    host (ablate/workers.py), not by one on another machine as with a database."""
    check_storage_url(url, must_exist=must_exist)
    journal = journal_path(url)
    if journal is not None:
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        except OSError as exc:
            raise StorageError(f"ablate.storage {url}: cannot open the journal file {journal.resolve()} ({exc}); "
                               + _what_to_do(url)) from exc
    for attempt in range(TABLE_RACE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                with_driver(url), engine_kwargs=_engine_kwargs(url), heartbeat_interval=heartbeat_interval_s,
                grace_period=grace_period_s, heartbeat_stale_trial_callback=on_stale_trial)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            # Workers started together on an empty database all create Optuna's tables; the losers of
            # that race see duplicates, and find the tables made when they try again.
            if attempt + 1 < TABLE_RACE_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise StorageError(f"ablate.storage {display_url(url)}: cannot create Optuna's tables "
                               f"({_reason(exc)}); check the database user's rights") from exc
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError) as exc:
            raise StorageError(f"ablate.storage: cannot reach {display_url(url)} ({_reason(exc)}); "
                               + _what_to_do(url)) from exc
    raise StorageError(f"ablate.storage {display_url(url)}: no attempt left")  # the loop always returns or raises


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
