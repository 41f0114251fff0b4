"""The interface every pretraining method implements, so one trainer runs them all.

A method owns its encoders, heads and loss, its presets, the pairs it wants (PairSpec) and how a raw
sample becomes model input (``preprocess``: its ``host`` half runs in DataLoader workers, its ``device`` half
on the training device, see ``device_transform``). The trainer owns everything
else: devices, precision, DDP, optimisation loop, checkpoints, logging.

Raw sample (what the pair dataset yields before ``preprocess``):
    {"video": uint8 tensor [T, H, W, 3],       # the video window, T = spec.video_frames
     "audio": float32 tensor [C, S] in [-1, 1], # the audio window, C = spec.audio_channels
     "label": int,                              # 1: in sync / corresponding, 0: negative
     "kind": int,                               # avssl_core.pretext.spec.PairKind
     "index": int,                              # position in the epoch's sample order
     "clip": int,                               # row of the anchor clip (the video window's clip) in
                                                # the sampler's clip index: a stable instance id
                                                # (memory banks key on it)
     "source": int}                             # the source video of that clip (clips cut from one
                                                # video share it; contrastive negatives come from
                                                # other videos)
``preprocess`` maps it to a dict of tensors (plus "label", "kind", "index" passed through); batches are
those dicts stacked by the default collate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from avssl_core.pretext.spec import PairSpec
from avssl_core.transforms.features import HOST_FRAMES, PairTransform


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, to backpropagate
    metrics: dict[str, float]  # logged per step (detached floats): e.g. {"acc": 0.75}
    # For pretext accuracy over a split: per-sample 1/0 correctness, and the pair kinds.
    correct: torch.Tensor | None = None
    kinds: torch.Tensor | None = None


@dataclass(frozen=True)
class OptimSpec:
    """The optimiser and schedule a method's paper uses; the trainer builds them."""

    name: str  # "sgd" | "adam" | "adamw"
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"  # "constant" | "cosine" | "plateau" (x0.1 when the loss stalls)
    plateau_patience: int = 5  # epochs (AVTS: x0.1 when the loss fails to decrease for > 5 epochs)
    warmup_steps: int = 0
    # 0-based epochs where the objective changes (AVTS's curriculum stages): the plateau tracking starts
    # afresh there, since the new objective's losses are not comparable with the old one's best.
    plateau_restart_epochs: tuple[int, ...] = ()


class PretrainMethod(nn.Module):
    """Base class. Subclasses set ``name`` and ``PRESETS`` and implement the abstract methods."""

    name: ClassVar[str] = ""
    # preset name -> hyper-parameters (plain JSON-able values); at least "tiny" and "paper".
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    # The hyper-parameter holding the square frame size the video network sees, for methods whose
    # networks take any frame size (``resized``); None where a layer is sized by the frame (an FC over
    # the flattened feature map).
    CROP_HPARAM: ClassVar[str | None] = None

    def __init__(self, preset: str, **overrides: Any) -> None:
        super().__init__()
        if preset not in self.PRESETS:
            raise ValueError(f"{self.name}: unknown preset {preset!r}; choose one of {sorted(self.PRESETS)}")
        unknown = set(overrides) - set(self.PRESETS[preset])
        if unknown:
            raise ValueError(f"{self.name}: unknown hyper-parameters {sorted(unknown)}")
        self.preset = preset
        self.hparams: dict[str, Any] = {**self.PRESETS[preset], **overrides}
        self._device_side: PairTransform | None = None  # built on first use by device_transform

    # -- identity, so a checkpoint from another method or an incompatible preset is refused ---------
    def signature(self) -> dict[str, Any]:
        return {"method": self.name, "preset": self.preset, "hparams_hash": hparams_hash(self.hparams)}

    # -- what the data must look like ------------------------------------------------------------
    def pair_spec(self) -> PairSpec:
        raise NotImplementedError

    def preprocess(self) -> PairTransform:
        """A picklable callable: raw sample -> model inputs, which names the part of a frame its evaluation
        preprocessing keeps (``PairTransform.frame_crop``). Its ``host`` half runs in DataLoader workers, its
        ``device`` half in ``device_transform``."""
        raise NotImplementedError

    @torch.no_grad()
    def device_transform(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The device half of the data path: a collated batch of ``preprocess().host`` items, already moved
        to the method's device -> model inputs (a batch of ``preprocess()`` outputs is returned as it is).
        The trainer and pretext evaluation call it after moving each batch. The batch's own draws say what
        to do (an evaluation batch has none), so one transform serves training and evaluation; the
        normalisation statistics are the method's buffers (``normalizer``, where it has one)."""
        if HOST_FRAMES not in batch:
            return batch
        if self._device_side is None:
            self._device_side = self.preprocess(train=True)
        normalizer = getattr(self, "normalizer", None)
        stats = None if normalizer is None else {
            k: getattr(normalizer, k) for k in ("audio_mean", "audio_std", "video_mean", "video_std")}
        return self._device_side.device(batch, stats)

    # -- learning ---------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        raise NotImplementedError

    @torch.no_grad()
    def evaluation_step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        """Pretext prediction on held-out pairs; defaults to the training computation without grad."""
        return self.training_step(batch)

    def optim_spec(self) -> OptimSpec:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        """Hook for epoch-dependent state (e.g. a second training phase); state must be derivable from
        the epoch so that resume stays exact."""

    def uses_3d_convolutions(self) -> bool:
        """True when channels_last_3d applies to the video network."""
        return False

    def after_optimizer_step(self) -> None:
        """Called by the trainer after every optimizer step (momentum encoders, memory banks). Whatever
        it changes must be a parameter or buffer, so checkpoints carry it and resume stays exact."""

    # -- input normalisation (the pretrain stage fits it; evaluation copies it) ------------------------
    def fit_normalization(self, samples: Iterable[dict] | Sequence[dict], *, fraction: float = 0.2,
                          seed: int = 0) -> dict[str, Any]:
        """Estimate the statistics that normalise the method's inputs from a random ``fraction`` of raw
        training samples (pass a dataset, with len and indexing, to decode only that share; ``seed``
        picks them) and keep them as buffers, so checkpoints and model.pt carry them; returns them.
        The pretrain stage calls it once before training. Default: the inputs need no statistics;
        nothing is read and {} returned."""
        return {}

    def copy_normalization(self, source: PretrainMethod) -> None:
        """Take ``source``'s input statistics (the same method and hyper-parameters), so that a second
        instance, evaluation's random-init baseline, sees inputs identical to the pretrained model's.
        Default: there are none to copy."""

    # -- downstream evaluation (avssl_core/eval) ----------------------------------------------------
    # Evaluation builds raw samples at the method's own pair_spec() windows from labelled videos, runs
    # ``preprocess`` on them, and calls these. Features are pooled backbone outputs, before any pretext
    # head or projection, so fine-tuning and linear probes see what the encoder learned.
    def video_backbone(self) -> nn.Module:
        """A module: preprocessed ``batch["video"]`` tensor -> [B, D] features (trainable, for fine-tuning).
        Default: the method's ``video_net``."""
        return self._network("video_net")

    def audio_backbone(self) -> nn.Module:
        """A module: preprocessed ``batch["audio"]`` tensor -> [B, D] features. Default: ``audio_net``."""
        return self._network("audio_net")

    def backbone_features(self, modality: str) -> nn.Module:
        """A module, preprocessed batch dict -> [B, D]: ``modality`` "video": the video backbone;
        "audio_visual": the video and audio backbones' features concatenated (the quick protocol's
        fine-tuning model)."""
        audio = self.audio_backbone() if modality == "audio_visual" else None
        return BackboneFeatures(self.video_backbone(), audio)

    def downstream_video_model(self, modality: str) -> nn.Module:
        """What the paper protocol's action recognition fine-tunes (same contract as ``backbone_features``).
        Default: ``backbone_features``; a method whose paper fine-tunes more (co-attention: its
        co-attention stack) overrides this."""
        return self.backbone_features(modality)

    def downstream_audio_features(self, layer: str) -> nn.Module:
        """Frozen audio features for the audio classification probe: preprocessed ``batch["audio"]`` ->
        [B, D]. ``layer`` "embedding": ``audio_backbone``; a method whose paper reads another layer (AVTS:
        "conv5") overrides this."""
        if layer == "embedding":
            return self.audio_backbone()
        raise ValueError(f"{self.name}: no audio feature layer {layer!r} (it has: 'embedding')")

    def resized(self, size: int) -> PretrainMethod:
        """The same weights seeing ``size``-pixel frames (the short side resized in the same proportion)
        in evaluation, for finer localization maps from fully convolutional networks. Refused where a
        layer is sized by the frame."""
        key = self.CROP_HPARAM
        if key is None:
            raise ValueError(f"{self.name}: its networks are sized for {self.preset} frames; "
                             "localization cannot run them on another frame size")
        hp = dict(self.hparams)
        hp["short_side"] = max(size, round(size * hp["short_side"] / hp[key]))
        hp[key] = size
        twin = type(self)(self.preset, **hp)
        twin.load_state_dict(self.state_dict())
        return twin.to(next(self.parameters()).device).train(self.training)

    def _network(self, attribute: str) -> nn.Module:
        net = getattr(self, attribute, None)
        if not isinstance(net, nn.Module):
            raise NotImplementedError(f"{self.name}: no {attribute}; override the backbone accessor")
        return net

    # -- cross-modal retrieval --------------------------------------------------------------------
    def has_shared_space(self) -> bool:
        """True when ``embed_video`` and ``embed_audio`` map both modalities into one space whose distances
        compare a clip with a sound; evaluation runs cross-modal retrieval only then. A method that
        overrides the two embeddings overrides this too. Default: no shared space."""
        return False

    def embed_video(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Preprocessed batch -> [B, D] video embeddings in the shared space (see ``has_shared_space``)."""
        raise NotImplementedError(f"{self.name}: no shared audio-visual embedding space")

    def embed_audio(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Preprocessed batch -> [B, D] audio embeddings in the shared space (see ``has_shared_space``)."""
        raise NotImplementedError(f"{self.name}: no shared audio-visual embedding space")

    # -- sound-source localisation ------------------------------------------------------------------
    @torch.no_grad()
    def localization_maps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Where the sound comes from in the (middle) frame: [B, K, h, w], non-negative, K maps per sample
        (attention heads; 1 for class-activation-style maps), at the feature map's resolution; the
        evaluator resizes them to the frame."""
        raise NotImplementedError(f"{self.name}: no localization maps")

    # -- pretext protocols ------------------------------------------------------------------------
    # The fixed negative mixes (avssl_core/methods/protocols.py PROTOCOLS) the pretrain stage measures the
    # method's held-out pretext accuracy under; the first is the one its chance is recorded for.
    pretext_protocols: ClassVar[tuple[str, ...]] = ("easy",)


class BackboneFeatures(nn.Module):
    """Batch dict -> the video backbone's features, with the audio backbone's concatenated when given
    (shares the backbones' weights)."""

    def __init__(self, video: nn.Module, audio: nn.Module | None = None) -> None:
        super().__init__()
        self.video, self.audio = video, audio

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = self.video(batch["video"])
        if self.audio is not None:
            feats = torch.cat([feats, self.audio(batch["audio"])], dim=1)
        return feats


def hparams_hash(hparams: dict[str, Any]) -> str:
    blob = json.dumps(hparams, sort_keys=True, default=_plain)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return str(obj)
