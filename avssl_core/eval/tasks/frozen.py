"""frozen: linear and k-NN probes of the frozen video and audio backbones (avssl_core/eval/frozen_probe.py)
on the labelled video data, beside a trivial baseline on the windows' input statistics, at several label
budgets; intervals over test source videos."""

from __future__ import annotations

from typing import Any

import numpy as np

from avssl_core.eval.action import labelled_subset
from avssl_core.eval.frozen_probe import TRIVIAL, FrozenProbeSettings, probe, standardised
from avssl_core.eval.frozen_probe import protocol as probe_protocol
from avssl_core.eval.intervals import bootstrap
from avssl_core.eval.tasks.base import EvaluationTask
from avssl_core.eval.tasks.context import EvaluationContext

MODALITIES = ("video", "audio")


class Frozen(EvaluationTask):
    name = selected_by = "frozen"
    entries = tuple(f"frozen_{m}" for m in MODALITIES)

    def protocol(self, ctx: EvaluationContext, *, settings: FrozenProbeSettings, modality: str) -> str:
        return probe_protocol(settings, modality) + (
            f"; intervals: 95% bootstrap over test source videos ({ctx.ec.bootstrap} replicates), win/loss only "
            f"when the paired difference's interval excludes zero")

    def run(self, ctx: EvaluationContext) -> dict[str, Any]:
        fc, ec = ctx.ec.frozen, ctx.ec
        data, described = ctx.action_data()
        settings = FrozenProbeSettings(clips_per_video=fc.clips_per_video,
                                       labelled_per_class=tuple(fc.labelled_per_class), knn_k=fc.knn_k,
                                       knn_temperature=fc.knn_temperature, c_grid=tuple(fc.c_grid),
                                       cv_folds=fc.cv_folds, fixed_c=fc.fixed_c, seed=ec.seed)
        split = data.splits[0]
        # The labelled videos of each label budget: whole source videos, the draw of eval/action.py.
        budgets = {k: {m.path for m in (split.train if k is None else labelled_subset(split.train, k, ec.seed))}
                   for k in fc.labelled_per_class}
        tasks = {}
        for modality in MODALITIES:
            video, audio = modality == "video", modality == "audio"
            train_set, train_skip = ctx.centred_set(f"{split.name}/train", split.train, fc.clips_per_video,
                                                    data.classes, video=video, audio=audio)
            test_set, test_skip = ctx.centred_set(f"{split.name}/test", split.test, fc.clips_per_video, data.classes,
                                                  video=video, audio=audio)
            correct: dict[str, dict[str, np.ndarray]] = {}
            details: dict[str, dict] = {}
            for kind in (*ctx.models, TRIVIAL):
                tx, t_rows = ctx.clip_features(kind, modality, train_set)
                qx, q_rows = ctx.clip_features(kind, modality, test_set)
                tx, qx = tx.numpy(), qx.numpy()
                if kind == TRIVIAL:
                    tx, qx = standardised(tx, qx)
                train_items = [split.train[k] for k in t_rows]
                masks = {k: np.array([m.path in paths for m in train_items], dtype=bool) for k, paths in budgets.items()}
                scores, details[kind] = probe(tx, [m.label for m in train_items], [m.group for m in train_items],
                                              qx, [split.test[k].label for k in q_rows], masks, settings)
                for metric, values in scores.items():
                    correct.setdefault(metric, {})[kind] = values
                if kind == "pretrained":
                    # The t-SNE picture of this modality, test then training clips; video retrieval and the
                    # audio probe, which run later, replace it with theirs when they are selected.
                    ctx.features[modality] = (np.concatenate([qx, tx]),
                                              [split.test[k].label for k in q_rows] + [m.label for m in train_items])
            groups, test_files = [split.test[k].group for k in q_rows], [split.test[k].path for k in q_rows]
            skipped = {str(split.test[k].path) for k in {**test_skip, **test_set.failed_items}} | \
                      {str(split.train[k].path) for k in {**train_skip, **train_set.failed_items}}
            ctx.details[f"frozen_{modality}"] = {"probes": details, "skipped_files": sorted(skipped)}
            tasks[f"frozen_{modality}"] = {
                "dataset": f"{described}; {split.name} only ({len(q_rows)} test clips of "
                           f"{len(set(groups))} source videos)",
                "protocol": self.protocol(ctx, settings=settings, modality=modality),
                **{kind: {metric: float(by_kind[kind].mean()) for metric, by_kind in correct.items()}
                   for kind in (*ctx.models, TRIVIAL)},
                "intervals": {metric: {
                    **ctx.paired(f"frozen_{modality}", metric, by_kind, groups, test_files),
                    TRIVIAL: bootstrap(by_kind[TRIVIAL], groups, replicates=ec.bootstrap, seed=ec.seed).as_dict()}
                    for metric, by_kind in correct.items()},
                "skipped": len(skipped)}
        return tasks
