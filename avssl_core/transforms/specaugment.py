"""SpecAugment (Park et al. 2019) for CMAC's audio input (CMAC Sec. 4.1: time warping, random frequency
masking and random time masking), applied in the training preprocessing only.

Masks are torchaudio's ``FrequencyMasking`` / ``TimeMasking``; the time warp is a piecewise-linear
resampling of the time axis (a point drawn away from the edges moves by up to ``time_warp`` frames and
both sides are stretched or squeezed to follow), not torchaudio's phase-vocoder ``TimeStretch``, which
needs a complex spectrogram and changes the length. All draws use torch's global RNG: the pair dataset
seeds it from (seed, epoch, index) around ``preprocess``, so an item is augmented the same way in any
worker and after a resume.

Spectrograms are in torchaudio's layout [..., freq, time]; ``SpecAugmentedPairPreprocess`` adapts the
pair pipeline's [1, time, mel] features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio

from avssl_core.transforms.features import PairTransform


def time_warp(spec: torch.Tensor, max_warp: int) -> torch.Tensor:
    """Warp [..., freq, time]: a point c drawn from [W, T - W) moves to c + d, d uniform in [-W, W];
    [0, c) is resampled to length c + d and [c, T) to T - c - d (linear interpolation). The output has
    the input's shape. Identity when W = 0 or the spectrogram is too short to warp."""
    t = spec.shape[-1]
    if max_warp <= 0 or t < 2 * max_warp + 2:
        return spec
    centre = int(torch.randint(max_warp, t - max_warp, ()).item())
    dest = centre + int(torch.randint(-max_warp, max_warp + 1, ()).item())
    dest = min(max(dest, 1), t - 1)
    lead = spec.shape[:-1]
    flat = spec.reshape(1, -1, t).float()
    left = F.interpolate(flat[..., :centre], size=dest, mode="linear", align_corners=False)
    right = F.interpolate(flat[..., centre:], size=t - dest, mode="linear", align_corners=False)
    return torch.cat([left, right], dim=-1).reshape(*lead, t).to(spec.dtype)


class SpecAugment:
    """Time warp, then ``freq_masks`` frequency masks of up to ``freq_mask`` bins and ``time_masks`` time
    masks of up to ``time_mask`` frames (masked values set to 0: the mean of Z-normalised features)."""

    def __init__(self, *, time_warp: int, freq_mask: int, time_mask: int, freq_masks: int = 1,
                 time_masks: int = 1) -> None:
        if min(time_warp, freq_mask, time_mask, freq_masks, time_masks) < 0:
            raise ValueError("SpecAugment: all settings must be >= 0")
        self.max_warp = int(time_warp)
        self.freq = torchaudio.transforms.FrequencyMasking(freq_mask_param=int(freq_mask))
        self.time = torchaudio.transforms.TimeMasking(time_mask_param=int(time_mask))
        self.freq_masks, self.time_masks = int(freq_masks), int(time_masks)

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        spec = time_warp(spec, self.max_warp)
        for _ in range(self.freq_masks):
            spec = self.freq(spec)
        for _ in range(self.time_masks):
            spec = self.time(spec)
        return spec


class SpecAugmentedPairPreprocess(PairTransform):
    """A pair preprocessing followed by SpecAugment on its ``"audio"`` ([1, time, mel] features are
    transposed to [1, mel, time] and back). Picklable, for DataLoader workers."""

    def __init__(self, preprocess: PairTransform, augment: SpecAugment) -> None:
        self.preprocess, self.augment = preprocess, augment

    def __call__(self, sample: dict) -> dict:
        out = self.preprocess(sample)
        out["audio"] = self.augment(out["audio"].transpose(-1, -2)).transpose(-1, -2).contiguous()
        return out

    def frame_crop(self, height: int, width: int) -> tuple[int, int, int, int]:
        return self.preprocess.frame_crop(height, width)
