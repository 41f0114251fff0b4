"""CMAC (cross-modal attention consistency): losses against direct computations, pyramid correlation
filtering, memory bank and momentum encoder, checkpoints, gradients, SpecAugment, learning, stage run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate
from torchvision.models.video import r2plus1d_18

from avssl_core.losses import attention_consistency_loss, masked_info_nce
from avssl_core.methods.cmac import CMAC
from avssl_core.methods.registry import build_method, parameter_counts
from avssl_core.models.cmac_attention import correlation_response, pyramid_correlation
from avssl_core.models.memory_bank import MemoryBank, momentum_copy, momentum_update_
from avssl_core.models.r2plus1d import r2plus1d_video_encoder
from avssl_core.models.resnet9_audio import resnet9_audio_encoder
from avssl_core.pretext.spec import PairKind
from avssl_core.transforms.specaugment import SpecAugment, time_warp

SR = 16000


def raw_samples(n: int, *, clips: list[int] | None = None, sources: list[int] | None = None,
                seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    clips = clips if clips is not None else list(range(n))
    sources = sources if sources is not None else clips  # by default every clip from its own video
    return [{"video": torch.randint(0, 256, (4, 60, 72, 3), dtype=torch.uint8, generator=g),
             "audio": (torch.rand(2, SR, generator=g) * 2 - 1) * (0.1 + i / n), "label": 1,
             "kind": int(PairKind.POSITIVE), "index": i, "clip": clips[i], "source": sources[i]}
            for i in range(n)]


def tiny_method(seed: int = 0, **overrides) -> CMAC:
    torch.manual_seed(seed)
    return CMAC("tiny", **overrides)


def batch_for(method: CMAC, n: int = 6, *, train: bool = True, clips: list[int] | None = None,
              sources: list[int] | None = None) -> dict:
    samples = raw_samples(n, clips=clips, sources=sources)
    if not bool(method.normalizer.fitted):
        method.fit_normalization(samples, fraction=1.0)
    pre = method.preprocess(train=train)
    out = []
    for i, s in enumerate(samples):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1000 + i)
            out.append(pre(s))
    return default_collate(out)


# -- losses ------------------------------------------------------------------------------------------


def test_masked_info_nce_is_an_explicit_log_softmax_over_the_listed_candidates():
    g = torch.Generator().manual_seed(0)
    q, pos, cand = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g), torch.randn(4, 5, generator=g)
    mask = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 1, 1]], dtype=torch.bool)
    tau = 0.07
    got = masked_info_nce(q, pos, cand, mask, temperature=tau)

    def cos(a, b):
        return float((a @ b) / (a.norm() * b.norm()))

    for n in range(3):
        listed = [cos(q[n], pos[n])] + [cos(q[n], cand[j]) for j in range(4) if mask[n, j]]
        expected = -(listed[0] / tau - math.log(sum(math.exp(s / tau) for s in listed)))
        assert got[n].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert got[1].item() == pytest.approx(0.0, abs=1e-6)  # no negatives: nothing to discriminate


def test_cmac_contrastive_loss_is_eq7_with_batch_bank_and_within_modal_negatives():
    m = tiny_method()
    dim = m.hparams["embed_dim"]
    g = torch.Generator().manual_seed(1)
    # Bank rows: clips 0..3 written, from source videos 10, 11, 12, 12 (clips 2 and 3 were cut from one
    # video, the video of two queries), the rest empty.
    bank_sources = torch.tensor([10, 11, 12, 12])
    m.video_bank.write(torch.randn(4, dim, generator=g), torch.tensor([0, 1, 2, 3]), bank_sources)
    m.audio_bank.write(torch.randn(4, dim, generator=g), torch.tensor([0, 1, 2, 3]), bank_sources)
    sources = torch.tensor([12, 17, 12])  # two clips of video 12 in the batch: not each other's negative
    query, keys = torch.randn(3, dim, generator=g), F.normalize(torch.randn(3, dim, generator=g), dim=1)
    got = m._contrastive(query, keys, m.video_bank, m.audio_bank, sources)
    tau = m.hparams["temperature"]

    def cos(a, b):
        return float(F.cosine_similarity(a, b, dim=0))

    losses = []
    for n in range(3):
        listed = [cos(query[n], keys[n])]
        listed += [cos(query[n], keys[j]) for j in range(3) if sources[j] != sources[n]]  # batch, cross-modal
        for bank in (m.audio_bank, m.video_bank):  # cross-modal bank, then within-modal (Eq. 7)
            listed += [cos(query[n], bank.keys[r]) for r in range(bank.size)
                       if bank.clips[r] >= 0 and bank.sources[r] != sources[n]]
        assert len(listed) == (1 + 1 + 2 + 2 if n != 1 else 1 + 2 + 4 + 4)
        losses.append(-(listed[0] / tau - math.log(sum(math.exp(s / tau) for s in listed))))
    assert got.item() == pytest.approx(sum(losses) / 3, rel=1e-5)

    # Without within-modal negatives the video bank drops out of the denominator: a smaller loss.
    m.hparams["within_modal_negatives"] = False
    assert m._contrastive(query, keys, m.video_bank, m.audio_bank, sources).item() < got.item()


def test_within_modal_positive_uses_the_clips_bank_key_against_other_clips():
    m = tiny_method(within_modal_positives=True)
    dim = m.hparams["embed_dim"]
    g = torch.Generator().manual_seed(2)
    m.video_bank.write(torch.randn(4, dim, generator=g), torch.tensor([0, 1, 5, 6]), torch.tensor([0, 1, 5, 1]))
    query, clips = torch.randn(2, dim, generator=g), torch.tensor([1, 9])  # clip 9 has no key yet
    sources = torch.tensor([1, 9])  # clip 6 shares clip 1's video: not a negative of it
    tau = m.hparams["temperature"]
    listed = [float(F.cosine_similarity(query[0], m.video_bank.keys[1], dim=0))]
    listed += [float(F.cosine_similarity(query[0], m.video_bank.keys[r], dim=0)) for r in (0, 5)]
    expected = -(listed[0] / tau - math.log(sum(math.exp(s / tau) for s in listed)))
    assert m._within_positive(query, m.video_bank, clips, sources).item() == pytest.approx(expected, rel=1e-5)


def test_attention_consistency_is_the_squared_error_and_detach_target_stops_its_gradient():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 4, generator=g, requires_grad=True)
    predicted = torch.rand(2, 3, 4, generator=g, requires_grad=True)
    loss = attention_consistency_loss(target, predicted, detach_target=True)
    expected = sum(float(((target[b] - predicted[b]) ** 2).sum().detach()) for b in range(2)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert target.grad is None and predicted.grad is not None
    attention_consistency_loss(target, predicted, detach_target=False).backward()
    assert target.grad is not None and target.grad.abs().sum() > 0


def test_detach_target_decides_whether_l_ac_reaches_the_filters():
    for detach in (True, False):
        m = tiny_method(detach_target=detach)
        batch = batch_for(m, 4)
        video, audio = m.encode(batch)
        s_v, _ = m.guided_attention(video, audio)
        loss = attention_consistency_loss(s_v, m.video_saliency(video["map"]), detach_target=detach)
        loss.backward()
        reached = m.audio_filter.g[0].weight.grad
        assert (reached is not None and bool(reached.abs().sum() > 0)) is (not detach)
        assert m.video_saliency.block[0].weight.grad.abs().sum() > 0


# -- pyramid correlation filtering ----------------------------------------------------------------------


def _direct_response(kappa, feats, normalization):
    """Position by position, with explicit loops."""
    b, c = feats.shape[:2]
    positions = feats.flatten(2)
    out = torch.empty(b, positions.shape[2])
    for i in range(b):
        for n in range(positions.shape[2]):
            x = positions[i, :, n]
            if normalization == "cosine":
                out[i, n] = (1 + (kappa[i] @ x) / (kappa[i].norm() * x.norm())) / 2
            else:
                out[i, n] = kappa[i] @ x
        if normalization == "softmax":
            out[i] = torch.exp(out[i]) / torch.exp(out[i]).sum()
    return out.reshape(b, *feats.shape[2:])


def _direct_half(feats):
    """2-D or 3-D average pooling to ceil(size / 2), cell by cell (cells as adaptive pooling draws them)."""
    size = feats.shape[2:]
    out_size = [math.ceil(s / 2) for s in size]
    out = torch.empty(*feats.shape[:2], *out_size)
    for idx in torch.cartesian_prod(*[torch.arange(o) for o in out_size]).reshape(-1, len(size)):
        cell = tuple(slice(math.floor(i * s / o), math.ceil((i + 1) * s / o))
                     for i, s, o in zip(idx.tolist(), size, out_size, strict=True))
        out[(..., *idx.tolist())] = feats[(..., *cell)].mean(dim=tuple(range(2, 2 + len(size))))
    return out


@pytest.mark.parametrize("normalization", ["none", "softmax", "cosine"])
@pytest.mark.parametrize("scales", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 5, 3, 5, 4), (2, 5, 7, 3)])  # video [B,C,T,H,W], audio [B,C,time,mel]
def test_pyramid_correlation_matches_a_direct_computation(normalization, scales, shape):
    g = torch.Generator().manual_seed(scales)
    feats, kappa = torch.randn(*shape, generator=g), torch.randn(shape[0], shape[1], generator=g)
    size = shape[2:]
    fused = torch.zeros(shape[0], *size)
    x = feats
    for level in range(scales):
        if level:
            x = _direct_half(x)
        r = _direct_response(kappa, x, normalization)
        # nearest upsampling back to full size: output index i reads input floor(i * in / out)
        for idx in torch.cartesian_prod(*[torch.arange(s) for s in size]).reshape(-1, len(size)).tolist():
            src = [math.floor(i * r.shape[1 + d] / size[d]) for d, i in enumerate(idx)]
            fused[(slice(None), *idx)] += r[(slice(None), *src)]
    fused /= scales
    got = pyramid_correlation(kappa, feats, scales=scales, normalization=normalization)
    torch.testing.assert_close(got, fused, rtol=1e-4, atol=1e-5)
    if normalization != "none":
        assert got.min() >= 0 and got.max() <= 1


def test_correlation_rejects_unknown_settings():
    with pytest.raises(ValueError, match="normalization"):
        correlation_response(torch.ones(1, 2), torch.ones(1, 2, 3, 3), "l2")
    with pytest.raises(ValueError, match="scales"):
        pyramid_correlation(torch.ones(1, 2), torch.ones(1, 2, 3, 3), scales=4, normalization="cosine")
    with pytest.raises(ValueError, match="normalization"):
        CMAC("tiny", normalization="l2")


# -- memory bank and momentum encoder ------------------------------------------------------------------


def test_momentum_update_is_the_moving_average():
    torch.manual_seed(0)
    online = torch.nn.Linear(3, 2)
    key = momentum_copy(online)
    assert all(not p.requires_grad for p in key.parameters())
    old = [p.clone() for p in key.parameters()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    momentum_update_(key, online, 0.999)
    for k, o, before in zip(key.parameters(), online.parameters(), old, strict=True):
        torch.testing.assert_close(k, 0.999 * before + 0.001 * o, rtol=0, atol=1e-7)


def test_method_momentum_step_updates_key_encoders_with_its_momentum():
    m = tiny_method()
    old = m.key_video["proj"].weight.clone()
    with torch.no_grad():
        m.video_proj.weight.add_(1.0)
    m.after_optimizer_step()
    mu = m.hparams["key_momentum"]
    torch.testing.assert_close(m.key_video["proj"].weight, mu * old + (1 - mu) * m.video_proj.weight)


def test_memory_bank_writes_the_rows_of_its_clips():
    bank = MemoryBank(5, 3)
    keys = torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [4.0, 4.0, 0]])
    bank.write(keys, torch.tensor([1, 3, 6, 8]))  # 6 -> row 1 and 8 -> row 3 (mod 5): last write wins
    assert bank.clips.tolist() == [-1, 6, -1, 8, -1]
    torch.testing.assert_close(bank.keys[1], torch.tensor([0, 0, 1.0]))
    torch.testing.assert_close(bank.keys[3], torch.tensor([1.0, 1.0, 0]) / math.sqrt(2))
    assert bank.keys[[0, 2, 4]].abs().sum() == 0
    mask = bank.negative_mask(torch.tensor([6, 2]))
    assert mask.tolist() == [[False, False, False, True, False], [False, True, False, True, False]]
    found_keys, found = bank.lookup(torch.tensor([6, 1]))
    assert found.tolist() == [True, False]  # row 1 now holds clip 6, not clip 1
    torch.testing.assert_close(found_keys[0], bank.keys[1])
    # With source videos: clips 6 and 8 were cut from video 40, so a query of video 40 has no negative.
    bank.write(keys[2:], torch.tensor([6, 8]), torch.tensor([40, 40]))
    assert bank.sources.tolist() == [-1, 40, -1, 40, -1]
    assert bank.negative_mask(torch.tensor([40, 2])).tolist() == [[False] * 5,
                                                                  [False, True, False, True, False]]


def test_training_keys_reach_the_banks_after_the_optimizer_step_only():
    m = tiny_method()
    batch = batch_for(m, 4, clips=[3, 0, 7, 3])
    m.training_step(batch)
    assert (m.video_bank.clips == -1).all()  # nothing written before the step
    k_v, k_a = m._pending[0][0].clone(), m._pending[0][1].clone()
    m.after_optimizer_step()
    assert m._pending == []
    assert m.video_bank.clips[[0, 3, 7]].tolist() == [0, 3, 7]
    torch.testing.assert_close(m.video_bank.keys[7], k_v[2])
    torch.testing.assert_close(m.audio_bank.keys[3], k_a[3])  # clip 3 twice: the later key


def test_checkpoint_round_trip_restores_bank_and_momentum_encoder_exactly():
    m = tiny_method(seed=0)
    batch = batch_for(m, 4)
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        m.training_step(batch).loss.backward()
        opt.step()
        m.after_optimizer_step()
    state = m.state_dict()
    assert {"video_bank.keys", "audio_bank.clips", "key_video.net.trunk.stem.0.weight"} <= set(state)
    other = tiny_method(seed=1)
    other.load_state_dict(state)
    for name, value in other.state_dict().items():
        assert torch.equal(value, state[name]), name
    m.eval(), other.eval()
    assert m.training_step(batch).loss.item() == other.training_step(batch).loss.item()


def test_gradients_reach_every_trainable_parameter_and_none_the_momentum_encoders():
    for overrides in ({}, {"lambda_ac": 0.0, "within_modal_positives": True}):
        m = tiny_method(**overrides)
        m.training_step(batch_for(m, 4)).loss.backward()
        for name, p in m.named_parameters():
            if name.startswith(("key_video.", "key_audio.")):
                assert not p.requires_grad and p.grad is None, name
            else:
                assert p.requires_grad and p.grad is not None, name
                # Non-zero too: with lambda_ac = 0 only the saliency heads (reached by l_ac alone) get
                # all-zero gradients; every other parameter must really be moved by the loss.
                idle = overrides.get("lambda_ac") == 0.0 and name.startswith(("video_saliency.", "audio_saliency."))
                assert bool(p.grad.abs().sum() > 0) != idle, name
        trainable = [p for p in m.parameters() if p.requires_grad]
        assert sum(p.numel() for p in trainable) == parameter_counts(m)["total"]


# -- encoders and presets --------------------------------------------------------------------------------


def test_encoders_are_r2plus1d_18_and_a_resnet9():
    full = r2plus1d_video_encoder()
    ref = r2plus1d_18(weights=None)
    assert sum(p.numel() for p in full.parameters()) == sum(p.numel() for n, p in ref.named_parameters()
                                                              if not n.startswith("fc"))
    narrow = r2plus1d_video_encoder(channels=(8, 16, 32, 64))
    assert narrow(torch.randn(2, 3, 8, 48, 48), return_map=True).shape == (2, 64, 1, 3, 3)
    assert narrow(torch.randn(2, 3, 8, 48, 48)).shape == (2, 64)
    audio = resnet9_audio_encoder(channels=(8, 16, 32, 64))
    convs = [mod for mod in audio.modules() if isinstance(mod, torch.nn.Conv2d) and mod.kernel_size != (1, 1)]
    assert len(convs) == 9
    assert audio(torch.randn(2, 1, 101, 40), return_map=True).shape == (2, 64, 4, 2)


def test_paper_preset_follows_the_paper():
    m = build_method("cmac", "paper")
    hp = m.hparams
    assert (hp["temperature"], hp["bank_size"], hp["key_momentum"], hp["embed_dim"], hp["filter_channels"]) == \
        (0.07, 15000, 0.999, 256, 512)
    assert (hp["lambda_ac"], hp["pyramid_scales"], hp["normalization"], hp["num_mels"]) == (1.5, 2, "cosine", 257)
    spec = m.optim_spec()
    assert (spec.name, spec.lr, spec.weight_decay, spec.momentum) == ("sgd", 0.01, 1e-5, 0.9)
    counts = parameter_counts(m)
    assert counts["video"] == 31_300_125  # R(2+1)D-18 without its classifier
    assert m.pair_spec().positive_fraction == 1.0


# -- SpecAugment -----------------------------------------------------------------------------------------


def test_time_warp_keeps_shape_and_moves_content():
    spec = torch.arange(50.0).repeat(3, 1).unsqueeze(0)  # [1, freq 3, time 50]: a ramp in time
    torch.manual_seed(0)
    warped = time_warp(spec, 5)
    assert warped.shape == spec.shape and not torch.equal(warped, spec)
    assert torch.all(warped[..., 1:] >= warped[..., :-1] - 1e-5)  # still a ramp: a monotone warp of time
    assert torch.equal(time_warp(spec, 0), spec)


def test_specaugment_only_in_training_preprocess_and_reproducible_under_a_seed():
    m = tiny_method()
    samples = raw_samples(3)
    m.fit_normalization(samples, fraction=1.0)
    train, evaluate = m.preprocess(train=True), m.preprocess(train=False)

    def run(pre, seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return pre(samples[0])["audio"]

    a, b, c = run(train, 5), run(train, 5), run(train, 6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    plain = run(evaluate, 5)
    assert torch.equal(plain, run(evaluate, 6))  # no randomness at evaluation
    assert plain.shape == a.shape == (1, 101, m.hparams["num_mels"])
    # Training features have masked (zeroed) mel bands; evaluation features almost never exact zeros.
    assert (a == 0).all(dim=1).any() and not (plain == 0).all(dim=1).any()
    augment = SpecAugment(time_warp=0, freq_mask=0, time_mask=0)
    torch.testing.assert_close(augment(plain.transpose(-1, -2)).transpose(-1, -2), plain)


# -- learning and evaluation -----------------------------------------------------------------------------


def test_a_few_optimizer_steps_reduce_the_loss():
    m = tiny_method()
    batch = batch_for(m, 6)
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(4):
        out = m.training_step(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        m.after_optimizer_step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_instances_are_source_videos_and_fall_back_to_clips_where_unknown():
    clips, sources = CMAC._instances({"clip": torch.tensor([4, 5, 6]), "source": torch.tensor([1, 1, 2])})
    assert clips.tolist() == [4, 5, 6] and sources.tolist() == [1, 1, 2]
    _, sources = CMAC._instances({"clip": torch.tensor([4, 5, 6]), "source": torch.tensor([1, -1, 2])})
    assert sources.tolist() == [4, 5, 6]


def test_instance_top1_asks_whether_the_own_audio_is_nearest_among_other_videos():
    z_v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    z_a = torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0]])
    correct, chance = CMAC._instance_top1(z_v, z_a, torch.tensor([0, 1, 2]))
    assert correct.tolist() == [1, 0, 0] and chance == pytest.approx(1 / 3)
    # Items 0 and 2 from one video: neither is the other's candidate.
    correct, chance = CMAC._instance_top1(z_v, z_a, torch.tensor([0, 1, 0]))
    assert correct.tolist() == [1, 0, 0] and chance == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)


def test_evaluation_step_and_localization_maps():
    m = tiny_method()
    batch = batch_for(m, 5, train=False)
    m.eval()
    out = m.evaluation_step(batch)
    assert out.correct.shape == (5,) and set(out.correct.tolist()) <= {0, 1}
    assert out.metrics["chance"] == pytest.approx(1 / 5)
    assert m._pending == []  # evaluation never feeds the banks
    maps = m.localization_maps(batch)
    assert maps.shape == (5, 1, 3, 3) and (maps >= 0).all()
    assert m.video_backbone()(batch["video"]).shape == (5, 96)
    assert m.audio_backbone()(batch["audio"]).shape == (5, 128)


@pytest.mark.slow
@pytest.mark.timeout(900)  # end to end; see [tool.pytest.ini_options] in pyproject.toml
def test_pretrain_stage_trains_cmac_on_real_clips(tiny_clips, tmp_path):
    from avssl_core.config import load_config
    from avssl_core.stages.pretrain import run_pretrain

    cfg = load_config(None, [
        f"paths.clips_dir={tiny_clips.parent}", f"paths.metrics_dir={tmp_path / 'metrics'}",
        f"pretrain.out_dir={tmp_path / 'pretrain'}", "pretrain.val_split=train", "pretrain.val_pairs=8",
        "pretrain.pairs_per_clip=1", "pretrain.train.batch_size=4", "pretrain.train.max_steps=2",
        "pretrain.train.epochs=1", "pretrain.train.progress=false",
        f"evaluate.methods_dir={tmp_path / 'pretrain'}", f"evaluate.out_dir={tmp_path / 'evaluate'}",
        "evaluate.split=train", "evaluate.tasks=[pretext]", "evaluate.pretext.pairs=8", "evaluate.batch_size=4"])
    metrics = run_pretrain(cfg, "cmac", "tiny")
    assert metrics["steps"] == 2 and set(metrics["pretext_accuracy"]) == {"easy"}
    # Measured chance: 1 / 4 with four distinct clips in each batch of 4, more when a clip repeats.
    assert 0.25 <= metrics["protocol"]["chance"] <= 1.0 and metrics["protocol"]["positive_fraction"] == 1.0
    assert 0.0 <= metrics["pretext_accuracy"]["easy"] <= 1.0
    saved = torch.load(metrics["model"], weights_only=True)["state_dict"]
    assert (saved["video_bank.clips"] >= 0).sum() > 0  # the bank travels with the model
    # Downstream, its pretext task is instance discrimination against its measured chance, once (the
    # pair protocols' negative mixes would all give the same all-positive pairs).
    from avssl_core.stages.evaluate import run_evaluate

    tasks = run_evaluate(cfg, "cmac")["tasks"]
    assert set(tasks) == {"pretext_instance"}
    assert "instance discrimination" in tasks["pretext_instance"]["protocol"]
    chance = float(tasks["pretext_instance"]["protocol"].split("measured chance ")[1][:5])
    assert 0.25 <= chance <= 1.0
    assert 0.0 <= tasks["pretext_instance"]["pretrained"]["accuracy"] <= 1.0
