"""evaluate: the downstream suite for one pretrained method, each task also from random initialisation.

Reads  <evaluate.methods_dir>/<method>/model.pt (the pretrain stage's), <clips_dir>/index.csv, and, when
       configured, UCF101/HMDB51/ESC-50/DCASE folders (avssl_core/eval/layouts.py).
Writes <metrics_dir>/<method>.json   the agreed schema: {"method", "preset", "data", "seconds",
                                     "tasks": {task: {"dataset", "protocol", "pretrained", "scratch", "skipped"}},
                                     "pictures": {name: path}}
       <evaluate.out_dir>/<method>/  details.json (per split/fold figures, chosen C, timings, skipped files),
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
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avssl_core.config import Config, EvaluateConfig
from avssl_core.errors import ConfigError, DataError
from avssl_core.eval.action import MODALITIES, FineTuneSettings, fine_tune, labelled_subset
from avssl_core.eval.audio_probe import CLASSIFIERS, ProbeSettings, probe_split
from avssl_core.eval.clips import (
    CacheBudget,
    ClipReader,
    WindowSet,
    average_by_item,
    centred_windows,
    extract_features,
    random_windows,
    subclip_windows,
)
from avssl_core.eval.export import export_esc50_layout, export_ucf101_layout
from avssl_core.eval.frozen_probe import (
    STATS_KEYS,
    TRIVIAL,
    FrozenProbeSettings,
    InputStatistics,
    probe,
    standardised,
)
from avssl_core.eval.frozen_probe import protocol as frozen_protocol
from avssl_core.eval.intervals import bootstrap, compare
from avssl_core.eval.jitter import ColourJittered
from avssl_core.eval.layouts import (
    LabelledDataset,
    LabelledMedia,
    read_dcase,
    read_esc50,
    read_hmdb51,
    read_ucf101,
)
from avssl_core.eval.paper_protocols import PROTOCOLS as EVAL_PROTOCOLS
from avssl_core.eval.paper_protocols import Resolved, resolve, steps_to_epochs
from avssl_core.eval.pretext import evaluate_pretext
from avssl_core.eval.retrieval import DISTANCES, class_ranks, cross_modal_retrieval, recall_and_median_rank
from avssl_core.io_utils import write_json_atomic
from avssl_core.methods.base import PretrainMethod
from avssl_core.methods.registry import METHODS, build_method
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.dataset import FailedSample, PairDataset
from avssl_core.pretext.sampling import PairSampler
from avssl_core.stages.pretrain import PROTOCOLS, VAL_SEED_OFFSET, fixed_mix

log = logging.getLogger(__name__)

TASKS = ("pretext", "frozen", "action_recognition", "audio_probe", "retrieval", "localization", "tsne")
_MIX_WORDS = {"easy": "negatives: audio from another video",
              "easy75_hard25": "negatives: 75% audio from another video, 25% same video >= 0.5 s away (AVTS)",
              "shifted": "negatives: same video, audio shifted 2.0-5.8 s (co-attention)"}


# -- models --------------------------------------------------------------------------------------------

def load_pretrained(methods_dir: str | Path, name: str) -> PretrainMethod:
    path = Path(methods_dir) / name / "model.pt"
    if not path.is_file():
        raise DataError(f"{path}: no pretrained model; run `avssl pretrain --method {name}` first")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    signature = saved.get("signature", {})
    if signature.get("method") != name:
        raise DataError(f"{path}: holds a {signature.get('method')!r} model, not {name!r}")
    method = build_method(name, signature["preset"], **saved["hparams"])
    method.load_state_dict(saved["state_dict"])
    return method


def scratch_copy(method: PretrainMethod, seed: int) -> PretrainMethod:
    """The same architecture from random initialisation (seeded), with the pretrained model's normalisation
    statistics, so both see identical inputs."""
    torch.manual_seed(seed)
    scratch = build_method(method.name, method.preset, **method.hparams)
    scratch.copy_normalization(method)
    return scratch


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("evaluate.device=cuda but no CUDA device is available")
    return torch.device(name)


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


# -- the suite -----------------------------------------------------------------------------------------

class _Suite:
    """Shared state of one evaluation: models, caches, skipped files, details."""

    def __init__(self, cfg: Config, method: PretrainMethod, export_root: Path, out_dir: Path,
                 protocol: Resolved) -> None:
        self.cfg, self.ec, self.protocol = cfg, cfg.evaluate, protocol
        self.device = _device(self.ec.device)
        self.models: dict[str, PretrainMethod] = {"pretrained": method.to(self.device).eval()}
        if self.ec.scratch:
            self.models["scratch"] = scratch_copy(method, self.ec.seed).to(self.device).eval()
        self.method = method
        self.index_csv = Path(cfg.paths.clips_dir) / "index.csv"
        self.export_root, self.out_dir = export_root, out_dir
        self.budget = CacheBudget(self.ec.cache_mb)
        self.preprocess = {flag: method.preprocess(train=flag) for flag in (True, False)}
        self.details: dict[str, Any] = {}
        self.features: dict[str, tuple[np.ndarray, list[str]]] = {}  # for the t-SNE pictures
        self._readers: dict[tuple[bool, bool], ClipReader] = {}
        self._sets: dict[tuple, tuple[WindowSet, dict[int, str]]] = {}
        self._clip_features: dict[tuple, tuple[torch.Tensor, np.ndarray]] = {}

    def windows(self, items, windows, reader, train: bool, classes, *, jitter: float = 0.0) -> WindowSet:
        preprocess = self.preprocess[train] if jitter == 0 else ColourJittered(self.preprocess[train], jitter)
        return WindowSet(reader, items, windows, preprocess, {c: i for i, c in enumerate(classes)},
                         seed=self.ec.seed, cache=self.budget)

    def named(self, words: str) -> str:
        """A task's protocol words, prefixed with the paper protocol's name (and its caps) where it runs."""
        if self.protocol.name == "quick":
            return words
        caps = f" [capped: {'; '.join(self.protocol.caps)}]" if self.protocol.caps else ""
        return f"{self.protocol.name}{caps}: {words}"

    def reader(self, video: bool, audio: bool) -> ClipReader:
        if (video, audio) not in self._readers:
            self._readers[video, audio] = ClipReader(self.method.pair_spec(), need_video=video, need_audio=audio)
        return self._readers[video, audio]

    def centred_set(self, name: str, items, n: int, classes, *, video: bool = True, audio: bool = False
                    ) -> tuple[WindowSet, dict[int, str]]:
        """``n`` uniformly spaced test-time windows of each of ``items`` (named ``name``, e.g. split1/test),
        built once and shared by every task that asks for the same windows (frozen probes, retrieval,
        the fine-tuned classifier's test), so each window is decoded once; with the files that would not
        open."""
        key = (name, n, video, audio)
        if key not in self._sets:
            reader = self.reader(video, audio)
            skip: dict[int, str] = {}
            # The trivial baseline's input statistics come along at decode time (cheap beside decoding).
            stats = InputStatistics(reader.spec.audio_sample_rate or 16000)
            windows = WindowSet(reader, items, centred_windows(reader, items, n, skip), self.preprocess[False],
                                {c: i for i, c in enumerate(classes)}, seed=self.ec.seed, cache=self.budget,
                                extra=stats)
            self._sets[key] = (windows, skip)
        return self._sets[key]

    def clip_features(self, kind: str, modality: str, windows: WindowSet) -> tuple[torch.Tensor, np.ndarray]:
        """A model's frozen ``modality`` backbone features averaged over each file's windows: ([F, D], file
        positions); files with an undecodable window left out. Computed once per model and window set."""
        key = (kind, modality, id(windows))
        if key not in self._clip_features:
            if kind == TRIVIAL:  # no network: the window's input statistics (centred_set keeps them)
                encode = lambda b: b[STATS_KEYS[modality]]  # noqa: E731
            else:
                model = self.models[kind]
                net = (model.video_backbone() if modality == "video" else model.audio_backbone()).eval()
                encode = lambda b: net(b[modality])  # noqa: E731
            feats, rows = extract_features(encode, windows, batch_size=self.ec.batch_size, device=self.device)
            self._clip_features[key] = average_by_item(feats, rows, set(windows.failed_items))
        return self._clip_features[key]

    def paired(self, correct: dict[str, np.ndarray], groups) -> dict:
        """Intervals over test source videos for one metric's per-item scores of each model: with scratch,
        the paired comparison and its verdict; without, the pretrained interval alone."""
        if "scratch" in correct:
            return compare(correct["pretrained"], correct["scratch"], groups, replicates=self.ec.bootstrap,
                           seed=self.ec.seed)
        return {"pretrained": bootstrap(correct["pretrained"], groups, replicates=self.ec.bootstrap,
                                        seed=self.ec.seed).as_dict()}

    # -- pretext ---------------------------------------------------------------------------------------
    def pretext(self) -> dict[str, dict]:
        ec = self.ec
        index = ClipIndex.from_csv(self.index_csv, splits=ec.split)
        # A contrastive method's held-out pairs are all positives (it makes its negatives from the batch):
        # the negative mixes would all give the same pairs, so it is scored once, as instance
        # discrimination, against the chance level it measures (1 / candidates per query).
        contrastive = self.method.pair_spec().positive_fraction >= 1.0
        protocols = ["instance"] if contrastive else list(ec.pretext.protocols)
        tasks = {}
        for protocol in protocols:
            mix = PROTOCOLS["easy" if contrastive else protocol]
            sampler = PairSampler(index, fixed_mix(self.method.pair_spec(), mix), ec.seed + VAL_SEED_OFFSET,
                                  samples_per_epoch=ec.pretext.pairs)
            dataset = PairDataset(sampler, preprocess=self.preprocess[False])
            pairs = [dataset[i] for i in range(len(dataset))]  # decoded once, scored by every model
            failed = sorted({p.path for p in pairs if isinstance(p, FailedSample)})
            scores = {kind: evaluate_pretext(model, pairs, batch_size=ec.batch_size, device=self.device)
                      for kind, model in self.models.items()}
            fallbacks = int(sum(sampler.fallback_counts.values()))
            if contrastive:
                chance = next(iter(scores.values()))["chance"]
                words = (f"{ec.pretext.pairs} fixed in-sync pairs (seed {ec.seed}+{VAL_SEED_OFFSET}) in batches of "
                         f"{ec.batch_size}; instance discrimination: a clip's own audio must be the nearest of the "
                         f"batch's audio (clips of other videos, and its own); measured chance {chance:.3f}")
            else:
                words = (f"{ec.pretext.pairs} fixed pairs (seed {ec.seed}+{VAL_SEED_OFFSET}), 50% positives, "
                         f"{_MIX_WORDS[protocol]}; windows of the method's PairSpec; chance 0.5")
            entry = {"dataset": f"{self.index_csv} split '{ec.split}' ({len(index)} clips)",
                     "protocol": words + (f"; {fallbacks} negative(s) fell back to other-video audio" if fallbacks else ""),
                     **{kind: {"accuracy": r["accuracy"]} for kind, r in scores.items()},
                     "skipped": len(failed)}
            self.details[f"pretext_{protocol}"] = {"by_kind": {k: r["accuracy_by_kind"] for k, r in scores.items()},
                                                   "failed": failed, "fallbacks": fallbacks}
            tasks[f"pretext_{protocol}"] = entry
        return tasks

    # -- labelled video data -----------------------------------------------------------------------------
    def action_dataset(self) -> tuple[LabelledDataset, str]:
        ac, ec = self.ec.action, self.ec
        if ac.dataset == "synthetic":
            root = export_ucf101_layout(self.index_csv, self.export_root / "ucf101", train_splits=[ec.train_split],
                                        test_splits=[ec.split])
            data = _through_links(read_ucf101(root, split_ids=ac.splits or None))
            self._keep_lists(root, "ucf101", ("classInd.txt", "trainlist01.txt", "testlist01.txt"))
            split = data.splits[0]
            return data, (f"{self.index_csv} exported to UCF101 layout: split '{ec.train_split}' "
                          f"({len(split.train)} clips) for training, '{ec.split}' ({len(split.test)} clips) for "
                          f"testing, {len(data.classes)} classes, no source video in both")
        reader = read_ucf101 if ac.dataset == "ucf101" else read_hmdb51
        data = reader(ac.root, ac.splits_dir or None, ac.splits or None)
        return data, f"{ac.dataset} at {ac.root} ({len(data.classes)} classes, {', '.join(s.name for s in data.splits)})"

    def _keep_lists(self, root: Path, name: str, files) -> None:
        dest = self.out_dir / "datasets" / name
        dest.mkdir(parents=True, exist_ok=True)
        for rel in files:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, target)

    def action_recognition(self, data: LabelledDataset, described: str) -> dict:
        ac = self.ec.action
        audio_visual = ac.modality == "audio_visual"
        paper = self.protocol.action
        settings = FineTuneSettings(modality=ac.modality, epochs=ac.epochs, batch_size=ac.batch_size,
                                    optimizer=ac.optimizer, lr=ac.lr, momentum=ac.momentum,
                                    weight_decay=ac.weight_decay, head_dim=ac.head_dim, seed=self.ec.seed,
                                    **({} if paper is None else {
                                        "head": paper.head, "dropout": paper.dropout, "iterations": paper.iterations,
                                        "lr_step": paper.lr_step, "lr_gamma": paper.lr_gamma, "model": "paper"}))
        jitter = self.protocol.colour_jitter
        reader = self.reader(True, audio_visual)
        per_split: dict[str, dict] = {}
        skipped: dict[str, str] = {}
        for split in data.splits:
            train_skip: dict[int, str] = {}
            train_items = split.train
            if ac.labelled_groups_per_class is not None:
                train_items = labelled_subset(split.train, ac.labelled_groups_per_class, self.ec.seed)
            epochs = ac.epochs if settings.iterations is None else steps_to_epochs(
                settings.iterations, ac.batch_size, len(train_items) * ac.clips_per_video)
            train_set = self.windows(train_items, random_windows(reader, train_items, ac.clips_per_video, epochs,
                                                                 self.ec.seed, train_skip), reader, True, data.classes,
                                     jitter=jitter)
            test_set, test_skip = self.centred_set(f"{split.name}/test", split.test, ac.test_clips, data.classes,
                                                   audio=audio_visual)
            per_split[split.name] = {kind: fine_tune(model, train_set, test_set, len(data.classes), settings,
                                                     device=self.device) for kind, model in self.models.items()}
            for items, skips in ((train_items, train_skip), (split.test, test_skip),
                                 (train_items, train_set.failed_items), (split.test, test_set.failed_items)):
                skipped.update({str(items[k].path): why for k, why in skips.items()})
        self.details["action_recognition"] = {"per_split": per_split, "skipped_files": skipped}
        vision_only = " (vision_only)" if self.method.hparams.get("vision_only") else ""
        labels = "" if ac.labelled_groups_per_class is None else (
            f"labels of {ac.labelled_groups_per_class} source video(s) per class only ({len(train_items)} of "
            f"{len(split.train)} training videos in {split.name}), ")
        two_fc = audio_visual or settings.head == "two_fc"
        length = (f"{ac.epochs} epochs" if settings.iterations is None else
                  f"{settings.iterations} iterations (lr x{settings.lr_gamma} every {settings.lr_step})")
        extras = "".join([f", dropout {settings.dropout}" if settings.dropout else "",
                          f", colour jitter {jitter}" if jitter else ""])
        model = f"{ac.modality}{vision_only} backbone"
        if paper is not None:  # the module the method fine-tunes, by name (co-attention: CoAttentionOutputs)
            model += f" ({type(self.method.downstream_video_model(ac.modality)).__name__})"
        entry = {"dataset": described,
                 "protocol": self.named(f"fine-tune {model} + "
                             f"{'FC ' + str(ac.head_dim) + ' -> FC classes' if two_fc else 'linear classifier'}{extras}, "
                             f"{length} x {ac.clips_per_video} random clip(s)/video (seed {self.ec.seed}), "
                             f"{labels}{ac.optimizer} lr {ac.lr} wd {ac.weight_decay} batch {ac.batch_size}; test: "
                             f"{ac.test_clips} uniformly spaced clips/video, softmax averaged; mean over "
                             f"{len(data.splits)} split(s) ({', '.join(per_split)})"),
                 "skipped": len(skipped)}
        for kind in self.models:
            entry[kind] = {m: float(np.mean([r[kind][m] for r in per_split.values()])) for m in ("clip@1", "video@1")}
        if len(per_split) == 1:  # with several splits video@1 is their mean: no per-video interval for that
            (results,) = per_split.values()
            videos = sorted(results["pretrained"]["video_correct"])
            entry["intervals"] = {"video@1": self.paired(
                {kind: np.array([float(r["video_correct"][k]) for k in videos]) for kind, r in results.items()},
                [split.test[k].group for k in videos])}
        for split in data.splits:  # details.json: each test video's correctness under its file name
            for r in per_split[split.name].values():
                r["video_correct"] = {str(split.test[k].path): v for k, v in r["video_correct"].items()}
        return entry

    # -- retrieval ----------------------------------------------------------------------------------------
    def retrieval_video(self, data: LabelledDataset, described: str) -> dict:
        rc = self.ec.retrieval
        split = data.splits[0]
        query_set, query_skip = self.centred_set(f"{split.name}/test", split.test, rc.clips_per_video, data.classes)
        gallery_set, gallery_skip = self.centred_set(f"{split.name}/train", split.train, rc.clips_per_video,
                                                     data.classes)
        result: dict[str, Any] = {}
        hits: dict[str, np.ndarray] = {}
        for kind in self.models:
            q, q_items = self.clip_features(kind, "video", query_set)
            g, g_items = self.clip_features(kind, "video", gallery_set)
            ranks = class_ranks(q, [split.test[k].label for k in q_items], g, [split.train[k].label for k in g_items],
                                metric="cosine")
            result[kind] = recall_and_median_rank(ranks, rc.ks)
            hits[kind] = (ranks <= 1).astype(float)
            if kind == "pretrained":
                labels = [split.test[k].label for k in q_items] + [split.train[k].label for k in g_items]
                self.features["video"] = (torch.cat([q, g]).numpy(), labels)
        skipped = {str(split.test[k].path) for k in {**query_skip, **query_set.failed_items}} | \
                  {str(split.train[k].path) for k in {**gallery_skip, **gallery_set.failed_items}}
        return {"dataset": f"{described}; {split.name} only",
                "protocol": self.named(
                    f"frozen video backbone, {rc.clips_per_video} uniformly spaced clips/video averaged; "
                    f"{len(split.test)} test videos query {len(split.train)} training videos by cosine distance; "
                    f"hit = same class; R@{rc.ks} and median rank of the first hit; R@1 interval: 95% "
                    f"bootstrap over test source videos"),
                **result, "intervals": {"R@1": self.paired(hits, [split.test[k].group for k in q_items])},
                "skipped": len(skipped)}

    # -- frozen-feature probes (avssl_core/eval/frozen_probe.py) ---------------------------------------------
    def frozen(self, data: LabelledDataset, described: str) -> dict[str, dict]:
        fc, ec = self.ec.frozen, self.ec
        settings = FrozenProbeSettings(clips_per_video=fc.clips_per_video,
                                       labelled_per_class=tuple(fc.labelled_per_class), knn_k=fc.knn_k,
                                       knn_temperature=fc.knn_temperature, c_grid=tuple(fc.c_grid),
                                       cv_folds=fc.cv_folds, fixed_c=fc.fixed_c, seed=ec.seed)
        split = data.splits[0]
        # The labelled videos of each label budget: whole source videos, the draw of eval/action.py.
        budgets = {k: {m.path for m in (split.train if k is None else labelled_subset(split.train, k, ec.seed))}
                   for k in fc.labelled_per_class}
        tasks = {}
        for modality in ("video", "audio"):
            video, audio = modality == "video", modality == "audio"
            train_set, train_skip = self.centred_set(f"{split.name}/train", split.train, fc.clips_per_video,
                                                     data.classes, video=video, audio=audio)
            test_set, test_skip = self.centred_set(f"{split.name}/test", split.test, fc.clips_per_video, data.classes,
                                                   video=video, audio=audio)
            correct: dict[str, dict[str, np.ndarray]] = {}
            details: dict[str, dict] = {}
            for kind in (*self.models, TRIVIAL):
                tx, t_rows = self.clip_features(kind, modality, train_set)
                qx, q_rows = self.clip_features(kind, modality, test_set)
                tx, qx = tx.numpy(), qx.numpy()
                if kind == TRIVIAL:
                    tx, qx = standardised(tx, qx)
                train_items = [split.train[k] for k in t_rows]
                masks = {k: np.array([m.path in paths for m in train_items], dtype=bool) for k, paths in budgets.items()}
                scores, details[kind] = probe(tx, [m.label for m in train_items], [m.group for m in train_items],
                                              qx, [split.test[k].label for k in q_rows], masks, settings)
                for metric, values in scores.items():
                    correct.setdefault(metric, {})[kind] = values
            groups = [split.test[k].group for k in q_rows]
            skipped = {str(split.test[k].path) for k in {**test_skip, **test_set.failed_items}} | \
                      {str(split.train[k].path) for k in {**train_skip, **train_set.failed_items}}
            self.details[f"frozen_{modality}"] = {"probes": details, "skipped_files": sorted(skipped)}
            tasks[f"frozen_{modality}"] = {
                "dataset": f"{described}; {split.name} only ({len(q_rows)} test clips of "
                           f"{len(set(groups))} source videos)",
                "protocol": frozen_protocol(settings, modality) + f"; intervals: 95% bootstrap over test source "
                            f"videos ({ec.bootstrap} replicates), win/loss only when the paired difference's "
                            f"interval excludes zero",
                **{kind: {metric: float(by_kind[kind].mean()) for metric, by_kind in correct.items()}
                   for kind in (*self.models, TRIVIAL)},
                "intervals": {metric: {**self.paired(by_kind, groups), TRIVIAL: bootstrap(
                    by_kind[TRIVIAL], groups, replicates=ec.bootstrap, seed=ec.seed).as_dict()}
                    for metric, by_kind in correct.items()},
                "skipped": len(skipped)}
        return tasks

    def retrieval_cross(self) -> dict:
        rc, ec = self.ec.retrieval, self.ec
        index = ClipIndex.from_csv(self.index_csv, splits=ec.split)
        items = [LabelledMedia(path=Path(v), label=str(lab), group=str(g), audio_path=Path(a))
                 for v, a, lab, g in zip(index.video_path, index.audio_path, index.label, index.video_id, strict=True)]
        classes = sorted({m.label for m in items})
        reader = ClipReader(self.method.pair_spec(), need_video=True, need_audio=True)
        skip: dict[int, str] = {}
        pairs = self.windows(items, centred_windows(reader, items, rc.clips_per_video, skip), reader, False, classes)
        result: dict[str, Any] = {}
        for kind, model in self.models.items():
            v, rows = extract_features(model.embed_video, pairs, batch_size=ec.batch_size, device=self.device)
            a, rows_a = extract_features(model.embed_audio, pairs, batch_size=ec.batch_size, device=self.device)
            assert np.array_equal(rows, rows_a)
            result[kind] = cross_modal_retrieval(v, a, [items[k].label for k in rows], ks=rc.ks,
                                                 metric=rc.cross_distance, groups=rows)
        skipped = {str(items[k].path) for k in {**skip, **pairs.failed_items}}
        return {"dataset": f"{self.index_csv} split '{ec.split}' ({len(items)} clips x {rc.clips_per_video} windows)",
                "protocol": self.named(
                    f"{rc.clips_per_video} uniformly spaced audio-visual windows per clip, each window one item; "
                    f"method's embed_video/embed_audio, {rc.cross_distance} distance; a2v/v2a: the correct "
                    f"item is the query's own pair; a2a/v2v: same class, the query's own clip excluded; R@{rc.ks}, "
                    f"median rank"),
                **result, "skipped": len(skipped)}

    # -- audio ----------------------------------------------------------------------------------------------
    def audio_probe(self) -> dict:
        au, ec = self.ec.audio, self.ec
        if au.dataset == "synthetic":
            root = export_esc50_layout(self.index_csv, self.export_root / "esc50", num_folds=au.num_folds, seed=ec.seed)
            data = _through_links(read_esc50(root, au.folds or None))
            self._keep_lists(root, "esc50", ("meta/esc50.csv",))
            described = (f"{self.index_csv} (all splits) exported to ESC-50 layout: {au.num_folds} folds by source "
                         f"video, {len(data.classes)} classes")
        else:
            data = (read_esc50 if au.dataset == "esc50" else read_dcase)(au.root, au.folds or None)
            described = f"{au.dataset} at {au.root} ({len(data.classes)} classes)"
        files = list(dict.fromkeys(m for split in data.splits for m in (*split.train, *split.test)))
        position = {m.path: k for k, m in enumerate(files)}
        reader = ClipReader(self.method.pair_spec(), need_video=False, need_audio=True)
        skip: dict[int, str] = {}
        seconds, layer = self.protocol.audio_subclip_seconds, self.protocol.audio_layer
        if seconds is None:  # quick: sub-clips of the method's own window
            windows, per = centred_windows(reader, files, au.clips_per_file, skip), 1
        else:
            windows, per = subclip_windows(reader, files, au.clips_per_file, seconds, skip)
        subclips = self.windows(files, windows, reader, False, data.classes)
        settings = ProbeSettings(classifier=au.classifier, c_grid=tuple(au.c_grid), cv_folds=au.cv_folds, seed=ec.seed)
        per_fold: dict[str, dict] = {}
        result: dict[str, Any] = {}
        for kind, model in self.models.items():
            backbone = model.downstream_audio_features(layer).eval()
            feats, rows = extract_features(lambda b, net=backbone: net(b["audio"]), subclips,
                                           batch_size=ec.batch_size, device=self.device)
            bad = set(subclips.failed_items)
            keep = np.array([k not in bad for k in rows], dtype=bool)
            x, rows = feats.numpy()[keep], rows[keep]
            if per > 1:  # a sub-clip's features: the mean of the windows tiling it (a file's all or none kept)
                x, rows = x.reshape(-1, per, x.shape[1]).mean(axis=1), rows[::per]
            labels = np.array([files[k].label for k in rows])
            for split in data.splits:
                train = np.isin(rows, [position[m.path] for m in split.train])
                test = np.isin(rows, [position[m.path] for m in split.test])
                cv_groups = np.array([files[k].group for k in rows[train]])
                per_fold.setdefault(split.name, {})[kind] = probe_split(
                    x[train], labels[train], cv_groups, x[test], labels[test], rows[test], settings)
            result[kind] = {"accuracy": float(np.mean([per_fold[s][kind]["accuracy"] for s in per_fold]))}
            if kind == "pretrained":
                file_x, file_rows = average_by_item(torch.from_numpy(x), rows)
                self.features["audio"] = (file_x.numpy(), [files[k].label for k in file_rows])
        skipped = {str(files[k].path): why for k, why in {**skip, **subclips.failed_items}.items()}
        self.details["audio_probe"] = {"per_fold": per_fold, "skipped_files": skipped}
        return {"dataset": described,
                "protocol": self.named(
                            f"frozen audio {'backbone' if layer == 'embedding' else 'features (' + layer + ')'}, "
                            f"{au.clips_per_file} equally spaced sub-clips/file"
                            + (f" of {seconds:g} s ({per} window(s) of the method's length each, features averaged)"
                               if seconds is not None else "") + ", scores averaged; "
                            f"standardised features, {au.classifier} with C from {au.c_grid} chosen by cross-validation "
                            f"on the training folds only; accuracy per held-out fold, mean over "
                            f"{len(data.splits)} fold(s)"),
                **result, "skipped": len(skipped)}

    # -- pictures and localization (avssl_core/eval/localization.py, embedding_plot.py) ---------------------------
    def localization(self) -> dict:
        from avssl_core.eval.localization import evaluate_localization

        lc, ec = self.ec.localization, self.ec
        models = dict(self.models)
        if lc.input_size is not None:
            try:
                models = {kind: model.resized(lc.input_size) for kind, model in models.items()}
            except ValueError as exc:
                raise ConfigError(f"evaluate.localization.input_size={lc.input_size}: {exc}") from exc
        # The scratch model is scored on the very same samples within the one call.
        entry = evaluate_localization(models["pretrained"], self.index_csv, ec.split, self.out_dir / "localization",
                                      max_clips=lc.max_clips, seed=ec.seed, scratch=models.get("scratch"),
                                      batch_size=ec.batch_size)
        if lc.input_size is not None:
            entry["protocol"] += (f"; maps computed on {lc.input_size} px centre crops (the method trained on "
                                  f"{self.method.hparams[self.method.CROP_HPARAM]} px)")
        return entry

    def tsne(self) -> dict[str, str]:
        from avssl_core.eval.embedding_plot import plot_embeddings

        pictures = {}
        for modality, (features, labels) in self.features.items():
            png = plot_embeddings(features, labels, self.out_dir / f"tsne_{modality}.png",
                                  f"{self.method.name}: pretrained {modality} features (t-SNE)")
            pictures[f"tsne_{modality}"] = str(png)
        return pictures


def _through_links(data: LabelledDataset) -> LabelledDataset:
    """The exported layout's files as the clip files they link to, so messages name files that outlive the
    temporary export."""
    def real(m: LabelledMedia) -> LabelledMedia:
        return dataclasses.replace(m, path=m.path.resolve(), audio_path=m.audio_path and m.audio_path.resolve())

    splits = tuple(dataclasses.replace(s, train=tuple(map(real, s.train)), test=tuple(map(real, s.test)))
                   for s in data.splits)
    return dataclasses.replace(data, splits=splits)


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
    """Evaluate ``method_name`` (default: pretrain.method); writes metrics/<method>.json and returns it."""
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
    tasks: dict[str, dict] = {}
    pictures: dict[str, str] = {}
    timings: dict[str, dict[str, float]] = {}

    def timed(key: str, fn, *args):
        t0, c0 = time.perf_counter(), time.process_time()
        value = fn(*args)
        # CPU seconds too: on a shared machine wall time says more about the neighbours than the task.
        timings[key] = {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2)}
        return value

    with tempfile.TemporaryDirectory(prefix="avssl-eval-") as tmp:
        suite = _Suite(cfg, method, Path(tmp), out_dir, protocol)
        if "pretext" in ec.tasks:
            tasks.update(timed("pretext", suite.pretext))
        if {"frozen", "action_recognition", "retrieval"} & set(ec.tasks):
            data, described = suite.action_dataset()
            if "frozen" in ec.tasks:
                tasks.update(timed("frozen", suite.frozen, data, described))
            if "action_recognition" in ec.tasks:
                tasks["action_recognition"] = timed("action_recognition", suite.action_recognition, data, described)
            if "retrieval" in ec.tasks:
                tasks["retrieval_video"] = timed("retrieval_video", suite.retrieval_video, data, described)
        if "retrieval" in ec.tasks and method.has_shared_space():
            tasks["retrieval_cross"] = timed("retrieval_cross", suite.retrieval_cross)
        if "audio_probe" in ec.tasks:
            tasks["audio_probe"] = timed("audio_probe", suite.audio_probe)
        if "localization" in ec.tasks:
            tasks["localization"] = timed("localization", suite.localization)
        if "tsne" in ec.tasks and suite.features:
            pictures.update(timed("tsne", suite.tsne))
    for task, entry in tasks.items():
        log.info("evaluate %s: %s", name, _summary_line(task, entry))
    metrics = {"method": name, "preset": method.preset, "protocol": protocol.name,
               "data": f"{Path(cfg.paths.clips_dir) / 'index.csv'} (evaluation split '{ec.split}', training split "
                       f"'{ec.train_split}')",
               "seconds": round(time.perf_counter() - started, 1), "tasks": tasks, "pictures": pictures}
    write_json_atomic(out_dir / "details.json", {**suite.details, "seconds_per_task": timings})
    write_json_atomic(Path(cfg.paths.metrics_dir) / f"{name}.json", metrics)
    return metrics

