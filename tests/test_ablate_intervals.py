"""Ablation tables with intervals: a trial keeps each test item's score and source video for every training
seed (held-out pairs for a pretext objective, the evaluate stage's test clips for a downstream one), the table
bootstraps over source videos (eval/intervals.py), compares each point with the best on the items they
share, and ranks only what the intervals separate."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from test_ablate import _cfg, _overrides
from test_eval_downstream import labelled_index

from avssl_core.ablate import studies as studies_module
from avssl_core.ablate.objective import ITEMS_ATTR, SEED_VALUES_ATTR
from avssl_core.ablate.separation import BEST, WORSE, Point, point_items, separate, summary
from avssl_core.ablate.studies import STUDIES, StudyDefinition
from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.eval.intervals import NOT_SEPARABLE
from avssl_core.stages.ablate import run_ablate


def _point(trial: int, correct_per_video: list[list[int]], seed: int = 0) -> Point:
    """A point whose held-out pairs are ``correct_per_video[v]`` for source video v."""
    record = {"item": [], "group": [], "score": []}
    for video, corrects in enumerate(correct_per_video):
        for c in corrects:
            record["item"].append(f"pair {len(record['item'])} clip {video}")
            record["group"].append(str(video))
            record["score"].append(c)
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
    assert out[0]["vs_best"]["high"] < 0 and out[0]["vs_best"]["shared_items"] == 80
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


def _downstream_point(trial: int, scores: np.ndarray) -> Point:
    """A point scored on test clips as the evaluate stage records them: ``scores[seed, video, clip]``."""
    records = {str(seed): {"item": [f"test/v{v:02d}_c{c}.mp4" for v in range(scores.shape[1])
                                    for c in range(scores.shape[2])],
                           "group": [f"v{v:02d}" for v in range(scores.shape[1]) for _ in range(scores.shape[2])],
                           "score": by_seed.reshape(-1).tolist()}
               for seed, by_seed in enumerate(scores)}
    return Point(trial, float(scores.mean()), point_items(records))


def test_a_known_downstream_difference_separates_and_a_null_one_does_not():
    """Test clips of 40 source videos, 3 clips each, two seeds: a point that loses half of the best point's
    right answers is worse, with an interval of the difference below zero; a point that differs from the
    best by one right answer gained and one lost (a null difference) is not separable and shares rank 1."""
    rng = np.random.default_rng(0)
    best = (rng.random((2, 40, 3)) < 0.8).astype(float)
    weak = best * (rng.random(best.shape) < 0.5)  # about 0.4: every lost answer was right for the best
    null = best.copy()
    gained, lost = np.argwhere(best == 0)[0], np.argwhere(best == 1)[-1]  # different videos
    null[tuple(gained)], null[tuple(lost)] = 1.0, 0.0
    out = separate([_downstream_point(0, best), _downstream_point(1, weak), _downstream_point(2, null)])
    assert out[0]["vs_best"]["verdict"] == BEST and out[0]["rank"] == 1
    assert out[2]["vs_best"]["difference"] == pytest.approx(0.0)
    assert out[2]["vs_best"]["verdict"] == NOT_SEPARABLE and out[2]["rank"] == 1
    assert out[1]["vs_best"]["verdict"] == WORSE and out[1]["rank"] == 2
    assert out[1]["vs_best"]["high"] < 0 and out[1]["vs_best"]["shared_items"] == 240
    assert out[1]["vs_best"]["difference"] == pytest.approx(weak.mean() - best.mean())
    for trial, scores in ((0, best), (1, weak)):
        assert out[trial]["low"] < scores.mean() < out[trial]["high"]
    # A minimised figure: the same scores read as "lower is better" make the weak point the best one.
    flipped = separate([_downstream_point(0, best), _downstream_point(1, weak)], maximize=False)
    assert flipped[1]["vs_best"]["verdict"] == BEST and flipped[0]["vs_best"]["verdict"] == WORSE


@pytest.mark.slow
@pytest.mark.timeout(900)  # end to end (4 trainings, 4 evaluations: about 20 s of CPU); see pyproject.toml
def test_a_downstream_objective_study_gets_intervals_verdicts_and_ranks(tiny_clips, tmp_path, monkeypatch):
    """A study scored by the frozen video kNN probe, two points over two seeds: each trial keeps every test
    clip's correctness and source video per seed (the evaluate stage's own per-item scores), and the table
    gives both points an interval, a difference from the best with a verdict, and a rank."""
    index_csv = labelled_index(tiny_clips, tmp_path / "clips" / "index.csv")
    definition = StudyDefinition(key="downstream_intervals", method="avts", source="test", grid={"lr": (0.01, 0.02)},
                                 protocol="easy", plan=studies_module._direct)
    monkeypatch.setitem(STUDIES, definition.key, definition)
    cfg = load_config(None, [
        *_overrides(tiny_clips, tmp_path), f"paths.clips_dir={index_csv.parent}", "ablate.seeds=[0, 1]",
        "ablate.objective=frozen_video.knn_all", "evaluate.tasks=[frozen]", "evaluate.scratch=false",
        "evaluate.frozen.clips_per_video=1", "evaluate.frozen.labelled_per_class=[null]", "evaluate.frozen.c_grid=[1.0]",
        "evaluate.bootstrap=100"])
    summary_ = run_ablate(cfg, definition.key)
    assert summary_["states"] == {"COMPLETE": 2}, summary_
    study = optuna.load_study(study_name=definition.key, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    for trial in study.trials:
        items, values = trial.user_attrs[ITEMS_ATTR], trial.user_attrs[SEED_VALUES_ATTR]
        assert sorted(items) == sorted(values) == ["0", "1"]
        for seed, record in items.items():
            # the test split's 2 source videos x 2 clips, scored 1/0; their mean is that seed's figure
            assert len(record["score"]) == 4 and set(record["score"]) <= {0.0, 1.0}
            assert len(set(record["group"])) == 2 and all(item.endswith(".mp4") for item in record["item"])
            assert sum(record["score"]) / 4 == pytest.approx(values[seed])
            metrics = json.loads((Path(trial.user_attrs["trial_dir"]) / f"seed_{seed}" / "metrics" / "avts.json")
                                 .read_text())
            assert metrics["tasks"]["frozen_video"]["pretrained"]["knn_all"] == pytest.approx(values[seed])
        assert trial.value == pytest.approx((values["0"] + values["1"]) / 2)  # the dashboard's value
    counts = summary_["separation"]
    assert counts["points_with_interval"] == 2 and counts["tied_with_best"] + counts["separated_from_best"] == 2
    rows = list(csv.DictReader(io.StringIO(Path(summary_["table_csv"]).read_text())))
    assert len(rows) == 2
    for row in rows:
        assert row["low"] and row["high"] and row["verdict"] and row["rank"], row
        assert float(row["low"]) <= float(row["value"]) <= float(row["high"])
    table = Path(summary_["table_md"]).read_text()
    assert "test items: the evaluate stage's test clips or videos scored for frozen_video.knn_all" in table
    assert "share rank 1" in table and "| best |" in table


def test_a_point_trained_over_two_seeds_records_both_and_the_table_ranks_it(tiny_clips, tmp_path, monkeypatch):
    definition = StudyDefinition(key="two_seeds", method="avts", source="test", grid={"lr": (0.01, 0.02)},
                                 protocol="easy", plan=studies_module._direct)
    monkeypatch.setitem(STUDIES, "two_seeds", definition)
    summary_ = run_ablate(_cfg(tiny_clips, tmp_path, "ablate.seeds=[0, 1]"), "two_seeds")
    assert summary_["states"] == {"COMPLETE": 2}, summary_
    study = optuna.load_study(study_name="two_seeds", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    for trial in study.trials:
        pairs, values = trial.user_attrs[ITEMS_ATTR], trial.user_attrs[SEED_VALUES_ATTR]
        assert sorted(pairs) == sorted(values) == ["0", "1"]
        for seed, record in pairs.items():
            assert len(record["score"]) == len(record["group"]) == 16  # ablate.val_pairs
            assert set(record["score"]) <= {0, 1} and min(int(g) for g in record["group"]) >= 0
            # the per-pair records are the pretrain stage's own measurement of that seed's run
            assert sum(record["score"]) / 16 == pytest.approx(values[seed])
            trial_dir = Path(trial.user_attrs["trial_dir"])
            assert (trial_dir / f"seed_{seed}" / "pretrain" / "avts" / "model.pt").is_file()
        assert trial.value == pytest.approx((values["0"] + values["1"]) / 2)
        assert [item.split()[1] for item in pairs["0"]["item"]] == [str(i) for i in range(16)]  # "pair <i> clip <c>"
        record = json.loads((Path(trial.user_attrs["trial_dir"]) / "trial.json").read_text())
        assert record["seed_values"] == values and record["seeds"] == [0, 1]
    # the two seeds draw their own held-out pairs; the two points share them seed by seed
    first, second = (study.trials[0].user_attrs[ITEMS_ATTR], study.trials[1].user_attrs[ITEMS_ATTR])
    assert first["0"]["group"] == second["0"]["group"] and first["0"]["item"] == second["0"]["item"]
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


def test_a_study_recorded_by_the_previous_release_keeps_its_intervals():
    """Trials of the previous release recorded held-out pairs as ``pretext_pairs`` {seed: {correct, index,
    clip, source}}; the table reads them as the same test items a new trial records."""
    from avssl_core.ablate.table import LEGACY_PAIRS_ATTR, study_separation

    study = optuna.create_study(direction="maximize")
    for correct in ([1] * 40, [0, 0, 0, 1] * 10):
        record = {"correct": correct, "index": list(range(40)), "clip": [i // 4 for i in range(40)],
                  "source": [i // 4 for i in range(40)]}
        study.add_trial(optuna.trial.create_trial(value=float(np.mean(correct)),
                                                  user_attrs={LEGACY_PAIRS_ATTR: {"0": record}}))
    out = study_separation(study)
    assert out[0]["vs_best"]["verdict"] == BEST and out[1]["vs_best"]["verdict"] == WORSE
    assert out[1]["vs_best"]["shared_items"] == 40 and out[1]["rank"] == 2
