"""Pretext accuracy: how often a method tells in-sync (corresponding) pairs from negatives, overall and
per pair kind, on fixed seeded held-out pairs. For the pair classifiers chance is 50% (positives are half of
the pairs); contrastive methods (CMAC) score instance discrimination within a batch and report their own
per-query chance (1 / candidates) in ``StepOutput.metrics["chance"]``, which is averaged here, because
it depends on how many clips of one video a batch holds."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from avssl_core.methods.base import PretrainMethod, StepOutput
from avssl_core.pretext.dataset import FAILED_KEY, batch_size_of, collate_skipping_failures, failed_entries
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


@torch.no_grad()
def evaluate_pretext(method: PretrainMethod, dataset, *, batch_size: int = 64, num_workers: int = 0,
                     device: str | torch.device = "cpu") -> dict[str, Any]:
    """Pretext accuracy of ``method`` on every pair of ``dataset`` (one process)."""
    # Imported here: the trainer (avssl_core.train) imports this module for its tally.
    from avssl_core.train.workers import start_dataloader_worker, worker_start_method

    was_training = method.training
    method.eval().to(device)
    tally = PretextTally()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_skipping_failures, worker_init_fn=start_dataloader_worker,
                        multiprocessing_context=worker_start_method(num_workers))
    try:
        for batch in loader:
            tally.failed += len(failed_entries(batch.pop(FAILED_KEY, None)))
            if batch_size_of(batch) == 0:
                continue
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            if not tally.add(method.evaluation_step(batch)):
                raise ValueError(f"{method.name}: evaluation_step reports no per-pair correctness")
    finally:
        method.train(was_training)
    return PretextTally.result(tally.counts, tally.failed)
