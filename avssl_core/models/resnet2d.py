"""ResNet18 for 2D inputs (an RGB frame or a 1-channel spectrogram), shared by the frame and audio
encoders of AVC so the two branches are the same architecture, as in the AVC paper (Sec. II, Fig. 1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models import ResNet, resnet18
from torchvision.models.resnet import BasicBlock

from avssl_core.models.init import init_conv_bn_

RESNET18_CHANNELS = (64, 128, 256, 512)


class WidthResNet2d(ResNet):
    """torchvision's 2-D ResNet of BasicBlocks with free stage widths and ``blocks`` per stage
    (torchvision fixes the widths at 64..512); reuses its ``_make_layer`` and initialisation, so with
    ``RESNET18_CHANNELS`` and 2 blocks it equals ``resnet18``. ``num_classes=None``: no classifier
    (``fc`` is the identity)."""

    def __init__(self, channels: Sequence[int], in_channels: int, num_classes: int | None, *,
                 blocks: int = 2) -> None:
        nn.Module.__init__(self)  # ResNet.__init__ would first build the full-width network
        c = list(channels)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = c[0], 1, 1, 64
        self.conv1 = nn.Conv2d(in_channels, c[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, c[0], blocks)
        self.layer2 = self._make_layer(BasicBlock, c[1], blocks, stride=2)
        self.layer3 = self._make_layer(BasicBlock, c[2], blocks, stride=2)
        self.layer4 = self._make_layer(BasicBlock, c[3], blocks, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity() if num_classes is None else nn.Linear(c[3], num_classes)
        init_conv_bn_(self)


class ResNet18Encoder(nn.Module):
    """Image [B, C_in, H, W] -> embedding [B, embed_dim]; ``return_map=True`` gives the conv5 map
    [B, C, H/32, W/32] instead (for localisation and retrieval by region)."""

    def __init__(self, net: ResNet, embed_dim: int) -> None:
        super().__init__()
        self.net = net
        self.embed_dim = embed_dim

    def forward(self, x: torch.Tensor, *, return_map: bool = False) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        if return_map:
            return x
        return n.fc(torch.flatten(n.avgpool(x), 1))


def resnet18_2d(*, in_channels: int, embed_dim: int,
                channels: Sequence[int] = RESNET18_CHANNELS) -> ResNet18Encoder:
    """torchvision ResNet18 (random init) whose classifier is an FC to ``embed_dim``; a 1-channel input
    gets a 1-channel stem (same 7x7/2 shape), other ``channels`` give a narrower network."""
    channels = tuple(int(c) for c in channels)
    if len(channels) != 4 or min(channels) < 1:
        raise ValueError(f"resnet18: channels must be 4 positive widths, got {channels}")
    if channels == RESNET18_CHANNELS:
        net = resnet18(weights=None, num_classes=embed_dim)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, channels[0], kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    else:
        net = WidthResNet2d(channels, in_channels, embed_dim)
    return ResNet18Encoder(net, embed_dim)
