"""CMAC's training step as the trainer and the banks see it: the loss parts it reports and how they add up,
what it hands on per clip, the within-modal term on empty banks, and both banks' source ids (found by
mutation testing: scripts/mutation.sh cmac)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_catches_methods import _cmac_batch, _explicit_info_nce

from avssl_core.methods.cmac import CMAC

pytestmark = pytest.mark.timeout(120)


def test_step_reports_its_loss_parts_and_hands_on_per_clip_results():
    torch.manual_seed(0)
    m = CMAC("tiny", lambda_ac=0.7)
    batch = _cmac_batch(m, [0, 1, 2, 3], [4, 5, 6, 7])
    out = m.training_step(batch)
    metrics = out.metrics
    assert set(metrics) == {"loss", "loss_cl", "loss_ac_v", "loss_ac_a", "acc", "chance"}
    assert metrics["loss_ac_v"] > 0 and metrics["loss_ac_a"] > 0
    # CMAC Eq. 8: contrastive + lambda_ac * (video + audio attention consistency).
    assert metrics["loss"] == pytest.approx(metrics["loss_cl"] + 0.7 * (metrics["loss_ac_v"] + metrics["loss_ac_a"]),
                                            rel=1e-6)
    assert float(out.loss.detach()) == pytest.approx(metrics["loss"], rel=1e-6)
    assert metrics["chance"] == pytest.approx(1 / 4)  # four clips of four videos: one in four candidates
    # Per clip: is its own audio the nearest (cosine) of the batch's audio?
    with torch.no_grad():
        video, audio = m.encode(batch)
    sim = F.normalize(video["z"], dim=1) @ F.normalize(audio["z"], dim=1).T
    assert out.correct.tolist() == [int(sim[n].argmax() == n) for n in range(4)]
    assert float(out.correct.float().mean()) == metrics["acc"]
    assert torch.equal(out.kinds, batch["kind"])


def test_within_modal_term_adds_nothing_while_the_banks_are_empty():
    losses = []
    for within in (False, True):
        torch.manual_seed(0)
        m = CMAC("tiny", within_modal_positives=within)
        losses.append(m.training_step(_cmac_batch(m, [0, 1, 2, 3], [4, 4, 5, 6])).metrics["loss_cl"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)


def test_both_banks_store_the_keys_under_their_source_videos():
    torch.manual_seed(0)
    m = CMAC("tiny")
    clips, sources = [0, 1, 2, 3], [5, 5, 6, 7]
    m.training_step(_cmac_batch(m, clips, sources))
    m.after_optimizer_step()
    assert m.video_bank.sources[clips].tolist() == sources
    assert m.audio_bank.sources[clips].tolist() == sources
    assert m.audio_bank.clips[clips].tolist() == clips


def test_source_id_zero_is_a_video_like_any_other():
    # Source ids are labels: shifting them all by 5 (0 -> 5) changes nothing; 0 is not "unknown" (< 0 is).
    losses = []
    for sources in ([0, 0, 1, 2], [5, 5, 6, 7]):
        torch.manual_seed(0)
        m = CMAC("tiny", within_modal_positives=False)
        losses.append(m.training_step(_cmac_batch(m, [0, 1, 2, 3], sources)).metrics["loss_cl"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def _grads(m: CMAC, loss: torch.Tensor) -> list[torch.Tensor]:
    params = [p for p in m.parameters() if p.requires_grad]
    return [torch.zeros_like(p) if g is None else g
            for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True), strict=True)]


def test_attention_targets_are_pseudo_labels_in_both_modalities():
    # What lambda_ac adds to the step's gradient must be the gradient of Eq. 6 with both targets s_v and s_a
    # detached (CMAC Sec. 3.2), computed here from the public parts of the model.
    steps = {}
    for lam in (0.0, 1.0):
        torch.manual_seed(0)
        m = CMAC("tiny", lambda_ac=lam)
        batch = _cmac_batch(m, [0, 1, 2, 3], [4, 5, 6, 7])
        steps[lam] = (m, batch, _grads(m, m.training_step(batch).loss))
    m, batch, with_ac = steps[1.0]
    video, audio = m.encode(batch)
    s_v, s_a = m.guided_attention(video, audio)
    explicit = sum((s.detach() - s_hat).pow(2).flatten(1).sum(dim=1).mean()
                   for s, s_hat in ((s_v, m.video_saliency(video["map"])), (s_a, m.audio_saliency(audio["map"]))))
    expected = _grads(m, explicit)
    added = [a - b for a, b in zip(with_ac, steps[0.0][2], strict=True)]
    # Compared as whole gradients: the subtraction leaves float32 noise of about 1e-5 of the norm; a target
    # that is not detached in one modality moves it by a tenth or more.
    error = sum(float((a - e).norm() ** 2) for a, e in zip(added, expected, strict=True)) ** 0.5
    norm = sum(float(e.norm() ** 2) for e in expected) ** 0.5
    assert norm > 0 and error < 1e-3 * norm


def test_within_modal_positives_add_both_modalities_against_other_videos_in_the_bank():
    # Two steps on one batch: the first fills the banks, the second adds AVID's within-modal term, which is
    # InfoNCE of each clip's query against its own key in the bank among the bank's keys of other videos.
    clips, sources = [0, 1, 2, 3], [5, 5, 6, 7]  # clips 0 and 1 from one video: not each other's negatives
    second = {}
    for within in (False, True):
        torch.manual_seed(0)
        m = CMAC("tiny", within_modal_positives=within, temperature=1.0)  # a term well above float noise
        batch = _cmac_batch(m, clips, sources)
        m.training_step(batch)
        m.after_optimizer_step()
        second[within] = (m, batch, m.training_step(batch).metrics["loss_cl"])
    m, batch, with_within = second[True]
    with torch.no_grad():
        video, audio = m.encode(batch)
    tau = m.hparams["temperature"]
    ids = torch.tensor(clips)
    expected = (_explicit_info_nce(video["z"], m.video_bank.lookup(ids)[0], sources, tau)
                + _explicit_info_nce(audio["z"], m.audio_bank.lookup(ids)[0], sources, tau))
    assert with_within - second[False][2] == pytest.approx(expected, rel=1e-4)
