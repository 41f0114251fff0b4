"""Retrieval metrics on inputs where each choice shows: cosine against Euclidean, ties, the left-out query and
its clip mates, the defaults and the error messages (found by mutation testing: scripts/mutation.sh retrieval)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avssl_core.eval.retrieval import (
    class_ranks,
    class_retrieval,
    cross_modal_retrieval,
    first_hit_ranks,
    pair_retrieval,
    pairwise_distances,
)

pytestmark = pytest.mark.timeout(60)


def points(n: int = 12, seed: int = 0) -> torch.Tensor:
    """Points whose norms differ a lot, so that cosine and Euclidean neighbours differ."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(size=(n, 3)) * rng.uniform(0.2, 5.0, size=(n, 1)))


def test_cosine_distance_is_one_minus_the_cosine_and_the_default():
    q, g = points(4, seed=1), points(5, seed=2)
    cos = torch.tensor([[float(a @ b / (a.norm() * b.norm())) for b in g] for a in q], dtype=torch.float64)
    assert torch.allclose(pairwise_distances(q, g, "cosine"), 1.0 - cos, atol=1e-12)
    assert torch.equal(pairwise_distances(q, g), pairwise_distances(q, g, "cosine"))
    with pytest.raises(ValueError, match=r"^unknown distance 'manhattan'; choose one of \('cosine', 'euclidean'\)$"):
        pairwise_distances(q, g, "manhattan")


def test_ties_go_to_the_earlier_gallery_item():
    # Many ties among 200 gallery items: a sort that is not stable puts a later correct item first.
    rng = np.random.default_rng(0)
    distances = rng.integers(0, 3, size=(20, 200)).astype(float)
    correct = rng.random((20, 200)) < 0.05
    correct[:, -1] = True
    expected = []
    for d, c in zip(distances, correct, strict=True):
        best = min(np.flatnonzero(c), key=lambda j: (d[j], j))
        expected.append(int(np.sum(d < d[best]) + np.sum((d == d[best])[:best]) + 1))
    got = first_hit_ranks(torch.from_numpy(distances), torch.from_numpy(correct))
    assert got.tolist() == expected


def test_first_hit_ranks_names_both_shapes():
    with pytest.raises(ValueError, match=r"^distances \(2, 3\) and correct \(2, 2\) differ$"):
        first_hit_ranks(torch.zeros(2, 3), torch.ones(2, 2, dtype=torch.bool))


def test_class_retrieval_defaults_keep_the_query_in_the_gallery_and_use_cosine():
    x, labels = points(), [i % 3 for i in range(12)]
    # Not excluded by default: every item finds itself first.
    assert class_retrieval(x, labels, x, labels) == {"R@1": 1.0, "R@5": 1.0, "R@10": 1.0, "median_rank": 1.0}
    q, g = points(6, seed=3), points(12, seed=4)
    q_labels, g_labels = [i % 3 for i in range(6)], [i % 3 for i in range(12)]
    cosine = class_ranks(q, q_labels, g, g_labels, metric="cosine")
    assert not np.array_equal(cosine, class_ranks(q, q_labels, g, g_labels, metric="euclidean"))
    assert np.array_equal(class_ranks(q, q_labels, g, g_labels), cosine)


def test_pair_retrieval_defaults_to_euclidean():
    a, v = points(12, seed=5), points(12, seed=6)
    euclidean = pair_retrieval(a, v, ks=(1, 3), metric="euclidean")
    assert euclidean != pair_retrieval(a, v, ks=(1, 3), metric="cosine")
    assert pair_retrieval(a, v, ks=(1, 3)) == euclidean


def test_bad_sizes_are_refused_with_the_reason():
    x = points(4)
    with pytest.raises(ValueError, match=r"^pair retrieval needs as many gallery items as queries$"):
        pair_retrieval(x, x[:3])
    with pytest.raises(ValueError, match=r"^exclude_self needs the gallery to be the query set$"):
        class_ranks(x, [0, 0, 1, 1], x[:3], [0, 0, 1], exclude_self=True)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_cross_modal_uses_its_metric_and_groups_in_every_direction(metric):
    # Clips of 4 windows, two of each class, close to one another (as windows of one clip are).
    groups = [i // 4 for i in range(12)]
    labels = [i % 2 for i in range(12)]
    video = points(3, seed=7).repeat_interleave(4, dim=0) + 0.3 * points(12, seed=9)
    audio = points(3, seed=8).repeat_interleave(4, dim=0) + 0.3 * points(12, seed=10)
    out = cross_modal_retrieval(video, audio, labels, ks=(1, 3), metric=metric, groups=groups)
    other = "euclidean" if metric == "cosine" else "cosine"
    for prefix, q in (("a2a_", audio), ("v2v_", video)):
        expected = class_retrieval(q, labels, q, labels, ks=(1, 3), metric=metric, exclude_self=True,
                                   groups=groups, prefix=prefix)
        assert {k: out[k] for k in expected} == expected
        # Each setting changes the figures on these points, so a direction that drops one is caught.
        assert expected != class_retrieval(q, labels, q, labels, ks=(1, 3), metric=other, exclude_self=True,
                                           groups=groups, prefix=prefix)
        assert expected != class_retrieval(q, labels, q, labels, ks=(1, 3), metric=metric, exclude_self=True,
                                           prefix=prefix)
        assert expected != class_retrieval(q, labels, q, labels, ks=(1, 3), metric=metric, prefix=prefix)
    for prefix, q, g in (("a2v_", audio, video), ("v2a_", video, audio)):
        expected = pair_retrieval(q, g, ks=(1, 3), metric=metric, prefix=prefix)
        assert {k: out[k] for k in expected} == expected
        assert expected != pair_retrieval(q, g, ks=(1, 3), metric=other, prefix=prefix)
