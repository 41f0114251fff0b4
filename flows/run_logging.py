"""What a flow run's logs (on the server, in the UI, under `prefect deployment run --watch`) show.

- The stages' own log lines (loggers under ``avssl_core``) are sent to the run's logs, as Prefect does for
  the loggers named in PREFECT_LOGGING_EXTRA_LOGGERS; only the flows import this module, so the CLI's
  logging stays as it is.
- An error a stage judged (``AvsslError``: a ConfigError or DataError, whose message names the file or
  parameter and the reason) ends the run as Failed with that message as the state message, and is logged
  once, as one error line (a task's Failed-state line when a task raised it): a traceback of our own
  checks tells the user nothing more, and Prefect would otherwise log it twice (when the flow function
  raises, and again when the engine in a worker's run process re-raises it).
"""

from __future__ import annotations

import functools
import inspect
import logging
import typing
from collections.abc import Callable
from typing import Any

from prefect.context import get_run_context
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.logging.handlers import APILogHandler, APILogWorker
from prefect.states import Failed

from avssl_core.errors import AvsslError

STAGE_LOGGER = "avssl_core"
_REPORTED = "_avssl_reported_in_run_logs"  # set on an AvsslError once its line is in the run's logs


class JudgedErrorsOnOneLine(logging.Filter):
    """On Prefect's flow- and task-run loggers: the first record of an AvsslError loses its traceback,
    later records of the same exception (the engine re-raising it) are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, AvsslError):
            return True
        if getattr(exc, _REPORTED, False):
            return False
        setattr(exc, _REPORTED, True)
        record.exc_info = None
        record.exc_text = None
        return True


def _install() -> None:
    """Idempotent: the flow modules all import this one, some of them more than once (tests reload)."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, JudgedErrorsOnOneLine) for f in logger.filters):
            logger.addFilter(JudgedErrorsOnOneLine())
    # What PREFECT_LOGGING_EXTRA_LOGGERS would do for avssl_core, at Prefect's logging level (a stage's INFO
    # lines are part of what a run did), limited to records made inside a run: stage code called outside
    # one (tests, scripts that import flows) logs as before, without Prefect's "no flow run id" warning.
    stage_logger = logging.getLogger(STAGE_LOGGER)
    if not any(isinstance(h, APILogHandler) for h in stage_logger.handlers):
        handler = APILogHandler()
        handler.addFilter(_in_a_run)
        stage_logger.addHandler(handler)
    if stage_logger.level == logging.NOTSET:
        stage_logger.setLevel(logging.getLogger("prefect.extra").getEffectiveLevel())


def _in_a_run(record: logging.LogRecord) -> bool:
    try:
        get_run_context()
    except MissingContextError:
        return False
    return True


def _from_a_task(exc: BaseException) -> bool:
    """Whether ``exc`` came out of a task: Prefect's task engine has then logged the task's Failed state,
    the message on one ERROR line without a traceback, already."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == "prefect.task_engine":
            return True
        tb = tb.tb_next
    return False


def fail_on_judged_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a flow function (under ``@flow``): an AvsslError makes the run Failed with the error's message
    (what `--watch`, the UI and ``state.message`` show) and one error line in its logs. The exception stays
    the state's data, so a caller in this process still gets it raised (``flow()``) or in the state."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AvsslError as exc:
            if not getattr(exc, _REPORTED, False) and not _from_a_task(exc):
                get_run_logger().error("%s", exc)
            setattr(exc, _REPORTED, True)
            # Send the line before the run turns Failed: `--watch` stops following the logs shortly after.
            APILogWorker.drain_all(timeout=5)
            return Failed(message=str(exc), data=exc)

    # Prefect validates parameters against the signature, resolving string annotations (the flow modules
    # use `from __future__ import annotations`) in the globals of the function it holds: this wrapper's.
    # Hand it the annotations already resolved in the flow's own module.
    run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    run.__annotations__ = typing.get_type_hints(fn)
    return run


_install()
