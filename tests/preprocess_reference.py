"""The per-sample preprocessing as it ran in DataLoader workers before the data path was split at the device
boundary (crop, resize, flip, jitter, normalisation, features and SpecAugment per sample, drawing from
torch's RNG as it went), kept as the reference the split path must reproduce (tests/test_device_split.py).

Built only from the primitives (torch, torchaudio, torchvision), not from the project's transforms, so a
change there cannot move the reference with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torchvision.transforms import ColorJitter
from torchvision.transforms import functional as TF

LOG_FLOOR = 1e-8


def clip(video: torch.Tensor, *, short_side: int, size: int, train: bool, mean: torch.Tensor, std: torch.Tensor,
         scales, jitter: ColorJitter | None = None, jitter_p: float = 1.0) -> tuple[torch.Tensor, bool]:
    _, h, w, _ = video.shape
    if train:
        share = scales[int(torch.randint(len(scales), ()).item())]
        side = min(round(short_side * share * (min(h, w) / short_side)), h, w)
        top = int(torch.randint(h - side + 1, ()).item())
        left = int(torch.randint(w - side + 1, ()).item())
        flip = bool(torch.rand(()).item() < 0.5)
    else:
        side = min(round(size * (min(h, w) / short_side)), h, w)
        top, left, flip = (h - side) // 2, (w - side) // 2, False
    x = video[:, top:top + side, left:left + side].permute(0, 3, 1, 2).float().div_(255.0)
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)
    if flip:
        x = x.flip(-1)
    if train and jitter is not None and bool(torch.rand(()).item() < jitter_p):
        order, b, c, s, hue = ColorJitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
        for fn in order.tolist():
            if fn == 0 and b is not None:
                x = TF.adjust_brightness(x, b)
            elif fn == 1 and c is not None:
                x = TF.adjust_contrast(x, c)
            elif fn == 2 and s is not None:
                x = TF.adjust_saturation(x, s)
            elif fn == 3 and hue is not None:
                x = TF.adjust_hue(x, hue)
    x = x.permute(1, 0, 2, 3)
    return ((x - mean.reshape(3, 1, 1, 1)) / std.reshape(3, 1, 1, 1)).contiguous(), flip


def fit_length(audio: torch.Tensor, n: int) -> torch.Tensor:
    if audio.shape[-1] >= n:
        return audio[..., :n]
    return F.pad(audio.unsqueeze(0), (0, n - audio.shape[-1]), mode="replicate").squeeze(0)


def spec_augment(spec: torch.Tensor, *, max_warp: int, freq_mask: int, time_mask: int) -> torch.Tensor:
    t = spec.shape[-1]
    if max_warp > 0 and t >= 2 * max_warp + 2:
        centre = int(torch.randint(max_warp, t - max_warp, ()).item())
        dest = centre + int(torch.randint(-max_warp, max_warp + 1, ()).item())
        dest = min(max(dest, 1), t - 1)
        lead = spec.shape[:-1]
        flat = spec.reshape(1, -1, t).float()
        left = F.interpolate(flat[..., :centre], size=dest, mode="linear", align_corners=False)
        right = F.interpolate(flat[..., centre:], size=t - dest, mode="linear", align_corners=False)
        spec = torch.cat([left, right], dim=-1).reshape(*lead, t).to(spec.dtype)
    spec = torchaudio.transforms.FrequencyMasking(freq_mask_param=freq_mask)(spec)
    return torchaudio.transforms.TimeMasking(time_mask_param=time_mask)(spec)


def method_sample(method, sample: dict, *, train: bool) -> dict:
    """The old ``method.preprocess(train=train)(sample)`` of the four methods, from their hyper-parameters."""
    hp, name = method.hparams, method.name
    if name == "coattention":
        from avssl_core.transforms.features import KINETICS_MEAN, KINETICS_STD
        audio = fit_length(sample["audio"].float(), round(hp["clip_seconds"] * hp["sample_rate"]))
        video, flipped = clip(sample["video"], short_side=hp["short_side"], size=hp["crop_size"], train=train,
                              mean=torch.tensor(KINETICS_MEAN), std=torch.tensor(KINETICS_STD),
                              scales=hp["crop_scales"])
        if flipped and hp["audio_channels"] == 2:
            audio = audio.flip(0)
        return {"video": video, "audio": audio.contiguous()}
    n = method.normalizer
    size = hp["frame_size"] if name == "avc" else hp["crop_size"]
    jitter = ColorJitter(*hp["color_jitter"]) if hp.get("color_jitter") is not None else None
    video = sample["video"]
    if name == "avc":
        middle = video.shape[0] // 2
        video = video[middle:middle + 1]
    video, _ = clip(video, short_side=hp["short_side"], size=size, train=train, mean=n.video_mean,
                    std=n.video_std, scales=hp["crop_scales"], jitter=jitter, jitter_p=hp.get("color_jitter_p", 1.0))
    if name == "avc":
        video = video[:, 0]
    rate = hp["sample_rate"]
    hop, win = round(hp["step_s"] * rate), round(hp["window_s"] * rate)
    seconds = method.window_seconds if name == "avts" else hp["audio_seconds"]
    audio = fit_length(sample["audio"].mean(dim=0, keepdim=True), round(seconds * rate)).float()
    if name == "avc":
        spec = torchaudio.transforms.Spectrogram(n_fft=hp["fft_size"], win_length=win, hop_length=hop, power=2.0,
                                                 center=True)(audio)
        feats = torch.log(spec.clamp_min(LOG_FLOOR))
        mean, std = n.audio_mean.reshape(1, -1, 1), n.audio_std.reshape(1, -1, 1)
    else:
        bands = hp["num_filters"] if name == "avts" else hp["num_mels"]
        mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=rate, n_fft=hp["fft_size"], win_length=win, hop_length=hop, n_mels=bands,
            window_fn=torch.hamming_window, power=2.0, center=True, mel_scale="htk")(audio)
        feats = torch.log(mel.clamp_min(LOG_FLOOR)).transpose(1, 2).contiguous()
        mean, std = n.audio_mean.reshape(1, 1, -1), n.audio_std.reshape(1, 1, -1)
    audio = (feats - mean) / std
    if name == "cmac" and train:
        audio = spec_augment(audio.transpose(-1, -2), max_warp=hp["time_warp"], freq_mask=hp["freq_mask"],
                             time_mask=hp["time_mask"]).transpose(-1, -2).contiguous()
    return {"video": video, "audio": audio}
