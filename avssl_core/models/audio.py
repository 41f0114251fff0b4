"""Audio encoders: the VGG-like filterbank network of AVTS and the spectrogram ResNet18 of AVC.

Inputs are 1-channel time-frequency "images" laid out [B, 1, time, frequency] for the VGG net (the
shape the AVTS preprocessing produces: [1, frames, 40]) and [B, 1, frequency, time] for the ResNet18
(the usual spectrogram image); both nets are indifferent to the orientation except through their
pooling shapes, which are set for the layout documented here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from avssl_core.models.init import init_conv_bn_
from avssl_core.models.resnet2d import RESNET18_CHANNELS, ResNet18Encoder, resnet18_2d

# conv1..conv5 widths and the fc6 width of the SyncNet audio stream (Chung & Zisserman 2016, Table 1),
# which AVTS uses as its audio subnetwork (AVTS Sec. 2.5, Fig. 2(c)).
VGG_AUDIO_CHANNELS = (64, 192, 384, 256, 256)
VGG_AUDIO_FC6 = 512


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class VGGAudioEncoder(nn.Module):
    """Filterbank [B, 1, time, bands] -> embedding [B, embed_dim]; ``return_map=True`` gives the
    conv5 activations [B, C5, time', bands'] (AVTS Sec. 3.4 takes its audio features from conv_5)."""

    def __init__(self, *, channels: Sequence[int], fc6_dim: int, embed_dim: int,
                 fc6_grid: tuple[int, int] = (4, 5)) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (int(c) for c in channels)
        self.conv = nn.Sequential(
            # SyncNet's pool1 is 1x1 (a no-op) and is left out.
            *_conv_bn_relu(1, c1),
            *_conv_bn_relu(c1, c2),
            nn.MaxPool2d(kernel_size=3, stride=(2, 1)),  # SyncNet pool2: halves time only
            *_conv_bn_relu(c2, c3),
            *_conv_bn_relu(c3, c4),
            *_conv_bn_relu(c4, c5),
        )
        self.pool5 = nn.MaxPool2d(kernel_size=3, stride=2)
        # SyncNet's fc6 is a 5x4 (frequency x time) valid convolution over its 0.2 s input's pool5 map;
        # on 1 s of 40-band features that map is about 24x18, so it is first averaged onto the same
        # 4x5 (time x frequency) grid. This keeps fc6's size and a coarse time order.
        self.grid = nn.AdaptiveAvgPool2d(fc6_grid)
        self.fc6 = nn.Sequential(nn.Conv2d(c5, fc6_dim, kernel_size=fc6_grid, bias=False),
                                 nn.BatchNorm2d(fc6_dim), nn.ReLU(inplace=True))
        self.fc7 = nn.Linear(fc6_dim, embed_dim)
        self.embed_dim = embed_dim
        init_conv_bn_(self)

    def forward(self, fbank: torch.Tensor, *, return_map: bool = False) -> torch.Tensor:
        x = self.conv(fbank)
        if return_map:
            return x
        x = self.fc6(self.grid(self.pool5(x)))
        return self.fc7(torch.flatten(x, 1))


def vgg_audio_encoder(*, embed_dim: int = 512, channels: Sequence[int] = VGG_AUDIO_CHANNELS,
                      fc6_dim: int = VGG_AUDIO_FC6) -> VGGAudioEncoder:
    """The AVTS audio subnetwork: the VGG-like audio stream of SyncNet (Chung & Zisserman 2016) on log
    filterbank energies, with batch normalisation after every convolution as in SyncNet.

    Departures from SyncNet (AVTS gives the spec only in its Fig. 2(c) and refers to SyncNet):
    the input is 1 s of 40-band filterbank (SyncNet: 0.2 s of 13 MFCCs), so the pool5 map is averaged
    onto SyncNet's 4x5 fc6 extent before fc6; fc7 outputs ``embed_dim`` (512, to match the MC3 video
    features' size) where SyncNet's has 256. ``channels``/``fc6_dim`` narrower: the ``tiny`` variant.
    """
    channels = tuple(channels)
    if len(channels) != 5 or min(channels) < 1:
        raise ValueError(f"vgg_audio_encoder: channels must be 5 positive widths, got {channels}")
    return VGGAudioEncoder(channels=channels, fc6_dim=fc6_dim, embed_dim=embed_dim)


def resnet18_audio_encoder(*, in_channels: int = 1, embed_dim: int = 128,
                           channels: Sequence[int] = RESNET18_CHANNELS) -> ResNet18Encoder:
    """The AVC audio subnetwork: ResNet18 with a 1-channel stem on a log spectrogram [B, 1, freq,
    time], FC to ``embed_dim`` (128, AVC paper Sec. II). Narrower ``channels``: the ``tiny`` variant."""
    return resnet18_2d(in_channels=in_channels, embed_dim=embed_dim, channels=channels)
