"""Optuna ablations: the studies match the papers' tables, trials train for real on the tiny clips, a failing
trial is recorded and the study goes on, the trainer callback prunes, a killed worker's trial is failed and
retried, and bad storages or study names get messages that say what to do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from avssl_core.ablate import studies as studies_module
from avssl_core.ablate.objective import WORKER_ATTR, parse_objective
from avssl_core.ablate.storage import StorageError, open_storage
from avssl_core.ablate.studies import STUDIES, StudyDefinition, get_study, second_stage_epoch
from avssl_core.ablate.workers import fail_dead_workers_trials, progress
from avssl_core.cli import main
from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.methods.registry import METHODS, build_method
from avssl_core.stages.ablate import SETUP_ATTR, check_setup, run_ablate

REPO = Path(__file__).resolve().parents[1]
# A much smaller AVTS than its tiny preset: a trial trains in a few seconds on one core.
SMALL_AVTS = ("pretrain.hparams={avts: {video_frames: 4, crop_size: 32, short_side: 40, "
              "video_channels: [8, 8, 16, 16], audio_channels: [8, 8, 16, 16, 16], audio_fc6_dim: 32, "
              "embed_dim: 32}}")


def _overrides(tiny_clips: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        f"paths.clips_dir={tiny_clips.parent}",
        f"ablate.storage=sqlite:///{tmp_path / 'optuna.db'}",
        f"ablate.out_dir={tmp_path / 'ablate'}",
        # the fixture's clips are all in the train split: hold out pairs from it (fixed, seeded)
        "pretrain.val_split=train", "pretrain.train.batch_size=8", "pretrain.train.num_workers=0",
        "ablate.epochs=2", "ablate.pairs_per_clip=1", "ablate.val_pairs=16", SMALL_AVTS,
        *extra,
    ]


def _cfg(tiny_clips: Path, tmp_path: Path, *extra: str):
    return load_config(None, _overrides(tiny_clips, tmp_path, *extra))


# -- the studies are the papers' tables ------------------------------------------------------------------------
def test_studies_match_the_papers_grids():
    assert set(STUDIES) == {"avts_curriculum", "coattention_heads_depth", "cmac_lambda", "cmac_pyramid"}
    heads_depth = get_study("coattention_heads_depth")  # co-attention Table 3: L in {1, 2}, A in {4, 8, 16}
    assert heads_depth.grid == {"depth": (1, 2), "heads": (4, 8, 16)} and heads_depth.size == 6
    assert heads_depth.paper_value({"depth": 1, "heads": 8}) == 65.3  # the table's best AVS accuracy
    assert heads_depth.protocol == "shifted"  # its pretext negatives: audio shifted within the video

    pyramid = get_study("cmac_pyramid")  # CMAC Table 2's five rows are points of the grid
    for row in [("none", 1), ("softmax", 1), ("cosine", 1), ("cosine", 2), ("cosine", 3)]:
        assert row[0] in pyramid.grid["normalization"] and row[1] in pyramid.grid["pyramid_scales"]
        assert pyramid.paper_value(dict(zip(pyramid.grid, row, strict=True))) is not None
    assert pyramid.paper_value({"normalization": "cosine", "pyramid_scales": 2}) == 87.2
    lambdas = get_study("cmac_lambda").grid["lambda_ac"]  # Fig. 4: 0 up to past the best, 1.5
    assert 0.0 in lambdas and 1.5 in lambdas and max(lambdas) > 1.5

    avts = get_study("avts_curriculum")  # AVTS Table 1: its six rows, tested on easy negatives
    assert avts.size == 6 and avts.protocol == "easy"
    assert sorted(avts.paper.values()) == sorted([69.0, 58.9, 52.3, 67.2, 78.4, 65.7])
    # 90 paper epochs scaled to 9: the second stage starts at epoch 5 (the paper's 51st of 90)
    assert second_stage_epoch(9) == 5 and second_stage_epoch(2) == 1
    plans = {row: avts.plan({"negatives": row}, 9) for row in avts.grid["negatives"]}
    assert plans["easy"].hparams == {"hard_share": 0.0, "hard_from_epoch": None} and plans["easy"].epochs == 9
    assert plans["easy75_hard25"].hparams == {"hard_share": 0.25, "hard_from_epoch": 0}
    assert plans["curriculum_easy75_hard25"].hparams == {"hard_share": 0.25, "hard_from_epoch": 5}
    assert plans["curriculum_hard"].hparams == {"hard_share": 1.0, "hard_from_epoch": 5}
    assert plans["easy_first_stage"].epochs == 5  # the table's "easy, epochs 1-50" row
    with pytest.raises(ConfigError, match="at least 2 epochs"):
        avts.check_budget(1)


@pytest.mark.parametrize("key", sorted(STUDIES))
def test_every_grid_point_builds_its_method(key):
    """The studies name the methods' real hyper-parameters: every grid point builds the method's tiny preset
    (co-attention and CMAC run once those methods are registered)."""
    definition = STUDIES[key]
    if definition.method not in METHODS:
        pytest.skip(f"method {definition.method!r} is not registered yet")
    names = list(definition.grid)
    import itertools

    for values in itertools.product(*definition.grid.values()):
        plan = definition.plan(dict(zip(names, values, strict=True)), 3)
        method = build_method(definition.method, "tiny", **plan.hparams)
        for name, value in plan.hparams.items():
            assert method.hparams[name] == value


def test_unknown_study_lists_the_known_ones(tiny_clips, tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown study 'nope'; known studies: avts_curriculum"):
        run_ablate(_cfg(tiny_clips, tmp_path), "nope")
    assert main(["--set", f"paths.clips_dir={tiny_clips.parent}", "ablate", "--study", "nope"]) == 2
    err = capsys.readouterr().err
    assert all(k in err for k in STUDIES)


def test_objectives_parse_into_a_pretext_protocol_or_a_downstream_direction():
    definition = get_study("avts_curriculum")
    assert parse_objective("pretext", definition).protocol == "easy"
    assert parse_objective("pretext:shifted", definition).protocol == "shifted"
    with pytest.raises(ConfigError, match="unknown pretext protocol 'weird'"):
        parse_objective("pretext:weird", definition)
    objective = parse_objective("retrieval_video.median_rank", definition)
    assert objective.direction == "minimize" and not objective.reports_accuracy
    assert parse_objective("action_recognition.video@1", definition).direction == "maximize"


# -- storages --------------------------------------------------------------------------------------------------
def test_unreachable_or_bad_storage_names_the_url_and_what_to_do(tiny_clips, tmp_path):
    with pytest.raises(StorageError, match=r"cannot reach postgresql://avssl:\*\*\*@127\.0\.0\.1:1/optuna .*"
                                           r"start the database server"):
        open_storage("postgresql://avssl:secret@127.0.0.1:1/optuna")
    with pytest.raises(StorageError, match="unsupported database 'redis'"):
        open_storage("redis://localhost:6379/0")
    with pytest.raises(StorageError, match="ablate.storage is empty"):
        open_storage("  ")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(StorageError, match=f"cannot create the folder {blocked}"):
        open_storage(f"sqlite:///{blocked}/sub/optuna.db")
    with pytest.raises(StorageError, match="no study database at"):
        open_storage(f"sqlite:///{tmp_path}/missing.db", must_exist=True)
    # through the stage and the CLI: the message names the URL (password hidden)
    cfg = _cfg(tiny_clips, tmp_path, "ablate.storage=postgresql://avssl:secret@127.0.0.1:1/optuna")
    with pytest.raises(StorageError, match=r"postgresql://avssl:\*\*\*@127\.0\.0\.1:1/optuna"):
        run_ablate(cfg, "avts_curriculum")
    dashboard = subprocess.run([sys.executable, str(REPO / "dashboards" / "optuna_dashboard.py"),
                                "--storage", f"sqlite:///{tmp_path}/missing.db"], capture_output=True, text=True)
    assert dashboard.returncode == 1 and "no study database at" in dashboard.stderr


def test_a_study_with_other_settings_is_refused(tmp_path):
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    check_setup(study, {"budget": {"epochs": 2}}, "sqlite:///o.db")
    assert study.user_attrs[SETUP_ATTR] == {"budget": {"epochs": 2}}
    check_setup(study, {"budget": {"epochs": 2}}, "sqlite:///o.db")  # the same: goes on
    with pytest.raises(ConfigError, match=r"other settings \(budget: .*ablate.study_name"):
        check_setup(study, {"budget": {"epochs": 3}}, "sqlite:///o.db")


# -- trials ----------------------------------------------------------------------------------------------------
def _test_study(monkeypatch, key: str, grid: dict) -> StudyDefinition:
    definition = StudyDefinition(key=key, method="avts", source="test", grid=grid, protocol="easy",
                                 plan=studies_module._direct)
    monkeypatch.setitem(STUDIES, key, definition)
    return definition


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tiny_clips, tmp_path, monkeypatch):
    # video_fps -1 makes the method refuse to build: a real exception inside the objective
    _test_study(monkeypatch, "fails_once", {"video_fps": (8.0, -1.0)})
    summary = run_ablate(_cfg(tiny_clips, tmp_path), "fails_once")
    assert summary["states"] == {"COMPLETE": 1, "FAIL": 1} and summary["stopped"] == "trial count reached"
    study = optuna.load_study(study_name="fails_once", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))[0]
    assert failed.params == {"video_fps": -1.0}
    assert "video_frames and video_fps must be positive" in failed.user_attrs["fail_reason"]
    good = study.best_trial
    assert good.params == {"video_fps": 8.0} and 0.0 <= good.value <= 1.0
    assert len(good.intermediate_values) == 2  # one validation accuracy per epoch
    trial_dir = Path(good.user_attrs["trial_dir"])
    assert trial_dir.name == f"trial_{good.number}" and (trial_dir / "pretrain" / "avts" / "model.pt").is_file()
    table = Path(summary["table_md"]).read_text()
    assert "| FAIL |" in table and "video_fps must be positive" in table and "optuna-dashboard sqlite:///" in table
    assert "budget per trial: 2 epochs, max_steps none, 1 pairs per clip, 16 held-out pairs," in table
    assert Path(summary["table_csv"]).read_text().startswith("trial,state,video_fps,")


def test_pruning_through_the_trainer_callback_records_pruned(tiny_clips, tmp_path, monkeypatch):
    _test_study(monkeypatch, "pruned", {"lr": (0.01, 0.02)})
    # no accuracy reaches 1.01: every trial is pruned at its first report (after epoch 0)
    summary = run_ablate(_cfg(tiny_clips, tmp_path, "ablate.pruner=threshold", "ablate.prune_below=1.01",
                              "ablate.pruner_warmup_epochs=0"), "pruned")
    assert summary["states"] == {"PRUNED": 2} and summary["best"] is None
    study = optuna.load_study(study_name="pruned", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    for trial in study.trials:
        assert list(trial.intermediate_values) == [0]  # stopped after its first epoch
        record = (Path(trial.user_attrs["trial_dir"]) / "trial.json").read_text()
        assert '"state": "PRUNED"' in record and "pruned after epoch 0" in record
        # the run stopped at a clean epoch boundary: its checkpoint is complete
        assert list((Path(trial.user_attrs["trial_dir"]) / "pretrain" / "avts" / "runs").glob("*/checkpoints/*"))
    assert "pruned after epoch 0" in Path(summary["table_md"]).read_text()


def test_a_dead_workers_trial_is_failed_and_retried(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = study.ask({"x": optuna.distributions.CategoricalDistribution([1, 2])})
    import socket

    trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": dead.pid})
    alive = study.ask({"x": optuna.distributions.CategoricalDistribution([1, 2])})
    alive.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
    assert fail_dead_workers_trials(study, storage) == [trial.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[trial.number] == optuna.trial.TrialState.FAIL
    assert states[alive.number] == optuna.trial.TrialState.RUNNING  # its worker (this process) lives
    retry = study.get_trials(states=(optuna.trial.TrialState.WAITING,))[0]
    assert retry.params == {"x": trial.params["x"]} and retry.system_attrs["failed_trial"] == trial.number
    assert progress(study).done == 0 and progress(study).waiting == 1  # the killed trial does not count
    assert "died" in study.trials[trial.number].user_attrs["fail_reason"]


@pytest.mark.slow
@pytest.mark.timeout(900)  # end to end; see [tool.pytest.ini_options] in pyproject.toml
def test_sigkill_mid_study_then_rerun_completes_the_study(tiny_clips, tmp_path):
    """`avssl ablate` killed with SIGKILL while a trial runs, then run again: the killed trial is failed (not
    left RUNNING) and retried, and the study ends with its requested number of trials."""
    sets = [a for o in _overrides(tiny_clips, tmp_path) for a in ("--set", o)]
    command = [sys.executable, "-m", "avssl_core.cli", *sets, "ablate", "--study", "avts_curriculum",
               "--trials", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    worker = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_number = None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.5)
            try:
                trials = optuna.load_study(study_name="avts_curriculum", storage=url).trials
            except KeyError:
                continue  # the study is not created yet
            complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
            running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and t.params]
            if complete and running:
                killed_number = running[0].number
                worker.send_signal(signal.SIGKILL)
                break
    finally:
        if worker.poll() is None and killed_number is None:
            worker.kill()
        worker.wait()
    assert killed_number is not None, worker.stderr.read().decode()[-3000:]
    assert worker.returncode == -signal.SIGKILL

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="avts_curriculum", storage=url)
    by_number = {t.number: t for t in study.trials}
    assert by_number[killed_number].state == optuna.trial.TrialState.FAIL
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed_number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == by_number[killed_number].params
    assert progress(study).done == 3  # the requested trial count, the killed one not counted
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3
    assert f"worker died; retried as trial {retries[0].number}" in (
        tmp_path / "ablate" / "avts_curriculum" / "trials.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)  # end to end; see [tool.pytest.ini_options] in pyproject.toml
def test_a_downstream_objective_evaluates_the_trials_own_model(tiny_clips, tmp_path, monkeypatch):
    """A `<task>.<metric>` objective runs the evaluate stage on the trial's model, inside its folder."""
    _test_study(monkeypatch, "downstream", {"lr": (0.01,)})
    cfg = _cfg(tiny_clips, tmp_path, "ablate.objective=pretext_easy.accuracy", "evaluate.tasks=[pretext]",
               "evaluate.scratch=false", "evaluate.split=train", "evaluate.train_split=train")
    summary = run_ablate(cfg, "downstream")
    assert summary["states"] == {"COMPLETE": 1}, summary
    assert 0.0 <= summary["best"]["value"] <= 1.0
    trial_dir = tmp_path / "ablate" / "downstream" / "trial_0"
    assert (trial_dir / "metrics" / "avts.json").is_file()  # the evaluate stage's metrics, in the trial folder


def test_bare_postgresql_urls_get_the_installed_driver():
    """SQLAlchemy 2.0 reads postgresql:// as psycopg2, which the lock does not install: such a URL must reach
    psycopg 3, and a URL that names its driver, or another database, is left as it is."""
    from avssl_core.ablate.storage import absolute_url, with_driver

    assert with_driver("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert with_driver("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert with_driver("sqlite:///data/ablate/optuna.db") == "sqlite:///data/ablate/optuna.db"
    assert absolute_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
