"""Losses as pure functions of embeddings/distances and labels (1: corresponding / in sync, 0: not)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def euclidean_distance(a: torch.Tensor, b: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Row-wise ||a - b||_2 for [B, D] inputs. ``eps`` keeps the gradient finite at distance 0
    (sqrt has an infinite slope there; a positive pair can reach it exactly)."""
    return torch.sqrt((a - b).pow(2).sum(dim=1) + eps)


def contrastive_margin_loss(dist: torch.Tensor, label: torch.Tensor, margin: float) -> torch.Tensor:
    """AVTS Eq. 1 (after Chung & Zisserman): mean over the batch of
    y * d^2 + (1 - y) * max(margin - d, 0)^2, with d the embedding distance and margin eta."""
    y = label.to(dist.dtype)
    return (y * dist.pow(2) + (1 - y) * torch.clamp(margin - dist, min=0).pow(2)).mean()


def correspondence_logit(dist: torch.Tensor, *, scale: torch.Tensor | float = 1.0,
                         offset: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Logit of "corresponds" from a distance: offset - scale * d, so sigmoid(logit) falls as the
    distance grows. The AVC paper (Sec. II) passes the Euclidean distance through a sigmoid without
    giving its form; a learned scale and offset (an affine map of d, as AVE-Net's distance-to-2-way FC
    in Objects that Sound) let the network place the decision threshold."""
    return offset - scale * dist


def correspondence_bce(dist: torch.Tensor, label: torch.Tensor, *, scale: torch.Tensor | float = 1.0,
                       offset: torch.Tensor | float = 0.0) -> torch.Tensor:
    """AVC loss: mean binary cross-entropy of p = sigmoid(offset - scale * d) against the label."""
    logit = correspondence_logit(dist, scale=scale, offset=offset)
    return F.binary_cross_entropy_with_logits(logit, label.to(logit.dtype))
