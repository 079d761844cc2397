"""Figures for the notebooks and the report (matplotlib, imported on first use)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def figures_dir() -> Path:
    """``$SEQGEN_FIGURES``, else ``reports/figures`` in the nearest folder (from the cwd up) that has ``reports/``."""
    if os.environ.get("SEQGEN_FIGURES"):
        return Path(os.environ["SEQGEN_FIGURES"])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "reports").is_dir():
            return folder / "reports" / "figures"
    return here / "reports" / "figures"


def save(fig, name: str) -> None:
    """Save ``fig`` as ``<figures_dir>/<name>.png``, replacing the previous version of that figure.

    Returns nothing, so a notebook cell ending in ``save(...)`` shows no machine-specific path.
    """
    folder = figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight", metadata={"Software": None})


def show_images(images, titles=None, *, boxes=None, columns: int = 1, scale: float = 0.025):
    """A figure of grayscale images (one per axis), with optional titles and digit boxes."""
    import matplotlib.pyplot as plt

    images = list(images)
    rows = -(-len(images) // columns)
    height, width = images[0].shape
    fig, axes = plt.subplots(rows, columns, squeeze=False,
                             figsize=(max(3.0, columns * width * scale * 1.6), rows * height * scale * 2.2 + 0.3))
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= len(images):
            continue
        ax.imshow(images[k], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=8)
        if boxes is not None:
            for x0, y0, x1, y1 in boxes[k]:
                if x1 > x0:
                    ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="tab:red", lw=0.8))
    fig.tight_layout()
    return fig


def digit_grid(digits, per_class: int = 10):
    """A 10 x ``per_class`` grid of the first digits of each class (ink shown dark)."""
    import matplotlib.pyplot as plt

    tiles = [np.hstack([digits.images[i] for i in idx[:per_class]]) for idx in digits.class_indices]
    fig, ax = plt.subplots(figsize=(per_class * 0.45, 10 * 0.45))
    ax.imshow(255 - np.vstack(tiles), cmap="gray", vmin=0, vmax=255)
    ax.set_yticks(np.arange(10) * 28 + 14, labels=[str(d) for d in range(10)])
    ax.set_xticks([])
    return fig
