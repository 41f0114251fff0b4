"""Pretext correctness counted per pair kind and overall, with the chance level a contrastive method reports
for itself: the trainer's validation pass (summed over ranks) and avssl_core/eval/pretext.py's held-out
measurement count with it."""

from __future__ import annotations

from typing import Any

import torch

from avssl_core.methods.base import StepOutput
from avssl_core.pretext.spec import PairKind

KINDS = list(PairKind)


class PretextTally:
    """Correct/total per pair kind and overall, as a flat list of counts so ranks can sum them."""

    # Layout: (correct, total) per kind, then (chance sum, samples with a chance), then (correct, total).
    def __init__(self) -> None:
        self.counts = [0.0] * (2 * len(KINDS) + 4)
        self.failed = 0

    def add(self, out: StepOutput) -> bool:
        """Add one batch; False when the method reports no per-sample correctness."""
        if out.correct is None:
            return False
        correct = out.correct.detach().to("cpu", torch.float64).reshape(-1)
        self.counts[-2] += float(correct.sum())
        self.counts[-1] += correct.numel()
        if "chance" in out.metrics:
            self.counts[-4] += float(out.metrics["chance"]) * correct.numel()
            self.counts[-3] += correct.numel()
        if out.kinds is not None:
            kinds = out.kinds.detach().cpu().reshape(-1)
            for k, kind in enumerate(KINDS):
                mask = kinds == int(kind)
                self.counts[2 * k] += float(correct[mask].sum())
                self.counts[2 * k + 1] += float(mask.sum())
        return True

    @staticmethod
    def result(counts: list[float], failed: int) -> dict[str, Any]:
        by_kind = {kind.name.lower(): counts[2 * k] / counts[2 * k + 1]
                   for k, kind in enumerate(KINDS) if counts[2 * k + 1] > 0}
        return {"accuracy": counts[-2] / counts[-1] if counts[-1] else None,
                "accuracy_by_kind": by_kind, "pairs": int(counts[-1]), "failed": int(failed),
                # None: the method reports no chance level of its own (a pair classifier: 0.5).
                "chance": counts[-4] / counts[-3] if counts[-3] else None}
