"""Download one HTTP(S) URL to a local file: streamed, atomic, retried on transient failures, fetched once.

Beside each download lies a small sidecar (``<file>.source.json``) with the URL, ETag and size it was
fetched with; a later run that finds the file and a matching sidecar does not touch the network, so
re-running a pipeline offline works and a changed URL in the list is fetched again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from avssl_core.io_utils import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# Worth another try: the server or the network may recover. 4xx (but 408/429) will not.
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
RETRY_BACKOFF_S = 0.5


@dataclass
class DownloadResult:
    ok: bool
    fetched: bool  # False when an earlier download was reused
    reason: str = ""  # why it failed, naming the status or the error


def sidecar_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".source.json")


def download(url: str, dest: Path, timeout_s: float, retries: int, session: requests.Session | None = None
             ) -> DownloadResult:
    """Fetch ``url`` into ``dest`` unless an earlier download of the same URL is already there."""
    if _already_downloaded(url, dest):
        return DownloadResult(ok=True, fetched=False)
    http = session or requests.Session()
    reason = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
        try:
            reason, transient = _fetch_once(http, url, dest, timeout_s)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            reason, transient = f"{type(exc).__name__}: {exc}", True
        except requests.RequestException as exc:
            reason, transient = f"{type(exc).__name__}: {exc}", False
        if not reason:
            return DownloadResult(ok=True, fetched=True)
        if not transient:
            break
        log.debug("download %s failed (%s), attempt %d of %d", url, reason, attempt + 1, retries + 1)
    return DownloadResult(ok=False, fetched=False, reason=reason)


def _fetch_once(http: requests.Session, url: str, dest: Path, timeout_s: float) -> tuple[str, bool]:
    """One attempt: ("", _) on success, else (reason, whether another attempt may help)."""
    with http.get(url, stream=True, timeout=timeout_s) as resp:
        if resp.status_code != 200:
            return f"HTTP {resp.status_code} {resp.reason}", resp.status_code in RETRY_STATUS
        expected = _int_or_none(resp.headers.get("Content-Length"))
        # Servers may send gzip even for binary; iter_content(decode_unicode=False) gives decoded bytes,
        # so the byte count is checked against Content-Length only when no encoding was applied.
        check_length = expected is not None and not resp.headers.get("Content-Encoding")
        received = 0
        with atomic_path(dest) as tmp, open(tmp, "wb") as out, tqdm(
            total=expected, unit="B", unit_scale=True, desc=dest.name, leave=False, disable=None
        ) as bar:
            for chunk in resp.iter_content(CHUNK_BYTES):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            if check_length and received != expected:
                # Raising inside atomic_path discards the partial file.
                raise requests.ConnectionError(f"connection closed after {received} of {expected} bytes")
        write_json_atomic(sidecar_path(dest), {"url": url, "etag": resp.headers.get("ETag", ""),
                                               "size_bytes": received})
    return "", False


def _already_downloaded(url: str, dest: Path) -> bool:
    sidecar = sidecar_path(dest)
    if not dest.is_file() or not sidecar.is_file():
        return False
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("url") == url and meta.get("size_bytes") == dest.stat().st_size


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
