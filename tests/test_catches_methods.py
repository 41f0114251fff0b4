"""How each method's training step uses its loss and its decision rule, on inputs with known answers.

The losses are tested as formulas elsewhere (test_methods.py, test_cmac.py); these tests pin the step
that calls them: which label the margin loss gets, which side of the threshold counts as "in sync",
which ids decide that two clips may not be each other's negatives. Each fails on a one-token change
that leaves every formula test green (an inverted label, an inverted comparison, clip ids in place of
source-video ids).

Embeddings with known distances come from replacing the encoders' outputs on one method instance
(``embed_video`` / ``embed_audio`` as instance attributes): what is under test is the step around them.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from avssl_core.methods.avc import AVC
from avssl_core.methods.avts import AVTS
from avssl_core.methods.cmac import CMAC
from avssl_core.pretext.spec import NegativeMix, PairKind

pytestmark = pytest.mark.timeout(120)

# Distances and labels with a known outcome at threshold 0.5: pairs 0, 1 (positives, near), 2, 3
# (negatives, far) are right; pair 4 (a near negative) and pair 5 (a far positive) are wrong.
DISTANCES = [0.1, 0.2, 0.8, 0.9, 0.3, 0.7]
LABELS = [1, 1, 0, 0, 0, 1]
CORRECT_AT_HALF = [1, 1, 1, 1, 0, 0]


def _known_pairs(method, distances=DISTANCES, labels=LABELS, dim: int = 4) -> dict[str, torch.Tensor]:
    """A batch whose video embedding lies ``distances[i]`` from its audio embedding (the origin), and
    make ``method`` return those embeddings. The video side requires grad, to check the loss's pull."""
    f_v = torch.zeros(len(distances), dim)
    f_v[:, 0] = torch.tensor(distances)
    f_v.requires_grad_(True)
    f_a = torch.zeros(len(distances), dim)
    method.embed_video = lambda batch: f_v
    method.embed_audio = lambda batch: f_a
    kinds = [int(PairKind.POSITIVE if y else PairKind.EASY) for y in labels]
    return {"label": torch.tensor(labels), "kind": torch.tensor(kinds), "f_v": f_v}


# -- AVTS ----------------------------------------------------------------------------------------------


def test_avts_step_pulls_positives_together_and_pushes_negatives_to_the_margin():
    m = AVTS("tiny", threshold=0.5)
    batch = _known_pairs(m)
    out = m.training_step(batch)
    margin = m.hparams["margin"]
    # AVTS Eq. 1 by hand: d^2 for positives, max(margin - d, 0)^2 for negatives.
    expected = sum(d * d if y else max(margin - d, 0.0) ** 2 for d, y in zip(DISTANCES, LABELS, strict=True))
    assert out.loss.item() == pytest.approx(expected / len(DISTANCES), rel=1e-5)
    out.loss.backward()
    along = batch["f_v"].grad[:, 0]  # d grows with f_v[:, 0]: a positive gradient means "shrink d"
    for i, y in enumerate(LABELS):
        if y:
            assert along[i] > 0, f"pair {i} is a positive: the loss must pull it together"
        else:
            assert along[i] < 0, f"pair {i} is a negative inside the margin: the loss must push it apart"


def test_avts_accuracy_calls_pairs_below_the_threshold_in_sync():
    m = AVTS("tiny", threshold=0.5)
    out = m.training_step(_known_pairs(m))
    assert out.correct.tolist() == CORRECT_AT_HALF
    assert out.metrics["acc"] == pytest.approx(4 / 6)
    assert out.metrics["dist_pos"] == pytest.approx((0.1 + 0.2 + 0.7) / 3, abs=1e-6)
    assert out.metrics["dist_neg"] == pytest.approx((0.8 + 0.9 + 0.3) / 3, abs=1e-6)
    # The same pairs at another threshold: every distance below 0.75 is called in sync, so the far
    # positive (0.7) becomes right and the near negative (0.3) stays wrong.
    m.hparams["threshold"] = 0.75
    assert m.training_step(_known_pairs(m)).correct.tolist() == [1, 1, 1, 1, 0, 1]


def test_avts_evaluation_step_scores_like_training_without_moving_the_threshold():
    m = AVTS("tiny")  # calibrated threshold: the midpoint of the running positive / negative means
    m.train()
    m.training_step(_known_pairs(m))
    tau = m.threshold
    assert tau == pytest.approx(((0.1 + 0.2 + 0.7) / 3 + (0.8 + 0.9 + 0.3) / 3) / 2, abs=1e-6)
    m.eval()
    out = m.evaluation_step(_known_pairs(m, distances=[0.1, 0.6, 0.4, 0.9], labels=[1, 1, 0, 0]))
    assert m.threshold == pytest.approx(tau)  # held-out pairs do not calibrate it
    # tau = 0.5: 0.1 in sync (right), 0.6 not (wrong), 0.4 in sync (wrong), 0.9 not (right)
    assert out.correct.tolist() == [1, 0, 0, 1]


# -- AVC -----------------------------------------------------------------------------------------------


def test_avc_step_is_bce_of_the_correspondence_probability_and_calls_p_above_half_corresponding():
    m = AVC("tiny")
    with torch.no_grad():
        m.log_distance_scale.fill_(0.0)  # scale 1: p = sigmoid(0.5 - d), so p > 0.5 exactly when d < 0.5
        m.distance_offset.fill_(0.5)
    batch = _known_pairs(m)
    out = m.training_step(batch)
    assert out.correct.tolist() == CORRECT_AT_HALF
    assert out.metrics["acc"] == pytest.approx(4 / 6)
    expected = 0.0
    for d, y in zip(DISTANCES, LABELS, strict=True):
        p = 1 / (1 + math.exp(-(0.5 - d)))
        expected -= math.log(p) if y else math.log(1 - p)
    assert out.loss.item() == pytest.approx(expected / len(DISTANCES), rel=1e-5)
    out.loss.backward()
    along = batch["f_v"].grad[:, 0]
    assert all((along[i] > 0) == bool(y) for i, y in enumerate(LABELS)), along  # positives pulled in


# -- CMAC ----------------------------------------------------------------------------------------------

SR = 16000


def _cmac_batch(m: CMAC, clips: list[int], sources: list[int]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    samples = [{"video": torch.randint(0, 256, (4, 60, 72, 3), dtype=torch.uint8, generator=g),
                "audio": (torch.rand(2, SR, generator=g) * 2 - 1) * (0.1 + 0.2 * i), "label": 1,
                "kind": int(PairKind.POSITIVE), "index": i, "clip": clip, "source": source}
               for i, (clip, source) in enumerate(zip(clips, sources, strict=True))]
    m.fit_normalization(samples, fraction=1.0)
    pre = m.preprocess(train=False)  # no SpecAugment: the batch is the same on every call
    return default_collate([pre(s) for s in samples])


def _explicit_info_nce(q: torch.Tensor, k: torch.Tensor, sources: list[int], tau: float) -> float:
    """Mean over queries of -log softmax of the own key among the keys of *other source videos*."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    total = 0.0
    for n in range(len(sources)):
        listed = [float(q[n] @ k[n])] + [float(q[n] @ k[j]) for j in range(len(sources)) if sources[j] != sources[n]]
        total -= listed[0] / tau - math.log(sum(math.exp(s / tau) for s in listed))
    return total / len(sources)


def test_cmac_step_never_uses_a_clip_of_the_same_video_as_a_negative():
    torch.manual_seed(0)
    m = CMAC("tiny", within_modal_positives=False)
    clips, sources = [0, 1, 2, 3], [5, 5, 6, 7]  # clips 0 and 1 were cut from one video
    batch = _cmac_batch(m, clips, sources)
    out = m.training_step(batch)
    with torch.no_grad():
        video, audio = m.encode(batch)
        k_v, k_a = m._keys(batch)
    tau = m.hparams["temperature"]
    # The banks are empty: Eq. 7's candidates are the batch's other-modality keys of other videos only.
    expected = (_explicit_info_nce(video["z"], k_a, sources, tau) + _explicit_info_nce(audio["z"], k_v, sources, tau))
    assert out.metrics["loss_cl"] == pytest.approx(expected, rel=1e-4)
    # With clip ids as instances the same-video clips would be negatives: a different (larger) loss.
    as_clips = (_explicit_info_nce(video["z"], k_a, clips, tau) + _explicit_info_nce(audio["z"], k_v, clips, tau))
    assert as_clips > expected + 1e-3
    # The keys go to the banks under their source ids, so later steps exclude same-video rows too.
    m.after_optimizer_step()
    assert m.video_bank.sources[clips].tolist() == sources


# -- the losses' defaults and messages (survivors of the mutation run on losses.py) ---------------------


def test_loss_defaults_are_the_documented_ones():
    from avssl_core.losses import attention_consistency_loss, correspondence_bce, correspondence_logit

    d = torch.tensor([0.0, 0.5, 2.0])
    assert correspondence_logit(d).tolist() == [0.0, -0.5, -2.0]  # scale 1, offset 0
    label = torch.tensor([1, 0, 1])
    expected = F.binary_cross_entropy_with_logits(-d, label.float())
    assert correspondence_bce(d, label).item() == pytest.approx(expected.item())
    # detach_target defaults to True: no gradient reaches the branch that made the target map.
    target, predicted = torch.ones(2, 3, requires_grad=True), torch.zeros(2, 3, requires_grad=True)
    attention_consistency_loss(target, predicted).backward()
    assert target.grad is None and predicted.grad is not None


def test_attention_consistency_names_both_shapes():
    from avssl_core.losses import attention_consistency_loss

    with pytest.raises(ValueError, match=r"^attention maps differ in shape: \(2, 3\) vs \(2, 4\)$"):
        attention_consistency_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_pretext_accuracy_of_known_pairs_overall_and_per_kind():
    """evaluate_pretext over the known pairs: 4 of 6 right; per kind, the far positive and the near hard
    negative are the wrong ones. An inverted decision rule or a mixed-up kind tally changes the figures."""
    from avssl_core.eval.pretext import evaluate_pretext

    m = AVTS("tiny", threshold=0.5)
    m.embed_video = lambda batch: batch["f_v"]
    m.embed_audio = lambda batch: torch.zeros_like(batch["f_v"])
    kinds = [PairKind.POSITIVE, PairKind.POSITIVE, PairKind.EASY, PairKind.EASY, PairKind.HARD, PairKind.POSITIVE]
    pairs = [{"f_v": torch.tensor([d, 0.0, 0.0]), "label": y, "kind": int(k)}
             for d, y, k in zip(DISTANCES, LABELS, kinds, strict=True)]
    result = evaluate_pretext(m, pairs, batch_size=4)  # two batches: the tally adds across them
    assert result["accuracy"] == pytest.approx(4 / 6) and result["pairs"] == 6 and result["failed"] == 0
    assert result["accuracy_by_kind"] == pytest.approx({"positive": 2 / 3, "easy": 1.0, "hard": 0.0})
    assert result["chance"] is None  # a pair classifier: chance is 0.5 by construction, not measured


# -- survivors of the mutation run on methods/avts.py ---------------------------------------------------


def test_avts_pair_is_in_sync_strictly_below_the_threshold():
    m = AVTS("tiny", threshold=0.5)
    out = m.training_step(_known_pairs(m, distances=[0.5, 0.5], labels=[0, 1]))  # float32: d = 0.5 exactly
    assert out.correct.tolist() == [1, 0]  # "below" the threshold: a pair on it is not in sync


def test_avts_distance_metrics_only_for_the_classes_in_the_batch():
    m = AVTS("tiny", threshold=0.5)
    positives = m.training_step(_known_pairs(m, distances=[0.2, 0.4], labels=[1, 1])).metrics
    assert positives["dist_pos"] == pytest.approx(0.3, abs=1e-6) and "dist_neg" not in positives
    negatives = m.training_step(_known_pairs(m, distances=[0.6, 0.8], labels=[0, 0])).metrics
    assert negatives["dist_neg"] == pytest.approx(0.7, abs=1e-6) and "dist_pos" not in negatives


def test_avts_cross_entropy_phase_predicts_the_larger_logit_per_pair():
    m = AVTS("tiny", finetune_ce_from_epoch=0)
    m.on_epoch_start(0)
    batch = _known_pairs(m, distances=[0.1, 0.2, 0.3], labels=[1, 0, 1])
    logits = torch.tensor([[0.0, 2.0], [0.0, 1.0], [3.0, 0.0]])  # predicts 1, 1, 0

    class FixedLogits(torch.nn.Module):
        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return logits + 0.0 * features.sum()  # still a function of the embeddings, for the graph

    m.head = FixedLogits()
    out = m.training_step(batch)
    assert out.correct.tolist() == [1, 0, 0]
    assert out.loss.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([1, 0, 1])).item())


def test_avts_pair_spec_carries_its_hyper_parameters():
    spec = AVTS("tiny", positive_fraction=0.3, hard_negative_gap_s=0.8, sample_rate=22050).pair_spec()
    assert (spec.positive_fraction, spec.hard_negative_gap_s, spec.audio_sample_rate) == (0.3, 0.8, 22050)
    assert spec.audio_channels == 1 and spec.curriculum[0].start_epoch == 0


# -- survivors of the mutation run on methods/avc.py ----------------------------------------------------


def test_avc_probability_uses_the_learned_scale_and_is_strictly_above_half_to_correspond():
    m = AVC("tiny")
    with torch.no_grad():
        m.log_distance_scale.fill_(math.log(2.0))  # p = sigmoid(1 - 2 d)
        m.distance_offset.fill_(1.0)
    d = torch.tensor([0.0, 0.5, 1.0])
    assert m.correspondence_probability(d).tolist() == pytest.approx(
        [1 / (1 + math.exp(-1.0)), 0.5, 1 / (1 + math.exp(1.0))])
    # d = 0.5 exactly (float32 drops the distance's 1e-8 epsilon at 0.25): p = 0.5 is not "corresponds".
    out = m.training_step(_known_pairs(m, distances=[0.5, 0.5, 0.1], labels=[0, 1, 1]))
    assert out.correct.tolist() == [1, 0, 1]
    assert out.metrics["distance_scale"] == pytest.approx(2.0) and out.metrics["distance_offset"] == 1.0


def test_avc_pair_spec_carries_its_hyper_parameters():
    spec = AVC("tiny", positive_fraction=0.3, sample_rate=22050).pair_spec()
    assert (spec.positive_fraction, spec.audio_sample_rate, spec.audio_channels) == (0.3, 22050, 1)
    assert (spec.video_frames, spec.video_fps) == (1, None)
    assert [(s.start_epoch, s.mix) for s in spec.curriculum] == [(0, NegativeMix(easy=1.0))]


# -- survivors of the mutation run on models/memory_bank.py ---------------------------------------------


def test_memory_bank_takes_the_smallest_sizes_and_names_bad_ones():
    from avssl_core.models.memory_bank import MemoryBank

    bank = MemoryBank(1, 1)  # one row of one value is a bank
    assert bank.keys.shape == (1, 1) and bank.clips.tolist() == [-1] and bank.sources.tolist() == [-1]
    for size, dim in ((0, 4), (4, 0), (-1, -1)):
        with pytest.raises(ValueError, match=rf"^MemoryBank: size and dim must be positive, got {size}, {dim}$"):
            MemoryBank(size, dim)
