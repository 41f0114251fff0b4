"""Do the stored clips hold the pixels a preset asks for?

A preset resizes each frame's short side to its ``short_side`` hyper-parameter before cropping. Clips
stored smaller than that would be upsampled without a word, so a paper preset would train on blurred
frames; the pretrain stage refuses such a pairing before it trains, and says how to segment instead.
The clips' size is what the segment stage recorded in the clip index (its ``width`` and ``height``).
"""

from __future__ import annotations

import numpy as np

from avssl_core.errors import ConfigError
from avssl_core.pretext.clip_index import ClipIndex


def stored_short_side(index: ClipIndex) -> int:
    """The smallest short side (pixels) among the index's clips."""
    return int(np.min(np.minimum(index.width, index.height)))


def check_clip_resolution(index: ClipIndex, needed_short_side: int | None, *, method: str, preset: str) -> None:
    """Raise ConfigError when the clips' short side is below the ``needed_short_side`` of ``method``'s
    ``preset`` (None: the preset names no size, nothing to check)."""
    if needed_short_side is None:
        return
    stored = stored_short_side(index)
    if needed_short_side <= stored:
        return
    raise ConfigError(
        f"{index.source}: the {method} {preset} preset resizes frames to a {needed_short_side} px short side, "
        f"but the stored clips have a {stored} px short side, so training would upsample them. Segment the "
        f"clips at the preset's size (`avssl --set segment.short_side={needed_short_side} segment`, or "
        f"segment.short_side: {needed_short_side} in params.yaml before `dvc repro`), or pick a preset "
        f"(or pretrain.hparams.{method}.short_side) of at most {stored} px")
