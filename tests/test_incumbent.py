"""The retrain flow's reading of the current best model: the evaluate stage run again on it, under the task
protocol the new model was just measured under, so a CMAC model (instance discrimination) is compared with
its measured chance, not a pair classifier's 0.5."""

from __future__ import annotations

import json

import pytest

from avssl_core.config import load_config
from avssl_core.methods.saved import save_model
from avssl_core.orchestration import promotion
from avssl_core.orchestration.incumbent import incumbent_reading
from avssl_core.stages.evaluate import run_evaluate
from avssl_core.stages.pretrain import prepare_pretraining

CMAC_PRETEXT = "tasks.pretext_instance.pretrained.accuracy"  # CMAC's one pretext task in the evaluate stage


@pytest.mark.timeout(300)
def test_the_incumbent_reading_of_a_cmac_model_is_the_evaluate_stages_with_its_measured_chance(tiny_clips, tmp_path):
    methods = tmp_path / "methods"
    cfg = load_config(None, [
        f"paths.clips_dir={tiny_clips.parent}", f"paths.metrics_dir={tmp_path / 'metrics'}",
        f"pretrain.out_dir={tmp_path / 'pretrain'}", "pretrain.val_split=train", "pretrain.val_pairs=8",
        "pretrain.train.batch_size=4", f"evaluate.methods_dir={methods}",
        f"evaluate.out_dir={tmp_path / 'evaluate'}", "evaluate.split=train", "evaluate.tasks=[pretext]",
        "evaluate.pretext.pairs=8", "evaluate.batch_size=4", "evaluate.scratch=false"])
    model = prepare_pretraining(cfg, "cmac", "tiny").method  # untrained, as the pretrain stage builds it
    save_model(model, methods / "cmac" / "model.pt")
    best = tmp_path / "best" / "cmac" / "model.pt"
    save_model(model, best)
    # The candidate as the retrain flow reads it: the evaluate stage's metrics for the new model.
    run_evaluate(cfg, "cmac")
    candidate = promotion.read_metric(tmp_path / "metrics" / "cmac.json", CMAC_PRETEXT)
    assert candidate.error == ""

    reading = incumbent_reading(cfg, "cmac", best, candidate, evaluate=run_evaluate)

    # The same model under the same protocol gives the same number and the same protocol record ...
    assert reading.error == "" and reading.value == candidate.value
    assert reading.protocol == candidate.protocol and reading.metrics_file == str(best)
    # ... which is instance discrimination against the chance CMAC measures: 1 / 4 with four clips of
    # distinct videos in each batch of 4, more when a batch repeats a video; never the pair classifiers' 0.5.
    text = reading.protocol["protocol"]
    assert "instance discrimination" in text and "chance 0.5" not in text
    chance = float(text.split("measured chance ")[1][:5])
    assert 0.25 <= chance < 1.0 and chance != 0.5


def test_an_incumbent_that_cannot_be_measured_is_recorded_with_the_reason(tmp_path):
    cfg = load_config(None, [])
    candidate = promotion.Reading(0.6, CMAC_PRETEXT, "metrics/cmac.json", None)

    def failing_stage(cfg, method):
        raise FileNotFoundError("no clips")

    reading = incumbent_reading(cfg, "cmac", tmp_path / "model.pt", candidate, evaluate=failing_stage)
    assert reading.value is None and reading.error == "FileNotFoundError: no clips"
    assert promotion.decide(candidate, reading, "maximize", 0.0)[0] is False


def test_decision_records_written_with_the_removed_fallback_key_still_read(tmp_path):
    """models/best/decisions.jsonl and record.json written before the pretrain-stage fallback was removed
    carry a "fallback" key; the readers ignore it."""
    cfg = load_config(None, [f"retrain.best_dir={tmp_path / 'best'}"])
    (tmp_path / "best" / "avc").mkdir(parents=True)
    old = {"method": "avc", "promoted": True, "reason": "promoted", "metric": "pretext_accuracy.easy",
           "direction": "maximize", "min_improvement": 0.0, "candidate": 0.6, "incumbent": None, "fallback": True,
           "protocol": None, "data_fingerprint": "f0"}
    (tmp_path / "best" / "decisions.jsonl").write_text(json.dumps(old) + "\n")
    (tmp_path / "best" / "avc" / "record.json").write_text(json.dumps(
        {"method": "avc", "metric": "pretext_accuracy.easy", "value": 0.6, "fallback": True}))
    assert promotion.last_fingerprint(cfg, "avc") == "f0"
    assert promotion.current_best(cfg, "avc")["value"] == 0.6
    new = promotion.Decision("avc", False, "not promoted", "tasks.pretext_easy.pretrained.accuracy", "maximize",
                             0.0, 0.5, 0.6, data_fingerprint="f1")
    promotion.record_decision(cfg, new)
    assert promotion.last_fingerprint(cfg, "avc") == "f1"
    assert "fallback" not in (tmp_path / "best" / "decisions.jsonl").read_text().splitlines()[1]
