"""Encoder inputs: audio features (AVTS log filterbank, AVC log spectrogram), video crops, and the
Z-normalisation statistics estimated from a random share of the training set.

Everything here that runs in DataLoader workers is a small picklable class (no lambdas, no closures).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn
from torchvision.transforms import ColorJitter
from torchvision.transforms import functional as TF

from avssl_core.errors import DataError

# Kinetics RGB statistics used by torchvision's video models: the default before (or instead of)
# estimating the project's own from the training set.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
LOG_FLOOR = 1e-8  # power floor before the log, so digital silence stays finite


def mono(audio: torch.Tensor) -> torch.Tensor:
    """[C, S] or [S] -> [1, S] by averaging channels (both methods use mono audio)."""
    if audio.dim() == 1:
        return audio.unsqueeze(0)
    if audio.dim() != 2:
        raise ValueError(f"audio must be [C, S], got shape {tuple(audio.shape)}")
    if audio.shape[0] == 1 and audio.is_floating_point():
        # The mean of one channel is the channel, except that the mean's sum starts from +0.0 and so turns
        # -0.0 into +0.0; adding 0.0 does the same, bit for bit, in a tenth of the time (in every sample).
        return audio + 0.0
    return audio.mean(dim=0, keepdim=True)


def fit_length(audio: torch.Tensor, num_samples: int, *, tolerance: int) -> torch.Tensor:
    """Trim or edge-extend [C, S] audio to exactly ``num_samples`` when it is off by at most
    ``tolerance`` samples (window rounding); a larger mismatch (a wrong sample rate, a truncated
    window) is an error, not something to pad over."""
    have = audio.shape[-1]
    if abs(have - num_samples) > tolerance:
        raise ValueError(f"audio window has {have} samples, expected {num_samples} (+-{tolerance}); "
                         "is the sample rate the one the method's PairSpec asks for?")
    if have >= num_samples:
        return audio[..., :num_samples]
    return F.pad(audio.unsqueeze(0), (0, num_samples - have), mode="replicate").squeeze(0)


class _AudioFeatures:
    """What the two feature transforms share: ``batch`` runs the torchaudio transform on a batch wherever it
    lives, with one copy of the transform (its window and filterbank) per device."""

    transform: nn.Module

    def on(self, device: torch.device) -> nn.Module:
        if device.type == "cpu":
            return self.transform
        copies = self.__dict__.setdefault("_copies", {})
        if str(device) not in copies:
            copies[str(device)] = copy.deepcopy(self.transform).to(device)
        return copies[str(device)]

    def __getstate__(self) -> dict:
        # Device copies stay in the process that made them (DataLoader workers need only the CPU one).
        return {k: v for k, v in self.__dict__.items() if k != "_copies"}


class LogMelFilterbank(_AudioFeatures):
    """AVTS audio features (AVTS Sec. 3.1): log energies of 40 mel filters over an FFT of 1024 points,
    20 ms windows every 10 ms. Returns [1, frames, bands] (time first, the VGG net's layout).

    ``torchaudio.compliance.kaldi.fbank`` cannot do this at 16 kHz: its FFT length is the window
    length rounded up to a power of two (320 -> 512 samples), with no option for 1024. So this uses
    ``torchaudio.transforms.MelSpectrogram`` with n_fft=1024 and a 20 ms Hamming window zero-padded
    to the FFT length (the spectral sampling AVTS asks for), centred frames: 1 s at 16 kHz gives
    1 + 16000 // 160 = 101 frames.
    """

    def __init__(self, *, sample_rate: int, n_fft: int = 1024, window_s: float = 0.02,
                 step_s: float = 0.01, num_filters: int = 40) -> None:
        self.sample_rate = sample_rate
        self.hop = round(step_s * sample_rate)
        self.num_filters = num_filters
        self.transform = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=round(window_s * sample_rate),
            hop_length=self.hop, n_mels=num_filters, window_fn=torch.hamming_window, power=2.0,
            center=True, mel_scale="htk")

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        mel = self.transform(mono(audio).float())  # [1, bands, frames]
        return torch.log(mel.clamp_min(LOG_FLOOR)).transpose(1, 2).contiguous()

    def batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        """[B, 1, S] mono waveforms -> [B, 1, frames, bands], on the waveforms' device."""
        transform = self.on(waveforms.device)
        power = transform.spectrogram(waveforms.float())  # [B, 1, freq, frames]: the FFTs as one batch
        # The mel projection item by item: one GEMM over the whole batch rounds some bands differently (in
        # the last bit, e.g. CMAC paper's 257 bands) from the per-item product the samples have always had.
        mel = torch.stack([transform.mel_scale(p) for p in power])  # [B, 1, bands, frames]
        return torch.log(mel.clamp_min(LOG_FLOOR)).transpose(-1, -2).contiguous()


class LogSpectrogram(_AudioFeatures):
    """AVC audio features: log power spectrogram [1, freq, frames] of 1 s of audio. The AVC paper
    (Sec. II) says only "1-second audio segments" fed as a spectrogram; the settings follow its
    references (L3-Net / Objects that Sound: a 257-bin log spectrogram, about 100 frames per second):
    n_fft 512, 20 ms Hann window, 10 ms step at 16 kHz -> [1, 257, 101]."""

    def __init__(self, *, sample_rate: int, n_fft: int = 512, window_s: float = 0.02,
                 step_s: float = 0.01) -> None:
        self.sample_rate = sample_rate
        self.hop = round(step_s * sample_rate)
        self.num_filters = n_fft // 2 + 1
        win_length = round(window_s * sample_rate)
        if win_length > n_fft:
            raise ValueError(f"spectrogram window of {win_length} samples exceeds n_fft={n_fft}")
        self.transform = torchaudio.transforms.Spectrogram(
            n_fft=n_fft, win_length=win_length, hop_length=self.hop, power=2.0,
            center=True)

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log(self.transform(mono(audio).float()).clamp_min(LOG_FLOOR))

    def batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        """[B, 1, S] mono waveforms -> [B, 1, freq, frames], on the waveforms' device."""
        return torch.log(self.on(waveforms.device)(waveforms.float()).clamp_min(LOG_FLOOR))


# --------------------------------------------------------------------------------------------------
# Z-normalisation statistics


def select_fraction(samples: Iterable[dict] | Sequence[dict], *, fraction: float,
                    seed: int) -> Iterable[dict]:
    """A random ``fraction`` of ``samples``, reproducible from ``seed``. A sized, indexable dataset is
    read only at the chosen indices (decoding is the expensive part); a plain iterable is thinned by
    a seeded coin per item."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    if hasattr(samples, "__len__") and hasattr(samples, "__getitem__"):
        n = len(samples)  # type: ignore[arg-type]
        k = max(1, math.ceil(fraction * n))
        for i in sorted(torch.randperm(n, generator=gen)[:k].tolist()):
            yield samples[i]  # type: ignore[index]
        return
    for sample in samples:
        if torch.rand((), generator=gen).item() < fraction:
            yield sample


def estimate_feature_stats(samples: Iterable[dict] | Sequence[dict], *,
                           audio_features: Callable[[torch.Tensor], torch.Tensor],
                           fraction: float = 0.2, seed: int = 0,
                           band_dim: int = -1) -> dict[str, Any]:
    """Mean and standard deviation of the audio features (one per band) and of the video pixels (one
    per RGB channel, in [0, 1]) over a random ``fraction`` of raw samples (AVTS Sec. 3.1: 20% of the
    training set). ``band_dim`` is the feature axis holding the bands (-1 for [1, frames, bands]).
    Accumulates in float64 so millions of values do not lose precision."""
    a_sum = a_sq = v_sum = v_sq = None
    a_count = v_count = 0
    used = 0
    skipped: list[str] = []
    for sample in select_fraction(samples, fraction=fraction, seed=seed):
        if not isinstance(sample, dict):
            # An undecodable clip (the pair dataset's FailedSample): skipped and counted, as in training;
            # statistics over the clips that do decode are still the training data's statistics.
            skipped.append(str(getattr(sample, "path", sample)))
            continue
        feats = audio_features(sample["audio"]).double().movedim(band_dim, -1)
        feats = feats.reshape(-1, feats.shape[-1])
        video = sample["video"].double().div(255.0).reshape(-1, 3)  # [T*H*W, 3]
        if a_sum is None:
            a_sum, a_sq = feats.sum(0), feats.pow(2).sum(0)
            v_sum, v_sq = video.sum(0), video.pow(2).sum(0)
        else:
            a_sum += feats.sum(0)
            a_sq += feats.pow(2).sum(0)
            v_sum += video.sum(0)
            v_sq += video.pow(2).sum(0)
        a_count += feats.shape[0]
        v_count += video.shape[0]
        used += 1
    if used == 0 and skipped:
        raise DataError(f"normalisation statistics: none of the {len(skipped)} sampled pairs could be "
                        f"decoded, e.g. {'; '.join(skipped[:3])}")
    if used == 0:
        raise ValueError("estimate_feature_stats: the sample selection is empty (no samples, or a "
                         "fraction too small for a stream this short)")

    def moments(total: torch.Tensor, squares: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        mean = total / count
        std = (squares / count - mean.pow(2)).clamp_min(0).sqrt().clamp_min(1e-5)
        return mean.float(), std.float()

    audio_mean, audio_std = moments(a_sum, a_sq, a_count)
    video_mean, video_std = moments(v_sum, v_sq, v_count)
    return {"audio_mean": audio_mean, "audio_std": audio_std, "video_mean": video_mean,
            "video_std": video_std, "num_samples": used, "num_skipped": len(skipped)}


class FeatureNormalizer(nn.Module):
    """Z-normalisation statistics kept as buffers, so they travel in checkpoints with the weights.

    Until ``fit`` runs, ``fitted`` is False; methods refuse to build their preprocessing then, rather
    than train on unnormalised features.
    """

    def __init__(self, num_bands: int) -> None:
        super().__init__()
        self.register_buffer("audio_mean", torch.zeros(num_bands))
        self.register_buffer("audio_std", torch.ones(num_bands))
        self.register_buffer("video_mean", torch.tensor(KINETICS_MEAN))
        self.register_buffer("video_std", torch.tensor(KINETICS_STD))
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, samples: Iterable[dict] | Sequence[dict], *,
            audio_features: Callable[[torch.Tensor], torch.Tensor], fraction: float, seed: int,
            band_dim: int) -> dict[str, Any]:
        stats = estimate_feature_stats(samples, audio_features=audio_features, fraction=fraction,
                                       seed=seed, band_dim=band_dim)
        if stats["audio_mean"].numel() != self.audio_mean.numel():
            raise ValueError(f"features have {stats['audio_mean'].numel()} bands, the method expects "
                             f"{self.audio_mean.numel()}")
        for key in ("audio_mean", "audio_std", "video_mean", "video_std"):
            getattr(self, key).copy_(stats[key])
        self.fitted.fill_(True)
        return stats

    def snapshot(self) -> dict[str, torch.Tensor]:
        """CPU copies for a preprocessing object that runs in other processes."""
        if not bool(self.fitted):
            raise RuntimeError("normalisation statistics are not fitted: call "
                               "method.fit_normalization(training_samples) before preprocess()")
        return {k: getattr(self, k).detach().cpu().clone()
                for k in ("audio_mean", "audio_std", "video_mean", "video_std")}


# --------------------------------------------------------------------------------------------------
# The split at the device boundary
#
# A pair transform runs in two halves. ``host`` runs per sample in the DataLoader worker, under the pair
# dataset's per-item seeded RNG: it draws every augmentation parameter (crop box, flip, colour jitter,
# SpecAugment masks), cuts the crop out of the uint8 frames (a copy of bytes, which also shrinks what
# travels to the device) and fits the waveform to its length. ``device`` runs on a collated batch wherever
# the batch is (the training device; the CPU without one): resize, flip, jitter, normalisation,
# spectrograms and SpecAugment, batched, from the drawn parameters alone, so a sample depends only on
# (seed, epoch, index), as before the split. The trainer calls it through ``PretrainMethod.device_transform``.

HOST_FRAMES = "frames"  # uint8 crops [T, side, side, 3] per item (a list when their sides differ)
HOST_WAVEFORM = "waveform"  # float32 [C, S] per item, already of the model's length
HOST_AUGMENT = "augment"  # {name: tensor} of drawn parameters; stays on the CPU (the trainer moves only tensors)
HOST_KEYS = (HOST_FRAMES, HOST_WAVEFORM, HOST_AUGMENT)
# Colour jitter draw: applied (0/1), the order of the four adjustments, their four factors (NaN: that
# adjustment is off, as ColorJitter.get_params returns None for it).
JITTER_SLOTS = 9
_JITTER_OPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def batch_of_one(item: dict) -> dict:
    """A host item as a batch of one (tensors get a leading axis; other values stay as they are)."""
    return {k: (v.unsqueeze(0) if isinstance(v, torch.Tensor) else batch_of_one(v) if isinstance(v, dict) else v)
            for k, v in item.items()}


def passed_through(batch: dict) -> dict:
    """What the device side hands on unchanged: everything but the host's frames, waveform and draws."""
    return {k: v for k, v in batch.items() if k not in HOST_KEYS}


def color_jitter(frames: torch.Tensor, draw: Sequence[float]) -> torch.Tensor:
    """[T, 3, H, W] in [0, 1]: one drawn ColorJitter (see ``ClipTransform.draw_jitter``) applied to every
    frame (frames are a batch to torchvision's functional ops)."""
    factors = draw[5:9]
    for fn in (int(v) for v in draw[1:5]):
        if not math.isnan(factors[fn]):
            frames = _JITTER_OPS[fn](frames, factors[fn])
    return frames


class ClipTransform:
    """uint8 frames [T, H, W, 3] -> normalised float [3, T, size, size].

    Training (AVTS Sec. 3.1: multi-scale random crop, random horizontal flip, Z normalisation): a
    square whose side is a random share (``scales``) of the short side after resizing it to
    ``short_side`` is cropped at a random place, resized to ``size`` and flipped with probability
    1/2. Evaluation: the centre ``size`` square after the short-side resize. The same crop and flip
    apply to every frame of a clip. The resize and crop are done as one interpolation of the source
    region, which is equivalent and cheaper than resizing the whole frame first.

    ``color_jitter`` (brightness, contrast, saturation, hue; training only): with probability
    ``color_jitter_p`` torchvision's ColorJitter (its factor ranges and random order of the four
    adjustments, drawn by ``ColorJitter.get_params``) is applied with one draw for the whole clip, so
    every frame gets the same adjustment. The draws come from torch's RNG after the crop's and flip's,
    which the pair dataset seeds per (seed, epoch, index): a sample stays exact, and transforms
    without jitter draw what they drew before.

    ``host`` (CPU) draws and crops; ``device`` (batched, on any device) does the rest; ``apply`` is both on
    one clip.
    """

    def __init__(self, *, short_side: int, size: int, train: bool, mean: torch.Tensor,
                 std: torch.Tensor, scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
                 color_jitter: Sequence[float] | None = None, color_jitter_p: float = 1.0) -> None:
        if size > short_side:
            raise ValueError(f"crop size {size} exceeds the resized short side {short_side}")
        self.short_side, self.size, self.train = short_side, size, train
        self.scales = tuple(scales)
        if color_jitter is not None and len(color_jitter) != 4:
            raise ValueError(f"color_jitter must be (brightness, contrast, saturation, hue), got {color_jitter}")
        # ColorJitter checks the ranges (e.g. hue <= 0.5) and turns each strength into its factor range.
        self.jitter = ColorJitter(*color_jitter) if color_jitter is not None else None
        self.jitter_p = float(color_jitter_p)
        self.mean = mean.reshape(3).float()
        self.std = std.reshape(3).float()

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        return self.apply(video)[0]

    def apply(self, video: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """(the transformed clip, whether it was flipped): a stereo preprocess swaps its channels then."""
        crop, augment = self.host(video)
        clip = self.device(crop.unsqueeze(0), batch_of_one(augment))
        return clip[0], bool(augment["flip"])

    def host(self, video: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """CPU side: the uint8 crop [T, side, side, 3] and the draws {"flip": bool, "jitter": [9]}, drawn from
        torch's RNG in this order: scale, top, left, flip, then the jitter's (when it has one)."""
        if video.dim() != 4 or video.shape[-1] != 3 or video.dtype != torch.uint8:
            raise ValueError(f"video must be uint8 [T, H, W, 3], got {video.dtype} {tuple(video.shape)}")
        _, h, w, _ = video.shape
        if self.train:
            share = self.scales[int(torch.randint(len(self.scales), ()).item())]
            side = min(round(self.short_side * share * (min(h, w) / self.short_side)), h, w)
            top = int(torch.randint(h - side + 1, ()).item())
            left = int(torch.randint(w - side + 1, ()).item())
            flip = bool(torch.rand(()).item() < 0.5)
        else:
            top, left, side, _ = self.frame_crop(h, w)
            flip = False
        jitter = torch.zeros(JITTER_SLOTS, dtype=torch.float64)
        if self.train and self.jitter is not None and bool(torch.rand(()).item() < self.jitter_p):
            jitter = self.draw_jitter()
        crop = video[:, top:top + side, left:left + side].contiguous()
        return crop, {"flip": torch.tensor(flip), "jitter": jitter}

    def draw_jitter(self) -> torch.Tensor:
        """One ColorJitter draw as [applied=1, order x4, factors x4] (float64 holds the float32 draws exactly)."""
        j = self.jitter
        order, *factors = ColorJitter.get_params(j.brightness, j.contrast, j.saturation, j.hue)
        return torch.tensor([1.0, *order.tolist(), *(math.nan if f is None else f for f in factors)],
                            dtype=torch.float64)

    def device(self, crops: torch.Tensor | Sequence[torch.Tensor], augment: dict[str, torch.Tensor], *,
               mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> torch.Tensor:
        """Device side: the host's crops (stacked, or a list when their sides differ) and draws -> [B, 3, T,
        size, size] on the crops' device. Crops of one side are resized as one batch; ``mean``/``std``
        (default: this transform's) may already live on that device (the method's buffers)."""
        flips = augment["flip"].tolist()
        jitters = augment["jitter"].tolist()
        device = crops[0].device
        mean = (self.mean if mean is None else mean).to(device).reshape(1, 3, 1, 1, 1).float()
        std = (self.std if std is None else std).to(device).reshape(1, 3, 1, 1, 1).float()
        groups: dict[tuple[int, ...], list[int]] = {}
        for i in range(len(crops)):
            groups.setdefault(tuple(crops[i].shape), []).append(i)
        out: torch.Tensor | None = None
        for shape, rows in groups.items():
            stacked = crops if len(groups) == 1 and isinstance(crops, torch.Tensor) else torch.stack(
                [crops[i] for i in rows])
            frames, side = shape[0], shape[1]
            # [N*T, 3, side, side] in channels-last order, as the per-clip path has always interpolated it.
            x = stacked.reshape(-1, side, side, 3).permute(0, 3, 1, 2).float().div_(255.0)
            if side != self.size:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                  antialias=side > self.size)
            x = x.reshape(len(rows), frames, 3, self.size, self.size)
            for k, i in enumerate(rows):
                if flips[i]:
                    x[k] = x[k].flip(-1)
                if jitters[i][0]:
                    x[k] = color_jitter(x[k], jitters[i])
            x = ((x.permute(0, 2, 1, 3, 4) - mean) / std).contiguous()  # [N, 3, T, size, size]
            if len(groups) == 1:
                return x
            if out is None:
                out = x.new_empty((len(crops), *x.shape[1:]))
            out[rows] = x
        assert out is not None, "no crops"
        return out

    def frame_crop(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) in frame pixels of the evaluation crop: the centre square that is
        ``size`` pixels after the short side is resized to ``short_side``."""
        side = min(round(self.size * (min(height, width) / self.short_side)), height, width)
        return (height - side) // 2, (width - side) // 2, side, side


# --------------------------------------------------------------------------------------------------
# Raw pair -> model inputs


def pair_identity(sample: dict) -> dict[str, int]:
    """What every preprocess passes through from a raw sample unchanged: the pair's label, kind and index,
    and the clip and source-video ids (-1 where the sample builder has none, e.g. evaluation windows)."""
    return {"label": int(sample["label"]), "kind": int(sample["kind"]), "index": int(sample["index"]),
            "clip": int(sample.get("clip", -1)), "source": int(sample.get("source", -1))}


class PairTransform:
    """What a method's ``preprocess()`` returns: a picklable callable, raw sample -> model inputs, which also
    says what part of a frame its evaluation preprocessing keeps (``frame_crop``), so that localization can
    map a ground-truth box into what the network sees. The default keeps the whole frame.

    ``host`` is the half that runs in DataLoader workers, ``device`` the half that runs on a collated batch
    on the training device (see "The split at the device boundary" above). A transform that is not split
    does everything in ``host`` (``__call__``) and nothing in ``device``."""

    def __call__(self, sample: dict) -> dict:
        raise NotImplementedError

    def host(self, sample: dict) -> dict:
        return self(sample)

    def device(self, batch: dict, stats: dict[str, torch.Tensor] | None = None) -> dict:
        """A collated batch of ``host`` outputs -> model inputs; ``stats``: normalisation statistics to use
        instead of the transform's own copies (the method's buffers, already on the batch's device)."""
        return batch

    def frame_crop(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) in frame pixels of the region the evaluation preprocessing keeps."""
        return 0, 0, height, width


class SplitPairTransform(PairTransform):
    """A transform split at the device boundary: one sample is ``device`` on the batch of one ``host`` item,
    so evaluation's per-sample path runs the same code as training's batches."""

    def __call__(self, sample: dict) -> dict:
        out = self.device(batch_of_one(self.host(sample)))
        return {k: (v[0] if isinstance(v, torch.Tensor) and k in ("video", "audio") else v) for k, v in out.items()}

    def host(self, sample: dict) -> dict:
        raise NotImplementedError

    def device(self, batch: dict, stats: dict[str, torch.Tensor] | None = None) -> dict:
        raise NotImplementedError


class PairPreprocess(SplitPairTransform):
    """Raw sample (see avssl_core.methods.base) -> {"video", "audio", "label", "kind", "index", "clip"}.

    Holds CPU copies of the normalisation statistics, so it works unchanged in DataLoader worker
    processes. ``single_frame``: keep only the centre frame of the video window and return it as an
    image [3, H, W] (AVC); otherwise the clip [3, T, H, W] (AVTS). ``band_dim`` is the axis of the
    audio features that holds the bands, where the per-band statistics apply.
    """

    def __init__(self, *, clip: ClipTransform, audio_features: LogMelFilterbank | LogSpectrogram,
                 audio_mean: torch.Tensor, audio_std: torch.Tensor, band_dim: int, num_samples: int,
                 single_frame: bool) -> None:
        self.clip, self.audio_features = clip, audio_features
        self.num_samples, self.single_frame = num_samples, single_frame
        self.band_dim = band_dim
        self.audio_mean, self.audio_std = audio_mean.float(), audio_std.float()

    def host(self, sample: dict) -> dict:
        video = sample["video"]
        if self.single_frame:
            middle = video.shape[0] // 2
            video = video[middle:middle + 1]
        frames, augment = self.clip.host(video)
        # Up to half a feature step of rounding in the window length is absorbed; more is an error.
        waveform = fit_length(mono(sample["audio"]), self.num_samples, tolerance=self.audio_features.hop // 2)
        return {HOST_FRAMES: frames, HOST_WAVEFORM: waveform.float().contiguous(), HOST_AUGMENT: augment,
                **pair_identity(sample)}

    def device(self, batch: dict, stats: dict[str, torch.Tensor] | None = None) -> dict:
        stats = stats or {}
        video = self.clip.device(batch[HOST_FRAMES], batch[HOST_AUGMENT], mean=stats.get("video_mean"),
                                 std=stats.get("video_std"))
        if self.single_frame:
            video = video[:, :, 0].contiguous()
        features = self.audio_features.batch(batch[HOST_WAVEFORM])
        shape = [1, 1, 1, 1]
        shape[self.band_dim] = -1
        mean = stats.get("audio_mean", self.audio_mean).to(features.device).reshape(shape)
        std = stats.get("audio_std", self.audio_std).to(features.device).reshape(shape)
        return {**passed_through(batch), "video": video, "audio": (features - mean) / std}

    def frame_crop(self, height: int, width: int) -> tuple[int, int, int, int]:
        return self.clip.frame_crop(height, width)
