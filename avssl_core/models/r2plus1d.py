"""R(2+1)D-18 (Tran et al. 2018), the CMAC video encoder (CMAC Sec. 4.1), width-configurable.

With ``R2PLUS1D_CHANNELS`` this is torchvision's ``r2plus1d_18`` (random init, classifier removed); with
narrower widths the same architecture is built from torchvision's blocks (``Conv2Plus1D`` keeps the
parameter count of a full 3x3x3 convolution through its mid-plane width), so the ``tiny`` preset trains
on a CPU in minutes. The encoder wrapper is the one the MC3 network uses: it returns the globally
pooled last stage, or its map with ``return_map=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torchvision.models.video import r2plus1d_18
from torchvision.models.video.resnet import Conv2Plus1D

from avssl_core.models.init import init_conv_bn_
from avssl_core.models.video import MC3Encoder, _WidthVideoResNet

R2PLUS1D_CHANNELS = (64, 128, 256, 512)  # torchvision's R(2+1)D-18 widths (conv2_x .. conv5_x)
# torchvision's R(2+1)D stem: a 1x7x7 spatial convolution to 45 channels, then a 3x1x1 temporal one to
# 64; narrower networks keep that 45:64 ratio.
_STEM_MID_RATIO = 45 / 64


def _r2plus1d_stem(width: int) -> nn.Sequential:
    mid = max(1, round(width * _STEM_MID_RATIO))
    return nn.Sequential(
        nn.Conv3d(3, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, width, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    )


def r2plus1d_video_encoder(*, channels: Sequence[int] = R2PLUS1D_CHANNELS) -> MC3Encoder:
    """Clip [B, 3, T, H, W] -> pooled features [B, channels[-1]]; ``return_map=True`` gives the conv5_x
    map [B, C, ~T/8, H/16, W/16] (conv3_x..conv5_x stride time and space by 2)."""
    channels = tuple(int(c) for c in channels)
    if len(channels) != 4 or min(channels) < 1:
        raise ValueError(f"r2plus1d_video_encoder: channels must be 4 positive widths, got {channels}")
    if channels == R2PLUS1D_CHANNELS:
        trunk = r2plus1d_18(weights=None)
    else:
        trunk = _WidthVideoResNet(channels, [Conv2Plus1D] * 4)
        trunk.stem = _r2plus1d_stem(channels[0])
        init_conv_bn_(trunk)
    return MC3Encoder(trunk, channels[-1])
