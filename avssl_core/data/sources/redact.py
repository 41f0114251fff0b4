"""Credentials in URLs never reach a table, a log line or a file name.

A list may carry ``https://user:password@host/clip.mp4`` or a pre-signed ``...?X-Amz-Signature=...``;
what the pipeline records of a URL (``source_uri``, log lines, reasons, download sidecars) keeps its
scheme, host, port and path, and shows only that a query was there. The full URL is used for the request
and nothing else.
"""

from __future__ import annotations

import logging
import re
import urllib.parse

REDACTED = "REDACTED"
# urllib3 logs each request line at DEBUG ("GET /v/a.mp4?token=... HTTP/1.1"): the query goes.
_QUERY_IN_LOG = re.compile(r"\?[^\s\"]*")


def redact_url(url: str) -> str:
    """``https://u:p@host:8080/a/b.mp4?token=t#x`` -> ``https://host:8080/a/b.mp4?REDACTED``."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 literal
        netloc = f"[{netloc}]"
    try:
        port = parts.port
    except ValueError:  # a non-numeric port: keep none of it rather than echo a mangled netloc
        port = None
    if port is not None:
        netloc += f":{port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, REDACTED if parts.query else "", ""))


def secret_parts(url: str) -> list[str]:
    """The pieces of ``url`` that must not be written: user info, password, query and fragment."""
    parts = urllib.parse.urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    pieces = [userinfo, userinfo.partition(":")[2], parts.query, parts.fragment]
    pieces += [urllib.parse.unquote(p) for p in pieces]
    # Longest first, so a password inside the user info is not replaced before the whole of it.
    return sorted({p for p in pieces if p}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (an error message about ``url``) with the URL's secret pieces replaced."""
    for piece in secret_parts(url):
        text = text.replace(piece, REDACTED)
    return text


class _QueryRedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = _QUERY_IN_LOG.sub(f"?{REDACTED}", message), ()
        return True


def redact_http_client_logs() -> None:
    """Redact queries in what urllib3 (under requests) logs; user info is never in its lines."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _QueryRedactingFilter) for f in logger.filters):
        logger.addFilter(_QueryRedactingFilter())
