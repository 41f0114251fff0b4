"""CMAC: cross-modal attention consistency (Min, Dai, Xie, Gan, Zhang & Wang, CVPR 2021).

An R(2+1)D-18 clip network f_v and a ResNet-9 on log-mel spectrograms f_a give feature maps v and a.
Each modality gets adaptive filters kappa = pool(g(x)) (CMAC Eq. 3). The audio filter, run over the
visual g-map by pyramid correlation filtering, gives an audio-guided visual attention s_v; the visual
filter over the audio g-map gives s_a (Eq. 4, Fig. 3). Saliency heads predict s_hat_v, s_hat_a from
each modality alone (Eq. 5), and the attention-consistency loss ||s - s_hat||^2 aligns them (Eq. 6).
The filters, projected to a 256-d space, are trained with a MoCo-style contrastive loss whose
negatives are the other modality's keys (the batch and a memory bank) plus same-modality keys from
previous batches (Eq. 7). Total: L_cl(v, a) + L_cl(a, v) + lambda (L_ac_v + L_ac_a) (Eq. 8).
Negatives come from other videos (CMAC Sec. 4.1 and 4.3.3): clips cut from one source video (the
segment stage makes several per video) are neither each other's negatives nor counted as candidates in
the instance-discrimination accuracy, since their sound and look are the same scene's.

Keys come from momentum copies of the encoder, filter and projection of each modality; they are
written to the banks, and the momentum copies updated, in ``after_optimizer_step`` (all state is
buffers or frozen parameters, so checkpoints carry it and a resumed run continues exactly).

Choices the paper leaves open (documented where they are made): the ResNet-9 layout
(models/resnet9_audio.py), the saliency heads' sizes, the cosine map into [0, 1]
(models/cmac_attention.py), the SpecAugment settings, the mel filterbank's FFT length, and that the
attention target s is a pseudo label (``detach_target=True``; the paper calls s "pseudo labels",
Sec. 3.2). ``within_modal_positives`` (CMAC Table 3, AVID style) takes as positive the same clip's
key stored in the bank on its previous visit (another moment of the clip, other augmentations) rather
than a second clip held in the batch.

Before training, call ``fit_normalization(training_samples)`` (Z-norm statistics of the mel bands and
pixels from 20% of the training set, as AVTS does; CMAC does not describe its normalisation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from avssl_core.losses import attention_consistency_loss, masked_info_nce
from avssl_core.methods.base import OptimSpec, PretrainMethod, StepOutput
from avssl_core.models.cmac_attention import (
    MAX_PYRAMID_SCALES,
    NORMALIZATIONS,
    AdaptiveFilter,
    SaliencyHead,
    pyramid_correlation,
)
from avssl_core.models.memory_bank import MemoryBank, momentum_copy, momentum_update_
from avssl_core.models.r2plus1d import R2PLUS1D_CHANNELS, r2plus1d_video_encoder
from avssl_core.models.resnet9_audio import RESNET9_CHANNELS, resnet9_audio_encoder
from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairSpec
from avssl_core.transforms.features import ClipTransform, FeatureNormalizer, LogMelFilterbank, PairPreprocess
from avssl_core.transforms.specaugment import SpecAugment, SpecAugmentedPairPreprocess

_COMMON: dict[str, Any] = {
    "sample_rate": 16000,  # the segment stage writes 16 kHz audio
    "audio_seconds": 1.0,  # CMAC Sec. 4.1: 1-second clips
    "window_s": 0.02,  # mel filterbank window and step (not given by the paper)
    "step_s": 0.01,
    "crop_scales": [1.0, 0.875, 0.75],  # random crop (CMAC Sec. 4.1), with a little scale jitter
    # SpecAugment (CMAC Sec. 4.1 names the three operations, not their sizes): Park et al.'s LibriSpeech
    # basic policy for masks (F = 27), a time warp of 5 frames and a 20-frame (0.2 s) time mask for 1 s.
    "time_warp": 5,
    "freq_mask": 27,
    "time_mask": 20,
    "temperature": 0.07,  # CMAC Sec. 4.1 (MoCo default)
    "lambda_ac": 1.5,  # CMAC Eq. 8, Sec. 4.3.2
    "pyramid_scales": 2,  # CMAC Table 2: two scales are best
    "normalization": "cosine",  # CMAC Table 2
    "detach_target": True,  # s is a pseudo label (CMAC Sec. 3.2)
    "within_modal_negatives": True,  # CMAC Eq. 7 / Table 3
    "within_modal_positives": False,  # CMAC Table 3: hurts, off by default
    "positive_fraction": 1.0,  # the contrastive loss makes its own negatives
    "optimizer": "sgd",  # CMAC Sec. 4.1: SGD, lr 0.01, weight decay 1e-5, momentum 0.9
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 1e-5,
    # Colour jitter in pretraining (CMAC Sec. 4.5: "strong color jitter augmentation in [38]"): torchvision
    # ColorJitter strengths (brightness, contrast, saturation, hue) and the chance it is applied to a
    # clip; None: none. The paper gives no strengths (it defers to [38], GDT); the paper preset uses MoCo
    # v2's "strong" jitter (0.4, 0.4, 0.4, 0.1 with probability 0.8). The tiny preset has none, so the
    # quickstart's measured numbers stay as they are (override color_jitter to try it there).
    "color_jitter": None,
    "color_jitter_p": 0.8,
}


class CMAC(PretrainMethod):
    name = "cmac"
    CROP_HPARAM = "crop_size"  # fully convolutional: maps at any frame size (resized)
    PRESETS = {
        # 4 frames (1 s at 4 fps) of 48x48, 40 mel bands, narrow R(2+1)D and ResNet-9, 128-d
        # filters, a bank with a row per training clip of the quickstart data. The key encoders follow
        # faster (0.99) than the paper's 0.999, which over ~100 steps would leave them at their random
        # initialisation.
        "tiny": {
            **_COMMON,
            "video_frames": 4,
            "video_fps": 4.0,
            "short_side": 56,
            "crop_size": 48,
            "video_channels": [12, 24, 48, 96],
            "audio_channels": [16, 32, 64, 128],
            "num_mels": 40,
            "fft_size": 512,
            "freq_mask": 8,
            "time_mask": 20,
            "filter_channels": 128,
            "embed_dim": 64,
            "saliency_hidden": 32,
            "bank_size": 128,
            "key_momentum": 0.99,
            "optimizer": "adam",
            "lr": 1e-3,
            "weight_decay": 1e-5,
            "warmup_steps": 0,
            # 10 epochs: after 4 (96 steps) held-out instance discrimination was still at chance (6.6%
            # against 6.25%); 12 epochs reached 13.3% on the quickstart data.
            "epochs": 10,
            "pairs_per_clip": 4,  # an epoch is 4 passes over the clips (the quickstart's measured budget)
            "batch_size": 16,
        },
        # CMAC Sec. 4.1: 1-second clips for both modalities, 128x128 random crops of the 128-pixel clips; the
        # 32 frames of Sec. 4.2 are the fine-tuning clips (1.28 s at 25 fps), so the pretraining window is 25
        # frames at 25 fps (the sampler subsamples faster clips and does not repeat frames). R(2+1)D-18
        # and ResNet-9, log-mel with 257 filters, 512-channel filters, 256-d contrastive head, MoCo with
        # a 15000-key bank, tau 0.07, momentum 0.999; SGD lr 0.01, weight decay 1e-5, momentum 0.9,
        # batch 128 over 8 GPUs (16 per device), 200 epochs (Sec. 4.5) with a 10-epoch warm-up
        # (10 x 220k videos / 128 = 17190 steps; constant rate after it, as no decay is described).
        "paper": {
            **_COMMON,
            "video_frames": 25,  # 1 s at video_fps, as the audio window (Sec. 4.1)
            "video_fps": 25.0,
            "short_side": 128,
            "crop_size": 128,
            "video_channels": list(R2PLUS1D_CHANNELS),
            "audio_channels": list(RESNET9_CHANNELS),
            "num_mels": 257,
            # 257 HTK mel filters up to 8 kHz need a 2048-point FFT (7.8 Hz bins) so that no filter is
            # empty; the 20 ms window is zero-padded to it.
            "fft_size": 2048,
            "filter_channels": 512,
            "embed_dim": 256,
            "saliency_hidden": 128,
            "bank_size": 15000,
            "key_momentum": 0.999,
            "warmup_steps": 17190,
            "epochs": 200,
            "pairs_per_clip": 1,  # an epoch is one pass over the clips, as the paper's 200 epochs
            "color_jitter": [0.4, 0.4, 0.4, 0.1],  # Sec. 4.5: strong colour jitter (see _COMMON)
            "batch_size": 16,
        },
    }

    def __init__(self, preset: str, **overrides: Any) -> None:
        super().__init__(preset, **overrides)
        hp = self.hparams
        if hp["normalization"] not in NORMALIZATIONS:
            raise ValueError(f"cmac: normalization must be one of {NORMALIZATIONS}, got {hp['normalization']!r}")
        if not 1 <= int(hp["pyramid_scales"]) <= MAX_PYRAMID_SCALES:
            raise ValueError(f"cmac: pyramid_scales must be 1..{MAX_PYRAMID_SCALES}, got {hp['pyramid_scales']}")
        if hp["lambda_ac"] < 0 or hp["temperature"] <= 0:
            raise ValueError("cmac: lambda_ac must be >= 0 and temperature > 0")
        cf, dim = int(hp["filter_channels"]), int(hp["embed_dim"])
        self.video_net = r2plus1d_video_encoder(channels=hp["video_channels"])
        self.audio_net = resnet9_audio_encoder(channels=hp["audio_channels"])
        self.video_filter = AdaptiveFilter(self.video_net.out_dim, cf, dims=3)
        self.audio_filter = AdaptiveFilter(self.audio_net.out_dim, cf, dims=2)
        self.video_proj = nn.Linear(cf, dim)  # CMAC Sec. 3.2: FC projection heads
        self.audio_proj = nn.Linear(cf, dim)
        self.video_saliency = SaliencyHead(self.video_net.out_dim, int(hp["saliency_hidden"]), dims=3)
        self.audio_saliency = SaliencyHead(self.audio_net.out_dim, int(hp["saliency_hidden"]), dims=2)
        # Momentum (key) encoders: frozen copies, moved towards the online ones after each step.
        self.key_video = momentum_copy(self._video_branch())
        self.key_audio = momentum_copy(self._audio_branch())
        self.video_bank = MemoryBank(int(hp["bank_size"]), dim)
        self.audio_bank = MemoryBank(int(hp["bank_size"]), dim)
        self.normalizer = FeatureNormalizer(int(hp["num_mels"]))
        # Keys (with clip and source ids) of the micro-batches since the last optimizer step, written to
        # the banks after it. Empty at every checkpoint (checkpoints are taken after after_optimizer_step).
        self._pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def _video_branch(self) -> nn.ModuleDict:
        return nn.ModuleDict({"net": self.video_net, "filter": self.video_filter, "proj": self.video_proj})

    def _audio_branch(self) -> nn.ModuleDict:
        return nn.ModuleDict({"net": self.audio_net, "filter": self.audio_filter, "proj": self.audio_proj})

    # -- data -----------------------------------------------------------------------------------
    def pair_spec(self) -> PairSpec:
        hp = self.hparams
        return PairSpec(
            video_frames=hp["video_frames"], video_fps=hp["video_fps"], audio_seconds=hp["audio_seconds"],
            positive_fraction=hp["positive_fraction"], curriculum=(CurriculumStage(0, NegativeMix(easy=1.0)),),
            audio_channels=1, audio_sample_rate=hp["sample_rate"])

    def audio_features(self) -> LogMelFilterbank:
        hp = self.hparams
        return LogMelFilterbank(sample_rate=hp["sample_rate"], n_fft=hp["fft_size"], window_s=hp["window_s"],
                                step_s=hp["step_s"], num_filters=hp["num_mels"])

    def fit_normalization(self, samples: Iterable[dict] | Sequence[dict], *, fraction: float = 0.2,
                          seed: int = 0) -> dict[str, Any]:
        return self.normalizer.fit(samples, audio_features=self.audio_features(), fraction=fraction,
                                   seed=seed, band_dim=-1)

    def copy_normalization(self, source: PretrainMethod) -> None:
        self.normalizer.load_state_dict(source.normalizer.state_dict())

    def spec_augment(self) -> SpecAugment:
        hp = self.hparams
        return SpecAugment(time_warp=hp["time_warp"], freq_mask=hp["freq_mask"], time_mask=hp["time_mask"])

    def preprocess(self, *, train: bool = True) -> PairPreprocess | SpecAugmentedPairPreprocess:
        """Raw pair -> {"video": [3, T, S, S], "audio": [1, frames, mels], ...}; SpecAugment in training only."""
        hp = self.hparams
        stats = self.normalizer.snapshot()
        clip = ClipTransform(short_side=hp["short_side"], size=hp["crop_size"], train=train,
                             mean=stats["video_mean"], std=stats["video_std"], scales=hp["crop_scales"],
                             color_jitter=hp["color_jitter"], color_jitter_p=hp["color_jitter_p"])
        pairs = PairPreprocess(clip=clip, audio_features=self.audio_features(), audio_mean=stats["audio_mean"],
                               audio_std=stats["audio_std"], band_dim=-1,
                               num_samples=round(hp["audio_seconds"] * hp["sample_rate"]), single_frame=False)
        return SpecAugmentedPairPreprocess(pairs, self.spec_augment()) if train else pairs

    # -- model ----------------------------------------------------------------------------------
    @staticmethod
    def _encode(branch: nn.Module | dict, x: torch.Tensor) -> dict[str, torch.Tensor]:
        fmap = branch["net"](x, return_map=True)
        g, kappa = branch["filter"](fmap)
        return {"map": fmap, "g": g, "kappa": kappa, "z": branch["proj"](kappa)}

    def encode(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Online video and audio branches: feature map, g-map, filter kappa and its projection z."""
        video = self._encode({"net": self.video_net, "filter": self.video_filter, "proj": self.video_proj},
                             batch["video"])
        audio = self._encode({"net": self.audio_net, "filter": self.audio_filter, "proj": self.audio_proj},
                             batch["audio"])
        return video, audio

    def guided_attention(self, video: dict[str, torch.Tensor],
                         audio: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(s_v [B, T, H, W] from the audio filter, s_a [B, time, mel] from the video filter)."""
        hp = self.hparams
        kw = {"scales": int(hp["pyramid_scales"]), "normalization": hp["normalization"]}
        return (pyramid_correlation(audio["kappa"], video["g"], **kw),
                pyramid_correlation(video["kappa"], audio["g"], **kw))

    def video_backbone(self) -> nn.Module:
        """R(2+1)D up to its global pooling (no filter, no projection)."""
        return self.video_net

    def audio_backbone(self) -> nn.Module:
        return self.audio_net

    @torch.no_grad()
    def localization_maps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The audio-guided visual attention s_v at the middle time step of the last feature map:
        [B, 1, h, w], non-negative (the plain dot product of normalization="none" is clipped at 0)."""
        video, audio = self.encode(batch)
        s_v, _ = self.guided_attention(video, audio)
        middle = s_v[:, s_v.shape[1] // 2]
        return middle.clamp_min(0).unsqueeze(1)

    # -- learning -------------------------------------------------------------------------------
    @staticmethod
    def _instances(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(clip ids, source-video ids) of a batch; samples without a known source count as their own."""
        clips = batch["clip"].long()
        sources = batch.get("source")
        if sources is None or bool((sources < 0).any()):
            return clips, clips
        return clips, sources.long()

    def _contrastive(self, query: torch.Tensor, keys_other: torch.Tensor, keys_same_bank: MemoryBank,
                     other_bank: MemoryBank, sources: torch.Tensor) -> torch.Tensor:
        """CMAC Eq. 7 for one direction, per query: the positive is the other modality's key of the same
        pair; negatives the other modality's keys of other videos in the batch and in its bank, and (with
        ``within_modal_negatives``) this modality's bank keys of other videos."""
        other_video = sources.unsqueeze(1) != sources.unsqueeze(0)
        candidates = [keys_other, other_bank.keys]
        masks = [other_video, other_bank.negative_mask(sources)]
        if self.hparams["within_modal_negatives"]:
            candidates.append(keys_same_bank.keys)
            masks.append(keys_same_bank.negative_mask(sources))
        loss = masked_info_nce(query, keys_other, torch.cat(candidates), torch.cat(masks, dim=1),
                               temperature=self.hparams["temperature"])
        return loss.mean()

    def _within_positive(self, query: torch.Tensor, bank: MemoryBank, clips: torch.Tensor,
                         sources: torch.Tensor) -> torch.Tensor:
        """AVID-style within-modal positive (CMAC Table 3): the clip's key from the bank, against the bank's
        keys of other videos; queries whose clip has no key in the bank yet do not count."""
        positive, found = bank.lookup(clips)
        if not bool(found.any()):
            return query.sum() * 0.0  # keeps every parameter in the graph
        loss = masked_info_nce(query, positive, bank.keys, bank.negative_mask(sources),
                               temperature=self.hparams["temperature"])
        return loss[found].mean()

    @torch.no_grad()
    def _keys(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        k_v = self._encode(self.key_video, batch["video"])["z"]
        k_a = self._encode(self.key_audio, batch["audio"])["z"]
        return F.normalize(k_v.float(), dim=1), F.normalize(k_a.float(), dim=1)

    def training_step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        hp = self.hparams
        clips, sources = self._instances(batch)
        video, audio = self.encode(batch)
        k_v, k_a = self._keys(batch)
        l_cl_v = self._contrastive(video["z"], k_a, self.video_bank, self.audio_bank, sources)
        l_cl_a = self._contrastive(audio["z"], k_v, self.audio_bank, self.video_bank, sources)
        contrastive = l_cl_v + l_cl_a
        if hp["within_modal_positives"]:
            contrastive = contrastive + self._within_positive(video["z"], self.video_bank, clips, sources) \
                + self._within_positive(audio["z"], self.audio_bank, clips, sources)
        s_v, s_a = self.guided_attention(video, audio)
        s_hat_v, s_hat_a = self.video_saliency(video["map"]), self.audio_saliency(audio["map"])
        l_ac_v = attention_consistency_loss(s_v, s_hat_v, detach_target=hp["detach_target"])
        l_ac_a = attention_consistency_loss(s_a, s_hat_a, detach_target=hp["detach_target"])
        # With lambda_ac = 0 the term is still in the graph (zero gradients), so every parameter gets a
        # gradient and DDP needs no find_unused_parameters.
        loss = contrastive + hp["lambda_ac"] * (l_ac_v + l_ac_a)
        self._pending.append((k_v.detach(), k_a.detach(), clips.detach(), sources.detach()))
        correct, chance = self._instance_top1(video["z"].detach(), audio["z"].detach(), sources)
        metrics = {"loss": float(loss.detach()), "loss_cl": float(contrastive.detach()),
                   "loss_ac_v": float(l_ac_v.detach()), "loss_ac_a": float(l_ac_a.detach()),
                   "acc": float(correct.float().mean()), "chance": chance}
        return StepOutput(loss=loss, metrics=metrics, correct=correct, kinds=batch.get("kind"))

    @staticmethod
    def _instance_top1(z_v: torch.Tensor, z_a: torch.Tensor, sources: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Per clip: is its own audio the nearest (cosine) among the batch's audio of other videos plus
        its own? Returns the 1/0 tensor and the mean chance level, 1 / (number of candidates)."""
        sim = F.normalize(z_v.float(), dim=1) @ F.normalize(z_a.float(), dim=1).t()
        eye = torch.eye(len(sources), dtype=torch.bool, device=sim.device)
        candidate = (sources.unsqueeze(1) != sources.unsqueeze(0)) | eye
        sim = sim.masked_fill(~candidate, float("-inf"))
        correct = (sim.argmax(dim=1) == torch.arange(len(sources), device=sim.device)).long()
        chance = float((1.0 / candidate.sum(dim=1).double()).mean())
        return correct, chance

    @torch.no_grad()
    def evaluation_step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        """Instance discrimination top-1 on held-out positives: the matching audio must be the nearest
        of the batch's audio (other videos' and its own), by cosine of the projected filters; chance is
        1 / batch size when the batch holds clips of distinct videos. The loss is Eq. 1 within the batch."""
        _, sources = self._instances(batch)
        video, audio = self.encode(batch)
        correct, chance = self._instance_top1(video["z"], audio["z"], sources)
        other = sources.unsqueeze(1) != sources.unsqueeze(0)
        loss = masked_info_nce(video["z"], audio["z"], audio["z"], other,
                               temperature=self.hparams["temperature"]).mean()
        metrics = {"loss": float(loss), "acc": float(correct.float().mean()), "chance": chance}
        return StepOutput(loss=loss, metrics=metrics, correct=correct, kinds=batch.get("kind"))

    def after_optimizer_step(self) -> None:
        """Move the key encoders towards the online ones, then write this step's keys to the banks
        (gathered from every rank under DDP, in rank order, so all ranks hold the same banks)."""
        m = float(self.hparams["key_momentum"])
        momentum_update_(self.key_video, self._video_branch(), m)
        momentum_update_(self.key_audio, self._audio_branch(), m)
        if self._pending:
            k_v, k_a, clips, sources = (torch.cat(parts) for parts in zip(*self._pending, strict=True))
        else:
            dim = self.video_bank.keys.shape[1]
            k_v = k_a = self.video_bank.keys.new_zeros(0, dim)
            clips = sources = self.video_bank.clips.new_zeros(0)
        self._pending.clear()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (k_v.cpu(), k_a.cpu(), clips.cpu(), sources.cpu()))
            device = self.video_bank.keys.device
            k_v, k_a, clips, sources = (torch.cat([g[i] for g in gathered]).to(device) for i in range(4))
        self.video_bank.write(k_v, clips, sources)
        self.audio_bank.write(k_a, clips, sources)

    def optim_spec(self) -> OptimSpec:
        hp = self.hparams
        return OptimSpec(name=hp["optimizer"], lr=hp["lr"], momentum=hp["momentum"],
                         weight_decay=hp["weight_decay"], schedule="constant",
                         warmup_steps=int(hp["warmup_steps"]))

    def uses_3d_convolutions(self) -> bool:
        return True
