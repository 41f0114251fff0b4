"""Textured, slowly drifting backgrounds: smooth colour noise, stripes, gradients or a soft plaid.

Each video's texture is drawn once on a canvas a little larger than the frame; every frame is a window into
it whose offset drifts by a few pixels per second, so the background moves (as real cameras do) without
being redrawn. Colours are muted so the objects stand out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avssl_core.synth.classes.base import smooth_wander
from avssl_core.synth.timeline import Timeline

KINDS = ("smooth_noise", "stripes", "gradient", "plaid")


@dataclass(frozen=True)
class Background:
    kind: str
    canvas: np.ndarray  # (height + 2 * margin, width + 2 * margin, 3) float32, 0-255
    offsets: np.ndarray  # (num_frames, 2) int: (row, column) of each frame's window in the canvas

    def frame(self, index: int, height: int, width: int) -> np.ndarray:
        """A float32 copy of frame ``index``'s background, ready to draw objects onto."""
        r, c = self.offsets[index]
        return self.canvas[r : r + height, c : c + width].copy()


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    grey = rng.uniform(55, 165)
    return np.clip(grey + rng.uniform(-35, 35, 3), 0, 255)


def _bilinear_upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a coarse (gh, gw, 3) grid to (height, width, 3) with separable linear interpolation."""

    def weights(n_out: int, n_in: int) -> np.ndarray:
        pos = np.linspace(0, n_in - 1, n_out)
        w = np.zeros((n_out, n_in))
        lo = np.floor(pos).astype(int).clip(0, n_in - 2)
        frac = pos - lo
        w[np.arange(n_out), lo] = 1 - frac
        w[np.arange(n_out), lo + 1] = frac
        return w

    return np.einsum("ij,jkc,lk->ilc", weights(height, grid.shape[0]), grid, weights(width, grid.shape[1]))


def _texture(kind: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    c0, c1 = _muted_colour(rng), _muted_colour(rng)
    if kind == "smooth_noise":
        gh, gw = int(rng.integers(3, 8)), int(rng.integers(3, 8))
        mix = rng.random((gh, gw, 1))
        return _bilinear_upsample(c0 * mix + c1 * (1 - mix), height, width)
    if kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.08, 0.3) * min(height, width)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period)
        return c0 * wave[..., None] + c1 * (1 - wave[..., None])
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        proj = xs * np.cos(angle) + ys * np.sin(angle)
        ramp = (proj - proj.min()) / max(np.ptp(proj), 1e-9)
        return c0 * ramp[..., None] + c1 * (1 - ramp[..., None])
    if kind == "plaid":
        period = rng.uniform(0.1, 0.35) * min(height, width)
        weave = 0.25 * (
            2 + np.sin(2 * np.pi * xs / period) + np.sin(2 * np.pi * ys / (period * rng.uniform(0.7, 1.4)))
        )
        return c0 * weave[..., None] + c1 * (1 - weave[..., None])
    raise ValueError(f"unknown background kind {kind!r}")


def make_background(
    rng: np.random.Generator,
    timeline: Timeline,
    width: int,
    height: int,
    drift_periods_s: tuple[float, float] = (10.0, 25.0),
    drift_fraction: float = 0.05,
) -> Background:
    """``drift_fraction`` of the frame's short side is how far the window may drift from its centre."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    margin = max(2, int(round(drift_fraction * min(width, height))))
    canvas = _texture(kind, rng, height + 2 * margin, width + 2 * margin).astype(np.float32)
    times = timeline.frame_times()
    # Periods of 10-25 s (by default) over a few pixels: a drift of at most a few pixels per second.
    rows = margin + np.round(margin * smooth_wander(rng, times, *drift_periods_s)).astype(int)
    cols = margin + np.round(margin * smooth_wander(rng, times, *drift_periods_s)).astype(int)
    offsets = np.stack([np.clip(rows, 0, 2 * margin), np.clip(cols, 0, 2 * margin)], axis=1)
    return Background(kind=kind, canvas=canvas, offsets=offsets)
