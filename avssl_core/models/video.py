"""Visual encoders: the MC3 clip network of AVTS and the single-frame ResNet18 of AVC.

Factories are keyword-only and build randomly initialised networks (``weights=None``): every method
in this project learns its encoders from scratch, as the papers do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.video import mc3_18
from torchvision.models.video.resnet import BasicBlock, Conv3DNoTemporal, Conv3DSimple, VideoResNet

from avssl_core.models.init import init_conv_bn_
from avssl_core.models.resnet2d import ResNet18Encoder, resnet18_2d

MC3_CHANNELS = (64, 128, 256, 512)  # torchvision's MC3-18 widths (conv2_x .. conv5_x)


class _WidthVideoResNet(VideoResNet):
    """torchvision's VideoResNet with free stage widths (torchvision fixes them at 64..512).

    Reuses torchvision's blocks, convolution makers, ``_make_layer`` and initialisation so that with
    ``MC3_CHANNELS`` it is the same network as ``mc3_18`` (a test checks the parameter counts agree).
    """

    def __init__(self, channels: Sequence[int], conv_makers: Sequence[type[nn.Conv3d]]) -> None:
        nn.Module.__init__(self)  # VideoResNet.__init__ would first build the full-width network
        c = list(channels)
        self.inplanes = c[0]
        # Same stem as torchvision's BasicStem (3x7x7, spatial stride 2), narrower.
        self.stem = nn.Sequential(
            nn.Conv3d(3, c[0], kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(c[0]),
            nn.ReLU(inplace=True),
        )
        self.layer1 = self._make_layer(BasicBlock, conv_makers[0], c[0], 2, stride=1)
        self.layer2 = self._make_layer(BasicBlock, conv_makers[1], c[1], 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, conv_makers[2], c[2], 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, conv_makers[3], c[3], 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Identity()
        init_conv_bn_(self)


class MC3Encoder(nn.Module):
    """Clip [B, 3, T, H, W] -> pooled features [B, C] (C = last stage width), or the last feature map
    [B, C, T, H/16, W/16] with ``return_map=True`` (kept for sound localisation).

    MC3 has no temporal striding, so the map keeps all T time steps.
    """

    def __init__(self, trunk: VideoResNet, out_dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.trunk.fc = nn.Identity()  # the classifier is the method's business
        self.out_dim = out_dim

    def forward(self, clip: torch.Tensor, *, return_map: bool = False) -> torch.Tensor:
        t = self.trunk
        x = t.layer4(t.layer3(t.layer2(t.layer1(t.stem(clip)))))
        if return_map:
            return x
        return torch.flatten(t.avgpool(x), 1)


def mc3_video_encoder(*, channels: Sequence[int] = MC3_CHANNELS) -> MC3Encoder:
    """The AVTS video subnetwork (AVTS Sec. 2.5, Fig. 2(b)): an MC3 network, i.e. 3D convolutions in
    the early layers (stem and conv2_x) and 2D (1x3x3) convolutions from conv3_x on.

    Departures from the paper's MC3 (AVTS Sec. 2.5 says its version has no residual connections and a
    final FC of another size, neither specified further): this is torchvision's residual MC3-18 with
    its classifier removed, so it yields the 512-d globally pooled conv5 features; the method adds its
    own final FC. With ``channels`` other than ``MC3_CHANNELS`` the same architecture is built with
    narrower stages (the ``tiny`` presets use (16, 32, 64, 128) to train on a CPU in minutes).
    """
    channels = tuple(int(c) for c in channels)
    if len(channels) != 4 or min(channels) < 1:
        raise ValueError(f"mc3_video_encoder: channels must be 4 positive widths, got {channels}")
    if channels == MC3_CHANNELS:
        trunk = mc3_18(weights=None)
    else:
        trunk = _WidthVideoResNet(channels, [Conv3DSimple] + [Conv3DNoTemporal] * 3)
    return MC3Encoder(trunk, channels[-1])


def resnet18_frame_encoder(*, in_channels: int = 3, embed_dim: int = 128,
                           channels: Sequence[int] = (64, 128, 256, 512)) -> ResNet18Encoder:
    """The AVC visual subnetwork: ResNet18 on one RGB frame with a final FC to ``embed_dim`` (128 in
    the AVC paper, Sec. II). Narrower ``channels`` give the ``tiny`` variant."""
    return resnet18_2d(in_channels=in_channels, embed_dim=embed_dim, channels=channels)
