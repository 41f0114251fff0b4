"""t-SNE pictures of embeddings coloured by class (one picture per modality and method).

Deterministic: PCA (full SVD) to at most 50 dimensions, then scikit-learn's t-SNE with PCA
initialisation and a fixed ``random_state``, so the same features give the same picture. The
perplexity (30 by default, van der Maaten & Hinton 2008) must stay below the number of points; with the
few dozen clips of a small evaluation it is set to a third of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from avssl_core.io_utils import atomic_path

MIN_POINTS = 5
PCA_DIMS = 50


def tsne_perplexity(n: int, default: float = 30.0) -> float:
    """The usual perplexity, lowered for small sets: at most (n - 1) / 3, at least 2."""
    return float(max(2.0, min(default, (n - 1) / 3.0)))


def embed_2d(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """[N, D] -> [N, 2] t-SNE coordinates (deterministic for a given seed)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < MIN_POINTS:
        raise ValueError(f"t-SNE needs [N, D] features with N >= {MIN_POINTS}, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("t-SNE: features contain NaN or infinite values")
    x = x - x.mean(axis=0)
    if x.shape[1] > PCA_DIMS and x.shape[0] > PCA_DIMS:
        x = PCA(n_components=PCA_DIMS, svd_solver="full", random_state=seed).fit_transform(x)
    tsne = TSNE(n_components=2, perplexity=tsne_perplexity(x.shape[0]), init="pca", learning_rate="auto",
                random_state=seed, method="exact" if x.shape[0] < 200 else "barnes_hut")
    return tsne.fit_transform(x)


def plot_embeddings(features: np.ndarray | torch.Tensor, labels: Sequence, out_png: str | Path, title: str,
                    *, seed: int = 0) -> Path:
    """Write a t-SNE scatter of ``features`` [N, D] coloured by ``labels`` (N class names or ids) to
    ``out_png``; returns the path."""
    if isinstance(features, torch.Tensor):
        features = features.detach().float().cpu().numpy()
    features = np.asarray(features)
    labels = [str(label) for label in labels]
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    points = embed_2d(features, seed=seed)
    classes = sorted(set(labels))
    colours = _palette(len(classes))
    fig = Figure(figsize=(5.0, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for colour, cls in zip(colours, classes, strict=True):
        mask = np.array([label == cls for label in labels])
        ax.scatter(points[mask, 0], points[mask, 1], s=18, color=colour, label=cls, edgecolors="none")
    ax.set_title(f"{title}\n(t-SNE, {len(labels)} points, perplexity {tsne_perplexity(len(labels)):.3g})",
                 fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    return out_png


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
