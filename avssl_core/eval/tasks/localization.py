"""localization: sound-source localization maps scored against the synthetic world's object boxes
(avssl_core/eval/localization.py), the scratch model on the very same samples."""

from __future__ import annotations

from typing import Any

from avssl_core.errors import ConfigError
from avssl_core.eval.tasks.base import EvaluationTask
from avssl_core.eval.tasks.context import EvaluationContext


class Localization(EvaluationTask):
    name = selected_by = "localization"
    entries = ("localization",)

    def protocol(self, ctx: EvaluationContext, *, scoring: str) -> str:
        """``scoring``: eval/localization.py's statement of the moments and the score it used."""
        size = ctx.ec.localization.input_size
        if size is None:
            return scoring
        return (f"{scoring}; maps computed on {size} px centre crops (the method trained on "
                f"{ctx.method.hparams[ctx.method.CROP_HPARAM]} px)")

    def run(self, ctx: EvaluationContext) -> dict[str, Any]:
        from avssl_core.eval.localization import evaluate_localization

        lc, ec = ctx.ec.localization, ctx.ec
        models = dict(ctx.models)
        if lc.input_size is not None:
            try:
                models = {kind: model.resized(lc.input_size) for kind, model in models.items()}
            except ValueError as exc:
                raise ConfigError(f"evaluate.localization.input_size={lc.input_size}: {exc}") from exc
        # The scratch model is scored on the very same samples within the one call.
        entry = evaluate_localization(models["pretrained"], ctx.index_csv, ec.split, ctx.out_dir / "localization",
                                      max_clips=lc.max_clips, seed=ec.seed, scratch=models.get("scratch"),
                                      batch_size=ec.batch_size)
        entry["protocol"] = self.protocol(ctx, scoring=entry["protocol"])
        return {"localization": entry}
