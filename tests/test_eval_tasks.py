"""The evaluation task registry (avssl_core/eval/tasks/) and the shared window geometry
(avssl_core/pretext/windows.py): fast checks, no decoding."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.eval.tasks.registry import REGISTRY, TASK_OF, TASKS, selected
from avssl_core.eval.tasks.retrieval import CrossModalRetrieval
from avssl_core.methods.registry import build_method
from avssl_core.pretext.spec import PairSpec
from avssl_core.pretext.windows import centred_frames, frame_offsets, video_window_s


@pytest.mark.timeout(30)
def test_registry_names_each_task_once_and_each_entry_once():
    assert len({task.name for task in REGISTRY}) == len(REGISTRY)
    assert set(TASKS) == {"pretext", "frozen", "action_recognition", "audio_probe", "retrieval", "localization",
                          "tsne"}
    entries = [entry for task in REGISTRY for entry in task.entries]
    assert len(entries) == len(set(entries))
    assert TASK_OF["frozen_audio"] == "frozen" and TASK_OF["retrieval_cross"] == "retrieval"
    assert [t for t in REGISTRY if t.pictures] == [REGISTRY[-1]]  # t-SNE last: it pictures earlier features


@pytest.mark.timeout(30)
def test_selection_keeps_the_run_order_and_cross_retrieval_needs_a_shared_space():
    names = [task.name for task in selected(["tsne", "retrieval", "pretext"])]
    assert names == ["pretext", "retrieval_video", "retrieval_cross", "tsne"]
    assert CrossModalRetrieval().wanted(SimpleNamespace(method=build_method("avc", "tiny")))
    assert not CrossModalRetrieval().wanted(SimpleNamespace(method=build_method("cmac", "tiny")))


@pytest.mark.timeout(30)
def test_an_unknown_task_is_refused_with_the_registry_choices(tmp_path):
    from avssl_core.stages.evaluate import run_evaluate

    cfg = load_config(None, ['evaluate.tasks=["pretext", "nope"]', f"evaluate.methods_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"evaluate.tasks: unknown \['nope'\]; choose from \['pretext'"):
        run_evaluate(cfg, "avc")


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("fps", "rate"), [(25.0, None), (30.0, 25.0), (29.97, 10.0), (50.0, 8.0), (24.0, 24.0)])
def test_a_window_named_by_its_centre_takes_the_frames_of_one_anchored_on_its_start(fps, rate):
    """The evaluation clips' convention (centre time) and the sampler's (start frame + offsets) pick the
    same frames wherever the window starts on a frame."""
    spec = PairSpec(video_frames=7, video_fps=rate, audio_seconds=1.0)
    offsets = frame_offsets(spec.video_frames, fps, rate or fps)
    for start in (0, 3, 11):
        centre_s = start / fps + video_window_s(spec, fps) / 2
        assert centred_frames(centre_s, spec, fps, num_frames=1000) == [start + int(o) for o in offsets]
    # Near the ends of the file the centred window is kept inside it.
    assert centred_frames(0.0, spec, fps, num_frames=1000)[0] == 0
    assert max(centred_frames(100.0, spec, fps, num_frames=40)) == 39
    assert np.all(np.diff(offsets) >= 1)
