"""Downstream evaluation presets: ``evaluate.protocol: quick | paper``.

``quick`` is the configuration in params.yaml as it stands (the leaderboard's protocol). ``paper`` replaces,
for each method, the settings its paper states for each downstream task: the layer read, the clip length and
count per dataset, the optimiser, schedule and head. Each preset is stated once, here, with the section it
comes from; what the paper leaves open keeps the quick value and says so in ``gaps``.

``evaluate.paper_max`` caps iterations, epochs and clip counts for small runs (a tiny world cannot run
30,000 iterations on 25 sub-clips); the capped values are named in each task's protocol string.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from avssl_core.config import EvaluateConfig
from avssl_core.errors import ConfigError

PROTOCOLS = ("quick", "paper")


@dataclass(frozen=True)
class ActionPreset:
    """Fine-tuning for action recognition (UCF101/HMDB51)."""

    source: str
    layer: str  # what is fine-tuned and classified (words, for the protocol string and the README table)
    optimizer: str
    lr: float
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 16
    epochs: int | None = None  # passes over the training videos (each giving clips_per_video clips)
    iterations: int | None = None  # optimiser steps; replaces epochs where the paper counts steps
    lr_step: int | None = None  # multiply the rate by lr_gamma every lr_step steps
    lr_gamma: float = 1.0
    clips_per_video: int = 1
    test_clips: int = 10
    head: str = "auto"  # auto: linear (video) or FC 512 -> FC C (audio_visual) | two_fc: always FC -> FC
    dropout: float = 0.0
    colour_jitter: float = 0.0  # strength of the fine-tuning colour jitter (eval/jitter.py); 0: none
    clip_seconds: float | None = None  # the paper's clip; None: the method's window (see ``gaps``)
    modality: str | None = None  # video | audio_visual; None: evaluate.action.modality


@dataclass(frozen=True)
class AudioPreset:
    """Frozen audio features + linear classifier (ESC-50 / DCASE)."""

    source: str
    layer: str  # "embedding" (the method's audio_backbone) | "conv5" (AVTS: the last conv block, pooled)
    classifier: str
    subclips: dict[str, tuple[int, float]]  # dataset -> (sub-clips per file, seconds each)


@dataclass(frozen=True)
class PaperPreset:
    action: ActionPreset
    audio: AudioPreset
    retrieval_clips: int
    retrieval_source: str
    gaps: tuple[str, ...] = field(default_factory=tuple)  # what the paper does not state, or cannot be run


# The synthetic world is exported to ESC-50 layout, so it takes ESC-50's sub-clips.
PRESETS: dict[str, PaperPreset] = {
    "avts": PaperPreset(
        action=ActionPreset(
            source="AVTS Sec. 3.2 (the video subnetwork fine-tuned; optimiser, schedule and clip counts not given)",
            layer="MC3 video subnetwork, pooled, + linear classifier", optimizer="sgd", lr=0.01,
            weight_decay=0.005, epochs=30, clips_per_video=1, test_clips=10),
        audio=AudioPreset(
            source="AVTS Sec. 3.3: conv_5 activations, multiclass one-vs-all linear SVM, 10 equally spaced 2 s "
                   "sub-clips per ESC-50 file, 60 per DCASE file, sub-clip scores averaged",
            layer="conv5", classifier="linear_svm",
            subclips={"esc50": (10, 2.0), "synthetic": (10, 2.0), "dcase": (60, 2.0)}),
        retrieval_clips=10, retrieval_source="not in the AVTS paper: CMAC Sec. 4.2's 10 clips per video",
        gaps=("fine-tuning optimiser, rate, epochs and clip counts: not in the paper (the quick values, 10 test "
              "clips)", "DCASE sub-clip length: not given (2 s, as ESC-50)")),
    "avc": PaperPreset(
        action=ActionPreset(
            source="not in the AVC paper (it reports retrieval and t-SNE only): CMAC Sec. 4.2's fine-tuning",
            layer="ResNet-18 image network + linear classifier", optimizer="sgd", lr=0.005, weight_decay=0.005,
            epochs=12, clips_per_video=10, test_clips=10),
        audio=AudioPreset(
            source="not in the AVC paper: CMAC Sec. 4.5's sub-clips", layer="embedding", classifier="logistic",
            subclips={"esc50": (10, 2.0), "synthetic": (10, 2.0), "dcase": (60, 1.0)}),
        retrieval_clips=10, retrieval_source="AVC Sec. IV-B: intra- and cross-modal retrieval (clip count not given)",
        gaps=("AVC evaluates retrieval and t-SNE only; action recognition and audio classification borrow CMAC's "
              "protocol",)),
    "coattention": PaperPreset(
        action=ActionPreset(
            source="co-attention Sec. 4: whole network fine-tuned, final audio and visual co-attention outputs "
                   "concatenated, two FC layers, dropout 0.5, Adam 3e-5 halved every 10k iterations, 30k "
                   "iterations, batch 16, 2.56 s clips, 25 test sub-clips",
            layer="encoders + co-attention stack, concatenated final audio and visual outputs, FC 512 -> FC C",
            optimizer="adam", lr=3e-5, batch_size=16, iterations=30_000, lr_step=10_000, lr_gamma=0.5,
            clips_per_video=1, test_clips=25, head="two_fc", dropout=0.5, clip_seconds=2.56,
            modality="audio_visual"),
        audio=AudioPreset(
            source="not in the co-attention paper (no audio classification): CMAC Sec. 4.5's sub-clips",
            layer="embedding", classifier="logistic",
            subclips={"esc50": (10, 2.0), "synthetic": (10, 2.0), "dcase": (60, 1.0)}),
        retrieval_clips=10, retrieval_source="not in the co-attention paper: CMAC Sec. 4.2's 10 clips per video",
        gaps=("the vision-only variant is the pretrained vision-only model (pretrain hparam vision_only), whose "
              "co-attention stack runs as self-attention with the audio half zero",
              "clips are the model's own window (tiny 2 s, paper 4.2 s), not 2.56 s: the audio position "
              "embeddings and the fusion are sized by the window", "no audio classification or retrieval in the "
              "paper")),
    "cmac": PaperPreset(
        action=ActionPreset(
            source="CMAC Sec. 4.2 and 4.5: SGD lr 0.005, wd 5e-3, momentum 0.9, batch 16, 12 epochs, 10 random "
                   "clips of 32 frames per video, 10 test clips, random crop + colour jitter + flips",
            layer="R(2+1)D-18 video encoder, pooled after the last residual block, + linear classifier",
            optimizer="sgd", lr=0.005, weight_decay=0.005, epochs=12, clips_per_video=10, test_clips=10,
            colour_jitter=0.4),
        audio=AudioPreset(
            source="CMAC Sec. 4.2: a linear classifier; ESC-50 10 clips of 2 s, DCASE 60 clips of 1 s",
            layer="embedding", classifier="logistic",
            subclips={"esc50": (10, 2.0), "synthetic": (10, 2.0), "dcase": (60, 1.0)}),
        retrieval_clips=10, retrieval_source="CMAC Sec. 4.2: 10 uniformly sampled clips per video, pooled "
                                             "features averaged, cosine K-NN",
        gaps=("colour jitter strength: 'strong' ([38]), taken as 0.4 brightness/contrast/saturation",)),
}


@dataclass(frozen=True)
class Resolved:
    """What a protocol asks of one evaluation."""

    name: str  # "quick" | "paper:<method>" (named in every task's protocol string)
    config: EvaluateConfig  # the evaluate section with the preset's values in place
    action: ActionPreset | None = None  # paper only
    audio_layer: str = "embedding"
    audio_subclip_seconds: float | None = None  # None: the method's window (quick)
    colour_jitter: float = 0.0
    caps: tuple[str, ...] = ()  # the paper_max caps that took effect, in words


def resolve(ec: EvaluateConfig, method: str) -> Resolved:
    """The evaluate settings of ``ec.protocol`` for ``method``; quick: ``ec`` itself."""
    if ec.protocol not in PROTOCOLS:
        raise ConfigError(f"evaluate.protocol {ec.protocol!r}: choose one of {list(PROTOCOLS)}")
    if ec.protocol == "quick":
        return Resolved(name="quick", config=ec)
    if method not in PRESETS:
        raise ConfigError(f"evaluate.protocol=paper: no paper preset for method {method!r}")
    preset = PRESETS[method]
    act, aud, cap = preset.action, preset.audio, ec.paper_max
    caps: list[str] = []

    def capped(value: int, limit: int | None, what: str) -> int:
        if limit is not None and value > limit:
            caps.append(f"{what} {value} -> {limit}")
            return limit
        return value

    count, seconds = aud.subclips[ec.audio.dataset]
    action = dataclasses.replace(
        ec.action, modality=act.modality or ec.action.modality, optimizer=act.optimizer, lr=act.lr, momentum=act.momentum, weight_decay=act.weight_decay,
        batch_size=act.batch_size, epochs=capped(act.epochs or 1, cap.epochs, "epochs"),
        clips_per_video=capped(act.clips_per_video, cap.clips, "training clips/video"),
        test_clips=capped(act.test_clips, cap.clips, "test clips/video"))
    iterations = act.iterations and capped(act.iterations, cap.iterations, "iterations")
    act = dataclasses.replace(act, iterations=iterations,
                              lr_step=act.lr_step and max(1, round(act.lr_step * iterations / preset.action.iterations)))
    audio = dataclasses.replace(ec.audio, classifier=aud.classifier,
                                clips_per_file=capped(count, cap.clips, "audio sub-clips/file"))
    retrieval = dataclasses.replace(ec.retrieval, clips_per_video=capped(preset.retrieval_clips, cap.clips,
                                                                         "retrieval clips/video"))
    config = dataclasses.replace(ec, action=action, audio=audio, retrieval=retrieval)
    return Resolved(name=f"paper:{method}", config=config, action=act, audio_layer=aud.layer,
                    audio_subclip_seconds=seconds, colour_jitter=act.colour_jitter, caps=tuple(caps))


def steps_to_epochs(iterations: int, batch_size: int, windows_per_epoch: int) -> int:
    """Passes over the training windows that ``iterations`` steps of ``batch_size`` need."""
    return max(1, math.ceil(iterations * batch_size / max(1, windows_per_epoch)))


def table() -> list[dict[str, str]]:
    """One row per method and task: what the paper protocol runs (for the README and the closing note)."""
    rows = []
    for method, p in PRESETS.items():
        a = p.action
        length = "the method's window" + (f" (paper: {a.clip_seconds} s)" if a.clip_seconds else "")
        schedule = (f"{a.iterations} iterations, x{a.lr_gamma} every {a.lr_step}" if a.iterations
                    else f"{a.epochs} epochs")
        rows.append({"method": method, "task": "action_recognition", "layer": a.layer,
                     "clips": f"train {a.clips_per_video}/video, test {a.test_clips}/video; length {length}",
                     "optimiser": f"{a.optimizer} lr {a.lr} wd {a.weight_decay} batch {a.batch_size}, {schedule}"
                                  + (f", dropout {a.dropout}" if a.dropout else "")
                                  + (f", colour jitter {a.colour_jitter}" if a.colour_jitter else ""),
                     "paper": a.source})
        rows.append({"method": method, "task": "audio_probe", "layer": p.audio.layer,
                     "clips": ", ".join(f"{d} {n} x {s:g} s" for d, (n, s) in p.audio.subclips.items()),
                     "optimiser": p.audio.classifier, "paper": p.audio.source})
        rows.append({"method": method, "task": "retrieval", "layer": "pooled video backbone",
                     "clips": f"{p.retrieval_clips}/video", "optimiser": "none (frozen)",
                     "paper": p.retrieval_source})
    return rows
