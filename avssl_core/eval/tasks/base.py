"""The interface of an evaluation task.

A task is selected by a word of ``evaluate.tasks`` (``selected_by``), runs on the shared
``EvaluationContext`` and returns its entries of the metrics' "tasks" (or, for pictures, name -> path).
Each task states its protocol, the text of its entries' "protocol" that the report lists, in its own
``protocol`` method and nowhere else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from avssl_core.eval.tasks.context import EvaluationContext


class EvaluationTask(ABC):
    name: ClassVar[str]  # the task's key in details.json's seconds_per_task
    selected_by: ClassVar[str]  # the word of evaluate.tasks that runs it
    entries: ClassVar[tuple[str, ...]]  # the metrics' "tasks" entries it may write
    pictures: ClassVar[bool] = False  # True: run() returns pictures {name: path}, not task entries

    def wanted(self, ctx: EvaluationContext) -> bool:
        """Whether the task applies to this run once selected (e.g. cross-modal retrieval needs a method
        with a shared audio-visual space)."""
        return True

    @abstractmethod
    def protocol(self, ctx: EvaluationContext, **facts: Any) -> str:
        """The protocol text of the task's entries, from the settings and the ``facts`` the run found."""

    @abstractmethod
    def run(self, ctx: EvaluationContext) -> dict[str, Any]:
        """Evaluate every model of ``ctx``: {entry name: entry} (pictures: {picture name: path})."""
