"""The paper evaluation protocol (evaluate.protocol=paper): presets resolve and name themselves, the
co-attention fine-tuning module holds the co-attention stack and zeroes audio when vision-only, AVTS's
conv_5 audio features, and run_evaluate end to end under the paper protocol for AVTS and co-attention."""

from __future__ import annotations

import json

import pytest
import torch

from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.eval.paper_protocols import PRESETS, resolve, table
from avssl_core.methods.registry import build_method


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", sorted(PRESETS))
def test_each_paper_preset_resolves_and_names_its_protocol(method):
    quick = load_config(None, []).evaluate
    assert resolve(quick, method).config is quick and resolve(quick, method).name == "quick"
    ec = load_config(None, ["evaluate.protocol=paper", "evaluate.paper_max.clips=4"]).evaluate
    r = resolve(ec, method)
    assert r.name == f"paper:{method}"
    assert r.config.retrieval.clips_per_video == 4 and "retrieval clips/video 10 -> 4" in r.caps
    assert r.config.audio.clips_per_file == 4  # 10 ESC-50 sub-clips (the synthetic export), capped
    assert r.audio_subclip_seconds == 2.0  # ESC-50: 2 s sub-clips whatever the pretraining window
    dcase = resolve(load_config(None, ["evaluate.protocol=paper", "evaluate.audio.dataset=dcase"]).evaluate, method)
    assert dcase.config.audio.clips_per_file == 60
    assert {row["method"] for row in table()} == set(PRESETS)


@pytest.mark.timeout(60)
def test_paper_values_of_cmac_and_coattention():
    ec = load_config(None, ["evaluate.protocol=paper"]).evaluate
    cmac = resolve(ec, "cmac")
    a = cmac.config.action
    assert (a.optimizer, a.lr, a.epochs, a.clips_per_video, a.test_clips) == ("sgd", 0.005, 12, 10, 10)
    assert cmac.colour_jitter > 0 and resolve(ec, "cmac").audio_layer == "embedding"
    co = resolve(ec, "coattention")
    assert (co.config.action.optimizer, co.config.action.lr, co.config.action.test_clips) == ("adam", 3e-5, 25)
    assert (co.action.iterations, co.action.lr_step, co.action.lr_gamma, co.action.dropout) == (30000, 10000, 0.5, 0.5)
    assert co.config.action.modality == "audio_visual"  # Sec. 4: the audio and visual outputs concatenated
    small = resolve(load_config(None, ["evaluate.protocol=paper", "evaluate.paper_max.iterations=6"]).evaluate,
                    "coattention")
    assert (small.action.iterations, small.action.lr_step) == (6, 2)  # halving keeps its share of the run
    assert resolve(ec, "avts").audio_layer == "conv5"
    with pytest.raises(ConfigError, match="evaluate.protocol"):
        resolve(load_config(None, ["evaluate.protocol=papers"]).evaluate, "avts")


def _coattention_batch(method, b=2):
    spec = method.pair_spec()
    hp = method.hparams
    video = torch.randn(b, 3, method.video_frames, hp["crop_size"], hp["crop_size"])
    audio = torch.randn(b, spec.audio_channels, method.num_audio_samples)
    return {"video": video, "audio": audio}


@pytest.mark.timeout(60)
def test_coattention_fine_tunes_its_coattention_stack_and_vision_only_zeroes_audio():
    torch.manual_seed(0)
    method = build_method("coattention", "tiny").eval()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    av = method.downstream_video_model("audio_visual")
    expected = (count(method.video_net) + count(method.audio_net) + count(method.coattention)
                + method.audio_position.numel() + method.visual_time_position.numel()
                + method.visual_space_position.numel())
    assert count(av) == expected  # everything but the pretext fusion FC
    assert count(av) > count(method.video_backbone()) + count(method.coattention) > count(method.video_backbone())
    batch = _coattention_batch(method)
    hidden = method.hparams["hidden"]
    with torch.no_grad():
        out = av(batch)
        assert out.shape == (2, 2 * hidden) and out[:, :hidden].abs().sum() > 0
        vision = method.downstream_video_model("video")
        v1 = vision(batch)
        v2 = vision({**batch, "audio": torch.zeros_like(batch["audio"])})
    assert torch.equal(v1[:, :hidden], torch.zeros(2, hidden))  # the audio stream is zero
    assert torch.allclose(v1, v2)  # and no sound reaches it
    assert count(vision) == expected - count(method.audio_net) - method.audio_position.numel()


@pytest.mark.timeout(60)
def test_avts_conv5_audio_features_shape():
    torch.manual_seed(0)
    method = build_method("avts", "tiny").eval()
    # One second of filterbank frames (10 ms steps), as the preprocess hands the audio network.
    audio = torch.randn(1, 1, 100, method.hparams["num_filters"])
    conv5 = method.downstream_audio_features("conv5")
    with torch.no_grad():
        feats = conv5(audio)
        embedding = method.downstream_audio_features("embedding")(audio)
    assert feats.shape == (1, method.hparams["audio_channels"][-1] * 4)
    assert embedding.shape == (1, method.hparams["embed_dim"])
    with pytest.raises(ValueError, match="no audio feature layer"):
        build_method("cmac", "tiny").downstream_audio_features("conv5")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("method", ["avts", "coattention"])
def test_run_evaluate_paper_protocol_end_to_end(tiny_clips, tmp_path, method):
    from test_eval_downstream import labelled_index, tiny_run_overrides

    from avssl_core.stages.evaluate import run_evaluate
    from avssl_core.stages.pretrain import run_pretrain

    index_csv = labelled_index(tiny_clips, tmp_path / "clips" / "index.csv", broken=False)
    cfg = load_config(None, [
        *tiny_run_overrides(index_csv, tmp_path),
        'evaluate.tasks=["action_recognition", "audio_probe", "retrieval"]', "evaluate.protocol=paper",
        "evaluate.paper_max.epochs=1", "evaluate.paper_max.iterations=3", "evaluate.paper_max.clips=2",
        "evaluate.audio.num_folds=3", "evaluate.batch_size=8", "evaluate.bootstrap=50", "evaluate.scratch=false",
    ])
    run_pretrain(cfg, method, "tiny")
    metrics = run_evaluate(cfg, method)
    on_disk = json.loads((tmp_path / "metrics" / f"{method}.json").read_text())
    assert on_disk["protocol"] == f"paper:{method}"
    tasks = ("action_recognition", "audio_probe", "retrieval_video") + (("retrieval_cross",) if method == "avts" else ())
    for task in tasks:
        assert on_disk["tasks"][task]["protocol"].startswith(f"paper:{method} [capped:")
    audio = on_disk["tasks"]["audio_probe"]["protocol"]
    action = on_disk["tasks"]["action_recognition"]["protocol"]
    details = json.loads((tmp_path / "evaluate" / method / "details.json").read_text())
    (split,) = details["action_recognition"]["per_split"].values()
    if method == "avts":
        assert "(conv5)" in audio and "2 equally spaced sub-clips/file of 2 s (2 window(s)" in audio
    else:
        assert "CoAttentionOutputs" in action and "dropout 0.5" in action and "3 iterations" in action
        assert split["pretrained"]["steps"] == 3
        assert split["pretrained"]["final_lr"] == pytest.approx(3e-5 * 0.5 ** 3)  # 10k of 30k: a halving every step of 3
    assert 0.0 <= metrics["tasks"]["action_recognition"]["pretrained"]["video@1"] <= 1.0


@pytest.mark.timeout(30)
def test_fine_tuning_colour_jitter_is_one_seeded_draw_per_clip():
    from avssl_core.eval.jitter import ColourJittered, jitter_frames

    video = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8)
    torch.manual_seed(3)
    a = jitter_frames(video, 0.4)
    torch.manual_seed(3)
    assert torch.equal(a, jitter_frames(video, 0.4)) and not torch.equal(a, video)
    still = torch.full((2, 4, 4, 3), 100, dtype=torch.uint8)  # identical frames stay identical to each other
    jittered = jitter_frames(still, 0.4)
    assert torch.equal(jittered[0], jittered[1])
    seen = ColourJittered(lambda sample: sample, 0.4)({"video": video, "audio": torch.zeros(1, 4)})
    assert seen["video"].dtype == torch.uint8 and seen["video"].shape == video.shape
    with pytest.raises(ValueError, match="strength"):
        ColourJittered(lambda s: s, 1.5)
