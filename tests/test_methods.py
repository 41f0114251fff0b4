"""Pretraining methods (AVTS, AVC): losses, features, encoders, preprocessing, learning, registry.

All on random tensors and small fake raw samples; the tiny presets only run forward/backward (the
paper presets are built and counted, and run through preprocessing, but never forward).
"""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch.utils.data import default_collate
from torchvision.models import resnet18
from torchvision.models.video import mc3_18
from torchvision.models.video.resnet import Conv3DNoTemporal, Conv3DSimple

from avssl_core.losses import contrastive_margin_loss, correspondence_bce, euclidean_distance
from avssl_core.methods.avc import AVC
from avssl_core.methods.avts import AVTS
from avssl_core.methods.registry import METHODS, build_method, parameter_counts
from avssl_core.models.audio import vgg_audio_encoder
from avssl_core.models.resnet2d import WidthResNet2d, resnet18_2d
from avssl_core.models.video import _WidthVideoResNet, mc3_video_encoder
from avssl_core.pretext.spec import NegativeMix, PairKind
from avssl_core.transforms.features import (
    ClipTransform,
    LogMelFilterbank,
    LogSpectrogram,
    estimate_feature_stats,
    select_fraction,
)

SR = 16000


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def fake_samples(n: int, *, frames: int, height: int = 64, width: int = 80, seconds: float = 1.0,
                 channels: int = 2, seed: int = 0) -> list[dict]:
    """Raw samples as the pair dataset yields them; odd items positives, even ones easy negatives.
    Each sample's audio has its own loudness so that statistics depend on which samples are used."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        audio = (torch.rand(channels, round(seconds * SR), generator=g) * 2 - 1) * (0.05 + 0.9 * i / n)
        out.append({"video": torch.randint(0, 256, (frames, height, width, 3), dtype=torch.uint8, generator=g),
                    "audio": audio, "label": i % 2, "kind": int(PairKind.POSITIVE if i % 2 else PairKind.EASY),
                    "index": i})
    return out


def tiny_batch(method, n: int = 8) -> dict[str, torch.Tensor]:
    frames = method.pair_spec().video_frames
    samples = fake_samples(n, frames=frames)
    method.fit_normalization(samples, fraction=1.0)
    return default_collate([method.preprocess()(s) for s in samples])


# -- losses ------------------------------------------------------------------------------------------


def test_euclidean_distance_matches_hand_computation():
    a = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    b = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    d = euclidean_distance(a, b)
    assert d[0].item() == pytest.approx(5.0, abs=1e-6)
    assert d[1].item() == pytest.approx(0.0, abs=1e-3)
    # Finite gradient at distance 0 (a perfectly matched positive).
    a.requires_grad_(True)
    euclidean_distance(a, b).sum().backward()
    assert torch.isfinite(a.grad).all()


def test_contrastive_margin_loss_is_avts_eq1():
    dist = torch.tensor([0.2, 1.5, 0.5, 0.3, 1.2])
    label = torch.tensor([1, 1, 0, 0, 0])
    margin = 0.99
    by_hand = (0.2 ** 2 + 1.5 ** 2 + (0.99 - 0.5) ** 2 + (0.99 - 0.3) ** 2 + 0.0) / 5
    assert contrastive_margin_loss(dist, label, margin).item() == pytest.approx(by_hand, rel=1e-6)


def test_correspondence_bce_matches_hand_computation():
    dist = torch.tensor([0.5, 3.0, 1.0])
    label = torch.tensor([1, 0, 0])
    scale, offset = 2.0, 1.5

    def p(d):
        return 1 / (1 + math.exp(-(offset - scale * d)))

    by_hand = -(math.log(p(0.5)) + math.log(1 - p(3.0)) + math.log(1 - p(1.0))) / 3
    assert correspondence_bce(dist, label, scale=scale, offset=offset).item() == pytest.approx(by_hand, rel=1e-6)
    # Larger distance -> lower correspondence probability -> higher loss for a positive.
    near = correspondence_bce(torch.tensor([0.1]), torch.tensor([1]))
    far = correspondence_bce(torch.tensor([2.0]), torch.tensor([1]))
    assert far > near


# -- audio features and normalisation -----------------------------------------------------------------


def test_avts_filterbank_follows_the_paper_settings():
    fb = LogMelFilterbank(sample_rate=SR)
    assert (fb.transform.n_fft, fb.transform.win_length, fb.transform.hop_length) == (1024, 320, 160)
    t = torch.arange(SR) / SR
    low = fb(torch.sin(2 * math.pi * 500 * t).unsqueeze(0))
    high = fb(torch.sin(2 * math.pi * 4000 * t).repeat(2, 1))  # stereo input is downmixed
    assert low.shape == high.shape == (1, 101, 40)  # 1 s at a 10 ms step, 40 filters
    assert torch.isfinite(low).all()
    assert low.mean(1).argmax() < high.mean(1).argmax()  # the tone's band rises with its pitch


def test_avc_spectrogram_shape():
    assert LogSpectrogram(sample_rate=SR)(torch.zeros(1, SR)).shape == (1, 257, 101)
    with pytest.raises(ValueError, match="exceeds n_fft"):
        LogSpectrogram(sample_rate=SR, n_fft=256, window_s=0.02)


def test_feature_stats_come_from_a_seeded_20_percent_sample():
    samples = fake_samples(20, frames=2, height=8, width=8)
    fb = LogMelFilterbank(sample_rate=SR)
    chosen = list(select_fraction(samples, fraction=0.2, seed=3))
    assert len(chosen) == 4
    assert [s["index"] for s in chosen] == [s["index"] for s in select_fraction(samples, fraction=0.2, seed=3)]
    assert [s["index"] for s in chosen] != [s["index"] for s in select_fraction(samples, fraction=0.2, seed=4)]

    stats = estimate_feature_stats(samples, audio_features=fb, fraction=0.2, seed=3)
    feats = torch.cat([fb(s["audio"])[0] for s in chosen])  # [4 * 101, 40]
    pixels = torch.cat([s["video"].reshape(-1, 3).float() / 255 for s in chosen])
    assert stats["num_samples"] == 4
    torch.testing.assert_close(stats["audio_mean"], feats.mean(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(stats["audio_std"], feats.std(0, unbiased=False), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(stats["video_mean"], pixels.mean(0), rtol=1e-4, atol=1e-4)
    # A plain iterable (no len) is thinned by a seeded coin instead.
    streamed = estimate_feature_stats(iter(samples), audio_features=fb, fraction=0.5, seed=0)
    assert 1 <= streamed["num_samples"] < 20


def test_feature_stats_skip_undecodable_pairs_and_say_when_none_decode():
    from avssl_core.errors import DataError
    from avssl_core.pretext.dataset import FailedSample

    samples = fake_samples(10, frames=2, height=8, width=8)
    fb = LogMelFilterbank(sample_rate=SR)
    broken = [FailedSample(index=i, path=f"clip_{i}.mp4", reason="moov atom not found") if i % 2 else s
              for i, s in enumerate(samples)]
    stats = estimate_feature_stats(broken, audio_features=fb, fraction=1.0, seed=0)
    assert stats["num_samples"] == 5 and stats["num_skipped"] == 5
    only_broken = [b for b in broken if not isinstance(b, dict)]
    with pytest.raises(DataError, match="none of the 5 sampled pairs could be decoded, e.g. clip_1.mp4"):
        estimate_feature_stats(only_broken, audio_features=fb, fraction=1.0, seed=0)


def test_fitted_statistics_are_buffers_and_travel_in_checkpoints():
    method = AVTS("tiny")
    with pytest.raises(RuntimeError, match="fit_normalization"):
        method.preprocess()
    method.fit_normalization(fake_samples(10, frames=8), seed=1)
    state = method.state_dict()
    assert {"normalizer.audio_mean", "normalizer.audio_std", "normalizer.fitted"} <= set(state)
    fresh = AVTS("tiny")
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.normalizer.audio_mean, method.normalizer.audio_mean)
    fresh.preprocess()  # fitted flag came with the checkpoint


# -- video transforms ---------------------------------------------------------------------------------


def test_eval_clip_transform_is_the_normalised_centre_crop():
    video = torch.randint(0, 256, (3, 64, 80, 3), dtype=torch.uint8)
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.3])
    out = ClipTransform(short_side=64, size=56, train=False, mean=mean, std=std)(video)
    centre = video[:, 4:60, 12:68].permute(3, 0, 1, 2).float() / 255
    torch.testing.assert_close(out, (centre - mean.view(3, 1, 1, 1)) / std.view(3, 1, 1, 1))


def test_train_clip_transform_crops_and_flips_all_frames_alike():
    # Every frame identical: after the transform they must still be identical (same crop, same flip).
    frame = torch.randint(0, 256, (1, 100, 120, 3), dtype=torch.uint8)
    t = ClipTransform(short_side=64, size=56, train=True, mean=torch.zeros(3), std=torch.ones(3))
    torch.manual_seed(0)
    outs = [t(frame.repeat(4, 1, 1, 1)) for _ in range(6)]
    for out in outs:
        assert out.shape == (3, 4, 56, 56)
        assert torch.equal(out[:, 0], out[:, 3])
    assert len({round(float(o.sum()), 3) for o in outs}) > 1  # crops differ between calls


# -- encoders -----------------------------------------------------------------------------------------


def test_encoders_match_torchvision_and_give_maps():
    paper_mc3 = mc3_video_encoder()
    assert _count(paper_mc3) == _count(mc3_18(weights=None)) - (512 * 400 + 400)  # minus the classifier
    # The narrow-width builder is the same architecture: at full width it counts the same parameters.
    assert _count(_WidthVideoResNet((64, 128, 256, 512), [Conv3DSimple] + [Conv3DNoTemporal] * 3)) == _count(paper_mc3)
    assert _count(WidthResNet2d((64, 128, 256, 512), 3, 128)) == _count(resnet18(weights=None, num_classes=128))

    tiny_mc3 = mc3_video_encoder(channels=(8, 8, 16, 16))
    clip = torch.randn(2, 3, 4, 32, 32)
    assert tiny_mc3(clip).shape == (2, 16)
    assert tiny_mc3(clip, return_map=True).shape == (2, 16, 4, 2, 2)  # MC3 keeps every time step
    vgg = vgg_audio_encoder(embed_dim=24, channels=(4, 8, 8, 8, 8), fc6_dim=16)
    fbank = torch.randn(2, 1, 101, 40)
    assert vgg(fbank).shape == (2, 24)
    assert vgg(fbank, return_map=True).shape == (2, 8, 50, 38)  # conv5, after the time-only pool2
    audio_resnet = resnet18_2d(in_channels=1, embed_dim=12, channels=(4, 8, 8, 8))
    assert audio_resnet(torch.randn(2, 1, 129, 101)).shape == (2, 12)
    assert audio_resnet.net.conv1.in_channels == 1


# -- methods ------------------------------------------------------------------------------------------


def test_avts_pair_spec_is_the_paper_curriculum():
    spec = AVTS("paper").pair_spec()
    assert (spec.video_frames, spec.video_fps, spec.audio_seconds) == (25, 25.0, 1.0)
    assert spec.positive_fraction == 0.5 and spec.hard_negative_gap_s == 0.5 and spec.audio_channels == 1
    assert spec.mix_at(49) == NegativeMix(easy=1.0)  # epochs 1-50 (1-based): easy only
    assert spec.mix_at(50) == NegativeMix(easy=0.75, hard=0.25)  # epochs 51-90
    assert AVTS("tiny").pair_spec().audio_seconds == 1.0


def test_avc_pair_spec_single_frame_easy_negatives():
    spec = AVC("paper").pair_spec()
    assert spec.video_frames == 1 and spec.audio_seconds == 1.0 and spec.positive_fraction == 0.5
    assert spec.mix_at(0) == spec.mix_at(10_000) == NegativeMix(easy=1.0)


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_avts_preprocess_shapes(preset):
    method = AVTS(preset)
    hp = method.hparams
    samples = fake_samples(2, frames=hp["video_frames"], height=90 if preset == "tiny" else 128,
                           width=120 if preset == "tiny" else 171)
    method.fit_normalization(samples, fraction=1.0)
    for train in (True, False):
        pp = pickle.loads(pickle.dumps(method.preprocess(train=train)))  # it must reach the workers
        out = pp(samples[1])
        assert out["video"].shape == (3, hp["video_frames"], hp["crop_size"], hp["crop_size"])
        assert out["video"].dtype == torch.float32 and out["audio"].dtype == torch.float32
        assert out["audio"].shape == (1, 101, 40)
        assert (out["label"], out["kind"], out["index"]) == (1, int(PairKind.POSITIVE), 1)


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_avc_preprocess_shapes(preset):
    method = AVC(preset)
    hp = method.hparams
    samples = fake_samples(2, frames=1, height=64 if preset == "tiny" else 256, width=80 if preset == "tiny" else 320)
    method.fit_normalization(samples, fraction=1.0)
    out = pickle.loads(pickle.dumps(method.preprocess()))(samples[0])
    assert out["video"].shape == (3, hp["frame_size"], hp["frame_size"])
    assert out["audio"].shape == (1, hp["fft_size"] // 2 + 1, 101)


def test_preprocess_refuses_audio_of_the_wrong_length():
    method = AVTS("tiny")
    samples = fake_samples(2, frames=8)
    method.fit_normalization(samples, fraction=1.0)
    pp = method.preprocess()
    pp({**samples[0], "audio": samples[0]["audio"][:, :-40]})  # window rounding: absorbed
    with pytest.raises(ValueError, match="expected 16000"):
        pp({**samples[0], "audio": torch.zeros(1, 48000)})  # 48 kHz where 16 kHz was asked for


def test_normalised_features_are_z_scores_on_the_fitted_data():
    method = AVTS("tiny")
    samples = fake_samples(6, frames=8)
    method.fit_normalization(samples, fraction=1.0)
    audio = torch.cat([method.preprocess(train=False)(s)["audio"][0] for s in samples])
    assert audio.mean(0).abs().max() < 1e-3
    assert (audio.std(0) - 1).abs().max() < 0.02


@pytest.mark.parametrize("method_cls", [AVTS, AVC])
def test_training_step_reaches_every_parameter(method_cls):
    torch.manual_seed(0)
    method = method_cls("tiny")
    out = method.training_step(tiny_batch(method))
    assert torch.isfinite(out.loss)
    assert {"loss", "acc"} <= set(out.metrics)
    assert out.correct.shape == out.kinds.shape == (8,)
    out.loss.backward()
    silent = [n for n, p in method.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


def test_avts_cross_entropy_phase_trains_the_head():
    torch.manual_seed(0)
    method = AVTS("tiny", finetune_ce_from_epoch=2)
    batch = tiny_batch(method)
    method.on_epoch_start(1)
    assert method.phase == "contrastive"
    method.on_epoch_start(2)
    assert method.phase == "finetune_ce"
    out = method.training_step(batch)
    out.loss.backward()
    silent = [n for n, p in method.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []
    assert AVTS("tiny").head is None  # a contrastive-only run has no idle parameters


@pytest.mark.parametrize("method_cls", [AVTS, AVC])
def test_a_few_optimiser_steps_reduce_the_loss(method_cls):
    torch.manual_seed(0)
    method = method_cls("tiny")
    batch = tiny_batch(method)
    spec = method.optim_spec()
    if spec.name == "sgd":
        opt = torch.optim.SGD(method.parameters(), lr=spec.lr, momentum=spec.momentum)
    else:
        opt = torch.optim.Adam(method.parameters(), lr=spec.lr)
    losses = []
    for _ in range(8):
        out = method.training_step(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_optim_specs_follow_the_papers():
    avts = AVTS("paper").optim_spec()
    assert (avts.name, avts.schedule, avts.plateau_patience) == ("sgd", "plateau", 5)
    avc = AVC("paper").optim_spec()
    assert (avc.name, avc.lr, avc.schedule) == ("adam", 1e-3, "constant")
    assert AVTS("tiny").uses_3d_convolutions() and not AVC("tiny").uses_3d_convolutions()


def test_paper_parameter_counts():
    avts = parameter_counts(build_method("avts", "paper"))
    # MC3-18 trunk (torchvision, no classifier) + the 512 -> 512 final FC.
    assert avts["video"] == _count(mc3_18(weights=None)) - (512 * 400 + 400) + 512 * 512 + 512
    assert avts["other"] == 0 and avts["total"] == avts["video"] + avts["audio"]
    avc = parameter_counts(build_method("avc", "paper"))
    assert avc["video"] == _count(resnet18(weights=None, num_classes=128))
    assert avc["audio"] == avc["video"] - 2 * 64 * 7 * 7  # the 1-channel stem
    assert avc["other"] == 2  # the distance scale and offset


# -- registry and identity ----------------------------------------------------------------------------


def test_registry_builds_and_refuses_unknown_names():
    assert set(METHODS) == {"avts", "avc", "coattention", "cmac"}
    assert isinstance(build_method("avc", "tiny", lr=0.01), AVC)
    with pytest.raises(ValueError, match=r"'nope'.*\['avc', 'avts', 'cmac', 'coattention'\]"):
        build_method("nope", "tiny")
    with pytest.raises(ValueError, match="unknown preset"):
        build_method("avts", "huge")
    with pytest.raises(ValueError, match="unknown hyper-parameters"):
        build_method("avts", "tiny", learning_rate=0.1)


def test_signatures_differ_across_presets_and_hparams():
    sigs = [AVTS("tiny").signature(), AVTS("paper").signature(), AVTS("tiny", margin=0.5).signature(),
            AVC("tiny").signature()]
    assert len({tuple(sorted(s.items())) for s in sigs}) == 4
    assert AVTS("tiny").signature() == AVTS("tiny").signature()


def test_avts_threshold_is_calibrated_on_training_distances_and_checkpointed():
    """tau (AVTS Sec. 2.2) defaults to the midpoint of the running mean positive and negative distances
    seen in training; a number in hparams wins; the running means are buffers, so they are checkpointed."""
    method = AVTS("tiny", threshold_momentum=0.5)
    assert method.threshold == pytest.approx(method.hparams["margin"] / 2)  # nothing seen yet
    method.train()
    label = torch.tensor([1, 1, 0, 0])
    method._track_distances(torch.tensor([1.0, 3.0, 6.0, 8.0]), label)  # first batch: the means themselves
    assert method.threshold == pytest.approx((2.0 + 7.0) / 2)
    method._track_distances(torch.tensor([0.0, 0.0, 9.0, 9.0]), label)  # lerp by 1 - momentum = 0.5
    assert method.distance_mean.tolist() == pytest.approx([1.0, 8.0])
    assert method.threshold == pytest.approx(4.5)
    restored = AVTS("tiny", threshold_momentum=0.5)
    restored.load_state_dict(method.state_dict())
    assert restored.threshold == pytest.approx(4.5)
    assert AVTS("tiny", threshold=0.3).threshold == pytest.approx(0.3)
