"""Retrieval metrics: recall at k and median rank.

Video to video (CMAC Sec. 4.2, "Video Action Retrieval", after Xu et al.): test videos query the training
videos by cosine distance between their clip-averaged backbone features; a hit is a gallery video of the
query's class. Cross-modal (AVC Sec. III-B's audio-to-image and image-to-audio retrieval, made
quantitative): within one set of audio-visual windows, each audio queries every frame (and the reverse) in the
method's shared embedding space; the correct item is the query's own pair. Within a modality (audio to audio,
video to video) the query and the other windows of its clip are left out of the gallery (they would be
near-copies) and a hit is the same class.

Rank of a query = 1-based position of its first correct item; median rank is over queries. A query with no
correct item in the gallery is an error (the metric would be undefined), not a silent miss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

DISTANCES = ("cosine", "euclidean")


def pairwise_distances(queries: torch.Tensor, gallery: torch.Tensor, metric: str = "cosine") -> torch.Tensor:
    """[Q, D] x [G, D] -> [Q, G]: 1 - cosine similarity, or the Euclidean distance."""
    if metric == "cosine":
        return 1.0 - F.normalize(queries.double(), dim=1) @ F.normalize(gallery.double(), dim=1).T
    if metric == "euclidean":
        return torch.cdist(queries.double(), gallery.double())
    raise ValueError(f"unknown distance {metric!r}; choose one of {DISTANCES}")


def first_hit_ranks(distances: torch.Tensor, correct: torch.Tensor) -> np.ndarray:
    """1-based rank of the nearest correct gallery item per query; ties are broken by gallery order (a
    stable sort), so results do not depend on the platform."""
    if distances.shape != correct.shape:
        raise ValueError(f"distances {tuple(distances.shape)} and correct {tuple(correct.shape)} differ")
    missing = np.flatnonzero(~correct.any(dim=1).numpy())
    if len(missing):
        raise ValueError(f"{len(missing)} quer(ies) have no correct item in the gallery (e.g. query {missing[0]})")
    order = torch.from_numpy(np.argsort(distances.numpy(), axis=1, kind="stable"))
    hits = torch.gather(correct, 1, order)
    return hits.float().argmax(dim=1).numpy() + 1


def recall_and_median_rank(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10), prefix: str = "") -> dict[str, float]:
    out = {f"{prefix}R@{k}": float(np.mean(ranks <= k)) for k in ks}
    out[f"{prefix}median_rank"] = float(np.median(ranks))
    return out


def class_retrieval(queries: torch.Tensor, query_labels: Sequence, gallery: torch.Tensor, gallery_labels: Sequence,
                    *, ks: Sequence[int] = (1, 5, 10), metric: str = "cosine", exclude_self: bool = False,
                    groups: Sequence | None = None, prefix: str = "") -> dict[str, float]:
    """Class-level retrieval; ``exclude_self``: queries and gallery are the same set, and an item never
    retrieves itself, nor (given ``groups``) another item of its own group (another window of the same
    clip would be a near-copy, not a retrieval)."""
    ranks = class_ranks(queries, query_labels, gallery, gallery_labels, metric=metric, exclude_self=exclude_self,
                        groups=groups)
    return recall_and_median_rank(ranks, ks, prefix)


def class_ranks(queries: torch.Tensor, query_labels: Sequence, gallery: torch.Tensor, gallery_labels: Sequence,
                *, metric: str = "cosine", exclude_self: bool = False, groups: Sequence | None = None) -> np.ndarray:
    """Each query's rank of its first same-class gallery item (see class_retrieval)."""
    q = np.asarray(query_labels)
    g = np.asarray(gallery_labels)
    distances = pairwise_distances(queries, gallery, metric)
    correct = torch.from_numpy(q[:, None] == g[None, :])
    if exclude_self:
        if len(q) != len(g):
            raise ValueError("exclude_self needs the gallery to be the query set")
        same = np.eye(len(q), dtype=bool)
        if groups is not None:
            grp = np.asarray(groups)
            same |= grp[:, None] == grp[None, :]
        same_t = torch.from_numpy(same)
        distances[same_t] = float("inf")
        correct[same_t] = False
    return first_hit_ranks(distances, correct)


def pair_retrieval(queries: torch.Tensor, gallery: torch.Tensor, *, ks: Sequence[int] = (1, 5, 10),
                   metric: str = "euclidean", prefix: str = "") -> dict[str, float]:
    """Cross-modal retrieval where row i of ``gallery`` is the only correct item for query i."""
    if len(queries) != len(gallery):
        raise ValueError("pair retrieval needs as many gallery items as queries")
    correct = torch.eye(len(queries), dtype=torch.bool)
    return recall_and_median_rank(first_hit_ranks(pairwise_distances(queries, gallery, metric), correct), ks, prefix)


def cross_modal_retrieval(video: torch.Tensor, audio: torch.Tensor, labels: Sequence, *,
                          ks: Sequence[int] = (1, 5, 10), metric: str = "euclidean",
                          groups: Sequence | None = None) -> dict[str, float]:
    """a2v and v2a (own pair is correct), a2a and v2v (same class; the query and its ``groups`` mates
    excluded) over one set of pairs."""
    out = {}
    out.update(pair_retrieval(audio, video, ks=ks, metric=metric, prefix="a2v_"))
    out.update(pair_retrieval(video, audio, ks=ks, metric=metric, prefix="v2a_"))
    out.update(class_retrieval(audio, labels, audio, labels, ks=ks, metric=metric, exclude_self=True, groups=groups,
                               prefix="a2a_"))
    out.update(class_retrieval(video, labels, video, labels, ks=ks, metric=metric, exclude_self=True, groups=groups,
                               prefix="v2v_"))
    return out
