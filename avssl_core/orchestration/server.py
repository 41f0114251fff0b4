"""Where the Prefect API is, and a check that says what to do when it cannot be reached."""

from __future__ import annotations

import os

import requests

from avssl_core.errors import AvsslError


class PrefectServerUnreachable(AvsslError):
    """PREFECT_API_URL names a server that does not answer."""


def api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile (None: no server configured,
    Prefect then runs flows against a temporary local server of its own)."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def check_api_reachable(url: str | None = None, timeout_s: float = 5.0) -> str | None:
    """Raise PrefectServerUnreachable naming the URL and what to do, unless ``url`` answers /health."""
    url = url or api_url()
    if not url:
        return None
    health = url.rstrip("/") + "/health"
    try:
        response = requests.get(health, timeout=timeout_s)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise PrefectServerUnreachable(
            f"the Prefect API at {url} (PREFECT_API_URL) does not answer ({type(exc).__name__}: {exc}). "
            "Start a server with `prefect server start` (it serves http://127.0.0.1:4200/api), or point "
            "PREFECT_API_URL at yours: `prefect config set PREFECT_API_URL=http://HOST:4200/api`; "
            "`prefect config unset PREFECT_API_URL` runs flows against a temporary local server instead."
        ) from exc
    return url
