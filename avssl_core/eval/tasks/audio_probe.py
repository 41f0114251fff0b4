"""audio_probe: a classifier on each model's frozen audio features (avssl_core/eval/audio_probe.py), C
chosen on the training folds, accuracy per held-out fold of ESC-50 / DCASE or the synthetic clips exported
to the ESC-50 layout."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from avssl_core.eval.audio_probe import ProbeSettings, probe_split
from avssl_core.eval.clips import (
    ClipReader,
    average_by_item,
    centred_windows,
    extract_features,
    subclip_windows,
)
from avssl_core.eval.export import export_esc50_layout
from avssl_core.eval.layouts import read_dcase, read_esc50
from avssl_core.eval.tasks.base import EvaluationTask
from avssl_core.eval.tasks.context import EvaluationContext, through_links


class AudioProbe(EvaluationTask):
    name = selected_by = "audio_probe"
    entries = ("audio_probe",)

    def protocol(self, ctx: EvaluationContext, *, windows_per_subclip: int, folds: int) -> str:
        au = ctx.ec.audio
        seconds, layer = ctx.protocol.audio_subclip_seconds, ctx.protocol.audio_layer
        return ctx.named(f"frozen audio {'backbone' if layer == 'embedding' else 'features (' + layer + ')'}, "
                         f"{au.clips_per_file} equally spaced sub-clips/file"
                         + (f" of {seconds:g} s ({windows_per_subclip} window(s) of the method's length each, "
                            f"features averaged)" if seconds is not None else "") + ", scores averaged; "
                         f"standardised features, {au.classifier} with C from {au.c_grid} chosen by cross-validation "
                         f"on the training folds only; accuracy per held-out fold, mean over {folds} fold(s)")

    def run(self, ctx: EvaluationContext) -> dict[str, Any]:
        au, ec = ctx.ec.audio, ctx.ec
        if au.dataset == "synthetic":
            root = export_esc50_layout(ctx.index_csv, ctx.export_root / "esc50", num_folds=au.num_folds, seed=ec.seed)
            data = through_links(read_esc50(root, au.folds or None))
            ctx.keep_lists(root, "esc50", ("meta/esc50.csv",))
            described = (f"{ctx.index_csv} (all splits) exported to ESC-50 layout: {au.num_folds} folds by source "
                         f"video, {len(data.classes)} classes")
        else:
            data = (read_esc50 if au.dataset == "esc50" else read_dcase)(au.root, au.folds or None)
            described = f"{au.dataset} at {au.root} ({len(data.classes)} classes)"
        files = list(dict.fromkeys(m for split in data.splits for m in (*split.train, *split.test)))
        position = {m.path: k for k, m in enumerate(files)}
        reader = ClipReader(ctx.method.pair_spec(), need_video=False, need_audio=True)
        skip: dict[int, str] = {}
        seconds, layer = ctx.protocol.audio_subclip_seconds, ctx.protocol.audio_layer
        if seconds is None:  # quick: sub-clips of the method's own window
            windows, per = centred_windows(reader, files, au.clips_per_file, skip), 1
        else:
            windows, per = subclip_windows(reader, files, au.clips_per_file, seconds, skip)
        subclips = ctx.windows(files, windows, reader, False, data.classes)
        settings = ProbeSettings(classifier=au.classifier, c_grid=tuple(au.c_grid), cv_folds=au.cv_folds, seed=ec.seed)
        per_fold: dict[str, dict] = {}
        result: dict[str, Any] = {}
        for kind, model in ctx.models.items():
            backbone = model.downstream_audio_features(layer).eval()
            feats, rows = extract_features(lambda b, net=backbone: net(b["audio"]), subclips,
                                           batch_size=ec.batch_size, device=ctx.device)
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
                ctx.features["audio"] = (file_x.numpy(), [files[k].label for k in file_rows])
        skipped = {str(files[k].path): why for k, why in {**skip, **subclips.failed_items}.items()}
        ctx.details["audio_probe"] = {"per_fold": per_fold, "skipped_files": skipped}
        return {"audio_probe": {"dataset": described,
                                "protocol": self.protocol(ctx, windows_per_subclip=per, folds=len(data.splits)),
                                **result, "skipped": len(skipped)}}
