"""The co-attention synchronisation network (Cheng et al. 2020): encoders, the query/key roles of the
attention blocks, vision-only mode, shifted negatives, learning, localisation maps, parameter count.

Everything runs on random tensors and a synthetic clip index (no decoding); the paper preset's encoders
run on their real audio input and on a reduced clip (its full-size stride-1 stem would take seconds)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avssl_core.methods.coattention import CoAttention, _resample_time
from avssl_core.methods.registry import METHODS, build_method, parameter_counts
from avssl_core.models.attention_blocks import (
    AudioGuidedAttention,
    CoAttentionLayer,
    CrossModalAttention,
    VisualGuidedAttention,
)
from avssl_core.models.coattention_encoders import Clip3DEncoder, RawWaveformEncoder
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.sampling import PairSampler
from avssl_core.pretext.spec import PairKind
from avssl_core.train.optim import build_optimizer


def random_batch(method: CoAttention, n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """A preprocessed batch of the method's shapes: half positives, half shifted negatives."""
    g = torch.Generator().manual_seed(seed)
    hp = method.hparams
    return {
        "video": torch.randn(n, 3, method.video_frames, hp["crop_size"], hp["crop_size"], generator=g),
        "audio": torch.randn(n, hp["audio_channels"], method.num_audio_samples, generator=g) * 0.1,
        "label": torch.arange(n) % 2,
        "kind": torch.where(torch.arange(n) % 2 == 1, int(PairKind.POSITIVE), int(PairKind.SHIFTED)),
    }


def tiny(**overrides) -> CoAttention:
    torch.manual_seed(0)
    return build_method("coattention", "tiny", **overrides)


# -- encoders ------------------------------------------------------------------------------------------


def test_tiny_encoder_shapes():
    m = tiny()
    batch = random_batch(m, 2)
    assert m.audio_net(batch["audio"]).shape == (2, m.audio_tokens, 64)
    assert m.video_net(batch["video"]).shape == (2, *m.grid, 64)
    # 10 time steps of 0.2 s in both streams over 2 s, so the fusion sees them aligned without resampling.
    assert m.grid == (10, 4, 4) and m.audio_tokens == 10
    assert m.video_backbone()(batch["video"]).shape == (2, 64)
    assert m.audio_backbone()(batch["audio"]).shape == (2, 64)


def test_paper_encoder_shapes():
    m = build_method("coattention", "paper")
    assert m.video_frames == 105 and m.num_audio_samples == 88200  # 4.2 s at 25 fps and 21 kHz
    # 88200 samples through the paper's strides (4, 4, 4, 4, 4, 4, 3, 1): 8 audio steps of 0.53 s.
    audio = m.audio_net(torch.randn(1, 2, 88200))
    assert audio.shape == (1, 8, 512) == (1, m.audio_tokens, 512)
    # 105 x 224 x 224 frames: stride-1 stem, spatial-stride-2 pooling, four stride-2 convolutions.
    assert m.grid == (7, 7, 7)
    # The grid formula agrees with a real forward pass (on a reduced clip: the full one is ~250 GFLOP).
    enc: Clip3DEncoder = m.video_net
    assert enc(torch.randn(1, 3, 9, 40, 48)).shape == (1, *enc.token_grid(9, 40, 48), 512)
    # The paper's layers exactly: conv 64 5x7x7 s1, pool 1x3x3 s1x2x2, four conv 64 3x3x3 s2, FC 512.
    convs = [mod for mod in enc.modules() if isinstance(mod, torch.nn.Conv3d)]
    assert [c.kernel_size for c in convs] == [(5, 7, 7)] + [(3, 3, 3)] * 4
    assert [c.stride for c in convs] == [(1, 1, 1)] + [(2, 2, 2)] * 4
    assert all(c.out_channels == 64 for c in convs)
    convs = [mod for mod in m.audio_net.modules() if isinstance(mod, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (2, 64, 65, 4), (64, 128, 15, 4), (128, 128, 15, 4), (128, 256, 15, 4), (256, 256, 15, 4), (256, 128, 3, 1)]


def test_encoders_reject_wrong_ranks():
    with pytest.raises(ValueError, match="waveform must be"):
        RawWaveformEncoder(dim=8)(torch.zeros(2, 100))
    with pytest.raises(ValueError, match="clip must be"):
        Clip3DEncoder(dim=8, width=4)(torch.zeros(3, 4, 16, 16))


# -- attention roles --------------------------------------------------------------------------------------


def _pair(seed: int = 0, na: int = 3, nv: int = 6, dim: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, na, dim, generator=g), torch.randn(2, nv, dim, generator=g)


def test_aga_audio_queries_attend_over_visual_keys():
    torch.manual_seed(0)
    block = AudioGuidedAttention(16, 2).eval()
    audio, visual = _pair()
    out, weights = block(audio, visual, return_attention=True)
    assert out.shape == audio.shape  # one output row per audio query
    assert weights.shape == (2, 2, 3, 6)  # [B, heads, audio queries, visual keys]
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 3))
    other_visual = visual.clone()
    other_visual[:, 2] += 1.0
    assert not torch.allclose(block(audio, other_visual)[0], out)  # visual values are what it reads


def test_vga_visual_queries_attend_over_audio_keys():
    torch.manual_seed(0)
    block = VisualGuidedAttention(16, 2).eval()
    audio, visual = _pair()
    out, weights = block(visual, audio, return_attention=True)
    assert out.shape == visual.shape
    assert weights.shape == (2, 2, 6, 3)  # [B, heads, visual queries, audio keys]
    other_audio = audio.clone()
    other_audio[:, 1] += 1.0
    assert not torch.allclose(block(visual, other_audio)[0], out)


def test_cma_runs_both_guided_blocks():
    torch.manual_seed(0)
    block = CrossModalAttention(16, 2).eval()
    audio, visual = _pair()
    a, v, a_weights, v_weights = block(audio, visual, return_attention=True)
    assert a.shape == audio.shape and v.shape == visual.shape
    assert a_weights.shape == (2, 2, 3, 6) and v_weights.shape == (2, 2, 6, 3)


@pytest.mark.parametrize(("kind", "audio_reads_visual", "visual_reads_audio"), [
    ("cma", True, True), ("aga", True, False), ("vga", False, True), ("self", False, False)])
def test_layer_streams_depend_on_the_other_modality_only_where_guided(kind, audio_reads_visual, visual_reads_audio):
    torch.manual_seed(0)
    layer = CoAttentionLayer(kind, 16, 2).eval()
    audio, visual = _pair()
    a, v, _ = layer(audio, visual)
    a2, _, _ = layer(audio, visual + torch.randn_like(visual))
    _, v2, _ = layer(audio + torch.randn_like(audio), visual)
    assert (not torch.allclose(a, a2)) == audio_reads_visual
    assert (not torch.allclose(v, v2)) == visual_reads_audio


def test_every_attention_kind_has_the_same_parameter_count():
    counts = {k: parameter_counts(tiny(attention=k))["total"] for k in ("cma", "aga", "vga", "self")}
    assert len(set(counts.values())) == 1, counts


def test_unknown_attention_kind_is_an_error():
    with pytest.raises(ValueError, match="attention must be one of"):
        tiny(attention="both")


# -- vision-only -----------------------------------------------------------------------------------------


def test_vision_only_ignores_audio_entirely():
    m = tiny(vision_only=True).eval()
    batch = random_batch(m, 4)
    other = dict(batch, audio=torch.randn_like(batch["audio"]) * 5)
    silent = dict(batch, audio=torch.zeros_like(batch["audio"]))
    logits = m.sync_logits(batch)
    assert torch.equal(logits, m.sync_logits(other)) and torch.equal(logits, m.sync_logits(silent))
    # while the full model does listen
    full = tiny().eval()
    assert not torch.allclose(full.sync_logits(batch), full.sync_logits(other))
    # the vision-only model has the full model's weights (a pretrained checkpoint loads as is)
    assert m.state_dict().keys() == full.state_dict().keys()
    with pytest.raises(ValueError, match="audio-guided attention"):
        m.localization_maps(batch)


# -- pairs ------------------------------------------------------------------------------------------------


def synthetic_index(videos: int = 3, clips: int = 3, seconds: float = 10.0, fps: float = 25.0,
                    sr: int = 16000) -> ClipIndex:
    n = videos * clips
    group = np.repeat(np.arange(videos), clips)
    start = np.tile(np.arange(clips) * seconds, videos)
    return ClipIndex(
        source="synthetic", clip_id=np.array([f"v{g}_c{i}" for g, i in zip(group, np.tile(np.arange(clips), videos), strict=True)]),
        video_id=np.array([f"v{g}" for g in group]), label=np.array(["x"] * n), split=np.array(["train"] * n),
        video_path=np.array(["/nonexistent.mp4"] * n), audio_path=np.array(["/nonexistent.wav"] * n),
        start_s=start.astype(np.float64), end_s=(start + seconds).astype(np.float64),
        fps=np.full(n, fps), num_frames=np.full(n, round(seconds * fps), dtype=np.int64),
        width=np.full(n, 128, dtype=np.int64), height=np.full(n, 128, dtype=np.int64),
        sample_rate=np.full(n, sr, dtype=np.int64), audio_channels=np.full(n, 2, dtype=np.int64),
        num_samples=np.full(n, round(seconds * sr), dtype=np.int64), video_group=group.astype(np.int64),
        group_begin=np.arange(0, n + 1, clips, dtype=np.int64))


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_negatives_are_the_same_video_shifted_by_2_to_5_8_seconds(preset):
    m = build_method("coattention", preset)
    spec = m.pair_spec()
    assert spec.audio_channels == 2 and spec.audio_sample_rate == m.hparams["sample_rate"]
    assert spec.audio_seconds == m.hparams["clip_seconds"] and spec.positive_fraction == 0.5
    index = synthetic_index()
    sampler = PairSampler(index, spec, seed=3, samples_per_epoch=90)
    recipes = [sampler.recipe(e, i) for e in range(2) for i in range(90)]
    kinds = {r.kind for r in recipes}
    assert kinds == {PairKind.POSITIVE, PairKind.SHIFTED}  # no other negative kind, no fallback here
    for r in recipes:
        video = sampler.video_interval_s(r)
        audio = sampler.audio_interval_s(r)
        assert index.video_group[r.audio_row] == index.video_group[r.video_row]  # the same video
        offset = audio[0] - sampler.positive_audio_start_s(r)
        if r.kind == PairKind.SHIFTED:
            assert r.label == 0 and 2.0 - 1e-3 <= abs(offset) <= 5.8 + 1e-3
            assert offset == pytest.approx(r.shift_s, abs=1.0 / 16000)
        else:
            assert r.label == 1 and abs(offset) < 1.0 / 16000
            assert (audio[0] + audio[1]) / 2 == pytest.approx((video[0] + video[1]) / 2, abs=1e-3)
    assert CoAttention.pretext_protocols == ("shifted", "easy")


def test_preprocess_keeps_raw_stereo_and_rejects_mono():
    m = tiny()
    hp = m.hparams
    raw = {"video": torch.randint(0, 256, (m.video_frames, 128, 128, 3), dtype=torch.uint8),
           "audio": torch.rand(2, m.num_audio_samples + 3) - 0.5, "label": 1, "kind": 0, "index": 5, "clip": 2}
    prep = pickle.loads(pickle.dumps(m.preprocess(train=True)))  # runs in DataLoader workers
    torch.manual_seed(0)
    _, flipped = prep.clip.apply(raw["video"])
    torch.manual_seed(0)
    out = prep(raw)
    assert out["video"].shape == (3, m.video_frames, hp["crop_size"], hp["crop_size"])
    assert out["audio"].shape == (2, m.num_audio_samples)
    # No features, no norm; a horizontally flipped clip has its stereo channels swapped (issue 17 row 8).
    expected = raw["audio"][:, :m.num_audio_samples]
    torch.testing.assert_close(out["audio"], expected.flip(0) if flipped else expected)
    assert (out["label"], out["index"], out["clip"]) == (1, 5, 2)
    with pytest.raises(ValueError, match="stereo"):
        prep(dict(raw, audio=torch.zeros(1, m.num_audio_samples)))
    with pytest.raises(ValueError, match="expected"):
        prep(dict(raw, audio=torch.zeros(2, m.num_audio_samples // 2)))


# -- learning ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cma", "aga", "vga"])
def test_gradients_reach_every_parameter(kind):
    m = tiny(attention=kind)
    m.training_step(random_batch(m, 4)).loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing


def test_loss_is_binary_cross_entropy_of_the_sync_probability():
    m = tiny().eval()
    batch = random_batch(m, 6)
    out = m.training_step(batch)
    p = torch.sigmoid(m.sync_logits(batch))
    expected = -(batch["label"] * p.log() + (1 - batch["label"]) * (1 - p).log()).mean()
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy(p, batch["label"].float()))
    assert torch.equal(out.correct, ((p > 0.5).long() == batch["label"]).long())
    assert torch.equal(out.kinds, batch["kind"])


def test_a_few_optimizer_steps_reduce_the_loss():
    m = tiny()
    spec = m.optim_spec()
    assert (spec.name, spec.lr, spec.momentum, spec.weight_decay) == ("sgd", 0.01, 0.9, 1e-5)
    opt = build_optimizer(m.parameters(), spec)
    batch = random_batch(m, 4, seed=1)
    losses = []
    for _ in range(6):
        out = m.training_step(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    assert losses[-1] < losses[0] - 0.05, losses


def test_warmup_epochs_run_at_the_low_frame_rate_with_the_same_weights():
    m = tiny()
    m.on_epoch_start(0)
    assert m.low_frame_rate and m.warmup_frame_indices(20) == list(range(0, 20, 2))  # 10 fps -> 5 fps
    batch = random_batch(m, 2)
    low = m.sync_logits(batch)
    m.on_epoch_start(m.hparams["warmup_epochs"])
    assert not m.low_frame_rate
    assert low.shape == m.sync_logits(batch).shape == (2,)
    paper = build_method("coattention", "paper")
    assert len(paper.warmup_frame_indices(105)) == 31  # 4.2 s at 7.5 Hz
    assert paper.warmup_frame_indices(105)[:4] == [0, 3, 6, 10]  # by timestamp: k * 25 / 7.5


def test_fusion_sees_audio_and_visual_time_steps_aligned():
    m = tiny()
    assert m.grid[0] == m.audio_tokens == 10  # tiny: 0.2 s per step in both streams, nothing resampled
    seen = []
    m.fusion.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    batch = random_batch(m, 2)
    for epoch in (0, m.hparams["warmup_epochs"]):  # 5 visual steps in the warm-up, then 10
        m.on_epoch_start(epoch)
        m.sync_logits(batch)
    assert seen == [(2, 2 * m.audio_tokens * 64)] * 2
    # Paper preset: its 7 visual steps are resampled to the 8 audio steps, one FC input block per moment.
    paper = build_method("coattention", "paper")
    assert (paper.grid[0], paper.audio_tokens) == (7, 8)
    assert paper.fusion[0].in_features == 2 * 8 * 512
    steps = _resample_time(torch.linspace(0, 1, 7).view(1, 7, 1), 8)[0, :, 0]
    assert torch.all(steps[1:] > steps[:-1])  # time order survives the resampling
    assert steps[0] == 0 and steps[-1] == 1


# -- evaluation interface ---------------------------------------------------------------------------------


def test_localization_maps_one_non_negative_map_per_head():
    m = tiny(depth=2).eval()
    maps = m.localization_maps(random_batch(m, 3))
    assert maps.shape == (3, m.hparams["heads"], *m.grid[1:]) == (3, 4, 4, 4)
    assert torch.all(maps >= 0)
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(3, m.hparams["heads"]))
    with pytest.raises(ValueError, match="audio-guided"):
        tiny(attention="vga").localization_maps(random_batch(m, 1))


def test_paper_preset_parameter_count_near_the_papers_15m():
    assert METHODS["coattention"] is CoAttention
    counts = parameter_counts(build_method("coattention", "paper"))
    print(f"co-attention paper preset parameters: {counts}")
    assert 14e6 <= counts["total"] <= 17e6  # the paper: 15M (Table 1); ours 16.2M, see PRESETS["paper"]
    assert counts["total"] == 16_232_257
