"""CMAC's attention parts (CMAC Sec. 3.2): adaptive filters, pyramid correlation filtering, saliency heads.

Feature maps are [B, C, *S] with S = (T, H, W) for video and (time, mel) for audio; everything here
works for either.

- ``AdaptiveFilter``: g(x) = BN(conv1x1(x)) and kappa = global average pool of g(x) (CMAC Eq. 3).
- ``pyramid_correlation``: the response of one modality's filter kappa at every position of the other
  modality's g-map, normalised (CMAC Eq. 4), at 1..3 scales, each scale half the previous resolution
  (average pooling, rounding up), brought back to full resolution (nearest) and averaged (Fig. 3).
  Normalisations (CMAC Table 2): "none" the plain dot product; "softmax" a softmax of the dot products
  over the positions of the map; "cosine" the cosine similarity mapped from [-1, 1] to [0, 1] by
  (1 + cos) / 2 (the paper says only that norm() maps into [0, 1]; this affine map keeps a gradient
  everywhere, where clipping at 0 would not).
- ``SaliencyHead``: s_hat = sigmoid(h(x)), h a 3x3(x3) conv + BN + ReLU + 1x1 conv block (Eq. 5; the
  paper gives no layer sizes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from avssl_core.models.init import init_conv_bn_

NORMALIZATIONS = ("none", "softmax", "cosine")
MAX_PYRAMID_SCALES = 3


def _conv(dims: int) -> type[nn.Module]:
    if dims not in (2, 3):
        raise ValueError(f"feature maps must have 2 or 3 spatial dims, got {dims}")
    return nn.Conv3d if dims == 3 else nn.Conv2d


def _batch_norm(dims: int) -> type[nn.Module]:
    return nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d


class AdaptiveFilter(nn.Module):
    """x [B, C_in, *S] -> (g(x) [B, C_f, *S], kappa [B, C_f])."""

    def __init__(self, in_channels: int, filter_channels: int, *, dims: int) -> None:
        super().__init__()
        self.g = nn.Sequential(_conv(dims)(in_channels, filter_channels, kernel_size=1, bias=False),
                               _batch_norm(dims)(filter_channels))
        init_conv_bn_(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.g(x)
        return g, g.flatten(2).mean(dim=2)


class SaliencyHead(nn.Module):
    """x [B, C, *S] -> single-modality attention s_hat [B, *S] in (0, 1)."""

    def __init__(self, in_channels: int, hidden: int, *, dims: int) -> None:
        super().__init__()
        conv = _conv(dims)
        self.block = nn.Sequential(conv(in_channels, hidden, kernel_size=3, padding=1, bias=False),
                                   _batch_norm(dims)(hidden), nn.ReLU(inplace=True),
                                   conv(hidden, 1, kernel_size=1))
        init_conv_bn_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.block(x)).squeeze(1)


def correlation_response(kappa: torch.Tensor, feats: torch.Tensor, normalization: str) -> torch.Tensor:
    """Response of filter ``kappa`` [B, C] at every position of ``feats`` [B, C, *S] -> [B, *S]."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    flat = feats.flatten(2)
    if normalization == "cosine":
        cos = torch.einsum("bc,bcn->bn", F.normalize(kappa, dim=1), F.normalize(flat, dim=1))
        response = (1.0 + cos) / 2.0
    else:
        response = torch.einsum("bc,bcn->bn", kappa, flat)
        if normalization == "softmax":
            response = response.softmax(dim=1)
    return response.reshape(feats.shape[0], *feats.shape[2:])


def half_resolution(feats: torch.Tensor) -> torch.Tensor:
    """[B, C, *S] average-pooled to ceil(S / 2) in every spatial dimension."""
    size = tuple(math.ceil(s / 2) for s in feats.shape[2:])
    pool = F.adaptive_avg_pool3d if feats.dim() == 5 else F.adaptive_avg_pool2d
    return pool(feats, size)


def pyramid_correlation(kappa: torch.Tensor, feats: torch.Tensor, *, scales: int,
                        normalization: str) -> torch.Tensor:
    """Cross-modal guided attention s [B, *S] (CMAC Eq. 4 with the pyramid of Fig. 3)."""
    if not 1 <= scales <= MAX_PYRAMID_SCALES:
        raise ValueError(f"pyramid scales must be 1..{MAX_PYRAMID_SCALES}, got {scales}")
    size = feats.shape[2:]
    maps = []
    x = feats
    for level in range(scales):
        if level:
            x = half_resolution(x)
        response = correlation_response(kappa, x, normalization)
        if response.shape[1:] != size:
            response = F.interpolate(response.unsqueeze(1), size=size, mode="nearest").squeeze(1)
        maps.append(response)
    return torch.stack(maps).mean(dim=0)
