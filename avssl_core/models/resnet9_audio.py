"""ResNet-9, the CMAC audio encoder (CMAC Sec. 4.1: "ResNet-9 is used as f_a").

The paper does not spell the network out. Here it is the ResNet-18 layout (He et al. 2016) with one
basic block per stage instead of two: a 7x7/2 stem and max-pool, then four stages of one BasicBlock
(two 3x3 convolutions each, stride 2 from the second stage on), i.e. 1 + 4 x 2 = 9 convolutions, on a
1-channel log-mel spectrogram [B, 1, time, mel]. Built from torchvision's BasicBlock and
``ResNet._make_layer``; widths are configurable (the ``tiny`` preset narrows them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models import ResNet
from torchvision.models.resnet import BasicBlock

from avssl_core.models.init import init_conv_bn_

RESNET9_CHANNELS = (64, 128, 256, 512)


class ResNet9Audio(ResNet):
    """Spectrogram [B, 1, time, mel] -> pooled features [B, channels[-1]]; ``return_map=True`` gives the
    last stage's map [B, C, time/32, mel/32] (rounded up)."""

    def __init__(self, channels: Sequence[int] = RESNET9_CHANNELS, in_channels: int = 1) -> None:
        nn.Module.__init__(self)  # ResNet.__init__ would build a classifier network we do not want
        c = [int(x) for x in channels]
        if len(c) != 4 or min(c) < 1:
            raise ValueError(f"ResNet9Audio: channels must be 4 positive widths, got {tuple(channels)}")
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = c[0], 1, 1, 64
        self.conv1 = nn.Conv2d(in_channels, c[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, c[0], 1)
        self.layer2 = self._make_layer(BasicBlock, c[1], 1, stride=2)
        self.layer3 = self._make_layer(BasicBlock, c[2], 1, stride=2)
        self.layer4 = self._make_layer(BasicBlock, c[3], 1, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        self.out_dim = c[3]
        init_conv_bn_(self)

    def forward(self, x: torch.Tensor, *, return_map: bool = False) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if return_map:
            return x
        return torch.flatten(self.avgpool(x), 1)


def resnet9_audio_encoder(*, channels: Sequence[int] = RESNET9_CHANNELS) -> ResNet9Audio:
    return ResNet9Audio(channels)
