"""Memory bank of momentum-encoder keys, and the momentum (moving-average) encoder helpers (MoCo, He et
al. 2020), as CMAC uses them (CMAC Sec. 4.1: bank of 15000, momentum 0.999).

The bank has ``size`` rows; a key of instance ``clip`` lives in row ``clip % size`` together with that
clip id and the id of the clip's source video. When the bank has a row per training clip (the ``tiny``
preset sizes it to the data) it is an instance bank holding every clip's latest key; when there are
more clips than rows (the paper's 15000 on Kinetics) a row holds the latest of the clips that map to
it, i.e. a bank of recent keys. Either way the stored source ids let the loss leave out entries of the
query's own video (CMAC's negatives come from other videos; clips cut from one long video would
otherwise be pushed apart from each other), and the clip ids find a clip's own earlier key.
Everything is a buffer, so checkpoints carry the bank.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class MemoryBank(nn.Module):
    """``size`` x ``dim`` unit-norm keys with the clip and source-video ids that wrote each row (-1: never
    written)."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"MemoryBank: size and dim must be positive, got {size}, {dim}")
        self.register_buffer("keys", torch.zeros(size, dim))
        self.register_buffer("clips", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("sources", torch.full((size,), -1, dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    def rows(self, clips: torch.Tensor) -> torch.Tensor:
        return clips.long() % self.size

    @torch.no_grad()
    def write(self, keys: torch.Tensor, clips: torch.Tensor, sources: torch.Tensor | None = None) -> None:
        """Store L2-normalised ``keys`` [N, dim] at the rows of ``clips`` [N], with their source videos
        ``sources`` [N] (None: every clip its own source). When several keys map to one row the last one
        wins (made explicit: indexed assignment with repeated indices leaves the winner unspecified)."""
        sources = clips if sources is None else sources
        if not keys.shape[0] == clips.shape[0] == sources.shape[0]:
            raise ValueError(f"MemoryBank.write: {keys.shape[0]} keys for {clips.shape[0]} clips and "
                             f"{sources.shape[0]} sources")
        if keys.shape[0] == 0:
            return
        clips = clips.to(self.clips.device).long()
        rows = self.rows(clips)
        n = rows.shape[0]
        order = torch.arange(n, device=rows.device)
        # Keep, for every row, the last position that writes it.
        last = torch.full((self.size,), -1, dtype=torch.long, device=rows.device).scatter_reduce(
            0, rows, order, reduce="amax")
        keep = last[rows] == order
        self.keys[rows[keep]] = F.normalize(keys.detach()[keep].to(self.keys), dim=1)
        self.clips[rows[keep]] = clips[keep]
        self.sources[rows[keep]] = sources.to(self.sources.device).long()[keep]

    def negative_mask(self, query_sources: torch.Tensor) -> torch.Tensor:
        """[B, size] True where a row may serve as a negative for each query: written, from another
        source video."""
        filled = self.clips >= 0
        return filled.unsqueeze(0) & (self.sources.unsqueeze(0) != query_sources.long().unsqueeze(1))

    def lookup(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each clip's stored key [B, dim] and whether the row really holds that clip [B]."""
        rows = self.rows(clips.to(self.clips.device))
        return self.keys[rows], self.clips[rows] == clips.long().to(self.clips.device)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` to serve as its momentum (key) encoder: no gradients reach it, and
    the optimiser (which takes only parameters that require grad) leaves it alone."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def momentum_update_(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * source, parameter by parameter (MoCo Eq. 2).
    Buffers (batch-norm statistics) are the key encoder's own, from its own forward passes."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
