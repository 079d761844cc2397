"""Glyph-level augmenters: each digit is varied before it is laid out."""

from __future__ import annotations

import numpy as np

from . import functional as F
from .base import GeometricAugmenter, GlyphAugmenter, SequenceAugmenter, magnitude


class Affine(GeometricAugmenter):
    """Rotation, shear, anisotropic scale and a small shift (with baseline jitter).

    Parameters
    ----------
    rotation : float
        Maximum rotation in degrees (uniform in ``±rotation``).
    shear : float
        Maximum horizontal shear (slant), as a tangent.
    scale : float
        Maximum relative change of width and of height, drawn independently (below 1).
    translate : float
        Maximum horizontal shift in pixels.
    baseline : float
        Maximum vertical shift in pixels (the digit rides above or below the line).
    """

    def __init__(self, rotation=10.0, shear=0.2, scale=0.1, translate=1.5, baseline=2.0, p=0.5, strength=1.0):
        super().__init__(p, strength)
        self.rotation, self.shear = magnitude(rotation, "rotation", 180), magnitude(shear, "shear", 5)
        self.scale = magnitude(scale, "scale", 0.9)
        self.translate, self.baseline = magnitude(translate, "translate", 28), magnitude(baseline, "baseline", 28)

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        m, s = len(index), self.strength
        angle = np.deg2rad(rng.uniform(-1, 1, m) * self.rotation * s)
        shear = rng.uniform(-1, 1, m) * self.shear * s
        sy, sx = (1 + rng.uniform(-1, 1, (2, m)) * self.scale * s)
        cos, sin = np.cos(angle), np.sin(angle)
        scaling = np.zeros((m, 2, 2))
        scaling[:, 0, 0], scaling[:, 1, 1] = sy, sx
        slant = np.broadcast_to(np.eye(2), (m, 2, 2)).copy()
        slant[:, 1, 0] = shear  # (row, col): the column shifts in proportion to the row
        rotate = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)
        shift = np.stack([rng.uniform(-1, 1, m) * self.baseline * s, rng.uniform(-1, 1, m) * self.translate * s], 1)
        return {"index": index, "forward": rotate @ slant @ scaling, "shift": shift}


class Size(GeometricAugmenter):
    """Uniform size variation between the digits of one sequence.

    Parameters
    ----------
    variation : float
        Maximum relative change of size (the same factor for width and height, below 1).
    """

    def __init__(self, variation=0.15, p=0.5, strength=1.0):
        super().__init__(p, strength)
        self.variation = magnitude(variation, "variation", 0.9)

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        factor = 1 + rng.uniform(-1, 1, len(index)) * self.variation * self.strength
        return {"index": index, "forward": factor[:, None, None] * np.eye(2), "shift": np.zeros((len(index), 2))}


class Elastic(GeometricAugmenter):
    """Elastic distortion (Simard, Steinkraus & Platt, 2003): smoothed random displacement fields.

    Parameters
    ----------
    alpha : float
        Displacement scale in pixels.
    sigma : float
        Smoothness (Gaussian sigma, pixels) of the field; must be positive.
    """

    def __init__(self, alpha=8.0, sigma=3.0, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.alpha, self.sigma = magnitude(alpha, "alpha", 100), magnitude(sigma, "sigma", 28, positive=True)

    sheet_rows = 128  # each call smooths one sheet of noise this high...
    sheet_reuse = 4  # ...and wide enough to hold a quarter of its glyphs' fields side by side

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        # the field of each glyph is a window, at a random place, of one sheet of smoothed noise:
        # one filter pass over the sheet instead of one per glyph
        width = max(self.sheet_rows, F.GLYPH + len(index) * F.GLYPH * F.GLYPH // (self.sheet_rows * self.sheet_reuse))
        noise = rng.random((2, self.sheet_rows, width), dtype=np.float32)  # uniform in [0, 1): 2u - 1 in [-1, 1)
        alpha = self.alpha * self.strength
        sheet = F.smooth_planes(noise, self.sigma, scale=2 * alpha, offset=-alpha)
        rows = rng.integers(0, self.sheet_rows - F.GLYPH + 1, len(index))
        columns = rng.integers(0, width - F.GLYPH + 1, len(index))
        return {"index": index, "field": F.windows(sheet, rows, columns)}


class StrokeWidth(GlyphAugmenter):
    """Thicker or thinner strokes: grey-level dilation or erosion with a 3x3 cross (OpenCV; the same bytes as
    ``scipy.ndimage.grey_dilation``/``grey_erosion``).

    Parameters
    ----------
    growth : float
        Pixels added to each side of a stroke at strength 1; a fraction blends
        the last step in, so the change grows smoothly with ``strength``.
    thin : float
        Share of the changed glyphs that get thinner instead of thicker (by
        half as much: MNIST strokes are only 2-3 pixels wide).
    """

    def __init__(self, growth=1.0, thin=0.4, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.growth, self.thin = magnitude(growth, "growth", 5), magnitude(thin, "thin", 1)

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        return {"index": index, "thinner": rng.random(len(index)) < self.thin}

    def transform(self, glyphs, params):
        index, thinner = params["index"], params["thinner"]
        growth = self.growth * self.strength
        for idx, amount, thin in ((index[~thinner], growth, False), (index[thinner], 0.5 * growth, True)):
            if len(idx) and amount > 0:
                glyphs[idx] = F.stroke_width(glyphs[idx], amount, thinner=thin)
        return glyphs


class WriterStyle(SequenceAugmenter):
    """One hand per sequence: slant, size, stroke width and ink darkness drawn once for each
    sequence and shared by its digits, each digit jittering a little around them.

    Parameters
    ----------
    slant : float
        Maximum slant (horizontal shear, as a tangent) of a sequence.
    size : float
        Maximum relative change of the size of a sequence's digits (below 1).
    stroke : float
        Maximum pixels added to (or, for half the writers, taken from) each side of a stroke.
    ink : float
        Maximum share by which a writer's ink is lighter.
    jitter : float
        Each digit's deviation from its writer's style, as a share of the ranges above.
    p : float
        Chance that a sequence gets a style (all its digits, or none).
    """

    def __init__(self, slant=0.25, size=0.12, stroke=1.0, ink=0.3, jitter=0.2, p=0.5, strength=1.0):
        super().__init__(p, strength)
        self.slant, self.size = magnitude(slant, "slant", 5), magnitude(size, "size", 0.9)
        self.stroke, self.ink = magnitude(stroke, "stroke", 3), magnitude(ink, "ink", 1)
        self.jitter = magnitude(jitter, "jitter", 1)

    def params(self, shape, rng, writers=None):
        writers = np.arange(shape[0]) if writers is None else np.asarray(writers)
        n_writers = int(writers.max()) + 1 if len(writers) else 0
        chosen = np.zeros(n_writers, bool)
        chosen[self.select(n_writers, rng)] = True
        s = self.strength
        style = rng.uniform(-1, 1, (4, n_writers))  # slant, size, stroke, ink: one per writer
        index = np.flatnonzero(chosen[writers])
        own = style[:, writers[index]] + self.jitter * rng.uniform(-1, 1, (4, len(index)))
        slant = own[0] * self.slant * s
        size = 1 + np.clip(own[1], -1, 1) * self.size * s
        forward = np.zeros((len(index), 2, 2))
        forward[:, 0, 0] = size
        forward[:, 1, 1] = size
        forward[:, 1, 0] = slant * size  # (row, col): the column shifts in proportion to the row
        return {"index": index, "forward": forward, "shift": np.zeros((len(index), 2)),
                "stroke": own[2] * self.stroke * s,
                "ink": np.clip(1 - np.abs(own[3]) * self.ink * s, 0, 1)}

    def finish(self, glyphs, params):
        index, stroke, ink = params["index"], params["stroke"], params["ink"]
        for start in range(0, len(index), F.GLYPH_BATCH):  # a part at a time, in the CPU's cache
            part = slice(start, start + F.GLYPH_BATCH)
            glyphs[index[part]] = F.lighten(F.stroke_widths(glyphs[index[part]], stroke[part]), ink[part])
