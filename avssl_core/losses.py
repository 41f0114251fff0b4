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


# -- CMAC (Min et al. 2021) ---------------------------------------------------------------------------


def masked_info_nce(query: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor,
                    mask: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """Per-query noise-contrastive loss -log( e^{<q, k+>/t} / (e^{<q, k+>/t} + sum_j mask_j e^{<q, k_j>/t}) )
    with <.,.> the cosine similarity: ``query``, ``positive`` [B, D], ``candidates`` [N, D] (negatives,
    shared by the queries), ``mask`` [B, N] saying which candidates count for which query. Returns [B].

    CMAC Eq. 7 is this with the cross-modal keys and the within-modal bank keys as candidates; Eq. 1
    with the cross-modal ones only."""
    q = F.normalize(query, dim=1)
    pos = (q * F.normalize(positive, dim=1)).sum(dim=1, keepdim=True) / temperature
    neg = q @ F.normalize(candidates, dim=1).t() / temperature
    neg = neg.masked_fill(~mask.bool(), float("-inf"))
    logits = torch.cat([pos, neg], dim=1)
    return -torch.log_softmax(logits.float(), dim=1)[:, 0]


def attention_consistency_loss(target: torch.Tensor, predicted: torch.Tensor, *,
                               detach_target: bool = True) -> torch.Tensor:
    """CMAC Eq. 6: ||s - s_hat||_2^2 per sample (summed over the map's positions), averaged over the
    batch. ``detach_target``: the cross-modal map s is a pseudo label (no gradient flows into the
    branch that produced it); False lets the loss also move the filters and g-maps behind s."""
    if target.shape != predicted.shape:
        raise ValueError(f"attention maps differ in shape: {tuple(target.shape)} vs {tuple(predicted.shape)}")
    if detach_target:
        target = target.detach()
    return (target - predicted).pow(2).flatten(1).sum(dim=1).mean()
