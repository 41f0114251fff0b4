"""retrieval: video-to-video retrieval by the frozen video backbone across the labelled data's splits, and,
for a method with a shared audio-visual space, cross-modal (and within-modality) retrieval of the
evaluation split's windows (avssl_core/eval/retrieval.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from avssl_core.eval.clips import ClipReader, centred_windows, extract_features
from avssl_core.eval.layouts import LabelledMedia
from avssl_core.eval.retrieval import class_ranks, cross_modal_retrieval, recall_and_median_rank
from avssl_core.eval.tasks.base import EvaluationTask
from avssl_core.eval.tasks.context import EvaluationContext
from avssl_core.pretext.clip_index import ClipIndex


class VideoRetrieval(EvaluationTask):
    name, selected_by = "retrieval_video", "retrieval"
    entries = ("retrieval_video",)

    def protocol(self, ctx: EvaluationContext, *, queries: int, gallery: int) -> str:
        rc = ctx.ec.retrieval
        return ctx.named(f"frozen video backbone, {rc.clips_per_video} uniformly spaced clips/video averaged; "
                         f"{queries} test videos query {gallery} training videos by cosine distance; "
                         f"hit = same class; R@{rc.ks} and median rank of the first hit; R@1 interval: 95% "
                         f"bootstrap over test source videos")

    def run(self, ctx: EvaluationContext) -> dict[str, Any]:
        rc = ctx.ec.retrieval
        data, described = ctx.action_data()
        split = data.splits[0]
        query_set, query_skip = ctx.centred_set(f"{split.name}/test", split.test, rc.clips_per_video, data.classes)
        gallery_set, gallery_skip = ctx.centred_set(f"{split.name}/train", split.train, rc.clips_per_video,
                                                    data.classes)
        result: dict[str, Any] = {}
        hits: dict[str, np.ndarray] = {}
        for kind in ctx.models:
            q, q_items = ctx.clip_features(kind, "video", query_set)
            g, g_items = ctx.clip_features(kind, "video", gallery_set)
            ranks = class_ranks(q, [split.test[k].label for k in q_items], g, [split.train[k].label for k in g_items],
                                metric="cosine")
            result[kind] = recall_and_median_rank(ranks, rc.ks)
            hits[kind] = (ranks <= 1).astype(float)
            if kind == "pretrained":
                labels = [split.test[k].label for k in q_items] + [split.train[k].label for k in g_items]
                ctx.features["video"] = (torch.cat([q, g]).numpy(), labels)
        skipped = {str(split.test[k].path) for k in {**query_skip, **query_set.failed_items}} | \
                  {str(split.train[k].path) for k in {**gallery_skip, **gallery_set.failed_items}}
        return {"retrieval_video": {
            "dataset": f"{described}; {split.name} only",
            "protocol": self.protocol(ctx, queries=len(split.test), gallery=len(split.train)),
            **result, "intervals": {"R@1": ctx.paired("retrieval_video", "R@1", hits, [split.test[k].group for k in q_items],
                                                      [split.test[k].path for k in q_items])},
            "skipped": len(skipped)}}


class CrossModalRetrieval(EvaluationTask):
    name, selected_by = "retrieval_cross", "retrieval"
    entries = ("retrieval_cross",)

    def wanted(self, ctx: EvaluationContext) -> bool:
        return ctx.method.has_shared_space()

    def protocol(self, ctx: EvaluationContext) -> str:
        rc = ctx.ec.retrieval
        return ctx.named(
            f"{rc.clips_per_video} uniformly spaced audio-visual windows per clip, each window one item; "
            f"method's embed_video/embed_audio, {rc.cross_distance} distance; a2v/v2a: the correct "
            f"item is the query's own pair; a2a/v2v: same class, the query's own clip excluded; R@{rc.ks}, "
            f"median rank")

    def run(self, ctx: EvaluationContext) -> dict[str, Any]:
        rc, ec = ctx.ec.retrieval, ctx.ec
        index = ClipIndex.from_csv(ctx.index_csv, splits=ec.split)
        items = [LabelledMedia(path=Path(v), label=str(lab), group=str(g), audio_path=Path(a))
                 for v, a, lab, g in zip(index.video_path, index.audio_path, index.label, index.video_id, strict=True)]
        classes = sorted({m.label for m in items})
        reader = ClipReader(ctx.method.pair_spec(), need_video=True, need_audio=True)
        skip: dict[int, str] = {}
        pairs = ctx.windows(items, centred_windows(reader, items, rc.clips_per_video, skip), reader, False, classes)
        result: dict[str, Any] = {}
        for kind, model in ctx.models.items():
            v, rows = extract_features(model.embed_video, pairs, batch_size=ec.batch_size, device=ctx.device)
            a, rows_a = extract_features(model.embed_audio, pairs, batch_size=ec.batch_size, device=ctx.device)
            assert np.array_equal(rows, rows_a)
            result[kind] = cross_modal_retrieval(v, a, [items[k].label for k in rows], ks=rc.ks,
                                                 metric=rc.cross_distance, groups=rows)
        skipped = {str(items[k].path) for k in {**skip, **pairs.failed_items}}
        return {"retrieval_cross": {
            "dataset": f"{ctx.index_csv} split '{ec.split}' ({len(items)} clips x {rc.clips_per_video} windows)",
            "protocol": self.protocol(ctx), **result, "skipped": len(skipped)}}
