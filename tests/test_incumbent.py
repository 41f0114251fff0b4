"""The retrain flow's reading of the current best model: measured by the pretrain stage's own function, so a
CMAC model (instance discrimination) is recorded with its measured chance and all-positive pairs, not a
pair classifier's 0.5."""

from __future__ import annotations

from pathlib import Path

import pytest

from avssl_core.config import load_config
from avssl_core.methods.protocols import PAIR_CHANCE, measure_pretext
from avssl_core.methods.saved import save_model
from avssl_core.orchestration.incumbent import incumbent_reading
from avssl_core.orchestration.promotion import Reading
from avssl_core.stages.pretrain import prepare_pretraining


def _cfg(tiny_clips: Path, tmp_path: Path):
    return load_config(None, [
        f"paths.clips_dir={tiny_clips.parent}", f"paths.metrics_dir={tmp_path / 'metrics'}",
        f"pretrain.out_dir={tmp_path / 'pretrain'}",
        "pretrain.val_split=train", "pretrain.val_pairs=8", "pretrain.train.batch_size=4"])


def _untrained(cfg, name: str):
    """The method as the pretrain stage builds it before training (seeded, normalisation fitted)."""
    return prepare_pretraining(cfg, name, "tiny").method


def _not_called(cfg, method):
    raise AssertionError("a pretext candidate is compared on pretext pairs, not by the evaluate stage")


@pytest.mark.timeout(300)
def test_the_incumbent_reading_of_a_cmac_model_carries_cmacs_measured_chance(tiny_clips, tmp_path):
    cfg = _cfg(tiny_clips, tmp_path)
    model = _untrained(cfg, "cmac")
    path = tmp_path / "best" / "cmac" / "model.pt"
    save_model(model, path)
    candidate = Reading(0.5, "pretext_accuracy.easy", "metrics/pretrain_cmac.json", None, fallback=True)

    reading = incumbent_reading(cfg, "cmac", path, candidate, evaluate=_not_called)

    assert reading.error == "" and reading.fallback and 0.0 <= reading.value <= 1.0
    protocol = reading.protocol["protocol"]
    # What the pretrain stage records for a CMAC model on the same pairs: its all-positive pairs and
    # the chance it measures per query (1 / candidates in a batch of 4), not a pair classifier's 0.5.
    stage = measure_pretext(cfg, model, ("easy",))
    assert protocol == stage["protocol"]
    assert reading.value == stage["pretext_accuracy"]["easy"]
    assert protocol["positive_fraction"] == 1.0
    assert protocol["chance"] != PAIR_CHANCE and 0.25 <= protocol["chance"] < 1.0
    assert (protocol["split"], protocol["pairs"]) == ("train", 8)


@pytest.mark.timeout(300)
def test_the_incumbent_reading_of_a_pair_classifier_keeps_chance_one_half(tiny_clips, tmp_path):
    cfg = _cfg(tiny_clips, tmp_path)
    path = tmp_path / "coattention" / "model.pt"
    save_model(_untrained(cfg, "coattention"), path)
    candidate = Reading(0.5, "pretext_accuracy.shifted", "metrics/pretrain_coattention.json", None, fallback=True)
    reading = incumbent_reading(cfg, "coattention", path, candidate, evaluate=_not_called)
    assert reading.error == "" and 0.0 <= reading.value <= 1.0
    assert reading.protocol["protocol"]["chance"] == 0.5 and reading.protocol["protocol"]["positive_fraction"] == 0.5
    unknown = incumbent_reading(cfg, "coattention", path, Reading(0.5, "pretext_accuracy.weird", "m", None, fallback=True),
                                evaluate=_not_called)
    assert unknown.value is None and "no pretext protocol 'weird'" in unknown.error
