"""Co-attention audio-visual synchronisation (Cheng, Wang, Pan, Feng & Zhang, "Look, Listen, and Attend",
ACM MM 2020).

A raw-waveform audio encoder and a 3-D convolutional visual encoder turn a stereo audio window and the
frames of the same 4.2 s into token sequences; transformer blocks in which one modality's tokens query
the other's (AGA, VGA, or both: CMA), each followed by self-attention and cascaded ``depth`` times,
refine them; the two outputs are flattened, concatenated and fused by FC layers into the probability
that audio and video are in sync, trained with binary cross-entropy (Sec. 3, Fig. 2). Negatives are the
same video's audio shifted by 2.0-5.8 s (Sec. 3.2, after Multisensory), half of the pairs.

How this implementation reads what the paper leaves open (all documented choices):
- Tokens. The paper applies attention to "features" F_a, F_v without saying over what. Here audio tokens
  are the time steps of the audio encoder's last feature map and visual tokens the spatio-temporal
  positions (T' x h x w) of the visual encoder's last feature map, each mapped by the encoders' FC to the
  hidden size: sound localisation (Sec. 4) needs attention over image regions. Learned position
  embeddings (audio: time; video: time + space, factorised) are added, since attention alone is blind to
  order and synchronisation is about order.
- Query roles. AGA: audio tokens query the visual tokens (one output row per audio time step, holding
  the visual content that goes with that sound); VGA: visual tokens query the audio; CMA: both in
  parallel (Fig. 3). Each is followed by an SA block per stream; see models/attention_blocks.py.
- Fusion. "Flattened, concatenated and passed to FC fusion layers": the audio-query stream is flattened
  as is ([Na x D]); the visual-query stream is first averaged over space per time step ([T' x D]),
  since flattening every spatial token (392 x 512 in the paper preset) would put ~100M parameters in
  one FC, far from the paper's 15M total, and then resampled in time to the Na audio steps, so that
  position k of both flattened streams covers the same moment and the FC can compare them (the paper
  preset has T' = 7 visual and Na = 8 audio steps; tiny has 10 of each, no resampling). The fusion is
  FC(fusion_dim) -> ReLU -> FC(1) on the [2 x Na x D] concatenation.
- Warm-up (Sec. 3.2: 7.5 Hz and batch 64 for the first 100k iterations). Frames are always decoded at
  the full rate; during the first ``warmup_epochs`` epochs the model keeps only the frames a 7.5 Hz
  stream would show (``on_epoch_start`` sets this from the epoch, so resume stays exact). The visual
  time embedding is interpolated to the shorter token grid and the visual stream is resampled in time to
  the audio steps before fusion as at the full rate, so both rates share every weight. Deviation: the batch size stays
  the same during warm-up (the trainer has one batch size per run).
- Vision-only (Table 2): the audio stream's activations are zero and the visual stream's guided block
  runs as self-attention on the visual tokens (its queries become F_v), with the same weights; the
  output then does not depend on the audio at all.
- Paper preset parameters: see PRESETS["paper"] (about 16.2M against the paper's 15M, Table 1).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avssl_core.methods.base import OptimSpec, PretrainMethod, StepOutput
from avssl_core.models.attention_blocks import ATTENTION_KINDS, CoAttentionStack
from avssl_core.models.coattention_encoders import (
    AUDIO_STRIDES,
    AUDIO_WIDTHS,
    VISUAL_STEM_KERNEL,
    VISUAL_STEM_STRIDE,
    VISUAL_STRIDES,
    VISUAL_WIDTH,
    Clip3DEncoder,
    PooledEncoder,
    RawWaveformEncoder,
)
from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairSpec
from avssl_core.transforms.features import (
    HOST_AUGMENT,
    HOST_FRAMES,
    HOST_WAVEFORM,
    KINETICS_MEAN,
    KINETICS_STD,
    ClipTransform,
    SplitPairTransform,
    fit_length,
    pair_identity,
    passed_through,
)

_COMMON: dict[str, Any] = {
    "attention": "cma",  # cma | aga | vga | self (Table 1 compares the first three)
    "vision_only": False,  # Table 2's "vision only": audio zeroed, co-attention -> self-attention
    "depth": 1,  # L; Table 3: L=1 is best
    "ffn_dim": None,  # None: 4 x hidden (Vaswani et al.; the paper gives no size)
    "dropout": 0.0,  # not stated for pretraining
    "positive_fraction": 0.5,  # Sec. 3.2 (after Multisensory): half of the pairs are shifted
    "shift_range_s": [2.0, 5.8],  # Sec. 3.2: audio shifted by 2.0 to 5.8 s in negatives
    "audio_channels": 2,  # Sec. 3.2: stereo (the synthetic world pans its sources)
    "optimizer": "sgd",  # Sec. 3.2: SGD, momentum 0.9, learning rate 0.01, weight decay 1e-5
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 1e-5,
    "warmup_fps": 7.5,  # Sec. 3.2: the warm-up runs at 7.5 Hz
}


class CoAttention(PretrainMethod):
    name = "coattention"
    # The paper's negatives (audio shifted within the same video) first, then other videos' audio.
    pretext_protocols = ("shifted", "easy")
    PRESETS = {
        # 2 s windows at 10 fps and 8 kHz, 32 px crops from 36, hidden 64: trains in about two minutes on
        # 2 CPU cores on the quickstart data. 8 kHz keeps the synthetic world's sounds (their pitches and
        # resonances lie below 4 kHz, and onsets survive) at half the samples of the clips' 16 kHz. Shorter
        # windows and smaller frames than the paper's: the frames decoded and convolved per pair dominate
        # the CPU time, and what gives synchrony away (frame-to-frame change against the loudness of the
        # sound) survives 32 px. The encoders stride less than the paper's so that both streams have 10
        # time steps of 0.2 s: the visual grid is 10 x 4 x 4 and the audio strides multiply to 1600
        # samples, so the fusion FC compares each moment's sound with the same moment's picture (with
        # 5 visual against 11 audio steps, and 56 px crops, this preset stayed at chance).
        "tiny": {
            **_COMMON,
            "clip_seconds": 2.0,
            "video_fps": 10.0,
            "warmup_fps": 5.0,  # half the full rate, as 7.5 Hz is about a quarter of the paper's 29.97
            "warmup_epochs": 1,
            "sample_rate": 8000,
            "short_side": 36,
            "crop_size": 32,
            "crop_scales": [1.0, 0.875],
            "hidden": 64,
            "heads": 4,
            "fusion_dim": 64,
            "visual_width": 16,
            "visual_stem_kernel": [3, 5, 5],
            "visual_stem_stride": [1, 2, 2],
            "visual_strides": [[1, 1, 1], [2, 2, 2], [1, 1, 1], [1, 1, 1]],
            "audio_widths": [16, 32, 64, 32],
            "audio_strides": [4, 4, 5, 2, 1, 2, 5, 1],
            "lr": 0.01,
            # 12 epochs: the loss leaves 0.69 only after ~120 steps; at 8 epochs the held-out accuracy
            # was 72-73% in some runs and 60% in another, at 12 it was 75% shifted / 80% easy.
            "epochs": 12,
            "pairs_per_clip": 4,  # an epoch is 4 passes over the clips (the quickstart's measured budget)
            "batch_size": 16,
        },
        # Sec. 3.1-3.2: 4.2 s windows, frames resized to 256 and randomly cropped to 224, 21 kHz stereo
        # waveform, hidden 512, 8 heads and depth 1 (Table 3's best). Full rate: the clips' 25 fps (the
        # segment stage's rate; the paper's videos run at 29.97 Hz). Batch 32 (Sec. 3.2). Epochs: the
        # paper's 750k iterations, of which the first 100k at batch 64, are 27.2M pairs: 113 passes over
        # its 240K clips, the first 27 (6.4M pairs) at 7.5 Hz.
        # Parameters (registry.parameter_counts): 16.23M in all (video 0.52M, audio 2.02M, co-attention
        # 12.6M, fusion 1.05M, position embeddings 0.03M) against the paper's 15M (Table 1); the paper
        # gives neither the feed-forward nor the fusion widths.
        "paper": {
            **_COMMON,
            "clip_seconds": 4.2,
            "video_fps": 25.0,
            "warmup_epochs": 27,
            "sample_rate": 21000,
            "short_side": 256,
            "crop_size": 224,
            "crop_scales": [0.875],  # 224 of 256: the paper's random crop, no rescaling
            "hidden": 512,
            "heads": 8,
            "fusion_dim": 128,
            "visual_width": VISUAL_WIDTH,
            "visual_stem_kernel": list(VISUAL_STEM_KERNEL),
            "visual_stem_stride": list(VISUAL_STEM_STRIDE),
            "visual_strides": [list(s) for s in VISUAL_STRIDES],
            "audio_widths": list(AUDIO_WIDTHS),
            "audio_strides": list(AUDIO_STRIDES),
            "epochs": 113,
            "pairs_per_clip": 1,  # an epoch is one pass over the clips: 113 epochs are the 113 passes above
            "batch_size": 32,
        },
    }

    def __init__(self, preset: str, **overrides: Any) -> None:
        super().__init__(preset, **overrides)
        hp = self.hparams
        if hp["attention"] not in ATTENTION_KINDS:
            raise ValueError(f"coattention: attention must be one of {ATTENTION_KINDS}, got {hp['attention']!r}")
        if not 0 < hp["warmup_fps"] <= hp["video_fps"]:
            raise ValueError(f"coattention: warmup_fps {hp['warmup_fps']} must be in (0, video_fps={hp['video_fps']}]")
        if hp["audio_channels"] not in (1, 2):
            raise ValueError(f"coattention: audio_channels must be 1 or 2, got {hp['audio_channels']}")
        dim = hp["hidden"]
        self.audio_net = RawWaveformEncoder(dim=dim, in_channels=hp["audio_channels"], widths=hp["audio_widths"],
                                            strides=hp["audio_strides"])
        self.video_net = Clip3DEncoder(dim=dim, width=hp["visual_width"], stem_kernel=hp["visual_stem_kernel"],
                                       stem_stride=hp["visual_stem_stride"], strides=hp["visual_strides"])
        self.audio_tokens = self.audio_net.num_tokens(self.num_audio_samples)
        self.grid = self.video_net.token_grid(self.video_frames, hp["crop_size"], hp["crop_size"])
        self.coattention = CoAttentionStack(hp["attention"], dim=dim, heads=hp["heads"], depth=hp["depth"],
                                            ffn_dim=hp["ffn_dim"], dropout=hp["dropout"])
        t, h, w = self.grid
        self.audio_position = nn.Parameter(torch.randn(self.audio_tokens, dim) * 0.02)
        self.visual_time_position = nn.Parameter(torch.randn(t, dim) * 0.02)
        self.visual_space_position = nn.Parameter(torch.randn(h * w, dim) * 0.02)
        self.fusion = nn.Sequential(nn.Linear(2 * self.audio_tokens * dim, hp["fusion_dim"]), nn.ReLU(inplace=True),
                                    nn.Linear(hp["fusion_dim"], 1))
        self.low_frame_rate = False  # set per epoch by on_epoch_start (warm-up)

    # -- data -----------------------------------------------------------------------------------
    @property
    def video_frames(self) -> int:
        return round(self.hparams["clip_seconds"] * self.hparams["video_fps"])

    @property
    def num_audio_samples(self) -> int:
        return round(self.hparams["clip_seconds"] * self.hparams["sample_rate"])

    def pair_spec(self) -> PairSpec:
        hp = self.hparams
        return PairSpec(
            video_frames=self.video_frames, video_fps=hp["video_fps"], audio_seconds=hp["clip_seconds"],
            positive_fraction=hp["positive_fraction"],
            curriculum=(CurriculumStage(0, NegativeMix(easy=0.0, shifted=1.0)),),
            shift_range_s=tuple(hp["shift_range_s"]), audio_channels=hp["audio_channels"],
            audio_sample_rate=hp["sample_rate"])

    def preprocess(self, *, train: bool = True) -> WaveformPairPreprocess:
        hp = self.hparams
        # The raw waveform is the input (Sec. 3.2: no spectrogram); pixels get the usual Kinetics Z-norm.
        clip = ClipTransform(short_side=hp["short_side"], size=hp["crop_size"], train=train,
                             mean=torch.tensor(KINETICS_MEAN), std=torch.tensor(KINETICS_STD),
                             scales=hp["crop_scales"])
        return WaveformPairPreprocess(clip=clip, num_samples=self.num_audio_samples,
                                      channels=hp["audio_channels"], tolerance=max(1, hp["sample_rate"] // 100))

    # -- model ----------------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> None:
        self.low_frame_rate = epoch < self.hparams["warmup_epochs"] and self.hparams["warmup_fps"] < self.hparams["video_fps"]

    def warmup_frame_indices(self, frames: int) -> list[int]:
        """The frames of a full-rate window that a ``warmup_fps`` stream would show (by timestamp)."""
        ratio = self.hparams["video_fps"] / self.hparams["warmup_fps"]
        count = max(1, math.floor(frames / ratio + 1e-9))
        return [math.floor(k * ratio + 1e-9) for k in range(count)]

    def _visual_tokens(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        if self.low_frame_rate:
            video = video[:, :, self.warmup_frame_indices(video.shape[2])]
        v = self.video_net(video)  # [B, T', h, w, D]
        b, t, h, w, d = v.shape
        if h * w != self.visual_space_position.shape[0]:
            raise ValueError(f"coattention: frames give a {h}x{w} token grid, the model was built for "
                             f"{self.grid[1]}x{self.grid[2]} (crop_size {self.hparams['crop_size']})")
        time_position = self.visual_time_position
        if t != time_position.shape[0]:
            time_position = _resample_time(time_position.unsqueeze(0), t).squeeze(0)
        v = v + time_position[None, :, None, None] + self.visual_space_position.view(1, 1, h, w, d)
        return v.reshape(b, t * h * w, d), (t, h, w)

    def sync_logits(self, batch: dict[str, torch.Tensor], *, return_attention: bool = False):
        """Logit of "in sync" per pair [B]; with ``return_attention`` also the last layer's attention."""
        visual, (t, h, w) = self._visual_tokens(batch["video"])
        b, d = visual.shape[0], visual.shape[-1]
        audio = None
        if not self.hparams["vision_only"]:
            audio = self.audio_net(batch["audio"])
            if audio.shape[1] != self.audio_tokens:
                raise ValueError(f"coattention: audio gives {audio.shape[1]} tokens, expected {self.audio_tokens} "
                                 f"({self.num_audio_samples} samples at {self.hparams['sample_rate']} Hz)")
            audio = audio + self.audio_position
        audio, visual, attention = self.coattention(audio, visual, return_attention=return_attention)
        visual_steps = visual.view(b, t, h * w, d).mean(dim=2)  # [B, T', D]
        if t != self.audio_tokens:  # align with the audio steps (see Fusion in the module docstring)
            visual_steps = _resample_time(visual_steps, self.audio_tokens)
        audio_flat = (audio.flatten(1) if audio is not None
                      else visual.new_zeros(b, self.audio_tokens * d))  # vision-only: audio activations are zero
        logits = self.fusion(torch.cat([audio_flat, visual_steps.flatten(1)], dim=1)).squeeze(1)
        return (logits, attention, (t, h, w)) if return_attention else logits

    def training_step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        label = batch["label"].long()
        logits = self.sync_logits(batch)
        loss = F.binary_cross_entropy_with_logits(logits, label.to(logits.dtype))
        correct = ((logits.detach() > 0).long() == label).long()
        metrics = {"loss": float(loss.detach()), "acc": float(correct.float().mean())}
        return StepOutput(loss=loss, metrics=metrics, correct=correct, kinds=batch.get("kind"))

    def optim_spec(self) -> OptimSpec:
        hp = self.hparams
        return OptimSpec(name=hp["optimizer"], lr=hp["lr"], momentum=hp["momentum"],
                         weight_decay=hp["weight_decay"], schedule="constant")

    def uses_3d_convolutions(self) -> bool:
        return True

    # -- downstream evaluation --------------------------------------------------------------------
    def video_backbone(self) -> nn.Module:
        """The 3-D visual encoder with its FC, tokens averaged: [B, 3, T, H, W] -> [B, hidden]."""
        return PooledEncoder(self.video_net)

    def audio_backbone(self) -> nn.Module:
        """The waveform encoder with its FC, time steps averaged: [B, channels, samples] -> [B, hidden]."""
        return PooledEncoder(self.audio_net)

    def downstream_video_model(self, modality: str) -> nn.Module:
        """Sec. 4 (action recognition): the whole network up to the co-attention stack, whose final audio
        and visual outputs are concatenated. ``modality`` "video" is the paper's vision-only model: the
        audio stream is zero, so the stack's attention is self-attention and the audio half is zero."""
        return CoAttentionOutputs(self, with_audio=modality == "audio_visual" and not self.hparams["vision_only"])

    @torch.no_grad()
    def localization_maps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, heads, h, w]: how the audio queries of the last AGA (or CMA) block spread their attention
        over the image regions, summed over the visual time steps and averaged over the audio time
        steps; one map per head, each summing to 1."""
        hp = self.hparams
        if hp["vision_only"] or hp["attention"] not in ("cma", "aga"):
            raise ValueError(f"coattention: localization maps come from audio-guided attention; this model "
                             f"has attention={hp['attention']!r}, vision_only={hp['vision_only']}")
        _, attention, (t, h, w) = self.sync_logits(batch, return_attention=True)
        weights = attention.audio_over_visual  # [B, heads, Na, T'*h*w]
        b, heads, na, _ = weights.shape
        return weights.view(b, heads, na, t, h, w).sum(dim=3).mean(dim=2)


class CoAttentionOutputs(nn.Module):
    """Batch -> [B, 2 * hidden]: the co-attention stack's final audio and visual outputs, each averaged over
    its tokens, concatenated (co-attention Sec. 4). Shares the method's encoders, position embeddings and
    stack (the fine-tuning copies it); the pretext fusion FC is not part of it. Without audio the stack runs
    on the visual tokens alone, as the pretrained vision-only model does, and the audio half is zero."""

    def __init__(self, method: CoAttention, *, with_audio: bool) -> None:
        super().__init__()
        self.video_net, self.coattention = method.video_net, method.coattention
        self.audio_net = method.audio_net if with_audio else None
        self.audio_position = method.audio_position if with_audio else None
        self.visual_time_position = method.visual_time_position
        self.visual_space_position = method.visual_space_position
        self.hidden = method.hparams["hidden"]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        v = self.video_net(batch["video"])  # [B, T', h, w, D]
        b, t, h, w, d = v.shape
        time_position = self.visual_time_position
        if t != time_position.shape[0]:
            time_position = _resample_time(time_position.unsqueeze(0), t).squeeze(0)
        v = v + time_position[None, :, None, None] + self.visual_space_position.view(1, 1, h, w, d)
        audio = None if self.audio_net is None else self.audio_net(batch["audio"]) + self.audio_position
        audio, visual, _ = self.coattention(audio, v.reshape(b, t * h * w, d))
        audio_out = audio.mean(dim=1) if audio is not None else visual.new_zeros(b, d)
        return torch.cat([audio_out, visual.mean(dim=1)], dim=1)


def _resample_time(x: torch.Tensor, length: int) -> torch.Tensor:
    """[B, T, D] -> [B, length, D] by linear interpolation in time."""
    return F.interpolate(x.transpose(1, 2), size=length, mode="linear", align_corners=False).transpose(1, 2)


class WaveformPairPreprocess(SplitPairTransform):
    """Raw sample -> {"video": [3, T, size, size], "audio": [channels, num_samples] raw waveform, ...}.

    Picklable (``host`` runs in DataLoader workers). The audio window is trimmed or edge-extended by at most
    ``tolerance`` samples of rounding; a larger mismatch or a wrong channel count is an error.
    """

    def __init__(self, *, clip: ClipTransform, num_samples: int, channels: int, tolerance: int) -> None:
        self.clip, self.num_samples, self.channels, self.tolerance = clip, num_samples, channels, tolerance

    def host(self, sample: dict) -> dict:
        audio = sample["audio"]
        if audio.dim() != 2 or audio.shape[0] != self.channels:
            raise ValueError(f"coattention: audio must be [{self.channels}, samples] (stereo: the PairSpec asks for "
                             f"{self.channels} channels), got {tuple(audio.shape)}")
        audio = fit_length(audio.float(), self.num_samples, tolerance=self.tolerance)
        frames, augment = self.clip.host(sample["video"])
        return {HOST_FRAMES: frames, HOST_WAVEFORM: audio.contiguous(), HOST_AUGMENT: augment,
                **pair_identity(sample)}

    def device(self, batch: dict, stats: dict[str, torch.Tensor] | None = None) -> dict:
        video = self.clip.device(batch[HOST_FRAMES], batch[HOST_AUGMENT])
        audio = batch[HOST_WAVEFORM]
        flipped = [i for i, flip in enumerate(batch[HOST_AUGMENT]["flip"].tolist()) if flip]
        if flipped and self.channels == 2:
            # A mirrored scene is heard mirrored: left and right swap with the frames, so the panning cue
            # the stereo encoder can use still points at the source (Sec. 3.2: stereo input).
            audio = audio.clone()
            audio[flipped] = audio[flipped].flip(1)
        return {**passed_through(batch), "video": video, "audio": audio}

    def frame_crop(self, height: int, width: int) -> tuple[int, int, int, int]:
        return self.clip.frame_crop(height, width)
