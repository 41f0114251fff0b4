"""Action recognition by fine-tuning a method's video network (or its video and audio networks together).

Protocol (AVTS Sec. 3.2, co-attention Sec. 5, CMAC Sec. 4.2): the pretrained backbone plus a new classifier
is trained end to end with cross-entropy on clips at random, seeded start times (``clips_per_video`` per
video and epoch, the method's own training augmentation); at test time ``n`` uniformly spaced clips per
video are classified and their softmax scores averaged. clip@1 is top-1 accuracy over test clips, video@1
over test videos. The same protocol from random initialisation (same architecture, seed and inputs) is the
baseline. ``modality="audio_visual"`` concatenates the video and audio features and classifies them with
FC 512 -> FC C (AVTS Sec. 3.3; co-attention Sec. 5); ``"video"`` puts one linear layer on the video features.
The quick protocol fine-tunes the method's ``backbone_features(modality)``; the paper protocol
(eval/paper_protocols.py) its ``downstream_video_model(modality)`` (co-attention: encoders and co-attention
stack), and may ask for two FC layers with dropout whatever the modality, a step schedule, and a number of
optimiser steps in place of whole epochs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from avssl_core.eval.clips import WindowSet
from avssl_core.eval.layouts import LabelledMedia
from avssl_core.methods.base import PretrainMethod
from avssl_core.pretext.dataset import FAILED_KEY, batch_size_of, collate_skipping_failures

MODALITIES = ("video", "audio_visual")
HEADS = ("auto", "two_fc")
FINE_TUNED = ("backbones", "paper")


@dataclass(frozen=True)
class FineTuneSettings:
    modality: str = "video"
    epochs: int = 3
    batch_size: int = 16
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-3  # CMAC Sec. 4.2
    head_dim: int = 512  # the hidden FC of a two-layer head
    seed: int = 0
    head: str = "auto"  # auto: linear (video) or FC -> FC (audio_visual) | two_fc: FC -> FC always
    dropout: float = 0.0  # before each FC of a two-layer head (co-attention Sec. 4: 0.5)
    iterations: int | None = None  # stop after this many optimiser steps (None: every epoch's windows)
    lr_step: int | None = None  # multiply the rate by lr_gamma every lr_step steps (None: constant)
    lr_gamma: float = 1.0
    model: str = "backbones"  # backbones: backbone_features (quick) | paper: downstream_video_model


def labelled_subset(items: Sequence[LabelledMedia], groups_per_class: int, seed: int) -> tuple[LabelledMedia, ...]:
    """The training videos of at most ``groups_per_class`` source videos (groups) per class, drawn with
    ``seed``, in their original order: the label-efficiency protocol (few labelled videos, the encoder
    pretrained on all of them without labels). Whole groups are kept, because clips cut from one video
    are not independent labelled examples."""
    rng = np.random.default_rng([seed, groups_per_class])
    groups: dict[str, set[str]] = {}
    for item in items:
        groups.setdefault(item.label, set()).add(item.group)
    keep = set()
    for label in sorted(groups):
        names = sorted(groups[label])
        chosen = rng.choice(len(names), size=min(groups_per_class, len(names)), replace=False)
        keep.update((label, names[i]) for i in chosen)
    return tuple(item for item in items if (item.label, item.group) in keep)


class ClipClassifier(nn.Module):
    """A method's downstream model (a deep copy: the method itself is left as it was) and a new classifier."""

    def __init__(self, method: PretrainMethod, num_classes: int, modality: str, head_dim: int,
                 example: dict[str, torch.Tensor], *, head: str = "auto", dropout: float = 0.0,
                 model: str = "backbones") -> None:
        super().__init__()
        if modality not in MODALITIES:
            raise ValueError(f"action recognition modality {modality!r}: choose one of {MODALITIES}")
        if head not in HEADS:
            raise ValueError(f"action recognition head {head!r}: choose one of {HEADS}")
        self.modality = modality
        if model not in FINE_TUNED:
            raise ValueError(f"fine-tuned model {model!r}: choose one of {FINE_TUNED}")
        chosen = method.backbone_features(modality) if model == "backbones" else method.downstream_video_model(modality)
        self.features = copy.deepcopy(chosen)
        width = self._features(example, probe=True).shape[1]
        if head == "auto" and modality == "video":
            self.head = nn.Linear(width, num_classes)
        else:
            drop = [nn.Dropout(dropout)] if dropout > 0 else []  # only when asked: p=0 keeps the quick runs as they were
            self.head = nn.Sequential(*drop, nn.Linear(width, head_dim), nn.ReLU(inplace=True),
                                      *drop, nn.Linear(head_dim, num_classes))

    def _features(self, batch: dict[str, torch.Tensor], probe: bool = False) -> torch.Tensor:
        if probe:  # the feature width, without touching batch-norm statistics
            mode = self.features.training
            self.features.eval()
            with torch.no_grad():
                out = self.features(batch)
            self.features.train(mode)
            return out
        return self.features(batch)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self._features(batch))


def _optimizer(model: nn.Module, s: FineTuneSettings) -> torch.optim.Optimizer:
    if s.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    raise ValueError(f"fine-tuning optimizer {s.optimizer!r}: choose sgd or adam")


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def first_good(dataset: WindowSet) -> dict[str, torch.Tensor]:
    for i in range(len(dataset)):
        sample = dataset[i]
        if isinstance(sample, dict):
            return {k: v.unsqueeze(0) for k, v in sample.items() if torch.is_tensor(v)}
    raise ValueError("no training window could be decoded")


def fine_tune(method: PretrainMethod, train_set: WindowSet, test_set: WindowSet, num_classes: int,
              settings: FineTuneSettings, *, device: torch.device | str = "cpu") -> dict[str, float]:
    """Train a classifier on ``train_set`` (windows of every epoch; ``Window.epoch`` says which) and test it
    on ``test_set``; returns {"clip@1", "video@1", "train_loss", "test_clips", "test_videos"}."""
    torch.manual_seed(settings.seed)  # the new head's weights: the same for the pretrained and scratch runs
    model = ClipClassifier(method, num_classes, settings.modality, settings.head_dim, first_good(train_set),
                           head=settings.head, dropout=settings.dropout, model=settings.model).to(device)
    optimizer = _optimizer(model, settings)
    schedule = (torch.optim.lr_scheduler.StepLR(optimizer, settings.lr_step, settings.lr_gamma)
                if settings.lr_step else None)
    epochs = sorted({w.epoch for w in train_set.windows})
    last_loss = float("nan")
    steps = 0
    for epoch in epochs:
        if settings.iterations is not None and steps >= settings.iterations:
            break
        rows = [i for i, w in enumerate(train_set.windows) if w.epoch == epoch]
        order = np.random.default_rng([settings.seed, epoch]).permutation(rows).tolist()
        model.train()
        losses = []
        for start in range(0, len(order), settings.batch_size):
            if settings.iterations is not None and steps >= settings.iterations:
                break
            batch = collate_skipping_failures([train_set[i] for i in order[start:start + settings.batch_size]])
            batch.pop(FAILED_KEY, None)
            if batch_size_of(batch) < 2:  # batch norm needs two samples; a lone straggler is dropped
                continue
            batch = _to(batch, device)
            loss = F.cross_entropy(model(batch), batch["target"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if schedule is not None:
                schedule.step()
            losses.append(float(loss.detach()))
        last_loss = float(np.mean(losses)) if losses else float("nan")
    return {**evaluate_classifier(model, test_set, batch_size=settings.batch_size, device=device),
            "train_loss": last_loss, "steps": steps, "final_lr": float(optimizer.param_groups[0]["lr"])}


@torch.no_grad()
def evaluate_classifier(model: nn.Module, test_set: WindowSet, *, batch_size: int,
                        device: torch.device | str = "cpu") -> dict[str, float]:
    model.eval()
    probs, items, targets = [], [], []
    loader = DataLoader(test_set, batch_size=batch_size, shuffle=False, collate_fn=collate_skipping_failures)
    for batch in loader:
        batch.pop(FAILED_KEY, None)
        if batch_size_of(batch) == 0:
            continue
        probs.append(F.softmax(model(_to(batch, device)).float(), dim=1).cpu())
        items.append(batch["item"].numpy())
        targets.append(batch["target"].numpy())
    if not probs:
        raise ValueError("no test window could be decoded")
    probs_t, items_a, targets_a = torch.cat(probs), np.concatenate(items), np.concatenate(targets)
    exclude = set(test_set.failed_items)
    # Per-video correctness too, so video@1 can carry an interval over source videos.
    return {**video_accuracy(probs_t, items_a, targets_a, exclude=exclude),
            "video_correct": video_correctness(probs_t, items_a, targets_a, exclude=exclude)}


def video_correctness(clip_probs: torch.Tensor, items: np.ndarray, targets: np.ndarray,
                      exclude: set[int] | None = None) -> dict[int, bool]:
    """Whether each test video (item position) is classified right by its clips' mean softmax."""
    exclude = exclude or set()
    out = {}
    for k in np.unique(items).tolist():
        if k in exclude:
            continue
        rows = torch.from_numpy(items == k)
        out[int(k)] = int(clip_probs[rows].mean(0).argmax()) == int(targets[items == k][0])
    return out


def video_accuracy(clip_probs: torch.Tensor, items: np.ndarray, targets: np.ndarray,
                   exclude: set[int] | None = None) -> dict[str, float]:
    """clip@1 over clips and video@1 over videos (mean softmax of each video's clips). Videos in ``exclude``
    (a window failed to decode) count in neither."""
    exclude = exclude or set()
    keep = np.array([k not in exclude for k in items], dtype=bool)
    clip_probs, items, targets = clip_probs[torch.from_numpy(keep)], items[keep], targets[keep]
    clip_correct = clip_probs.argmax(1).numpy() == targets
    video_correct = list(video_correctness(clip_probs, items, targets).values())
    return {"clip@1": float(clip_correct.mean()), "video@1": float(np.mean(video_correct)),
            "test_clips": int(len(items)), "test_videos": int(len(video_correct))}
