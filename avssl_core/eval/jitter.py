"""Colour jitter for fine-tuning (CMAC Sec. 4.2: "random cropping, color jitter, and random horizontal
flipping" for action recognition), applied in evaluation only: the pretraining augmentation lives with
each method's preprocess (avssl_core/transforms/features.py).

``ColourJittered`` wraps a method's preprocess and changes the raw uint8 frames first, one draw per clip
(every frame alike, so motion is untouched): brightness, contrast and saturation factors uniform in
[1 - s, 1 + s]. Draws come from torch's generator, which WindowSet seeds per window, so the pretrained and
the from-scratch runs see the same jittered clips.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601 weights: the grey a saturation factor pulls toward


def jitter_frames(video: torch.Tensor, strength: float) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, H, W, 3] with one random brightness, contrast and saturation change."""
    brightness, contrast, saturation = (1.0 + (torch.rand(3) * 2 - 1) * strength).tolist()
    v = video.float() * brightness
    grey = (v @ _LUMA).unsqueeze(-1)
    v = (v - grey.mean()) * contrast + grey.mean()
    grey = (v @ _LUMA).unsqueeze(-1)
    v = (v - grey) * saturation + grey
    return v.round().clamp(0, 255).to(torch.uint8)


class ColourJittered:
    """``preprocess`` run on colour-jittered frames (picklable, like the preprocess it wraps)."""

    def __init__(self, preprocess: Callable[[dict], dict], strength: float) -> None:
        if not 0 < strength < 1:
            raise ValueError(f"colour jitter strength must be in (0, 1), got {strength}")
        self.preprocess, self.strength = preprocess, strength

    def __call__(self, sample: dict) -> dict:
        return self.preprocess({**sample, "video": jitter_frames(sample["video"], self.strength)})
