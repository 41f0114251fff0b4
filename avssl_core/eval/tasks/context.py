"""What the evaluation tasks of one run share: the models, the settings, the evaluation windows and their
features (decoded and computed once, reused by every task that asks for the same ones), the exported
labelled data set, and what the run writes besides the metrics (details.json, the t-SNE features).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avssl_core.config import Config
from avssl_core.eval.clips import (
    CacheBudget,
    ClipReader,
    WindowSet,
    average_by_item,
    centred_windows,
    extract_features,
)
from avssl_core.eval.export import export_ucf101_layout
from avssl_core.eval.frozen_probe import STATS_KEYS, TRIVIAL, InputStatistics
from avssl_core.eval.intervals import bootstrap, compare
from avssl_core.eval.jitter import ColourJittered
from avssl_core.eval.layouts import LabelledDataset, LabelledMedia, read_hmdb51, read_ucf101
from avssl_core.eval.paper_protocols import Resolved
from avssl_core.methods.base import PretrainMethod


class EvaluationContext:
    """Shared state of one evaluation: models, caches, skipped files, details."""

    def __init__(self, cfg: Config, method: PretrainMethod, models: dict[str, PretrainMethod],
                 device: torch.device, export_root: Path, out_dir: Path, protocol: Resolved) -> None:
        """``models``: "pretrained" (and "scratch" when configured), already on ``device`` in eval mode;
        ``export_root``: a temporary folder for the exported layouts; ``out_dir``: <evaluate.out_dir>/<method>."""
        self.cfg, self.ec, self.protocol = cfg, cfg.evaluate, protocol
        self.device, self.models, self.method = device, models, method
        self.index_csv = Path(cfg.paths.clips_dir) / "index.csv"
        self.export_root, self.out_dir = export_root, out_dir
        self.budget = CacheBudget(self.ec.cache_mb)
        self.preprocess = {flag: method.preprocess(train=flag) for flag in (True, False)}
        self.details: dict[str, Any] = {}  # details.json, by task
        # details.json's "per_item": {entry: {metric: {"item", "group", <kind>: scores}}}, filled by paired()
        self.per_item: dict[str, dict[str, dict[str, list]]] = {}
        self.features: dict[str, tuple[np.ndarray, list[str]]] = {}  # for the t-SNE pictures
        self._readers: dict[tuple[bool, bool], ClipReader] = {}
        self._sets: dict[tuple, tuple[WindowSet, dict[int, str]]] = {}
        self._clip_features: dict[tuple, tuple[torch.Tensor, np.ndarray]] = {}
        self._action_data: tuple[LabelledDataset, str] | None = None

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
            stats = InputStatistics(reader.spec.audio_sample_rate or 16000, video=video, audio=audio)
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

    def paired(self, entry: str, metric: str, correct: dict[str, np.ndarray], groups, items) -> dict:
        """Intervals over test source videos for one metric's per-item scores of each model: with scratch,
        the paired comparison and its verdict; without, the pretrained interval alone. The scores are also
        kept, per test item (``items``: their names, ``groups``: their source videos), in ``per_item``
        (details.json), so that whatever has an interval here can get one elsewhere too (an ablation
        objective's, avssl_core/ablate/separation.py)."""
        self.per_item.setdefault(entry, {})[metric] = {
            "item": [str(i) for i in items], "group": [str(g) for g in groups],
            **{kind: [float(v) for v in values] for kind, values in correct.items()}}
        if "scratch" in correct:
            return compare(correct["pretrained"], correct["scratch"], groups, replicates=self.ec.bootstrap,
                           seed=self.ec.seed)
        return {"pretrained": bootstrap(correct["pretrained"], groups, replicates=self.ec.bootstrap,
                                        seed=self.ec.seed).as_dict()}

    # -- labelled video data (frozen probes, action recognition, video retrieval) ----------------------------
    def action_data(self) -> tuple[LabelledDataset, str]:
        """The labelled video data set (evaluate.action.dataset) and its description, read once. The
        synthetic clips are exported to the UCF101 layout and read back by the same reader as the real
        benchmark."""
        if self._action_data is None:
            self._action_data = self._read_action_data()
        return self._action_data

    def _read_action_data(self) -> tuple[LabelledDataset, str]:
        ac, ec = self.ec.action, self.ec
        if ac.dataset == "synthetic":
            root = export_ucf101_layout(self.index_csv, self.export_root / "ucf101", train_splits=[ec.train_split],
                                        test_splits=[ec.split])
            data = through_links(read_ucf101(root, split_ids=ac.splits or None))
            self.keep_lists(root, "ucf101", ("classInd.txt", "trainlist01.txt", "testlist01.txt"))
            split = data.splits[0]
            return data, (f"{self.index_csv} exported to UCF101 layout: split '{ec.train_split}' "
                          f"({len(split.train)} clips) for training, '{ec.split}' ({len(split.test)} clips) for "
                          f"testing, {len(data.classes)} classes, no source video in both")
        reader = read_ucf101 if ac.dataset == "ucf101" else read_hmdb51
        data = reader(ac.root, ac.splits_dir or None, ac.splits or None)
        return data, f"{ac.dataset} at {ac.root} ({len(data.classes)} classes, {', '.join(s.name for s in data.splits)})"

    def keep_lists(self, root: Path, name: str, files) -> None:
        """Copy an exported layout's split lists into <out_dir>/datasets/<name> (the export is temporary)."""
        dest = self.out_dir / "datasets" / name
        dest.mkdir(parents=True, exist_ok=True)
        for rel in files:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, target)


def through_links(data: LabelledDataset) -> LabelledDataset:
    """The exported layout's files as the clip files they link to, so messages name files that outlive the
    temporary export."""
    def real(m: LabelledMedia) -> LabelledMedia:
        return dataclasses.replace(m, path=m.path.resolve(), audio_path=m.audio_path and m.audio_path.resolve())

    splits = tuple(dataclasses.replace(s, train=tuple(map(real, s.train)), test=tuple(map(real, s.test)))
                   for s in data.splits)
    return dataclasses.replace(data, splits=splits)
