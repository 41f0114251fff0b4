"""Sound-source heatmaps over the frame, as PNG pictures for the report.

One row of panels: the frame with the ground-truth boxes of the sounding objects (green) and of the
silent objects (grey, dashed); the map the score is computed from (the mean over heads) over the frame
with the thresholded region outlined; then one panel per attention head when there are several.
Matplotlib's object API (Figure + Agg canvas) is used so that no global backend is switched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from avssl_core.io_utils import atomic_path

Box = Sequence[float]  # [x0, y0, x1, y1], pixel edges, x1/y1 exclusive


def save_overlay(frame: np.ndarray, maps: np.ndarray, out_png: str | Path, *, sounding: Sequence[Box],
                 silent: Sequence[Box] = (), title: str = "", threshold: float | None = None,
                 panel_inches: float = 2.4) -> Path:
    """Write ``frame`` (uint8 [H, W, 3]) with ``maps`` ([K, H, W], non-negative, at the frame's size)
    to ``out_png``; returns the path."""
    frame = np.asarray(frame)
    maps = np.asarray(maps, dtype=np.float32)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be [H, W, 3], got {frame.shape}")
    if maps.ndim != 3 or maps.shape[1:] != frame.shape[:2]:
        raise ValueError(f"maps must be [K, H, W] at the frame's size {frame.shape[:2]}, got {maps.shape}")
    mean = maps.mean(axis=0)
    panels = [("frame + ground truth", None), ("map" + (" (mean of heads)" if len(maps) > 1 else ""), mean)]
    if len(maps) > 1:
        panels += [(f"head {k + 1}", m) for k, m in enumerate(maps)]
    fig = Figure(figsize=(panel_inches * len(panels), panel_inches + 0.5), dpi=100)
    FigureCanvasAgg(fig)
    for i, (name, heat) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(frame, interpolation="nearest")
        if heat is not None:
            ax.imshow(_unit(heat), cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0, interpolation="bilinear")
            if threshold is not None and i == 1 and np.ptp(heat) > 0:
                ax.contour(_unit(heat), levels=[threshold], colors="white", linewidths=1.0)
        for box in silent:
            ax.add_patch(_rect(box, "lightgrey", "--"))
        for box in sounding:
            ax.add_patch(_rect(box, "lime", "-"))
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    return out_png


def _unit(heat: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a flat map becomes all ones (it points everywhere equally)."""
    span = float(heat.max() - heat.min())
    return np.ones_like(heat) if span <= 0 else (heat - heat.min()) / span


def _rect(box: Box, colour: str, style: str) -> Rectangle:
    x0, y0, x1, y1 = box
    # Edges are pixel boundaries; imshow centres pixel i on i, so its edge is at i - 0.5.
    return Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linestyle=style,
                     linewidth=1.5)
