"""Class-activation-style sound-source maps for two-stream networks that pool a visual feature map
and project it into the audio-visual embedding space with one linear layer (AVTS, AVC).

Global average pooling commutes with a linear projection: ``fc(mean_p x_p) = mean_p fc(x_p)``. So
``fc`` applied at each position ``p`` of the last feature map gives the per-position embeddings whose
average is the clip embedding the method was trained with (the CAM argument of Zhou et al. 2016). Each
position is then compared with the audio embedding of the same moment. We use the cosine similarity,
clipped at zero, as Objects-that-Sound and LVS do for their localisation maps: it ignores the norm,
which varies over positions with the amount of texture rather than with the sound, and it keeps only
positions that agree with the audio.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def audio_similarity_map(feature_map: torch.Tensor, projection: nn.Linear,
                         audio_embedding: torch.Tensor) -> torch.Tensor:
    """``feature_map`` [B, C, h, w], ``projection`` C -> D, ``audio_embedding`` [B, D] -> [B, 1, h, w] in
    [0, 1]: relu(cos(projection(feature_map[:, :, y, x]), audio_embedding))."""
    if feature_map.dim() != 4:
        raise ValueError(f"feature map must be [B, C, h, w], got {tuple(feature_map.shape)}")
    b, c, h, w = feature_map.shape
    if audio_embedding.shape != (b, projection.out_features):
        raise ValueError(f"audio embedding {tuple(audio_embedding.shape)} does not match the projection's "
                         f"{projection.out_features}-d output for {b} samples")
    positions = projection(feature_map.permute(0, 2, 3, 1).reshape(b, h * w, c))  # [B, hw, D]
    similarity = F.cosine_similarity(positions, audio_embedding.unsqueeze(1), dim=-1)  # [B, hw]
    return similarity.clamp_min(0).reshape(b, 1, h, w)
