"""pretext: held-out pretext accuracy on fixed, seeded pairs of the evaluation split, one entry per
negative mix (evaluate.pretext.protocols); a contrastive method is scored once, as instance
discrimination."""

from __future__ import annotations

from typing import Any

from avssl_core.eval.pretext import evaluate_pretext
from avssl_core.eval.tasks.base import EvaluationTask
from avssl_core.eval.tasks.context import EvaluationContext
from avssl_core.methods.protocols import PROTOCOLS, VAL_SEED_OFFSET, fixed_mix
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.dataset import FailedSample, PairDataset
from avssl_core.pretext.sampling import PairSampler

INSTANCE = "instance"  # the contrastive methods' one protocol
_MIX_WORDS = {"easy": "negatives: audio from another video",
              "easy75_hard25": "negatives: 75% audio from another video, 25% same video >= 0.5 s away (AVTS)",
              "shifted": "negatives: same video, audio shifted 2.0-5.8 s (co-attention)"}


class Pretext(EvaluationTask):
    name = selected_by = "pretext"
    entries = tuple(f"pretext_{p}" for p in (*PROTOCOLS, INSTANCE))

    def protocol(self, ctx: EvaluationContext, *, mix: str, chance: float, fallbacks: int) -> str:
        ec = ctx.ec
        if mix == INSTANCE:
            words = (f"{ec.pretext.pairs} fixed in-sync pairs (seed {ec.seed}+{VAL_SEED_OFFSET}) in batches of "
                     f"{ec.batch_size}; instance discrimination: a clip's own audio must be the nearest of the "
                     f"batch's audio (clips of other videos, and its own); measured chance {chance:.3f}")
        else:
            words = (f"{ec.pretext.pairs} fixed pairs (seed {ec.seed}+{VAL_SEED_OFFSET}), 50% positives, "
                     f"{_MIX_WORDS[mix]}; windows of the method's PairSpec; chance 0.5")
        return words + (f"; {fallbacks} negative(s) fell back to other-video audio" if fallbacks else "")

    def run(self, ctx: EvaluationContext) -> dict[str, Any]:
        ec = ctx.ec
        index = ClipIndex.from_csv(ctx.index_csv, splits=ec.split)
        # A contrastive method's held-out pairs are all positives (it makes its negatives from the batch):
        # the negative mixes would all give the same pairs, so it is scored once, as instance
        # discrimination, against the chance level it measures (1 / candidates per query).
        contrastive = ctx.method.pair_spec().positive_fraction >= 1.0
        protocols = [INSTANCE] if contrastive else list(ec.pretext.protocols)
        tasks = {}
        for protocol in protocols:
            mix = PROTOCOLS["easy" if contrastive else protocol]
            sampler = PairSampler(index, fixed_mix(ctx.method.pair_spec(), mix), ec.seed + VAL_SEED_OFFSET,
                                  samples_per_epoch=ec.pretext.pairs)
            dataset = PairDataset(sampler, preprocess=ctx.preprocess[False])
            pairs = [dataset[i] for i in range(len(dataset))]  # decoded once, scored by every model
            failed = sorted({p.path for p in pairs if isinstance(p, FailedSample)})
            scores = {kind: evaluate_pretext(model, pairs, batch_size=ec.batch_size, device=ctx.device)
                      for kind, model in ctx.models.items()}
            fallbacks = int(sum(sampler.fallback_counts.values()))
            chance = next(iter(scores.values()))["chance"]
            entry = {"dataset": f"{ctx.index_csv} split '{ec.split}' ({len(index)} clips)",
                     "protocol": self.protocol(ctx, mix=protocol, chance=chance, fallbacks=fallbacks),
                     **{kind: {"accuracy": r["accuracy"]} for kind, r in scores.items()},
                     "skipped": len(failed)}
            ctx.details[f"pretext_{protocol}"] = {"by_kind": {k: r["accuracy_by_kind"] for k, r in scores.items()},
                                                  "failed": failed, "fallbacks": fallbacks}
            tasks[f"pretext_{protocol}"] = entry
        return tasks
