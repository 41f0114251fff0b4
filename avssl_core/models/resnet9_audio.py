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

from avssl_core.models.resnet2d import WidthResNet2d

RESNET9_CHANNELS = (64, 128, 256, 512)


class ResNet9Audio(WidthResNet2d):
    """Spectrogram [B, 1, time, mel] -> pooled features [B, channels[-1]]; ``return_map=True`` gives the
    last stage's map [B, C, time/32, mel/32] (rounded up)."""

    def __init__(self, channels: Sequence[int] = RESNET9_CHANNELS, in_channels: int = 1) -> None:
        c = [int(x) for x in channels]
        if len(c) != 4 or min(c) < 1:
            raise ValueError(f"ResNet9Audio: channels must be 4 positive widths, got {tuple(channels)}")
        super().__init__(c, in_channels, None, blocks=1)
        self.out_dim = c[3]

    def forward(self, x: torch.Tensor, *, return_map: bool = False) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if return_map:
            return x
        return torch.flatten(self.avgpool(x), 1)


def resnet9_audio_encoder(*, channels: Sequence[int] = RESNET9_CHANNELS) -> ResNet9Audio:
    return ResNet9Audio(channels)
