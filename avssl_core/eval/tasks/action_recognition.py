"""action_recognition: fine-tune each model's video (or audio-visual) backbone with a classifier head on
the labelled video data (avssl_core/eval/action.py), test on uniformly spaced clips per video."""

from __future__ import annotations

from typing import Any

import numpy as np

from avssl_core.eval.action import FineTuneSettings, fine_tune, labelled_subset
from avssl_core.eval.clips import random_windows
from avssl_core.eval.layouts import Split
from avssl_core.eval.paper_protocols import steps_to_epochs
from avssl_core.eval.tasks.base import EvaluationTask
from avssl_core.eval.tasks.context import EvaluationContext


class ActionRecognition(EvaluationTask):
    name = selected_by = "action_recognition"
    entries = ("action_recognition",)

    def protocol(self, ctx: EvaluationContext, *, settings: FineTuneSettings, split: Split, train_videos: int,
                 num_splits: int, split_names: list[str]) -> str:
        """``split``: the last split run, ``train_videos`` its labelled training videos."""
        ac = ctx.ec.action
        vision_only = " (vision_only)" if ctx.method.hparams.get("vision_only") else ""
        labels = "" if ac.labelled_groups_per_class is None else (
            f"labels of {ac.labelled_groups_per_class} source video(s) per class only ({train_videos} of "
            f"{len(split.train)} training videos in {split.name}), ")
        two_fc = ac.modality == "audio_visual" or settings.head == "two_fc"
        length = (f"{ac.epochs} epochs" if settings.iterations is None else
                  f"{settings.iterations} iterations (lr x{settings.lr_gamma} every {settings.lr_step})")
        jitter = ctx.protocol.colour_jitter
        extras = "".join([f", dropout {settings.dropout}" if settings.dropout else "",
                          f", colour jitter {jitter}" if jitter else ""])
        model = f"{ac.modality}{vision_only} backbone"
        if ctx.protocol.action is not None:  # the module the method fine-tunes, by name (CoAttentionOutputs)
            model += f" ({type(ctx.method.downstream_video_model(ac.modality)).__name__})"
        return ctx.named(f"fine-tune {model} + "
                         f"{'FC ' + str(ac.head_dim) + ' -> FC classes' if two_fc else 'linear classifier'}{extras}, "
                         f"{length} x {ac.clips_per_video} random clip(s)/video (seed {ctx.ec.seed}), "
                         f"{labels}{ac.optimizer} lr {ac.lr} wd {ac.weight_decay} batch {ac.batch_size}; test: "
                         f"{ac.test_clips} uniformly spaced clips/video, softmax averaged; mean over "
                         f"{num_splits} split(s) ({', '.join(split_names)})")

    def run(self, ctx: EvaluationContext) -> dict[str, Any]:
        ac = ctx.ec.action
        data, described = ctx.action_data()
        audio_visual = ac.modality == "audio_visual"
        paper = ctx.protocol.action
        settings = FineTuneSettings(modality=ac.modality, epochs=ac.epochs, batch_size=ac.batch_size,
                                    optimizer=ac.optimizer, lr=ac.lr, momentum=ac.momentum,
                                    weight_decay=ac.weight_decay, head_dim=ac.head_dim, seed=ctx.ec.seed,
                                    **({} if paper is None else {
                                        "head": paper.head, "dropout": paper.dropout, "iterations": paper.iterations,
                                        "lr_step": paper.lr_step, "lr_gamma": paper.lr_gamma, "model": "paper"}))
        reader = ctx.reader(True, audio_visual)
        per_split: dict[str, dict] = {}
        skipped: dict[str, str] = {}
        for split in data.splits:
            train_skip: dict[int, str] = {}
            train_items = split.train
            if ac.labelled_groups_per_class is not None:
                train_items = labelled_subset(split.train, ac.labelled_groups_per_class, ctx.ec.seed)
            epochs = ac.epochs if settings.iterations is None else steps_to_epochs(
                settings.iterations, ac.batch_size, len(train_items) * ac.clips_per_video)
            train_set = ctx.windows(train_items, random_windows(reader, train_items, ac.clips_per_video, epochs,
                                                                ctx.ec.seed, train_skip), reader, True, data.classes,
                                    jitter=ctx.protocol.colour_jitter)
            test_set, test_skip = ctx.centred_set(f"{split.name}/test", split.test, ac.test_clips, data.classes,
                                                  audio=audio_visual)
            per_split[split.name] = {kind: fine_tune(model, train_set, test_set, len(data.classes), settings,
                                                     device=ctx.device) for kind, model in ctx.models.items()}
            for items, skips in ((train_items, train_skip), (split.test, test_skip),
                                 (train_items, train_set.failed_items), (split.test, test_set.failed_items)):
                skipped.update({str(items[k].path): why for k, why in skips.items()})
        ctx.details["action_recognition"] = {"per_split": per_split, "skipped_files": skipped}
        entry = {"dataset": described,
                 "protocol": self.protocol(ctx, settings=settings, split=split, train_videos=len(train_items),
                                           num_splits=len(data.splits), split_names=list(per_split)),
                 "skipped": len(skipped)}
        for kind in ctx.models:
            entry[kind] = {m: float(np.mean([r[kind][m] for r in per_split.values()])) for m in ("clip@1", "video@1")}
        if len(per_split) == 1:  # with several splits video@1 is their mean: no per-video interval for that
            (results,) = per_split.values()
            videos = sorted(results["pretrained"]["video_correct"])
            entry["intervals"] = {"video@1": ctx.paired(
                "action_recognition", "video@1",
                {kind: np.array([float(r["video_correct"][k]) for k in videos]) for kind, r in results.items()},
                [split.test[k].group for k in videos], [split.test[k].path for k in videos])}
        for split in data.splits:  # details.json: each test video's correctness under its file name
            for r in per_split[split.name].values():
                r["video_correct"] = {str(split.test[k].path): v for k, v in r["video_correct"].items()}
        return {"action_recognition": entry}
