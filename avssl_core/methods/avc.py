"""AVC: audio-visual correspondence with two ResNet18s (Feng et al., "Self-Supervised Audio-Visual
Representation Learning for in-the-wild Videos", on VGGSound).

One frame (the middle of a 1 s audio window) and that second of audio as a log spectrogram go through
two ResNet18s to 128-d embeddings; the Euclidean distance between them, through a sigmoid, is the
probability that they correspond; binary cross-entropy against the label (AVC paper Sec. II). Negatives
are audio from another video only (AVC paper Sec. III: pairs correspond only when taken at the same
time of the same video; "easy" negatives in AVTS's terms). The embeddings serve retrieval
(``embed_video`` / ``embed_audio``, AVC paper Sec. III-B).

Before training, call ``fit_normalization(training_samples)`` (Z-norm statistics of the spectrogram
bins and pixels from 20% of the training set; the AVC paper does not describe its normalisation, this
reuses AVTS's recipe).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from avssl_core.losses import correspondence_bce, correspondence_logit, euclidean_distance
from avssl_core.methods.base import OptimSpec, PretrainMethod, StepOutput
from avssl_core.models.audio import resnet18_audio_encoder
from avssl_core.models.cam import audio_similarity_map
from avssl_core.models.resnet2d import RESNET18_CHANNELS
from avssl_core.models.video import resnet18_frame_encoder
from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairSpec
from avssl_core.transforms.features import ClipTransform, FeatureNormalizer, LogSpectrogram, PairPreprocess

_COMMON: dict[str, Any] = {
    "sample_rate": 16000,  # the segment stage writes 16 kHz audio
    "audio_seconds": 1.0,  # AVC paper Sec. II: 1-second audio segments
    "window_s": 0.02,  # spectrogram window and step (see LogSpectrogram)
    "step_s": 0.01,
    "embed_dim": 128,  # AVC paper Sec. II
    "positive_fraction": 0.5,  # AVC paper Sec. III: positive rate 0.5
    "optimizer": "adam",  # AVC paper Sec. III: Adam, learning rate 0.001
    "lr": 1e-3,
    "weight_decay": 0.0,
    # p = sigmoid(offset - scale * distance); both are learned (see losses.correspondence_logit).
    # Initial offset: about the distance between the randomly initialised networks' embeddings of
    # normalised inputs (7-8 for both presets), so p starts near 1/2 for positives and negatives alike.
    "distance_offset_init": 8.0,
    "crop_scales": [1.0, 0.875, 0.75, 0.66],
}


class AVC(PretrainMethod):
    name = "avc"
    CROP_HPARAM = "frame_size"  # fully convolutional: maps at any frame size (resized)
    PRESETS = {
        # 56x56 frames from a 64-pixel short side, 129-bin spectrograms, quarter-width ResNet18s.
        "tiny": {
            **_COMMON,
            "short_side": 64,
            "frame_size": 56,
            "fft_size": 256,
            "window_s": 0.016,  # a 256-point FFT holds at most 16 ms at 16 kHz
            "channels": [16, 32, 64, 128],
            "batch_size": 32,
            "pairs_per_clip": 4,  # pairs drawn per clip in an epoch (the quickstart's)
            "train_steps": 450,  # 600 reached 69% held-out; 450 keeps the quickstart under 15 minutes
        },
        # The AVC paper gives no image size; 224x224 crops from a 256-pixel short side are the usual
        # ResNet18 input (and that of its references L3-Net / Objects that Sound). Batch 256, 400k
        # steps (AVC paper Sec. III).
        "paper": {
            **_COMMON,
            "short_side": 256,
            "frame_size": 224,
            "fft_size": 512,
            "channels": list(RESNET18_CHANNELS),
            "batch_size": 256,
            "pairs_per_clip": 1,  # an epoch is one pass over the clips (the paper counts steps)
            "train_steps": 400_000,
        },
    }

    def __init__(self, preset: str, **overrides: Any) -> None:
        super().__init__(preset, **overrides)
        hp = self.hparams
        self.video_net = resnet18_frame_encoder(in_channels=3, embed_dim=hp["embed_dim"], channels=hp["channels"])
        self.audio_net = resnet18_audio_encoder(in_channels=1, embed_dim=hp["embed_dim"], channels=hp["channels"])
        # scale = exp(log_scale) keeps the probability falling with distance, whatever is learned.
        self.log_distance_scale = nn.Parameter(torch.zeros(()))
        self.distance_offset = nn.Parameter(torch.tensor(float(hp["distance_offset_init"])))
        self.normalizer = FeatureNormalizer(hp["fft_size"] // 2 + 1)

    # -- data -----------------------------------------------------------------------------------
    def pair_spec(self) -> PairSpec:
        hp = self.hparams
        # One frame at the clip's own rate: the pair sampler centres the audio window on the video
        # window, so the frame sits at the middle of the second of audio (AVC paper Sec. II).
        return PairSpec(
            video_frames=1, video_fps=None, audio_seconds=hp["audio_seconds"], positive_fraction=hp["positive_fraction"],
            curriculum=(CurriculumStage(0, NegativeMix(easy=1.0)),), audio_channels=1,
            audio_sample_rate=hp["sample_rate"])

    def audio_features(self) -> LogSpectrogram:
        hp = self.hparams
        return LogSpectrogram(sample_rate=hp["sample_rate"], n_fft=hp["fft_size"], window_s=hp["window_s"],
                              step_s=hp["step_s"])

    def fit_normalization(self, samples: Iterable[dict] | Sequence[dict], *, fraction: float = 0.2,
                          seed: int = 0) -> dict[str, Any]:
        """Z-norm statistics (per spectrogram bin, per RGB channel) from a random ``fraction`` of raw
        training samples, kept as buffers."""
        return self.normalizer.fit(samples, audio_features=self.audio_features(), fraction=fraction,
                                   seed=seed, band_dim=-2)

    def copy_normalization(self, source: PretrainMethod) -> None:
        self.normalizer.load_state_dict(source.normalizer.state_dict())

    def preprocess(self, *, train: bool = True) -> PairPreprocess:
        hp = self.hparams
        stats = self.normalizer.snapshot()
        frame = ClipTransform(short_side=hp["short_side"], size=hp["frame_size"], train=train,
                              mean=stats["video_mean"], std=stats["video_std"], scales=hp["crop_scales"])
        return PairPreprocess(clip=frame, audio_features=self.audio_features(), audio_mean=stats["audio_mean"],
                              audio_std=stats["audio_std"], band_dim=-2,
                              num_samples=round(hp["audio_seconds"] * hp["sample_rate"]), single_frame=True)

    # -- model ----------------------------------------------------------------------------------
    def has_shared_space(self) -> bool:
        return True

    def embed_video(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, 3, H, W] frames -> [B, embed_dim]."""
        return self.video_net(batch["video"])

    def embed_audio(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, 1, freq, frames] normalised log spectrograms -> [B, embed_dim]."""
        return self.audio_net(batch["audio"])

    @torch.no_grad()
    def localization_maps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, 1, H/32, W/32]: the frame network's embedding FC applied at each position of its conv5
        map, compared with the audio embedding (see avssl_core.models.cam)."""
        feature_map = self.video_net(batch["video"], return_map=True)  # [B, C, h, w]
        return audio_similarity_map(feature_map, self.video_net.net.fc, self.embed_audio(batch))

    def correspondence_probability(self, dist: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(correspondence_logit(dist, scale=self.log_distance_scale.exp(),
                                                  offset=self.distance_offset))

    def training_step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        label = batch["label"].long()
        dist = euclidean_distance(self.embed_video(batch), self.embed_audio(batch))
        loss = correspondence_bce(dist, label, scale=self.log_distance_scale.exp(), offset=self.distance_offset)
        predicted = (self.correspondence_probability(dist.detach()) > 0.5).long()
        correct = (predicted == label).long().detach()
        metrics = {"loss": float(loss.detach()), "acc": float(correct.float().mean()),
                   "distance_scale": float(self.log_distance_scale.detach().exp()),
                   "distance_offset": float(self.distance_offset.detach())}
        return StepOutput(loss=loss, metrics=metrics, correct=correct, kinds=batch.get("kind"))

    def optim_spec(self) -> OptimSpec:
        hp = self.hparams
        return OptimSpec(name=hp["optimizer"], lr=hp["lr"], weight_decay=hp["weight_decay"], schedule="constant")
