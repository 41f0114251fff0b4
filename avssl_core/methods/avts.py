"""AVTS: audio-visual temporal synchronisation (Korbar, Tran & Torresani, NeurIPS 2018).

An MC3 clip network and a VGG-like filterbank network map a video clip and the audio of the same
duration to embeddings; the contrastive loss (AVTS Eq. 1) pulls in-sync pairs together and pushes
out-of-sync pairs beyond a margin. Negatives follow the paper's curriculum: easy only, then 75% easy /
25% hard (AVTS Sec. 2.4, Table 1). An optional second phase puts FC 512 -> FC 2 on the concatenated
embeddings and fine-tunes everything with cross-entropy (AVTS Sec. 3.2).

Before training, call ``fit_normalization(training_samples)``: the filterbank (and pixel) Z-norm
statistics come from a random 20% of the training set (AVTS Sec. 3.1) and are stored as buffers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avssl_core.losses import contrastive_margin_loss, euclidean_distance
from avssl_core.methods.base import OptimSpec, PretrainMethod, StepOutput
from avssl_core.models.audio import VGG_AUDIO_CHANNELS, vgg_audio_encoder
from avssl_core.models.cam import audio_similarity_map
from avssl_core.models.video import MC3_CHANNELS, mc3_video_encoder
from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairSpec
from avssl_core.transforms.features import ClipTransform, FeatureNormalizer, LogMelFilterbank, PairPreprocess

_COMMON: dict[str, Any] = {
    "sample_rate": 16000,  # the segment stage writes 16 kHz audio
    "fft_size": 1024,  # AVTS Sec. 3.1 filterbank: FFT 1024, 40 filters, 0.02 s window, 0.01 s step
    "num_filters": 40,
    "window_s": 0.02,
    "step_s": 0.01,
    "crop_scales": [1.0, 0.875, 0.75, 0.66],  # multi-scale crop shares of the short side
    "margin": 0.99,  # eta in AVTS Eq. 1 (Sec. 3.1)
    "threshold": None,  # None: calibrated on the training distances (see AVTS.threshold)
    "threshold_momentum": 0.9,  # running means of the distances for the calibrated threshold
    "positive_fraction": 0.5,  # AVTS Sec. 2.3: equal shares of positives and negatives
    "hard_negative_gap_s": 0.5,  # AVTS Sec. 2.3: at least half a second between audio and video
    "hard_share": 0.25,  # AVTS Sec. 2.4: 75% easy / 25% hard in the second curriculum stage
    "optimizer": "sgd",  # AVTS Sec. 3.1
    "momentum": 0.9,  # not stated in the paper: the usual value for SGD on video ResNets
    "weight_decay": 1e-4,  # not stated in the paper
    "plateau_patience": 5,  # AVTS Sec. 3.1: x0.1 when the loss fails to decrease for > 5 epochs
    "finetune_ce_from_epoch": None,  # 0-based epoch where the cross-entropy phase starts; None: never
    "head_dim": 512,  # AVTS Sec. 3.2: FC 512 then FC 2 on the concatenated embeddings
}


class AVTS(PretrainMethod):
    name = "avts"
    CROP_HPARAM = "crop_size"  # fully convolutional: maps at any frame size (resized)
    # Table 1's test set (easy negatives), and the curriculum's mix with same-video negatives.
    pretext_protocols = ("easy", "easy75_hard25")
    PRESETS = {
        # 1 s windows at 8 fps, 48x48 crops from a 56-pixel short side, eighth-width networks: a couple
        # of minutes of training on 2 CPU cores with the synthetic world's clips (0.85 GFLOP per pair
        # forward + backward, against 3.9 at quarter width). Adam 1e-3 instead of SGD: the paper picks
        # its learning rate by grid search (Sec. 3.1); with a few hundred steps, SGD 0.01 left the
        # embeddings at the loss's trivial point (every distance near margin / 2, loss (margin/2)^2)
        # and held-out accuracy near chance, where Adam separates positives from negatives (ROC AUC
        # 0.73 against 0.51 on the quickstart's held-out pairs).
        "tiny": {
            **_COMMON,
            "video_frames": 8,
            "video_fps": 8.0,
            "short_side": 56,
            "crop_size": 48,
            "video_channels": [8, 16, 32, 64],
            "audio_channels": [8, 24, 48, 32, 32],
            "audio_fc6_dim": 64,
            "embed_dim": 64,
            "optimizer": "adam",
            "lr": 0.001,
            "weight_decay": 0.0,
            "epochs": 12,
            "pairs_per_clip": 4,  # an epoch is 4 passes over the clips (the quickstart's measured budget)
            "hard_from_epoch": 8,
            "batch_size": 16,
        },
        # AVTS Sec. 3.1: 25-frame (1 s) clips, 112x112 crops from a 128-pixel short side, MC3-18 and
        # the SyncNet audio net, 90 epochs, hard negatives from epoch 51 (0-based 50), 16 per GPU.
        "paper": {
            **_COMMON,
            "video_frames": 25,
            "video_fps": 25.0,
            "short_side": 128,
            "crop_size": 112,
            "video_channels": list(MC3_CHANNELS),
            "audio_channels": list(VGG_AUDIO_CHANNELS),
            "audio_fc6_dim": 512,
            "embed_dim": 512,  # MC3's pooled width; the paper gives no embedding size
            "lr": 0.01,  # the paper picks it by grid search and does not report it
            "epochs": 90,
            "pairs_per_clip": 1,  # an epoch is one pass over the clips, as the paper's 90 epochs
            "hard_from_epoch": 50,
            "batch_size": 16,  # per device (the paper: 4 GPUs x 16)
        },
    }

    def __init__(self, preset: str, **overrides: Any) -> None:
        super().__init__(preset, **overrides)
        hp = self.hparams
        if hp["video_frames"] < 1 or hp["video_fps"] <= 0:
            raise ValueError("avts: video_frames and video_fps must be positive")
        self.video_net = mc3_video_encoder(channels=hp["video_channels"])
        # The final FC on the video side (AVTS Sec. 2.5 mentions one of its own size): maps the pooled
        # MC3 features to the shared embedding space, a linear output like the audio net's fc7.
        self.video_fc = nn.Linear(self.video_net.out_dim, hp["embed_dim"])
        self.audio_net = vgg_audio_encoder(embed_dim=hp["embed_dim"], channels=hp["audio_channels"],
                                           fc6_dim=hp["audio_fc6_dim"])
        self.normalizer = FeatureNormalizer(hp["num_filters"])
        # The cross-entropy head exists only when a run schedules that phase, so a contrastive-only
        # run has no parameters that never get a gradient (DDP would otherwise need
        # find_unused_parameters).
        self.head = None
        if hp["finetune_ce_from_epoch"] is not None:
            self.head = nn.Sequential(nn.Linear(2 * hp["embed_dim"], hp["head_dim"]), nn.ReLU(inplace=True),
                                      nn.Linear(hp["head_dim"], 2))
        self.phase = "contrastive"
        # [positive, negative] running mean distances on training pairs, for the calibrated threshold.
        self.register_buffer("distance_mean", torch.zeros(2))
        self.register_buffer("distance_seen", torch.zeros(2))  # 0/1 flags (float: any backend broadcasts it)

    # -- data -----------------------------------------------------------------------------------
    @property
    def window_seconds(self) -> float:
        return self.hparams["video_frames"] / self.hparams["video_fps"]

    def pair_spec(self) -> PairSpec:
        hp = self.hparams
        curriculum = [CurriculumStage(0, NegativeMix(easy=1.0))]
        if hp["hard_from_epoch"] is not None:
            curriculum.append(CurriculumStage(hp["hard_from_epoch"], NegativeMix(
                easy=1.0 - hp["hard_share"], hard=hp["hard_share"])))
        return PairSpec(
            video_frames=hp["video_frames"], video_fps=hp["video_fps"],
            audio_seconds=self.window_seconds,  # AVTS Sec. 2.1: audio and video span the same time
            positive_fraction=hp["positive_fraction"], curriculum=tuple(curriculum),
            hard_negative_gap_s=hp["hard_negative_gap_s"], audio_channels=1,
            audio_sample_rate=hp["sample_rate"])

    def audio_features(self) -> LogMelFilterbank:
        hp = self.hparams
        return LogMelFilterbank(sample_rate=hp["sample_rate"], n_fft=hp["fft_size"], window_s=hp["window_s"],
                                step_s=hp["step_s"], num_filters=hp["num_filters"])

    def fit_normalization(self, samples: Iterable[dict] | Sequence[dict], *, fraction: float = 0.2,
                          seed: int = 0) -> dict[str, Any]:
        """Estimate the Z-norm statistics from a random ``fraction`` of raw training samples (AVTS Sec.
        3.1: 20%) and keep them as buffers. Pass a dataset (len + indexing) to decode only that share."""
        return self.normalizer.fit(samples, audio_features=self.audio_features(), fraction=fraction,
                                   seed=seed, band_dim=-1)

    def copy_normalization(self, source: PretrainMethod) -> None:
        self.normalizer.load_state_dict(source.normalizer.state_dict())

    def preprocess(self, *, train: bool = True) -> PairPreprocess:
        hp = self.hparams
        stats = self.normalizer.snapshot()
        clip = ClipTransform(short_side=hp["short_side"], size=hp["crop_size"], train=train,
                             mean=stats["video_mean"], std=stats["video_std"], scales=hp["crop_scales"])
        return PairPreprocess(clip=clip, audio_features=self.audio_features(), audio_mean=stats["audio_mean"],
                              audio_std=stats["audio_std"], band_dim=-1,
                              num_samples=round(self.window_seconds * hp["sample_rate"]), single_frame=False)

    # -- model ----------------------------------------------------------------------------------
    def has_shared_space(self) -> bool:
        return True

    def embed_video(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, 3, T, H, W] clips -> [B, embed_dim]."""
        return self.video_fc(self.video_net(batch["video"]))

    def embed_audio(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, 1, frames, bands] normalised filterbanks -> [B, embed_dim]."""
        return self.audio_net(batch["audio"])

    def downstream_audio_features(self, layer: str) -> nn.Module:
        """``"conv5"`` (Sec. 3.3: the audio classifiers read conv_5 of the audio subnetwork): the conv5
        map averaged over time and over four frequency bands; otherwise the base's layers."""
        if layer == "conv5":
            return Conv5Features(self.audio_net)
        return super().downstream_audio_features(layer)

    @torch.no_grad()
    def localization_maps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, 1, H/16, W/16]: the final FC applied at each position of the middle time step of MC3's
        last feature map (MC3 keeps every time step, and the evaluator scores the window's middle
        frame), compared with the audio embedding (see avssl_core.models.cam)."""
        feature_map = self.video_net(batch["video"], return_map=True)  # [B, C, T, h, w]
        middle = feature_map[:, :, feature_map.shape[2] // 2]
        return audio_similarity_map(middle, self.video_fc, self.embed_audio(batch))

    @property
    def threshold(self) -> float:
        """Distance below which a pair is called in sync (AVTS Sec. 2.2, tau, "a set threshold" whose
        value the paper does not give). A number in ``hparams["threshold"]`` is used as is. With None,
        tau is calibrated on the training pairs: the midpoint between the running means of positive and
        negative distances (equal priors, as positive_fraction 0.5 makes them). A fixed margin / 2 (the
        middle of the loss's two targets) assumes the embedding has settled on them, which the small
        presets do not reach: their positives and negatives separate well below that value."""
        tau = self.hparams["threshold"]
        if tau is not None:
            return float(tau)
        if bool((self.distance_seen > 0).all()):
            return float(self.distance_mean.mean())
        return self.hparams["margin"] / 2

    @torch.no_grad()
    def _track_distances(self, dist: torch.Tensor, label: torch.Tensor) -> None:
        """Running means of positive and negative distances (buffers: checkpoints carry them, and
        the update is a function of the batch, so resume stays exact)."""
        for slot, cls in ((0, 1), (1, 0)):
            mask = label == cls
            if not bool(mask.any()):
                continue
            mean = dist[mask].float().mean()
            if bool(self.distance_seen[slot] > 0):
                self.distance_mean[slot].lerp_(mean, 1.0 - self.hparams["threshold_momentum"])
            else:
                self.distance_mean[slot] = mean
                self.distance_seen[slot] = 1.0

    def on_epoch_start(self, epoch: int) -> None:
        start = self.hparams["finetune_ce_from_epoch"]
        self.phase = "finetune_ce" if start is not None and epoch >= start else "contrastive"

    def training_step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        label = batch["label"].long()
        f_v, f_a = self.embed_video(batch), self.embed_audio(batch)
        dist = euclidean_distance(f_v, f_a)
        if self.phase == "finetune_ce":
            logits = self.head(torch.cat([f_v, f_a], dim=1))
            loss = F.cross_entropy(logits, label)
            predicted = logits.argmax(dim=1)
        else:
            loss = contrastive_margin_loss(dist, label, self.hparams["margin"])
            if self.training:
                self._track_distances(dist.detach(), label)
            predicted = (dist < self.threshold).long()
        correct = (predicted == label).long().detach()
        metrics = {"loss": float(loss.detach()), "acc": float(correct.float().mean())}
        d = dist.detach()
        if bool((label == 1).any()):
            metrics["dist_pos"] = float(d[label == 1].mean())
        if bool((label == 0).any()):
            metrics["dist_neg"] = float(d[label == 0].mean())
        return StepOutput(loss=loss, metrics=metrics, correct=correct, kinds=batch.get("kind"))

    def optim_spec(self) -> OptimSpec:
        hp = self.hparams
        return OptimSpec(name=hp["optimizer"], lr=hp["lr"], momentum=hp["momentum"],
                         weight_decay=hp["weight_decay"], schedule="plateau",
                         plateau_patience=hp["plateau_patience"],
                         # AVTS Sec. 3.1 / 2.4: each curriculum stage (and the cross-entropy phase) is a new
                         # objective, so the plateau tracking restarts there (see LearningRateSchedule).
                         plateau_restart_epochs=tuple(sorted({e for e in (hp["hard_from_epoch"],
                                                                         hp["finetune_ce_from_epoch"])
                                                              if e is not None and e > 0})))

    def uses_3d_convolutions(self) -> bool:
        return True


class Conv5Features(nn.Module):
    """[B, 1, frames, bands] filterbanks -> [B, C5 * 4]: conv_5 activations (before pool5) averaged over
    time, and over four equal frequency bands. Time is averaged so that any sub-clip length gives the same
    width and a sub-clip tiled by several windows averages to its conv_5 mean; four bands are kept because
    which part of the spectrum is active separates sound classes, and a full average would discard it
    (the paper feeds the activations to a linear SVM without saying how they are arranged)."""

    BANDS = 4

    def __init__(self, audio_net: nn.Module) -> None:
        super().__init__()
        self.audio_net = audio_net
        self.pool = nn.AdaptiveAvgPool2d((1, self.BANDS))

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.audio_net(fbank, return_map=True)), 1)
