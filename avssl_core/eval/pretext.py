"""Pretext accuracy: how often a method tells in-sync (corresponding) pairs from negatives, overall and
per pair kind, on fixed seeded held-out pairs. For the pair classifiers chance is 50% (positives are half of
the pairs); contrastive methods (CMAC) score instance discrimination within a batch and report their own
per-query chance (1 / candidates) in ``StepOutput.metrics["chance"]``, which is averaged here, because
it depends on how many clips of one video a batch holds."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from avssl_core.methods.base import PretrainMethod
from avssl_core.pretext.dataset import FAILED_KEY, batch_size_of, collate_skipping_failures, failed_entries
from avssl_core.train.pretext_tally import PretextTally
from avssl_core.train.workers import start_dataloader_worker, worker_start_method


@torch.no_grad()
def evaluate_pretext(method: PretrainMethod, dataset, *, batch_size: int = 64, num_workers: int = 0,
                     device: str | torch.device = "cpu") -> dict[str, Any]:
    """Pretext accuracy of ``method`` on every pair of ``dataset`` (one process)."""
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
