"""Pretraining details from the papers that change results (issue 17): AVTS's plateau schedule across
its curriculum switch, epochs as passes over the training clips, CMAC's colour jitter and 1 s window,
stereo channels swapped with horizontal flips."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import ColorJitter

from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.methods.avts import AVTS
from avssl_core.methods.cmac import CMAC
from avssl_core.methods.registry import METHODS, build_method
from avssl_core.pretext.spec import PairKind
from avssl_core.stages.pretrain import pairs_per_clip, prepare_pretraining
from avssl_core.transforms.features import ClipTransform

pytestmark = pytest.mark.timeout(120)


def test_avts_restarts_the_plateau_tracking_at_its_curriculum_switch():
    assert AVTS("paper").optim_spec().plateau_restart_epochs == (50,)
    assert AVTS("tiny").optim_spec().plateau_restart_epochs == (8,)
    assert AVTS("tiny", hard_from_epoch=None).optim_spec().plateau_restart_epochs == ()
    assert AVTS("tiny", finetune_ce_from_epoch=10).optim_spec().plateau_restart_epochs == (8, 10)


# -- colour jitter (CMAC Sec. 4.5) ---------------------------------------------------------------------


def _clip(**kw) -> ClipTransform:
    # Unit statistics: the output is the [0, 1] pixels, [3, T, S, S]. Short side = crop: only the flip is random.
    return ClipTransform(short_side=16, size=16, train=True, mean=torch.zeros(3), std=torch.ones(3),
                         scales=(1.0,), **kw)


def _video(frames: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (frames, 16, 20, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


JITTER = (0.4, 0.4, 0.4, 0.1)


def test_colour_jitter_is_torchvisions_drawn_after_the_crop_from_the_samples_rng():
    video = _video()
    for seed in range(6):
        torch.manual_seed(seed)
        plain, _ = _clip().apply(video)  # the crop and flip draws, as without jitter
        applied = bool(torch.rand(()).item() < 0.8)
        frames = plain.permute(1, 0, 2, 3)  # [T, 3, H, W]: torchvision treats T as a batch
        expected = ColorJitter(*JITTER)(frames) if applied else frames
        torch.manual_seed(seed)
        got, _ = _clip(color_jitter=JITTER, color_jitter_p=0.8).apply(video)
        assert torch.equal(got, expected.permute(1, 0, 2, 3).contiguous()), seed
        torch.manual_seed(seed)
        assert torch.equal(_clip(color_jitter=JITTER, color_jitter_p=0.8).apply(video)[0], got)  # exact per seed
    torch.manual_seed(0)
    a = _clip(color_jitter=JITTER).apply(video)[0]
    torch.manual_seed(1)
    b = _clip(color_jitter=JITTER).apply(video)[0]
    assert not torch.equal(a, b)


def test_colour_jitter_is_the_same_for_every_frame_of_a_clip_and_off_in_evaluation():
    still = _video(frames=1).expand(4, -1, -1, -1).contiguous()  # four identical frames
    for seed in range(4):
        torch.manual_seed(seed)
        out, _ = _clip(color_jitter=JITTER).apply(still)
        for t in range(1, 4):
            assert torch.equal(out[:, t], out[:, 0]), (seed, t)
    evaluation = ClipTransform(short_side=16, size=16, train=False, mean=torch.zeros(3), std=torch.ones(3),
                               color_jitter=JITTER)
    plain = ClipTransform(short_side=16, size=16, train=False, mean=torch.zeros(3), std=torch.ones(3))
    assert torch.equal(evaluation(still), plain(still))
    with pytest.raises(ValueError, match="brightness, contrast, saturation, hue"):
        _clip(color_jitter=(0.4, 0.4))


def test_cmac_paper_preset_jitters_and_both_modalities_get_one_second():
    for preset, hp in CMAC.PRESETS.items():
        assert hp["video_frames"] / hp["video_fps"] == hp["audio_seconds"] == 1.0, preset
    assert CMAC.PRESETS["paper"]["color_jitter"] == [0.4, 0.4, 0.4, 0.1]
    assert CMAC.PRESETS["tiny"]["color_jitter"] is None  # the quickstart's numbers stay as measured
    method = CMAC("tiny", color_jitter=list(JITTER), color_jitter_p=1.0)
    method.normalizer.fitted.fill_(True)
    clip = method.preprocess(train=True).preprocess.clip
    assert clip.jitter is not None and clip.jitter_p == 1.0


# -- stereo flips (co-attention) -----------------------------------------------------------------------


def test_a_flipped_coattention_sample_hears_its_stereo_channels_swapped():
    torch.manual_seed(0)
    method = build_method("coattention", "tiny")
    hp = method.hparams
    assert hp["audio_channels"] == 2
    preprocess = method.preprocess(train=True)
    frames = method.video_frames
    video = torch.randint(0, 256, (frames, hp["short_side"], hp["short_side"] + 8, 3), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(1))
    n = method.num_audio_samples
    audio = torch.stack([torch.linspace(-1, 1, n), torch.linspace(0, 0.5, n)])  # left and right differ
    sample = {"video": video, "audio": audio, "label": 1, "kind": int(PairKind.POSITIVE), "index": 0}
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        _, flipped = preprocess.clip.apply(video)
        torch.manual_seed(seed)
        out = preprocess(sample)
        assert torch.equal(out["audio"], audio.flip(0) if flipped else audio), seed
        seen.add(flipped)
    assert seen == {True, False}
    # Evaluation never flips, so never swaps.
    assert torch.equal(method.preprocess(train=False)(sample)["audio"], audio)


# -- epochs are passes over the training clips for paper presets ------------------------------------------


def test_paper_presets_draw_one_pair_per_clip_per_epoch_and_tiny_presets_four():
    cfg = load_config(None, [])
    assert cfg.pretrain.pairs_per_clip is None  # params.yaml leaves it to the preset
    for name, cls in METHODS.items():
        for preset, hp in cls.PRESETS.items():
            assert hp["pairs_per_clip"] == {"tiny": 4, "paper": 1}[preset], (name, preset)
    assert pairs_per_clip(cfg, AVTS("paper")) == 1
    assert pairs_per_clip(cfg, AVTS("tiny")) == 4  # the quickstart's budget, unchanged
    assert pairs_per_clip(load_config(None, ["pretrain.pairs_per_clip=2"]), AVTS("paper")) == 2
    assert pairs_per_clip(cfg, AVTS("paper", pairs_per_clip=3)) == 3  # pretrain.hparams.avts.pairs_per_clip
    with pytest.raises(ConfigError, match="pairs_per_clip"):
        pairs_per_clip(load_config(None, ["pretrain.pairs_per_clip=0"]), AVTS("tiny"))


def test_an_epoch_of_the_training_set_holds_the_presets_pairs_per_clip(tiny_clips, tmp_path):
    cfg = load_config(None, [f"paths.clips_dir={tiny_clips.parent}", f"pretrain.out_dir={tmp_path / 'pretrain'}",
                             "pretrain.val_split=train", "pretrain.val_pairs=8"])
    run = prepare_pretraining(cfg, "avts", "tiny")
    assert len(run.train_set) == 4 * run.num_clips
