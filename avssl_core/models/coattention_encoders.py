"""The two encoders of the co-attention network (Cheng et al. 2020, Sec. 3.1): a 1-D convolution stack on
the raw stereo waveform and a small 3-D convolution stack on the frames. Both end in a fully connected
layer to the transformer's hidden size, applied per token, so that the co-attention module sees a
sequence: audio tokens are the time steps of the last audio feature map, visual tokens the spatio-temporal
positions of the last visual feature map (see avssl_core/methods/coattention.py for that reading).

Every convolution is followed by batch normalisation and a ReLU; the paper lists only the filters, and
its audio stack follows Multisensory (Owens & Efros), which normalises each convolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from avssl_core.models.init import init_conv_bn_

# Cheng et al. Sec. 3.1, audio encoder: kernel sizes of conv1, pool1, conv2 x2, conv3 x2, pool2, conv4 ...
AUDIO_KERNELS = (65, 4, 15, 15, 15, 15, 3, 3)
# ... their strides as the paper states them (all 4 up to the second pooling, which strides 3) ...
AUDIO_STRIDES = (4, 4, 4, 4, 4, 4, 3, 1)
# ... and the widths of conv1, conv2, conv3, conv4.
AUDIO_WIDTHS = (64, 128, 256, 128)
# Visual encoder: conv 64 5x7x7 stride 1, avg-pool 1x3x3 stride 1x2x2, four conv 64 3x3x3 stride 2.
VISUAL_STEM_KERNEL = (5, 7, 7)
VISUAL_STEM_STRIDE = (1, 1, 1)
VISUAL_STRIDES = ((2, 2, 2),) * 4
VISUAL_WIDTH = 64


def _conv_out(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


def _pool_out(length: int, kernel: int, stride: int) -> int:
    # ceil_mode pooling: the last partial window is kept, so no sample is silently dropped
    out = math.ceil((length - kernel) / stride) + 1
    return out - 1 if (out - 1) * stride >= length else out


def _conv_bn_relu(conv: nn.Module, channels: int, norm: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(conv, norm(channels), nn.ReLU(inplace=True))


class RawWaveformEncoder(nn.Module):
    """Stereo waveform [B, 2, S] -> audio tokens [B, Na, dim] (``pooled``: [B, dim]).

    The paper reshapes the waveform to [S, 1, 1, 2] and runs 3-D convolutions with [k x 1 x 1] kernels:
    that is a 1-D convolution over time with the two stereo channels as input channels, which is what
    this is. ``strides`` (8 values, for the six convolutions and two poolings in order) defaults to the
    paper's; a smaller preset may stride less to keep enough time steps from a shorter, lower-rate input.
    """

    def __init__(self, *, dim: int = 512, in_channels: int = 2, widths: Sequence[int] = AUDIO_WIDTHS,
                 strides: Sequence[int] = AUDIO_STRIDES) -> None:
        super().__init__()
        widths, strides = tuple(int(w) for w in widths), tuple(int(s) for s in strides)
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"audio widths must be 4 positive numbers (conv1..conv4), got {widths}")
        if len(strides) != 8 or min(strides) < 1:
            raise ValueError(f"audio strides must be 8 positive numbers, got {strides}")
        self.strides, self.dim = strides, dim
        k, s = AUDIO_KERNELS, strides
        c1, c2, c3, c4 = widths

        def conv(cin: int, cout: int, i: int) -> nn.Sequential:
            return _conv_bn_relu(nn.Conv1d(cin, cout, k[i], stride=s[i], padding=k[i] // 2, bias=False),
                                 cout, nn.BatchNorm1d)

        self.features = nn.Sequential(
            conv(in_channels, c1, 0),
            nn.AvgPool1d(k[1], s[1], ceil_mode=True),
            conv(c1, c2, 2), conv(c2, c2, 3),
            conv(c2, c3, 4), conv(c3, c3, 5),
            nn.AvgPool1d(k[6], s[6], ceil_mode=True),
            conv(c3, c4, 7),
        )
        self.to_tokens = nn.Linear(c4, dim)  # the paper's FC to the 512-d audio features, per time step
        init_conv_bn_(self)

    def num_tokens(self, num_samples: int) -> int:
        """Audio tokens (time steps) for a window of ``num_samples`` samples."""
        n, k, s = num_samples, AUDIO_KERNELS, self.strides
        for i in range(8):
            n = _pool_out(n, k[i], s[i]) if i in (1, 6) else _conv_out(n, k[i], s[i], k[i] // 2)
            if n < 1:
                raise ValueError(f"an audio window of {num_samples} samples is too short for the audio encoder")
        return n

    def forward(self, waveform: torch.Tensor, *, pooled: bool = False) -> torch.Tensor:
        if waveform.dim() != 3:
            raise ValueError(f"waveform must be [B, channels, samples], got {tuple(waveform.shape)}")
        tokens = self.to_tokens(self.features(waveform).transpose(1, 2))  # [B, Na, dim]
        return tokens.mean(dim=1) if pooled else tokens


class Clip3DEncoder(nn.Module):
    """Frames [B, 3, T, H, W] -> visual tokens [B, T', h, w, dim] (``pooled``: [B, dim]).

    Paper layout (Sec. 3.1): a 5x7x7 convolution, a 1x3x3 average pooling with spatial stride 2, four
    3x3x3 convolutions of stride 2, an FC to 512. The paper averages over frames before its FC; here the
    FC is applied per spatio-temporal position and the positions stay tokens for the co-attention module
    (averaging them is ``pooled``). ``stem_kernel``, ``stem_stride`` and ``strides`` let a smaller preset
    keep a usable token grid from small inputs.
    """

    def __init__(self, *, dim: int = 512, width: int = VISUAL_WIDTH,
                 stem_kernel: Sequence[int] = VISUAL_STEM_KERNEL, stem_stride: Sequence[int] = VISUAL_STEM_STRIDE,
                 strides: Sequence[Sequence[int]] = VISUAL_STRIDES) -> None:
        super().__init__()
        stem_kernel, stem_stride = tuple(int(x) for x in stem_kernel), tuple(int(x) for x in stem_stride)
        strides = tuple(tuple(int(x) for x in s) for s in strides)
        if len(stem_kernel) != 3 or len(stem_stride) != 3 or len(strides) != 4 or any(len(s) != 3 for s in strides):
            raise ValueError("visual encoder: stem_kernel and stem_stride are (t, h, w) triples and strides "
                             f"four such triples, got {stem_kernel}, {stem_stride}, {strides}")
        self.stem_kernel, self.stem_stride, self.strides, self.dim = stem_kernel, stem_stride, strides, dim
        stem_padding = tuple(k // 2 for k in stem_kernel)
        layers: list[nn.Module] = [
            _conv_bn_relu(nn.Conv3d(3, width, stem_kernel, stride=stem_stride, padding=stem_padding, bias=False),
                          width, nn.BatchNorm3d),
            nn.AvgPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), count_include_pad=False),
        ]
        layers += [_conv_bn_relu(nn.Conv3d(width, width, 3, stride=s, padding=1, bias=False), width, nn.BatchNorm3d)
                   for s in strides]
        self.features = nn.Sequential(*layers)
        self.to_tokens = nn.Linear(width, dim)
        init_conv_bn_(self)

    def token_grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(T', h, w) of the token grid for a [frames, height, width] input."""
        grid = [frames, height, width]
        for d in range(3):
            grid[d] = _conv_out(grid[d], self.stem_kernel[d], self.stem_stride[d], self.stem_kernel[d] // 2)
            if d > 0:
                grid[d] = _conv_out(grid[d], 3, 2, 1)  # the pooling (padding 1, stride 2)
            for s in self.strides:
                grid[d] = _conv_out(grid[d], 3, s[d], 1)
        if min(grid) < 1:
            raise ValueError(f"a {frames}x{height}x{width} clip is too small for the visual encoder")
        return grid[0], grid[1], grid[2]

    def forward(self, clip: torch.Tensor, *, pooled: bool = False) -> torch.Tensor:
        if clip.dim() != 5:
            raise ValueError(f"clip must be [B, 3, T, H, W], got {tuple(clip.shape)}")
        tokens = self.to_tokens(self.features(clip).permute(0, 2, 3, 4, 1))  # [B, T', h, w, dim]
        return tokens.flatten(1, 3).mean(dim=1) if pooled else tokens


class PooledEncoder(nn.Module):
    """An encoder as a downstream backbone: its tokens averaged to [B, dim] (shares the encoder's weights)."""

    def __init__(self, encoder: RawWaveformEncoder | Clip3DEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.out_dim = encoder.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, pooled=True)
