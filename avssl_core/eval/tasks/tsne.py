"""tsne: t-SNE pictures of the pretrained model's features that earlier tasks kept (video: retrieval's,
audio: the audio probe's; where those did not run, the frozen probes'), coloured by class
(avssl_core/eval/embedding_plot.py)."""

from __future__ import annotations

from typing import Any

from avssl_core.eval.tasks.base import EvaluationTask
from avssl_core.eval.tasks.context import EvaluationContext


class Tsne(EvaluationTask):
    name = selected_by = "tsne"
    entries = ()
    pictures = True

    def wanted(self, ctx: EvaluationContext) -> bool:
        return bool(ctx.features)  # runs after the tasks that keep features; none of them ran: no picture

    def protocol(self, ctx: EvaluationContext, *, modality: str) -> str:
        """A picture's title: what it shows."""
        return f"{ctx.method.name}: pretrained {modality} features (t-SNE)"

    def run(self, ctx: EvaluationContext) -> dict[str, Any]:
        from avssl_core.eval.embedding_plot import plot_embeddings

        pictures = {}
        for modality, (features, labels) in ctx.features.items():
            png = plot_embeddings(features, labels, ctx.out_dir / f"tsne_{modality}.png",
                                  self.protocol(ctx, modality=modality))
            pictures[f"tsne_{modality}"] = str(png)
        return pictures
