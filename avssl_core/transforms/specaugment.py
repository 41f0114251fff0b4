"""SpecAugment (Park et al. 2019) for CMAC's audio input (CMAC Sec. 4.1: time warping, random frequency
masking and random time masking), applied in the training preprocessing only.

Masks follow torchaudio's ``FrequencyMasking`` / ``TimeMasking`` (the same draws from torch's RNG, the same
mask interval); the time warp is a piecewise-linear resampling of the time axis (a point drawn away from
the edges moves by up to ``time_warp`` frames and both sides are stretched or squeezed to follow), not
torchaudio's phase-vocoder ``TimeStretch``, which needs a complex spectrogram and changes the length.

Split at the device boundary like the rest of the preprocessing: ``draw`` runs in the DataLoader worker,
where the pair dataset seeds torch's RNG from (seed, epoch, index), so an item is augmented the same way in
any worker and after a resume; ``apply_batch`` applies the drawn warps and masks to a batch on the device.

Spectrograms are in torchaudio's layout [..., freq, time]; ``SpecAugmentedPairPreprocess`` adapts the
pair pipeline's [1, time, mel] features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from avssl_core.transforms.features import HOST_AUGMENT, SplitPairTransform

SPECAUGMENT_KEY = "specaugment"  # the host's draws: [warped, centre, dest, (start, end) per mask]


def warp_points(frames: int, max_warp: int) -> tuple[int, int] | None:
    """Draw a warp of a ``frames``-long time axis: a point c from [W, T - W) and where it moves, c + d with d
    uniform in [-W, W] (kept inside the axis). None (no draw) when W = 0 or the axis is too short to warp."""
    if max_warp <= 0 or frames < 2 * max_warp + 2:
        return None
    centre = int(torch.randint(max_warp, frames - max_warp, ()).item())
    dest = centre + int(torch.randint(-max_warp, max_warp + 1, ()).item())
    return centre, min(max(dest, 1), frames - 1)


def warp_at(spec: torch.Tensor, centre: int, dest: int) -> torch.Tensor:
    """[..., freq, time] with [0, centre) resampled to length ``dest`` and [centre, T) to T - dest (linear
    interpolation); the output has the input's shape."""
    t = spec.shape[-1]
    lead = spec.shape[:-1]
    flat = spec.reshape(1, -1, t).float()
    left = F.interpolate(flat[..., :centre], size=dest, mode="linear", align_corners=False)
    right = F.interpolate(flat[..., centre:], size=t - dest, mode="linear", align_corners=False)
    return torch.cat([left, right], dim=-1).reshape(*lead, t).to(spec.dtype)


def time_warp(spec: torch.Tensor, max_warp: int) -> torch.Tensor:
    """Warp [..., freq, time] at a drawn point (``warp_points``); identity when there is nothing to warp."""
    points = warp_points(spec.shape[-1], max_warp)
    return spec if points is None else warp_at(spec, *points)


def mask_interval(mask_param: int, size: int) -> tuple[int, int]:
    """[start, end) of one mask along an axis of ``size``, drawn as torchaudio's ``mask_along_axis`` draws
    it: a width v uniform in [0, mask_param), a start uniform in [0, size - v), both floored."""
    if mask_param < 1:
        return 0, 0
    value = torch.rand(1) * mask_param
    min_value = torch.rand(1) * (size - value)
    start = int(min_value.long())
    return start, start + int(value.long())


class SpecAugment:
    """Time warp, then ``freq_masks`` frequency masks of up to ``freq_mask`` bins and ``time_masks`` time
    masks of up to ``time_mask`` frames (masked values set to 0: the mean of Z-normalised features)."""

    def __init__(self, *, time_warp: int, freq_mask: int, time_mask: int, freq_masks: int = 1,
                 time_masks: int = 1) -> None:
        if min(time_warp, freq_mask, time_mask, freq_masks, time_masks) < 0:
            raise ValueError("SpecAugment: all settings must be >= 0")
        self.max_warp = int(time_warp)
        self.freq_mask, self.time_mask = int(freq_mask), int(time_mask)
        self.freq_masks, self.time_masks = int(freq_masks), int(time_masks)

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        """One [..., freq, time] spectrogram, drawn and applied here."""
        params = self.draw(spec.shape[-2], spec.shape[-1])
        return self.apply_batch(spec.unsqueeze(0), params.unsqueeze(0))[0]

    def draw(self, bins: int, frames: int) -> torch.Tensor:
        """Host side: int64 [3 + 2 * (freq_masks + time_masks)]: warped (0/1), centre, dest, then each
        frequency mask's and each time mask's [start, end), in the order they are drawn and applied."""
        points = warp_points(frames, self.max_warp)
        values = [0, 0, 0] if points is None else [1, *points]
        for _ in range(self.freq_masks):
            values += mask_interval(self.freq_mask, bins)
        for _ in range(self.time_masks):
            values += mask_interval(self.time_mask, frames)
        return torch.tensor(values, dtype=torch.int64)

    def apply_batch(self, specs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Device side: [B, ..., freq, time] with each item's drawn warp and masks (``params`` [B, k], on the
        CPU). Warps differ in length per item and run item by item; the masks are one fill."""
        rows = params.tolist()
        if any(row[0] for row in rows):
            specs = specs.clone()
            for i, row in enumerate(rows):
                if row[0]:
                    specs[i] = warp_at(specs[i], row[1], row[2])
        bins, frames = specs.shape[-2], specs.shape[-1]
        intervals = params[:, 3:].reshape(len(rows), -1, 2).to(specs.device)
        freq, time = intervals[:, :self.freq_masks], intervals[:, self.freq_masks:]

        def covered(spans: torch.Tensor, size: int) -> torch.Tensor:  # [B, masks, 2] -> [B, size] bool
            at = torch.arange(size, device=specs.device).view(1, 1, size)
            return ((at >= spans[..., :1]) & (at < spans[..., 1:])).any(dim=1)

        lead = [len(rows)] + [1] * (specs.dim() - 3)
        masked = covered(freq, bins).view(*lead, bins, 1) | covered(time, frames).view(*lead, 1, frames)
        return specs.masked_fill(masked, 0.0)


class SpecAugmentedPairPreprocess(SplitPairTransform):
    """A pair preprocessing followed by SpecAugment on its ``"audio"`` ([1, time, mel] features are
    transposed to [1, mel, time] and back). Picklable, for DataLoader workers."""

    def __init__(self, preprocess: SplitPairTransform, augment: SpecAugment) -> None:
        self.preprocess, self.augment = preprocess, augment

    def host(self, sample: dict) -> dict:
        out = self.preprocess.host(sample)
        features = self.preprocess.audio_features
        out[HOST_AUGMENT][SPECAUGMENT_KEY] = self.augment.draw(
            features.num_filters, features.num_frames(self.preprocess.num_samples))
        return out

    def device(self, batch: dict, stats: dict[str, torch.Tensor] | None = None) -> dict:
        out = self.preprocess.device(batch, stats)
        params = batch[HOST_AUGMENT].get(SPECAUGMENT_KEY)
        if params is not None:  # an evaluation batch (no draws) passes unaugmented
            out["audio"] = self.augment.apply_batch(out["audio"].transpose(-1, -2), params).transpose(-1, -2).contiguous()
        return out

    def frame_crop(self, height: int, width: int) -> tuple[int, int, int, int]:
        return self.preprocess.frame_crop(height, width)
