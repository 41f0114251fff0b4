"""The evaluation tasks, in the order a run runs them: later tasks reuse what earlier ones decoded and
computed (the labelled data, the test windows and their features; t-SNE pictures the features that
the frozen probes, retrieval and the audio probe keep)."""

from __future__ import annotations

from collections.abc import Iterable

from avssl_core.eval.tasks.action_recognition import ActionRecognition
from avssl_core.eval.tasks.audio_probe import AudioProbe
from avssl_core.eval.tasks.base import EvaluationTask
from avssl_core.eval.tasks.frozen import Frozen
from avssl_core.eval.tasks.localization import Localization
from avssl_core.eval.tasks.pretext import Pretext
from avssl_core.eval.tasks.retrieval import CrossModalRetrieval, VideoRetrieval
from avssl_core.eval.tasks.tsne import Tsne

REGISTRY: tuple[EvaluationTask, ...] = (Pretext(), Frozen(), ActionRecognition(), VideoRetrieval(),
                                        CrossModalRetrieval(), AudioProbe(), Localization(), Tsne())
# The words of evaluate.tasks.
TASKS: tuple[str, ...] = tuple(dict.fromkeys(task.selected_by for task in REGISTRY))
# Which evaluate.tasks word writes each entry of the metrics' "tasks".
TASK_OF: dict[str, str] = {entry: task.selected_by for task in REGISTRY for entry in task.entries}


def selected(words: Iterable[str]) -> list[EvaluationTask]:
    """The tasks that ``words`` (evaluate.tasks) select, in run order."""
    words = set(words)
    return [task for task in REGISTRY if task.selected_by in words]
