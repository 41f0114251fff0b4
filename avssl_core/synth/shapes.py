"""Anti-aliased sprite drawing with numpy: signed distances -> pixel coverage -> premultiplied RGBA.

Each object class draws its look once per distinct state (a rotation step, a mouth opening, a flash level)
into a small canvas; the renderer then only blends that sprite into the frame inside its box. Drawing with
signed distances keeps edges soft (coverage falls from 1 to 0 across one pixel), so moving objects do not
flicker and boxes are well defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A pixel counts as part of the object's box when at least this much of it is covered.
BOX_COVERAGE = 0.25


@dataclass(frozen=True)
class Sprite:
    """One drawn state of an object, cropped to the pixels it covers.

    ``premultiplied`` is colour times coverage, so blending is ``frame * (1 - alpha) + premultiplied``.
    The track position of the object lands on (``anchor_x``, ``anchor_y``) in sprite pixel coordinates;
    ``box`` is the tight box (pixel edges, x1/y1 exclusive) of pixels covered at least BOX_COVERAGE.
    """

    premultiplied: np.ndarray  # (h, w, 3) float32, 0-255 scale
    one_minus_alpha: np.ndarray  # (h, w, 1) float32
    anchor_x: float
    anchor_y: float
    box: tuple[int, int, int, int]

    @property
    def height(self) -> int:
        return self.premultiplied.shape[0]

    @property
    def width(self) -> int:
        return self.premultiplied.shape[1]


def coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Inside (negative distance) -> 1, outside -> 0, with a one-pixel ramp across the edge."""
    return np.clip(0.5 - signed_distance, 0.0, 1.0)


class Canvas:
    """A drawing area whose coordinates are pixel centres relative to the object's anchor point.

    ``half_width``/``above``/``below`` say how far the drawing may reach from the anchor, in pixels.
    """

    def __init__(self, half_width: float, above: float, below: float):
        self.origin_x = math.ceil(half_width) + 1
        self.origin_y = math.ceil(above) + 1
        width = 2 * self.origin_x
        height = self.origin_y + math.ceil(below) + 1
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        self.x = xs + 0.5 - self.origin_x
        self.y = ys + 0.5 - self.origin_y
        self.premultiplied = np.zeros((height, width, 3), np.float32)
        self.alpha = np.zeros((height, width), np.float32)

    def paint(self, cover: np.ndarray, colour) -> None:
        """Paint ``colour`` (an RGB triple or an (h, w, 3) field) over what is there, by ``cover``."""
        cover = np.asarray(cover, np.float32)
        colour = np.asarray(colour, np.float32)
        c3 = cover[..., None]
        self.premultiplied *= 1.0 - c3
        self.premultiplied += c3 * colour
        self.alpha *= 1.0 - cover
        self.alpha += cover

    def sprite(self) -> Sprite:
        """Crop to the painted pixels and freeze into a Sprite."""
        painted = self.alpha > 1.0 / 255.0
        if not painted.any():
            raise ValueError("empty sprite: nothing was painted")
        rows = np.flatnonzero(painted.any(axis=1))
        cols = np.flatnonzero(painted.any(axis=0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        alpha = self.alpha[r0:r1, c0:c1]
        solid = alpha >= BOX_COVERAGE
        srows = np.flatnonzero(solid.any(axis=1))
        scols = np.flatnonzero(solid.any(axis=0))
        if len(srows) == 0:  # a very thin drawing: fall back to everything painted
            srows, scols = np.arange(r1 - r0), np.arange(c1 - c0)
        return Sprite(
            premultiplied=np.ascontiguousarray(self.premultiplied[r0:r1, c0:c1]),
            one_minus_alpha=np.ascontiguousarray(1.0 - alpha[..., None]),
            anchor_x=float(self.origin_x - c0),
            anchor_y=float(self.origin_y - r0),
            box=(int(scols[0]), int(srows[0]), int(scols[-1]) + 1, int(srows[-1]) + 1),
        )


# Signed distances (negative inside) of simple shapes, on a canvas's coordinate grids.


def circle(x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    return np.hypot(x - cx, y - cy) - r


def ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    # Scaled radial distance: exact on the axes, close enough elsewhere for one-pixel anti-aliasing.
    rx, ry = max(rx, 1e-3), max(ry, 1e-3)
    return (np.hypot((x - cx) / rx, (y - cy) / ry) - 1.0) * min(rx, ry)


def box(x: np.ndarray, y: np.ndarray, cx: float, cy: float, half_w: float, half_h: float) -> np.ndarray:
    return np.maximum(np.abs(x - cx) - half_w, np.abs(y - cy) - half_h)


def rounded_box(x, y, cx: float, cy: float, half_w: float, half_h: float, radius: float) -> np.ndarray:
    qx = np.abs(x - cx) - (half_w - radius)
    qy = np.abs(y - cy) - (half_h - radius)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    inside = np.minimum(np.maximum(qx, qy), 0)
    return outside + inside - radius


def diamond(x, y, cx: float, cy: float, half_w: float, half_h: float) -> np.ndarray:
    scale = half_w * half_h / math.hypot(half_w, half_h)  # turns the L1-ish ratio into pixels
    return (np.abs(x - cx) / half_w + np.abs(y - cy) / half_h - 1.0) * scale


def segment(x, y, x0: float, y0: float, x1: float, y1: float, half_thickness: float) -> np.ndarray:
    """A capsule: all points within ``half_thickness`` of the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = np.zeros_like(x) if length2 == 0 else np.clip(((x - x0) * dx + (y - y0) * dy) / length2, 0.0, 1.0)
    return np.hypot(x - (x0 + t * dx), y - (y0 + t * dy)) - half_thickness


def shade(colour, factor: np.ndarray) -> np.ndarray:
    """A colour field: ``colour`` scaled per pixel by ``factor`` (shading, stripes), kept in 0-255."""
    return np.clip(np.asarray(colour, np.float32) * factor[..., None], 0.0, 255.0)


def jitter_colour(rng: np.random.Generator, colour, amount: float = 18.0) -> tuple[float, float, float]:
    """Vary a class colour a little per object, so colour alone is a strong but not exact cue."""
    c = np.clip(np.asarray(colour, np.float64) + rng.uniform(-amount, amount, 3), 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))
