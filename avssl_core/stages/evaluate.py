"""evaluate: the downstream suite for one pretrained method, each task also from random initialisation.

Reads  <evaluate.methods_dir>/<method>/model.pt (the pretrain stage's), <clips_dir>/index.csv, and, when
       configured, UCF101/HMDB51/ESC-50/DCASE folders (avssl_core/eval/layouts.py).
Writes <metrics_dir>/<method>.json   the agreed schema: {"method", "preset", "data", "seconds",
                                     "tasks": {task: {"dataset", "protocol", "pretrained", "scratch", "skipped"}},
                                     "pictures": {name: path}}
       <evaluate.out_dir>/<method>/  details.json (per split/fold figures, chosen C, timings, skipped files,
                                     and "per_item": each model's score per test item of every figure that
                                     has an interval, with the item's source video),
                                     datasets/ (the exported split lists), pictures, localization output.

The synthetic labelled clips are exported to UCF101 and ESC-50 layouts in a temporary folder (links to the
clips) and read back by the same readers as the real benchmarks. Each evaluation window is decoded and
preprocessed once and shared by the pretrained and the from-scratch model (same windows, augmentation draws
and normalisation statistics). Files that do not decode are skipped, counted ("skipped" in each task) and
named in the log and in details.json.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from avssl_core.config import Config, EvaluateConfig
from avssl_core.errors import ConfigError
from avssl_core.eval.action import MODALITIES
from avssl_core.eval.audio_probe import CLASSIFIERS
from avssl_core.eval.paper_protocols import PROTOCOLS as EVAL_PROTOCOLS
from avssl_core.eval.paper_protocols import resolve
from avssl_core.eval.retrieval import DISTANCES
from avssl_core.eval.tasks.context import EvaluationContext
from avssl_core.eval.tasks.registry import TASKS, selected
from avssl_core.io_utils import write_json_atomic
from avssl_core.methods.base import PretrainMethod
from avssl_core.methods.protocols import PROTOCOLS
from avssl_core.methods.registry import METHODS, build_method
from avssl_core.methods.saved import load_model
from avssl_core.train.devices import choose_device

log = logging.getLogger(__name__)

# -- models --------------------------------------------------------------------------------------------

def load_pretrained(methods_dir: str | Path, name: str) -> PretrainMethod:
    """The pretrain stage's ``<methods_dir>/<name>/model.pt``; a DataError when it is missing or holds another
    method."""
    return load_model(Path(methods_dir) / name / "model.pt", name)


def scratch_copy(method: PretrainMethod, seed: int) -> PretrainMethod:
    """The same architecture from random initialisation (seeded), with the pretrained model's normalisation
    statistics, so both see identical inputs."""
    torch.manual_seed(seed)
    scratch = build_method(method.name, method.preset, **method.hparams)
    scratch.copy_normalization(method)
    return scratch


def _device(name: str) -> torch.device:
    return choose_device(name, "evaluate.device")


def _check(ec: EvaluateConfig) -> None:
    problems = []
    unknown = sorted(set(ec.tasks) - set(TASKS))
    if unknown:
        problems.append(f"evaluate.tasks: unknown {unknown}; choose from {list(TASKS)}")
    unknown = sorted(set(ec.pretext.protocols) - set(PROTOCOLS))
    if unknown:
        problems.append(f"evaluate.pretext.protocols: unknown {unknown}; choose from {sorted(PROTOCOLS)}")
    if ec.action.dataset not in ("synthetic", "ucf101", "hmdb51"):
        problems.append(f"evaluate.action.dataset {ec.action.dataset!r}: synthetic | ucf101 | hmdb51")
    if ec.audio.dataset not in ("synthetic", "esc50", "dcase"):
        problems.append(f"evaluate.audio.dataset {ec.audio.dataset!r}: synthetic | esc50 | dcase")
    if ec.action.modality not in MODALITIES:
        problems.append(f"evaluate.action.modality {ec.action.modality!r}: choose one of {list(MODALITIES)}")
    if ec.audio.classifier not in CLASSIFIERS:
        problems.append(f"evaluate.audio.classifier {ec.audio.classifier!r}: choose one of {list(CLASSIFIERS)}")
    if ec.retrieval.cross_distance not in DISTANCES:
        problems.append(f"evaluate.retrieval.cross_distance {ec.retrieval.cross_distance!r}: {list(DISTANCES)}")
    if ec.action.dataset != "synthetic" and not ec.action.root:
        problems.append(f"evaluate.action.root is needed for dataset {ec.action.dataset}")
    if ec.audio.dataset != "synthetic" and not ec.audio.root:
        problems.append(f"evaluate.audio.root is needed for dataset {ec.audio.dataset}")
    if ec.localization.input_size is not None and ec.localization.input_size < 16:
        problems.append(f"evaluate.localization.input_size must be >= 16 or null, got {ec.localization.input_size}")
    if ec.action.labelled_groups_per_class is not None and ec.action.labelled_groups_per_class < 1:
        problems.append(f"evaluate.action.labelled_groups_per_class must be >= 1 or null, got "
                        f"{ec.action.labelled_groups_per_class}")
    for key, value in (("action.epochs", ec.action.epochs), ("action.test_clips", ec.action.test_clips),
                       ("action.clips_per_video", ec.action.clips_per_video),
                       ("action.batch_size", ec.action.batch_size), ("audio.clips_per_file", ec.audio.clips_per_file),
                       ("retrieval.clips_per_video", ec.retrieval.clips_per_video), ("pretext.pairs", ec.pretext.pairs),
                       ("batch_size", ec.batch_size), ("bootstrap", ec.bootstrap),
                       ("frozen.clips_per_video", ec.frozen.clips_per_video), ("frozen.knn_k", ec.frozen.knn_k),
                       ("frozen.cv_folds", ec.frozen.cv_folds)):
        if value < 1:
            problems.append(f"evaluate.{key} must be >= 1, got {value}")
    if not ec.audio.c_grid or min(ec.audio.c_grid) <= 0:
        problems.append("evaluate.audio.c_grid must list positive values")
    fc = ec.frozen
    if not fc.c_grid or min(fc.c_grid) <= 0 or fc.fixed_c <= 0:
        problems.append("evaluate.frozen.c_grid must list positive values and fixed_c be positive")
    if fc.knn_temperature <= 0:
        problems.append(f"evaluate.frozen.knn_temperature must be > 0, got {fc.knn_temperature}")
    if not fc.labelled_per_class or any(k is not None and k < 1 for k in fc.labelled_per_class):
        problems.append(f"evaluate.frozen.labelled_per_class must list values >= 1 or null, got "
                        f"{fc.labelled_per_class}")
    if ec.protocol not in EVAL_PROTOCOLS:
        problems.append(f"evaluate.protocol {ec.protocol!r}: choose one of {list(EVAL_PROTOCOLS)}")
    for key, value in vars(ec.paper_max).items():
        if value is not None and value < 1:
            problems.append(f"evaluate.paper_max.{key} must be >= 1 or null, got {value}")
    if problems:
        raise ConfigError("; ".join(problems))


def _summary_line(task: str, entry: dict) -> str:
    parts = [task]
    for kind in ("pretrained", "scratch"):
        if kind in entry:
            shown = {k: v for k, v in entry[kind].items() if "R@" not in k or k.endswith("R@1")}
            parts.append(f"{kind} " + " ".join(f"{k}={v:.3f}" for k, v in shown.items()))
    if "trivial" in entry:
        parts.append("trivial " + " ".join(f"{k}={v:.3f}" for k, v in entry["trivial"].items()))
    verdicts = {m: r["verdict"] for m, r in (entry.get("intervals") or {}).items() if "verdict" in r}
    if verdicts:
        parts.append("pretrained vs scratch (95% paired interval): " +
                     ", ".join(f"{m} {v}" for m, v in verdicts.items()))
    if entry.get("skipped"):
        parts.append(f"skipped {entry['skipped']} undecodable file(s)")
    return " | ".join(parts)


def run_evaluate(cfg: Config, method_name: str | None = None) -> dict[str, Any]:
    """Evaluate ``method_name`` (default: pretrain.method); writes metrics/<method>.json and returns it.
    The tasks themselves are avssl_core/eval/tasks/; this checks the configuration, loads the model, builds
    the shared context and runs the selected tasks in the registry's order, timing each."""
    started = time.perf_counter()
    ec = cfg.evaluate
    _check(ec)
    name = method_name or cfg.pretrain.method
    if name not in METHODS:
        raise ConfigError(f"evaluate --method: unknown method {name!r}; choose one of {sorted(METHODS)}")
    protocol = resolve(ec, name)
    cfg = dataclasses.replace(cfg, evaluate=protocol.config)
    ec = cfg.evaluate
    method = load_pretrained(ec.methods_dir, name)
    out_dir = Path(ec.out_dir) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    device = _device(ec.device)
    models: dict[str, PretrainMethod] = {"pretrained": method.to(device).eval()}
    if ec.scratch:
        models["scratch"] = scratch_copy(method, ec.seed).to(device).eval()
    tasks: dict[str, dict] = {}
    pictures: dict[str, str] = {}
    timings: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="avssl-eval-") as tmp:
        context = EvaluationContext(cfg, method, models, device, Path(tmp), out_dir, protocol)
        for task in selected(ec.tasks):
            if not task.wanted(context):
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            (pictures if task.pictures else tasks).update(task.run(context))
            # CPU seconds too: on a shared machine wall time says more about the neighbours than the task.
            timings[task.name] = {"wall_s": round(time.perf_counter() - t0, 2),
                                  "cpu_s": round(time.process_time() - c0, 2)}
    for task_name, entry in tasks.items():
        log.info("evaluate %s: %s", name, _summary_line(task_name, entry))
    metrics = {"method": name, "preset": method.preset, "protocol": protocol.name,
               "data": f"{Path(cfg.paths.clips_dir) / 'index.csv'} (evaluation split '{ec.split}', training split "
                       f"'{ec.train_split}')",
               "seconds": round(time.perf_counter() - started, 1), "tasks": tasks, "pictures": pictures}
    write_json_atomic(out_dir / "details.json", {**context.details, "per_item": context.per_item,
                                                 "seconds_per_task": timings})
    write_json_atomic(Path(cfg.paths.metrics_dir) / f"{name}.json", metrics)
    return metrics
