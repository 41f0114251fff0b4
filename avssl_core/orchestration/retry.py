"""Which failures are worth retrying: transient ones (I/O hiccups, timeouts, dropped connections, a
server's 5xx, a held DVC lock), never a ConfigError or DataError, which would fail the same way again.
"""

from __future__ import annotations

import errno
from typing import Any

from avssl_core.errors import AvsslError

# OSErrors that say something about the request itself, not the moment: retrying cannot help.
_PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
                        FileExistsError)
_PERMANENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG, errno.EINVAL}


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _transient_by_name(exc: BaseException) -> bool:
    """Errors of libraries the stages use, matched by name so that none of them must be imported."""
    names = {f"{cls.__module__}.{cls.__name__}" for cls in type(exc).__mro__}
    return bool(names & {
        "httpx.TransportError",  # connect/read timeouts and dropped connections (Prefect client, lakeFS)
        "urllib3.exceptions.ProtocolError",
        "urllib3.exceptions.TimeoutError",
        "dvc.lock.LockError",  # another dvc process holds the repository lock
    })


def is_transient(exc: BaseException | None) -> bool:
    """True when ``exc`` is a failure that may pass on a later attempt."""
    if exc is None or isinstance(exc, AvsslError):
        return False  # the stage judged the input or a parameter: the same call fails the same way
    status = _http_status(exc)
    if status is not None:
        return status >= 500 or status in (408, 429)
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, _PERMANENT_OS_ERRORS):
        return False
    if isinstance(exc, OSError):
        return exc.errno not in _PERMANENT_ERRNOS
    return _transient_by_name(exc)


def _exception_of(state: Any) -> BaseException | None:
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        result = state.result(raise_on_failure=False)
    except Exception as exc:  # a result that cannot be read back says nothing about retrying
        return exc if isinstance(exc, BaseException) and not isinstance(exc, RuntimeError) else None
    return result if isinstance(result, BaseException) else None


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient failures (see is_transient)."""
    return is_transient(_exception_of(state))

