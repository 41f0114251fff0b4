"""Ablation tables with intervals: a trial keeps each held-out pair's correctness and source video for every
training seed, the table bootstraps over source videos (eval/intervals.py), compares each point with the best
on the pairs they share, and ranks only what the intervals separate."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from test_ablate import _cfg

from avssl_core.ablate import studies as studies_module
from avssl_core.ablate.objective import PAIRS_ATTR, SEED_VALUES_ATTR
from avssl_core.ablate.separation import BEST, WORSE, Point, point_items, separate, summary
from avssl_core.ablate.studies import STUDIES, StudyDefinition
from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.eval.intervals import NOT_SEPARABLE
from avssl_core.stages.ablate import run_ablate


def _point(trial: int, correct_per_video: list[list[int]], seed: int = 0) -> Point:
    """A point whose held-out pairs are ``correct_per_video[v]`` for source video v."""
    record = {"correct": [], "index": [], "clip": [], "source": []}
    index = 0
    for video, corrects in enumerate(correct_per_video):
        for c in corrects:
            record["correct"].append(c)
            record["index"].append(index)
            record["clip"].append(video)
            record["source"].append(video)
            index += 1
    items = point_items({str(seed): record})
    return Point(trial, sum(items.values()) / len(items), items)


def test_points_not_separable_from_the_best_share_rank_one_and_the_rest_rank_below():
    strong = [[1, 1, 1, 1]] * 20  # 1.00
    close = [[1, 1, 1, 1]] * 19 + [[1, 0, 1, 1]]  # 0.9875: one pair of one video differs from the best
    weak = [[0, 0, 1, 0]] * 20  # 0.25
    points = [_point(0, weak), _point(1, strong), _point(2, close)]
    out = separate(points)
    assert out[1]["vs_best"]["verdict"] == BEST and out[1]["rank"] == 1
    assert out[2]["vs_best"]["verdict"] == NOT_SEPARABLE and out[2]["rank"] == 1
    assert out[0]["vs_best"]["verdict"] == WORSE and out[0]["rank"] == 2
    assert out[0]["vs_best"]["high"] < 0 and out[0]["vs_best"]["shared_pairs"] == 80
    assert out[0]["low"] <= 0.25 <= out[0]["high"] and out[1]["low"] == out[1]["high"] == 1.0
    assert summary(out) | {"bootstrap": ""} == {"points_with_interval": 3, "separated_from_best": 1,
                                                "tied_with_best": 2, "ranks": 2, "bootstrap": ""}
    # Lower is better (a minimised objective): the weak point is the best and the others are worse.
    flipped = separate(points, maximize=False)
    assert flipped[0]["vs_best"]["verdict"] == BEST
    assert flipped[1]["vs_best"]["verdict"] == WORSE and flipped[1]["rank"] == 2
    # A point scored on other held-out pairs (another seed) cannot be compared: it is not ranked apart.
    other_pairs = separate([_point(1, strong), _point(3, weak, seed=7)])
    assert other_pairs[3]["vs_best"] is None and other_pairs[3]["rank"] == 1


def test_a_point_trained_over_two_seeds_records_both_and_the_table_ranks_it(tiny_clips, tmp_path, monkeypatch):
    definition = StudyDefinition(key="two_seeds", method="avts", source="test", grid={"lr": (0.01, 0.02)},
                                 protocol="easy", plan=studies_module._direct)
    monkeypatch.setitem(STUDIES, "two_seeds", definition)
    summary_ = run_ablate(_cfg(tiny_clips, tmp_path, "ablate.seeds=[0, 1]"), "two_seeds")
    assert summary_["states"] == {"COMPLETE": 2}, summary_
    study = optuna.load_study(study_name="two_seeds", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    for trial in study.trials:
        pairs, values = trial.user_attrs[PAIRS_ATTR], trial.user_attrs[SEED_VALUES_ATTR]
        assert sorted(pairs) == sorted(values) == ["0", "1"]
        for seed, record in pairs.items():
            assert len(record["correct"]) == len(record["source"]) == 16  # ablate.val_pairs
            assert set(record["correct"]) <= {0, 1} and min(record["source"]) >= 0
            # the per-pair records are the pretrain stage's own measurement of that seed's run
            assert sum(record["correct"]) / 16 == pytest.approx(values[seed])
            trial_dir = Path(trial.user_attrs["trial_dir"])
            assert (trial_dir / f"seed_{seed}" / "pretrain" / "avts" / "model.pt").is_file()
        assert trial.value == pytest.approx((values["0"] + values["1"]) / 2)
        assert pairs["0"]["index"] == list(range(16))
        record = json.loads((Path(trial.user_attrs["trial_dir"]) / "trial.json").read_text())
        assert record["seed_values"] == values and record["seeds"] == [0, 1]
    # the two seeds draw their own held-out pairs; the two points share them seed by seed
    first, second = (study.trials[0].user_attrs[PAIRS_ATTR], study.trials[1].user_attrs[PAIRS_ATTR])
    assert first["0"]["source"] == second["0"]["source"]
    counts = summary_["separation"]
    assert counts["points_with_interval"] == 2 and counts["tied_with_best"] + counts["separated_from_best"] == 2
    table = Path(summary_["table_md"]).read_text()
    assert "training seeds [0, 1]" in table and "share rank 1" in table and "| best |" in table
    header = Path(summary_["table_csv"]).read_text().splitlines()[0].split(",")
    for column in ("value", "low", "high", "vs_best", "vs_best_low", "vs_best_high", "verdict", "rank",
                   "seed_values"):
        assert column in header


def test_seeds_must_be_distinct_and_given():
    assert load_config(None, []).ablate.seeds == [0]
    for bad in ("ablate.seeds=[3, 3]", "ablate.seeds=[]"):
        with pytest.raises(ConfigError, match="distinct training seeds"):
            load_config(None, [bad])
