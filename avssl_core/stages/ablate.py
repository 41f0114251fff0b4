"""ablate: one Optuna study per ablation table of the papers (avssl_core/ablate/studies.py).

Each trial pretrains the study's method with the ``ablate.preset`` preset, the trial's grid point as
hyper-parameters and the tiny budget of ``ablate.*``, in its own folder, once per training seed of
``ablate.seeds``, then scores it (default: held-out pretext accuracy under the study's protocol, the mean over
the seeds). Validation accuracy after every epoch of the first seed is the trial's intermediate value, so
``ablate.pruner`` can stop hopeless trials. The table gives each point a 95% interval over source videos
(of the held-out pairs for a pretext objective, of the test clips or videos for a downstream one), its paired
difference from the best point with a verdict, and ranks only what the intervals separate
(avssl_core/ablate/separation.py).

Reads  <clips_dir>/index.csv, the storage at ``ablate.storage`` (created if missing)
Writes <ablate.out_dir>/<study>/trial_<n>/ (the trial's run, model.pt, trial.json)
       (several seeds: trial_<n>/seed_<s>/ per seed)
       <ablate.out_dir>/<study>/trials.csv, trials.md (every trial of the study, from every worker)

Running it again resumes the study (same name in the same storage): finished trials stay, trials of a
killed worker are failed and retried, and new trials run until the study holds ``ablate.trials``.
Several workers (processes or machines) pointed at one PostgreSQL storage share the study's grid.
"""

from __future__ import annotations

import logging
import shlex
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from avssl_core.ablate import separation
from avssl_core.ablate.objective import Objective, make_objective, parse_objective
from avssl_core.ablate.storage import absolute_url, display_url, open_storage
from avssl_core.ablate.studies import StudyDefinition, get_study
from avssl_core.ablate.table import study_separation, trial_rows, write_tables
from avssl_core.ablate.workers import retry_trial, run_worker
from avssl_core.config import AblateConfig, Config
from avssl_core.errors import ConfigError, DataError
from avssl_core.stages.evaluate import run_evaluate
from avssl_core.stages.pretrain import run_pretrain

log = logging.getLogger(__name__)

SETUP_ATTR = "avssl_setup"  # what a study's trials share; a rerun with other settings is refused


def build_pruner(ab: AblateConfig) -> optuna.pruners.BasePruner:
    # Steps are 0-based epochs: warm-up W lets every trial finish W epochs before its first verdict.
    if ab.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=ab.pruner_startup_trials,
                                           n_warmup_steps=ab.pruner_warmup_epochs)
    if ab.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, ab.pruner_warmup_epochs))
    if ab.pruner == "threshold":
        return optuna.pruners.ThresholdPruner(lower=ab.prune_below, n_warmup_steps=ab.pruner_warmup_epochs)
    return optuna.pruners.NopPruner()


def study_setup(cfg: Config, definition: StudyDefinition, objective_text: str, direction: str) -> dict[str, Any]:
    ab = cfg.ablate
    return {
        "study": definition.key, "method": definition.method, "preset": ab.preset,
        "objective": objective_text, "direction": direction,
        "grid": {k: list(v) for k, v in definition.grid.items()},
        "budget": {"epochs": ab.epochs, "max_steps": ab.max_steps, "pairs_per_clip": ab.pairs_per_clip,
                   "val_pairs": ab.val_pairs, "batch_size": ab.batch_size, "seeds": list(ab.seeds)},
        "clips": str(Path(cfg.paths.clips_dir).resolve() / "index.csv"),
        "base_hparams": cfg.pretrain.hparams.get(definition.method, {}),
    }


def check_setup(study: optuna.Study, setup: dict[str, Any], url: str) -> None:
    """Record the study's setup the first time; refuse to add trials made under another one."""
    recorded = study.user_attrs.get(SETUP_ATTR)
    if recorded is None:
        study.set_user_attr(SETUP_ATTR, setup)
        return
    differing = sorted(k for k in set(setup) | set(recorded) if setup.get(k) != recorded.get(k))
    if differing:
        changes = "; ".join(f"{k}: {recorded.get(k)!r} -> {setup.get(k)!r}" for k in differing)
        raise ConfigError(
            f"study {study.study_name!r} in {display_url(url)} was run with other settings ({changes}); its trials "
            f"would not be comparable. Use a new name (--set ablate.study_name=NAME) or delete it: "
            f"optuna delete-study --study-name {study.study_name} --storage {shlex.quote(display_url(absolute_url(url)))}")


def dashboard_command(url: str) -> str:
    shown = absolute_url(url)
    return f"optuna-dashboard {shlex.quote(display_url(shown))}"


_THE_PRESETS = "the preset's"


def _or(value, unset: str) -> str:
    """An ablate budget setting as the table header says it (``None``: ``unset``, whose value it takes)."""
    return unset if value is None else str(value)


def run_ablate(cfg: Config, study: str | None = None) -> dict[str, Any]:
    """Run (or resume) the ablation study ``study`` (default: ``ablate.study``) in this process, as one of
    possibly several workers, then write the study's table of trials."""
    started = time.perf_counter()
    ab = cfg.ablate
    definition = get_study(study or ab.study)
    from avssl_core.methods.registry import METHODS

    if definition.method not in METHODS:
        raise ConfigError(f"study {definition.key!r} needs method {definition.method!r}, which is not registered "
                          f"(registered: {sorted(METHODS)})")
    definition.check_budget(ab.epochs)
    objective = parse_objective(ab.objective, definition)
    index_csv = Path(cfg.paths.clips_dir) / "index.csv"
    if not index_csv.is_file():
        raise DataError(f"{index_csv}: no clip index; run `avssl data` (or `dvc repro segment`) first")
    requested = ab.trials or definition.size
    target = min(requested, definition.size)
    if requested > definition.size:
        log.warning("ablate.trials=%d: study %s has %d grid points; running %d", requested, definition.key,
                    definition.size, target)

    name = ab.study_name or definition.key
    with warnings.catch_warnings():
        # Heartbeats are marked experimental in Optuna; they are what recovers a killed worker's trial.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(ab.storage, heartbeat_interval_s=ab.heartbeat_interval_s,
                               grace_period_s=ab.grace_period_s, on_stale_trial=retry_trial)
        sampler = optuna.samplers.GridSampler({k: list(v) for k, v in definition.grid.items()},
                                              seed=ab.sampler_seed)
        opt_study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                        pruner=build_pruner(ab), direction=objective.direction,
                                        load_if_exists=True)
        check_setup(opt_study, study_setup(cfg, definition, objective.text, objective.direction), ab.storage)
        study_dir = Path(ab.out_dir) / name
        log.info("ablate %s (%s): %d trials of %s/%s, objective %s, storage %s", name, definition.source, target,
                 definition.method, ab.preset, objective.text, display_url(ab.storage))
        trial = make_objective(cfg, definition, objective, study_dir, pretrain=run_pretrain, evaluate=run_evaluate)
        stopped = run_worker(opt_study, storage, trial, target=target, grid_size=definition.size,
                             timeout_s=ab.timeout_s)

    separated = study_separation(opt_study)
    rows = trial_rows(opt_study, definition, separated)
    separation_summary = separation.summary(separated)
    states = {s.name: sum(1 for r in rows if r["state"] == s.name) for s in optuna.trial.TrialState}
    best = _best(opt_study)
    command = dashboard_command(ab.storage)
    header = [
        f"# Ablation {name}: {definition.source}",
        "",
        f"- method `{definition.method}`, preset `{ab.preset}`, budget per trial: {_or(ab.epochs, _THE_PRESETS)} "
        f"epochs, max_steps {_or(ab.max_steps, 'none')}, {_or(ab.pairs_per_clip, _THE_PRESETS)} pairs per clip, "
        f"{_or(ab.val_pairs, 'pretrain.val_pairs')} held-out pairs, "
        f"training seeds {list(ab.seeds)} (`value`: their mean; `seed_values`: each)",
        f"- objective: `{objective.text}` ({objective.direction}); test items: {objective.items}",
        f"- data: `{index_csv}`",
        f"- `paper`: {definition.paper_metric} (full-scale training: compare rankings, not values)",
        f"- best: {best}",
        f"- `low`/`high`: the value's interval; `vs_best`, `vs_best_low`/`vs_best_high`: the point minus the best "
        f"point and that difference's interval; `verdict`: better / worse / not separable from the best "
        f"({separation.BOOTSTRAP_TEXT})",
        f"- `rank`: points not separable from the best share rank 1 with it; among the rest the same rule "
        f"against the best of them gives rank 2, and so on. Here {_separation_words(separation_summary, objective)}",
        f"- dashboard: `{command}`",
    ]
    csv_path, md_path = write_tables(rows, study_dir, header=header)
    summary = {
        "study": definition.key, "study_name": name, "source": definition.source, "method": definition.method,
        "preset": ab.preset, "objective": objective.text, "direction": objective.direction,
        "storage": display_url(ab.storage), "trials_target": target, "stopped": stopped,
        "states": {k: v for k, v in states.items() if v}, "best": best, "separation": separation_summary,
        "table_csv": str(csv_path), "table_md": str(md_path), "dashboard": command,
        "seconds": round(time.perf_counter() - started, 1),
    }
    log.info("ablate %s: %s; table %s; dashboard: %s", name, summary["states"], md_path, command)
    return summary


def _separation_words(counts: dict[str, Any], objective: Objective) -> str:
    n = counts["points_with_interval"]
    if n == 0:
        why = "no trial finished" if objective.protocol is not None else (
            f"no trial finished, or the evaluate stage scores `{objective.text}` with no per-item scores (only "
            f"figures it gives an interval have them)")
        return f"no trial recorded per-item scores ({why}): nothing is ranked."
    return (f"{counts['tied_with_best']} of {n} points share rank 1 (not separable from the best); "
            f"{counts['separated_from_best']} separate from the best; {counts['ranks']} rank(s) in all.")


def _best(study: optuna.Study) -> dict[str, Any] | None:
    try:
        trial = study.best_trial
    except ValueError:  # no COMPLETE trial yet
        return None
    return {"trial": trial.number, "params": trial.params, "value": trial.value}

