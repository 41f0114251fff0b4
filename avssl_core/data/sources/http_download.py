"""Download one HTTP(S) URL to a local file: streamed, atomic, retried on transient failures, fetched once.

Beside each download lies a small sidecar (``<file>.source.json``) with the URL (credentials redacted),
ETag and size it was fetched with; a later run that finds the file and a matching sidecar does not touch
the network, so re-running a pipeline offline works and a changed URL in the list is fetched again.

Downloads are bounded: only http(s) is fetched, and a download larger than ``max_bytes`` is refused when
Content-Length announces it, before a byte of the body is read, and stopped as soon as the stream passes
it (a server may omit or understate the length); the partial file is removed either way.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from avssl_core.data.sources.redact import redact_http_client_logs, redact_url, scrub
from avssl_core.io_utils import atomic_path, write_json_atomic

log = logging.getLogger(__name__)
redact_http_client_logs()

CHUNK_BYTES = 1 << 20
# Worth another try: the server or the network may recover. 4xx (but 408/429) will not.
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
RETRY_BACKOFF_S = 0.5
SCHEMES = ("http", "https")


@dataclass
class DownloadResult:
    ok: bool
    fetched: bool  # False when an earlier download was reused
    reason: str = ""  # why it failed, naming the status or the error (credentials redacted)
    received_bytes: int = 0  # bytes taken from the network by this call
    too_large: bool = False  # refused for its size; nothing of it is kept


class _TooLarge(Exception):
    """Raised inside atomic_path, so the partial file is discarded."""

    def __init__(self, reason: str, received: int):
        super().__init__(reason)
        self.received = received


def sidecar_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".source.json")


def download(url: str, dest: Path, timeout_s: float, retries: int, session: requests.Session | None = None,
             *, max_bytes: int | None = None, cap_name: str = "the size limit") -> DownloadResult:
    """Fetch ``url`` into ``dest`` unless an earlier download of the same URL is already there.

    ``max_bytes`` bounds the body; ``cap_name`` names that bound (a parameter) in the refusal.
    """
    if urllib.parse.urlsplit(url).scheme.lower() not in SCHEMES:
        return DownloadResult(ok=False, fetched=False, reason=f"only {'/'.join(SCHEMES)} URLs are downloaded")
    if _already_downloaded(url, dest):
        return DownloadResult(ok=True, fetched=False)
    http = session or requests.Session()
    reason = ""
    received = 0
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
        try:
            reason, transient, got = _fetch_once(http, url, dest, timeout_s, max_bytes, cap_name)
            received += got
        except _TooLarge as exc:
            received += exc.received
            return DownloadResult(ok=False, fetched=False, reason=str(exc), received_bytes=received, too_large=True)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            reason, transient = scrub(f"{type(exc).__name__}: {exc}", url), True
        except requests.RequestException as exc:
            reason, transient = scrub(f"{type(exc).__name__}: {exc}", url), False
        if not reason:
            return DownloadResult(ok=True, fetched=True, received_bytes=received)
        if not transient:
            break
        log.debug("download %s failed (%s), attempt %d of %d", redact_url(url), reason, attempt + 1, retries + 1)
    return DownloadResult(ok=False, fetched=False, reason=reason, received_bytes=received)


def _fetch_once(http: requests.Session, url: str, dest: Path, timeout_s: float, max_bytes: int | None,
                cap_name: str) -> tuple[str, bool, int]:
    """One attempt: ("", _, bytes) on success, else (reason, whether another attempt may help, bytes)."""
    with http.get(url, stream=True, timeout=timeout_s) as resp:
        if resp.status_code != 200:
            return f"HTTP {resp.status_code} {resp.reason}", resp.status_code in RETRY_STATUS, 0
        expected = _int_or_none(resp.headers.get("Content-Length"))
        if max_bytes is not None and expected is not None and expected > max_bytes:
            raise _TooLarge(f"refused: Content-Length {expected} bytes exceeds {cap_name} ({max_bytes} bytes)", 0)
        # Servers may send gzip even for binary; iter_content(decode_unicode=False) gives decoded bytes,
        # so the byte count is checked against Content-Length only when no encoding was applied.
        check_length = expected is not None and not resp.headers.get("Content-Encoding")
        received = 0
        with atomic_path(dest) as tmp, open(tmp, "wb") as out, tqdm(
            total=expected, unit="B", unit_scale=True, desc=dest.name, leave=False, disable=None
        ) as bar:
            for chunk in resp.iter_content(CHUNK_BYTES):
                if max_bytes is not None and received + len(chunk) > max_bytes:
                    raise _TooLarge(f"stopped: the download passed {cap_name} ({max_bytes} bytes) "
                                    f"(Content-Length {'absent' if expected is None else expected})",
                                    received + len(chunk))
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            if check_length and received != expected:
                # Raising inside atomic_path discards the partial file.
                raise requests.ConnectionError(f"connection closed after {received} of {expected} bytes")
        write_json_atomic(sidecar_path(dest), {"url": redact_url(url), "etag": resp.headers.get("ETag", ""),
                                               "size_bytes": received})
    return "", False, received


def _already_downloaded(url: str, dest: Path) -> bool:
    sidecar = sidecar_path(dest)
    if not dest.is_file() or not sidecar.is_file():
        return False
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("url") == redact_url(url) and meta.get("size_bytes") == dest.stat().st_size


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
