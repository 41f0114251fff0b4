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
                     device: str | torch.device = "cpu", per_pair: bool = False) -> dict[str, Any]:
    """Pretext accuracy of ``method`` on every pair of ``dataset`` (one process). ``per_pair``: the result
    also holds "per_pair": {"correct", "index", "clip", "source"}, one entry per scored pair, so an interval
    over source videos can be drawn from it (avssl_core/eval/intervals.py)."""
    was_training = method.training
    pairs: dict[str, list[int]] = {"correct": [], "index": [], "clip": [], "source": []}
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
            batch = method.device_transform({k: v.to(device) if torch.is_tensor(v) else
                                             [x.to(device) for x in v] if isinstance(v, list) else v
                                             for k, v in batch.items()})
            out = method.evaluation_step(batch)
            if not tally.add(out):
                raise ValueError(f"{method.name}: evaluation_step reports no per-pair correctness")
            if per_pair:
                _add_pairs(pairs, out.correct, batch)
    finally:
        method.train(was_training)
    result = PretextTally.result(tally.counts, tally.failed)
    if per_pair:
        result["per_pair"] = pairs
    return result


def _add_pairs(pairs: dict[str, list[int]], correct: torch.Tensor, batch: dict[str, Any]) -> None:
    correct = correct.detach().reshape(-1).cpu()
    for key in ("index", "clip", "source"):
        ids = batch[key].reshape(-1).cpu() if torch.is_tensor(batch.get(key)) else None
        if ids is None or len(ids) != len(correct):
            raise ValueError(f"per-pair correctness: {len(correct)} scores but the batch's {key!r} is "
                             f"{None if ids is None else len(ids)} long; they must be one per pair")
        pairs[key] += [int(v) for v in ids]
    pairs["correct"] += [int(round(float(v))) for v in correct]
