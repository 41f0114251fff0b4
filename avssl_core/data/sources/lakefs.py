"""Videos versioned in lakeFS, read at one commit so that a run can be reproduced exactly.

``acquire.lakefs.ref`` (a branch, tag or commit) is first resolved to a commit id; listing and downloads
then use that id, never the moving branch, and every row's ``source_uri`` is
``lakefs://<repo>/<commit>/<path>``. ``resolve_commit`` lets a flow notice that a branch moved on.
Only committed objects are seen: uncommitted changes on a branch are not data yet.

Credentials come the way lakectl finds them (the SDK's own chain): LAKECTL_SERVER_ENDPOINT_URL,
LAKECTL_CREDENTIALS_ACCESS_KEY_ID and LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY, else the lakectl config file
(LAKECTL_CONFIG_FILE or ~/.lakectl.yaml); ``acquire.lakefs.endpoint_url`` overrides the endpoint.
Objects are downloaded to ``<raw_dir>/lakefs/<repo>/<commit>/<path>``; one already there with the listed
size (and MD5 checksum, when lakeFS gives a plain one) is not fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lakefs
import urllib3
import yaml
from lakefs.exceptions import (
    ForbiddenException,
    InvalidEnvVarFormat,
    LakeFSException,
    NoAuthenticationFound,
    NotAuthorizedException,
    NotFoundException,
    ServerException,
    UnsupportedCredentialsProviderType,
)
from tqdm import tqdm

from avssl_core.config import LakeFSSourceConfig
from avssl_core.data.sources.common import (
    class_folder_labels,
    has_extension,
    make_row,
    make_video_id,
    normalize_extensions,
    skip_reason,
    sort_rows,
)
from avssl_core.data.roots import is_inside
from avssl_core.data.sources.redact import redact_url
from avssl_core.errors import ConfigError, DataError
from avssl_core.io_utils import atomic_path

log = logging.getLogger(__name__)

# Each read is one ranged GET held in memory by the SDK; 8 MiB bounds memory and keeps requests few.
CHUNK_BYTES = 8 << 20
API_PATH = "/api/v1"
_MD5_HEX = re.compile(r"[0-9a-f]{32}")
_CREDENTIAL_HELP = (
    "set LAKECTL_CREDENTIALS_ACCESS_KEY_ID and LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY, "
    "or credentials.access_key_id/secret_access_key in {config_file}"
)


@dataclass
class Connection:
    client: lakefs.Client
    endpoint: str  # the API base URL, as named in messages (credentials redacted)


def lakectl_config_file() -> str:
    return os.environ.get("LAKECTL_CONFIG_FILE", os.path.join(Path.home(), ".lakectl.yaml"))


def connect(cfg: LakeFSSourceConfig) -> Connection:
    """A client configured from the environment / lakectl config, pointed at ``cfg.endpoint_url`` if set."""
    if not cfg.repository.strip():
        raise ConfigError("acquire.lakefs.repository is empty: name the lakeFS repository that holds the videos")
    config_file = lakectl_config_file()
    try:
        client = lakefs.Client()
    except NoAuthenticationFound:
        raise ConfigError(
            "no lakeFS credentials found: " + _CREDENTIAL_HELP.format(config_file=config_file)
        ) from None
    except (UnsupportedCredentialsProviderType, InvalidEnvVarFormat) as exc:
        raise ConfigError(f"lakeFS credentials provider: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_file}: not valid YAML: {exc}") from exc
    except (TypeError, AttributeError) as exc:  # e.g. an empty file or a "server:" that is not a mapping
        raise ConfigError(f"{config_file}: not a lakectl configuration ({exc})") from exc
    endpoint = cfg.endpoint_url.strip() or (client.config.host or "")
    if not endpoint.strip() or endpoint.strip() == API_PATH:
        raise ConfigError(
            "no lakeFS endpoint: set acquire.lakefs.endpoint_url, LAKECTL_SERVER_ENDPOINT_URL, "
            f"or server.endpoint_url in {config_file}"
        )
    client.config.host = api_base_url(endpoint)
    # Messages name the endpoint; an endpoint URL may carry user:password@ (LAKECTL_SERVER_ENDPOINT_URL).
    return Connection(client=client, endpoint=redact_url(client.config.host))


def api_base_url(endpoint: str) -> str:
    """``lakefs.example.com:8000`` -> ``http://lakefs.example.com:8000/api/v1``, as lakectl reads it."""
    endpoint = endpoint.strip().rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        endpoint = f"http://{endpoint}"
    _, _, rest = endpoint.partition("://")
    if "/" not in rest:
        endpoint += API_PATH
    return endpoint


@contextlib.contextmanager
def explained_errors(conn: Connection, doing: str) -> Iterator[None]:
    """Turn SDK and network exceptions into DataErrors that say what to fix."""
    try:
        yield
    except NotAuthorizedException as exc:
        raise DataError(
            f"lakeFS at {conn.endpoint} refused the credentials while {doing} ({_server_message(exc)}): "
            + _CREDENTIAL_HELP.format(config_file=lakectl_config_file())
        ) from None
    except ForbiddenException as exc:
        raise DataError(
            f"lakeFS at {conn.endpoint}: these credentials may not {doing} ({_server_message(exc)}); "
            "ask an admin for read access to the repository"
        ) from None
    except ServerException as exc:
        if not exc.status_code:  # status 0: the SDK's wrapping of a TLS failure
            raise DataError(f"cannot reach lakeFS at {conn.endpoint}: {exc.reason}") from None
        if isinstance(exc, NotFoundException):
            raise
        raise DataError(
            f"lakeFS at {conn.endpoint} answered {exc.status_code} {exc.reason} while {doing}: "
            f"{_server_message(exc)}"
        ) from None
    except urllib3.exceptions.HTTPError as exc:  # refused, DNS, timeouts: MaxRetryError wraps them
        raise DataError(f"cannot reach lakeFS at {conn.endpoint}: {_network_reason(exc)}") from None


def resolve_commit(cfg: LakeFSSourceConfig, conn: Connection | None = None) -> str:
    """The commit id that ``cfg.ref`` points at now."""
    conn = conn or connect(cfg)
    repo = lakefs.repository(cfg.repository, client=conn.client)
    doing = f"resolving ref {cfg.ref!r} of repository {cfg.repository!r}"
    try:
        with explained_errors(conn, doing):
            return repo.ref(cfg.ref).get_commit().id
    except NotFoundException:
        pass
    # Say which of the two is missing: the fix differs (a typo in the repository, or a branch not pushed).
    try:
        with explained_errors(conn, f"reading repository {cfg.repository!r}"):
            default_branch = repo.properties.default_branch
    except NotFoundException:
        raise DataError(f"repository {cfg.repository!r} not found at {conn.endpoint}") from None
    raise DataError(
        f"ref {cfg.ref!r} not found in repository {cfg.repository!r} at {conn.endpoint} "
        f"(acquire.lakefs.ref takes a branch, tag or commit id; the default branch is {default_branch!r})"
    )


def list_files(cfg: LakeFSSourceConfig, raw_dir: Path, skipped: list[dict] | None = None) -> list[dict]:
    """One row per video object under ``cfg.prefix`` at the commit ``cfg.ref`` resolves to, downloaded.

    Every other object listed is appended to ``skipped`` as {path (its lakefs:// URI), reason}.
    """
    extensions = normalize_extensions(cfg.extensions)
    if not extensions:
        raise ConfigError("acquire.lakefs.extensions is empty: list the video extensions to pick up, e.g. [.mp4]")
    conn = connect(cfg)
    commit_id = resolve_commit(cfg, conn)
    prefix = folder_prefix(cfg.prefix)
    where = f"lakefs://{cfg.repository}/{commit_id}/{prefix}"
    at_commit = lakefs.repository(cfg.repository, client=conn.client).ref(commit_id)
    try:
        with explained_errors(conn, f"listing {where}"):
            listed = [o for o in at_commit.objects(prefix=prefix, _request_timeout=cfg.timeout_s)
                      if isinstance(o, lakefs.ObjectInfo)]
    except NotFoundException as exc:
        raise DataError(f"lakeFS at {conn.endpoint}: {where} not found ({_server_message(exc)})") from None
    objects = sorted((o for o in listed if has_extension(o.path, extensions)), key=lambda o: o.path)
    if skipped is not None:
        skipped.extend({"path": f"lakefs://{cfg.repository}/{commit_id}/{o.path}",
                        "reason": skip_reason(o.path, "acquire.lakefs.extensions")}
                       for o in sorted(listed, key=lambda o: o.path) if not has_extension(o.path, extensions))
    if not objects:
        detail = f"; {len(listed)} other objects were skipped" if listed else ""
        raise DataError(f"{where}: no objects with extensions {sorted(extensions)}{detail}")
    log.info("lakefs: %d objects at %s (ref %r)", len(objects), where, cfg.ref)

    commit_dir = (Path(raw_dir) / "lakefs" / cfg.repository / commit_id).absolute()
    local_paths = _download_all(conn, cfg, at_commit, objects, commit_dir)
    relative = [o.path[len(prefix):] for o in objects]
    labels = class_folder_labels(relative) if cfg.label_from_parent else [""] * len(objects)
    rows = [
        make_row(
            video_id=make_video_id(o.path),
            path=local_paths[o.path],
            source="lakefs",
            source_uri=f"lakefs://{cfg.repository}/{commit_id}/{o.path}",
            source_root=str(commit_dir),
            label=label,
        )
        for o, label in zip(objects, labels, strict=True)
    ]
    return sort_rows(rows)


def folder_prefix(prefix: str) -> str:
    """The prefix names a folder: ``videos`` lists ``videos/...``, not ``videos2/...``."""
    prefix = prefix.strip().lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _download_all(conn: Connection, cfg: LakeFSSourceConfig, at_commit: lakefs.Reference,
                  objects: list[lakefs.ObjectInfo], commit_dir: Path) -> dict[str, str]:
    """Object path -> local path; objects that fail keep their would-be path and are reported missing later."""
    local: dict[str, str] = {}
    pending = []
    for obj in objects:
        dest = local_path(commit_dir, obj.path)
        local[obj.path] = str(dest) if dest else f"{commit_dir}/{obj.path}"
        if dest is None:
            log.warning("lakefs: object path %r would leave %s; not downloading it", obj.path, commit_dir)
        elif not is_current(dest, obj):
            pending.append((obj, dest))
    if not pending:
        log.info("lakefs: all %d objects already downloaded under %s", len(objects), commit_dir)
        return local
    failures = 0
    total = sum(o.size_bytes or 0 for o, _ in pending)
    with tqdm(total=total, unit="B", unit_scale=True, desc="lakefs download", disable=None) as bar:
        for obj, dest in pending:
            try:
                with explained_errors(conn, f"reading {obj.path!r}"):
                    _download_object(at_commit, obj, dest, cfg, bar)
            except (DataError, LakeFSException, OSError) as exc:
                failures += 1
                log.warning("lakefs: cannot download %s: %s; its row is kept as a missing file", obj.path, exc)
    log.info("lakefs: downloaded %d of %d objects (%d failed)", len(pending) - failures, len(objects), failures)
    return local


def local_path(commit_dir: Path, object_path: str) -> Path | None:
    """Where an object goes under ``commit_dir``; None when its key would leave it (``../x``, ``/x``) or
    would share a file with another key (``a/./b`` and ``a//b`` are distinct keys in lakeFS, not ``a/b``)."""
    parts = object_path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return commit_dir.joinpath(*parts)


def is_current(dest: Path, obj: lakefs.ObjectInfo) -> bool:
    """Whether ``dest`` already holds this object.

    The checksum is recomputed rather than trusted from a marker file: DVC checkouts and copies replace
    files under ``data/`` and a truncated copy must not pass for the real thing.
    """
    if not dest.is_file() or not is_inside(dest, dest.parent):  # a planted symlink is replaced, not read
        return False
    if obj.size_bytes is not None and dest.stat().st_size != obj.size_bytes:
        return False
    if _MD5_HEX.fullmatch(obj.checksum or ""):
        return _file_md5(dest) == obj.checksum
    return True


def _download_object(at_commit: lakefs.Reference, obj: lakefs.ObjectInfo, dest: Path,
                     cfg: LakeFSSourceConfig, bar: tqdm) -> None:
    stored = at_commit.object(obj.path)
    md5 = hashlib.md5() if _MD5_HEX.fullmatch(obj.checksum or "") else None
    received = 0
    # pre_sign given explicitly also spares the reader its own server-configuration request.
    with atomic_path(dest) as tmp, open(tmp, "wb") as out, stored.reader(
        "rb", pre_sign=cfg.pre_sign, _request_timeout=cfg.timeout_s
    ) as reader:
        while chunk := reader.read(CHUNK_BYTES):
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
            if md5 is not None:
                md5.update(chunk)
        # Raising inside atomic_path discards the partial file, so a bad copy never sits under its name.
        if obj.size_bytes is not None and received != obj.size_bytes:
            raise DataError(f"got {received} bytes, the listing says {obj.size_bytes}")
        if md5 is not None and md5.hexdigest() != obj.checksum:
            raise DataError(f"MD5 {md5.hexdigest()} differs from lakeFS checksum {obj.checksum}")


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _server_message(exc: ServerException) -> str:
    message = exc.body.get("message") if isinstance(exc.body, dict) else None
    return str(message or exc.reason or exc.status_code)


def _network_reason(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}"


__all__ = ["list_files", "resolve_commit", "connect", "api_base_url", "folder_prefix", "Connection"]
