"""Transformer blocks of the co-attention network (Cheng et al. 2020, Sec. 3.1, Fig. 3, Eqs. 1-2).

Every block is a multi-head attention sub-layer and a position-wise feed-forward sub-layer, each with a
residual connection and layer normalisation after it (the paper's SA block, after Vaswani et al.). The
blocks differ only in where the queries come from:

  SA   queries, keys and values are the same sequence (intra-modal)
  AGA  audio-guided attention: audio tokens are the queries, visual tokens the keys and values; the output
       has one row per audio token and carries visual content (the paper's "attended visual features")
  VGA  visual-guided attention: visual tokens are the queries over audio keys and values; one row per
       visual token, audio content
  CMA  both at once (AGA and VGA side by side)

A sequence is named here by the tokens its rows belong to (its queries), so the residual connection always
adds a row to its own query; the paper names an output by its values instead. Each attention block is
followed by an SA block per stream (Sec. 3.1), and ``CoAttentionStack`` cascades ``depth`` such layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ATTENTION_KINDS = ("cma", "aga", "vga", "self")


class TransformerBlock(nn.Module):
    """Multi-head attention of ``queries`` over ``context`` (itself when None), then a feed-forward
    network; post-norm residuals. With ``return_attention`` also the attention weights
    [B, heads, queries, keys] (softmax rows, summing to 1 over the keys)."""

    def __init__(self, dim: int, heads: int, *, ffn_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_attention = nn.LayerNorm(dim)
        ffn_dim = ffn_dim or 4 * dim  # Vaswani et al.'s ratio; the paper gives none
        self.feed_forward = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                          nn.Linear(ffn_dim, dim))
        self.norm_feed_forward = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, context: torch.Tensor | None = None, *,
                return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        context = queries if context is None else context
        attended, weights = self.attention(queries, context, context, need_weights=return_attention,
                                           average_attn_weights=False)
        x = self.norm_attention(queries + self.dropout(attended))
        x = self.norm_feed_forward(x + self.dropout(self.feed_forward(x)))
        return x, weights


class SelfAttentionBlock(TransformerBlock):
    """SA: a sequence attends over itself."""

    def forward(self, x: torch.Tensor, *, return_attention: bool = False):  # type: ignore[override]
        return super().forward(x, None, return_attention=return_attention)


class AudioGuidedAttention(TransformerBlock):
    """AGA: audio queries [B, Na, D] over visual keys/values [B, Nv, D] -> [B, Na, D]; weights [B, h, Na, Nv]."""

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, *,  # type: ignore[override]
                return_attention: bool = False):
        return super().forward(audio, visual, return_attention=return_attention)


class VisualGuidedAttention(TransformerBlock):
    """VGA: visual queries [B, Nv, D] over audio keys/values [B, Na, D] -> [B, Nv, D]; weights [B, h, Nv, Na]."""

    def forward(self, visual: torch.Tensor, audio: torch.Tensor, *,  # type: ignore[override]
                return_attention: bool = False):
        return super().forward(visual, audio, return_attention=return_attention)


class CrossModalAttention(nn.Module):
    """CMA: AGA and VGA on the same inputs, so each modality's queries see the other's features."""

    def __init__(self, dim: int, heads: int, *, ffn_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.aga = AudioGuidedAttention(dim, heads, ffn_dim=ffn_dim, dropout=dropout)
        self.vga = VisualGuidedAttention(dim, heads, ffn_dim=ffn_dim, dropout=dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, *, return_attention: bool = False):
        a, a_weights = self.aga(audio, visual, return_attention=return_attention)
        v, v_weights = self.vga(visual, audio, return_attention=return_attention)
        return a, v, a_weights, v_weights


@dataclass
class LayerAttention:
    """Attention weights of one co-attention layer's first blocks (None where that block does not exist)."""

    audio_over_visual: torch.Tensor | None = None  # [B, heads, Na, Nv] (AGA)
    visual_over_audio: torch.Tensor | None = None  # [B, heads, Nv, Na] (VGA)


class CoAttentionLayer(nn.Module):
    """One co-attention module: the ``kind`` block(s), then an SA block on each stream.

    kind  audio stream            visual stream
    cma   SA(AGA(a, v))           SA(VGA(v, a))
    aga   SA(AGA(a, v))           SA(SA(v))
    vga   SA(SA(a))               SA(VGA(v, a))
    self  SA(SA(a))               SA(SA(v))
    Where a stream has no guided block, an SA block takes its place, so every kind has the same parameter
    count and only the query roles change (the comparison of Table 1 at 15M parameters each).
    """

    def __init__(self, kind: str, dim: int, heads: int, *, ffn_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")
        self.kind = kind
        kw = {"ffn_dim": ffn_dim, "dropout": dropout}
        self.audio_first = (AudioGuidedAttention(dim, heads, **kw) if kind in ("cma", "aga")
                            else SelfAttentionBlock(dim, heads, **kw))
        self.visual_first = (VisualGuidedAttention(dim, heads, **kw) if kind in ("cma", "vga")
                             else SelfAttentionBlock(dim, heads, **kw))
        self.audio_self = SelfAttentionBlock(dim, heads, **kw)
        self.visual_self = SelfAttentionBlock(dim, heads, **kw)

    def forward(self, audio: torch.Tensor | None, visual: torch.Tensor, *, return_attention: bool = False):
        """``audio`` None: the audio stream is off (vision-only, Table 2): only the visual stream runs,
        its guided block turned into self-attention by giving it the visual features as queries, keys
        and values (the paper: the queries become the video features F_v), with the same weights."""
        attention = LayerAttention()
        if audio is None:
            v, _ = TransformerBlock.forward(self.visual_first, visual)
            v, _ = self.visual_self(v)
            return None, v, attention
        # Both first blocks read the layer's inputs (not each other's outputs): CMA's AGA and VGA run in
        # parallel on the same features (Fig. 3(c)).
        if isinstance(self.audio_first, AudioGuidedAttention):
            a, attention.audio_over_visual = self.audio_first(audio, visual, return_attention=return_attention)
        else:
            a, _ = self.audio_first(audio)
        if isinstance(self.visual_first, VisualGuidedAttention):
            v, attention.visual_over_audio = self.visual_first(visual, audio, return_attention=return_attention)
        else:
            v, _ = self.visual_first(visual)
        a, _ = self.audio_self(a)
        v, _ = self.visual_self(v)
        return a, v, attention


class CoAttentionStack(nn.Module):
    """``depth`` co-attention layers in cascade (the paper's L), ``heads`` heads each (A)."""

    def __init__(self, kind: str, *, dim: int, heads: int, depth: int, ffn_dim: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.kind = kind
        self.layers = nn.ModuleList(CoAttentionLayer(kind, dim, heads, ffn_dim=ffn_dim, dropout=dropout)
                                    for _ in range(depth))

    def forward(self, audio: torch.Tensor | None, visual: torch.Tensor, *, return_attention: bool = False):
        """-> (audio stream, visual stream, the attention of the last layer)."""
        attention = LayerAttention()
        for layer in self.layers:
            audio, visual, attention = layer(audio, visual, return_attention=return_attention)
        return audio, visual, attention
