"""Plain augmentation functions: parameters in, pixels out, no randomness.

Each augmenter draws its parameters (``params``), then calls one of these. They
work on any array of the stated layout: glyphs ``(n, 28, 28)`` uint8 with ink
high, images ``(n, H, W)`` float32 with 1.0 white paper.
"""

from __future__ import annotations

import functools

import numpy as np

from ..digits import ink_bounds

GLYPH = 28
_CROSS = np.zeros((1, 3, 3), bool)
_CROSS[0, 1, :] = _CROSS[0, :, 1] = True


def warp_glyphs(glyphs: np.ndarray, forward: np.ndarray, shift: np.ndarray, field: np.ndarray | None = None) -> np.ndarray:
    """Resample ``(m, 28, 28)`` glyphs: output pixel q shows the source at ``A^-1 (q + d(q) - c - t) + c``.

    ``forward`` ``(m, 2, 2)`` and ``shift`` ``(m, 2)`` act about the glyph centre in (row, col);
    ``field`` (the displacements ``d``, ``(m, 2, 28, 28)``) may be None.  One bilinear
    ``scipy.ndimage.map_coordinates`` call for the whole stack: the glyphs are laid out as one
    tall image with a blank border around each, and coordinates that leave a glyph are clamped
    onto that border.
    """
    from scipy.ndimage import map_coordinates

    m = len(glyphs)
    centre = (GLYPH - 1) / 2
    inverse = np.linalg.inv(forward)
    # source (in the bordered glyph) = inverse @ (q - c - t) + c + 1: linear in the pixel's row and column
    constant = (centre + 1) - np.einsum("mij,mj->mi", inverse, shift + centre)
    inverse, constant = inverse.astype(np.float32), constant.astype(np.float32)
    grid = np.arange(GLYPH, dtype=np.float32)
    coords = np.empty((2, m, GLYPH, GLYPH), np.float32)  # (row, col) in the stacked, bordered glyphs
    for axis in (0, 1):
        by_row = inverse[:, axis, 0, None, None] * grid[:, None] + constant[:, axis, None, None]
        np.add(by_row, inverse[:, axis, 1, None, None] * grid, out=coords[axis])
    if field is not None:
        bent = np.flatnonzero(field.any(axis=(1, 2, 3)))
        coords[:, bent] += np.einsum("mij,mjyx->imyx", inverse[bent], field[bent])
    np.clip(coords, 0, GLYPH + 1, out=coords)
    # Only pixels that sample next to the source ink can be nonzero: [first, last + 1) in bordered
    # coordinates, per axis (bilinear reads floor(c) and floor(c) + 1).  The rest stay 0.
    rows, cols = ink_bounds(glyphs.max(axis=2))[:, :, None, None], ink_bounds(glyphs.max(axis=1))[:, :, None, None]
    inked = (coords[0] >= rows[:, 0]) & (coords[0] < rows[:, 1] + 1) & (coords[1] >= cols[:, 0]) & (coords[1] < cols[:, 1] + 1)
    coords[0] += (np.arange(m, dtype=np.float32) * (GLYPH + 2))[:, None, None]
    padded = np.zeros((m, GLYPH + 2, GLYPH + 2), np.uint8)
    padded[:, 1:-1, 1:-1] = glyphs
    out = np.zeros((m, GLYPH, GLYPH), np.uint8)
    sampled = map_coordinates(padded.reshape(-1, GLYPH + 2), coords[:, inked], order=1, output=np.float32, prefilter=False)
    out[inked] = np.rint(sampled)
    return out


@functools.lru_cache(maxsize=16)
def smoothing_matrix(sigma: float) -> np.ndarray:
    """``(28, 28)`` float32 matrix of ``scipy.ndimage.gaussian_filter1d`` (zero outside, truncated
    at 2.5 sigma) on a 28-pixel line: ``K @ x`` filters ``x``."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.eye(GLYPH), sigma, axis=0, mode="constant", truncate=2.5).astype(np.float32)


def smooth_field(noise: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-filter ``(m, 2, 28, 28)`` noise along rows then columns (two matrix products)."""
    smooth = smoothing_matrix(float(sigma))
    return smooth @ (noise.reshape(-1, GLYPH) @ smooth.T).reshape(noise.shape)


def stroke_width(glyphs: np.ndarray, amount: float, thinner: bool = False) -> np.ndarray:
    """Grey-level dilation (or erosion when ``thinner``) of ``(n, 28, 28)`` uint8 glyphs by a 3x3 cross,
    ``amount`` times; a fractional part blends the last step in."""
    from scipy.ndimage import grey_dilation, grey_erosion

    op = grey_erosion if thinner else grey_dilation
    for _ in range(int(amount)):
        glyphs = op(glyphs, footprint=_CROSS)
    fraction = amount - int(amount)
    if fraction > 0:
        glyphs = np.rint(glyphs + fraction * (op(glyphs, footprint=_CROSS).astype(np.float32) - glyphs)).astype(np.uint8)
    return glyphs


def add_noise(images: np.ndarray, noise: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``images + noise * scale`` per image (``scale`` ``(n,)``)."""
    return images + noise * scale[:, None, None]


def salt_pepper(images: np.ndarray, uniform: np.ndarray, amount: float) -> np.ndarray:
    """Pixels whose ``uniform`` draw is below ``amount / 2`` turn black, those below ``amount`` white."""
    amount = np.float32(amount)
    images = images.copy()
    images[uniform < amount / 2] = 0.0
    images[(uniform >= amount / 2) & (uniform < amount)] = 1.0
    return images


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Blur each image by ``sigma`` pixels (scipy.ndimage, edges repeated)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(images, sigma=(0, sigma, sigma), mode="nearest")


def contrast(images: np.ndarray, darkness: np.ndarray, contrast: np.ndarray, brightness: np.ndarray) -> np.ndarray:
    """Ink lightened to ``darkness``, contrast scaled about mid-grey, brightness shifted: one affine map per image."""
    gain = (darkness * contrast).astype(np.float32)[:, None, None]
    offset = ((1 - darkness) * contrast + 0.5 * (1 - contrast) + brightness).astype(np.float32)[:, None, None]
    return images * gain + offset


def smooth_profile(values: np.ndarray, length: int) -> np.ndarray:
    """``(n, length)`` curves, linear between the ``(n, knots)`` ``values``."""
    knots = values.shape[1]
    position = np.linspace(0, knots - 1, length, dtype=np.float32)
    left = np.minimum(position.astype(np.intp), knots - 2)
    frac = position - left
    return values[:, left] * (1 - frac) + values[:, left + 1] * frac


def darken(images: np.ndarray, texture: np.ndarray, amplitude: np.ndarray) -> np.ndarray:
    """Paper darkened by ``amplitude`` ``(n,)`` times a ``(n, H, W)`` texture in [0, 1]."""
    return images * (1 - amplitude[:, None, None] * texture)


def scan(images: np.ndarray, banding: np.ndarray, streaks: np.ndarray | None, levels: int) -> np.ndarray:
    """Row banding ``(n, H, 1)`` and column streaks ``(n, W)`` as factors, then ``levels`` grey levels."""
    images = images * banding
    if streaks is not None:
        images *= streaks[:, None, :]
    return np.round(images * (levels - 1)) / (levels - 1)


def paper_texture(row_values: np.ndarray, col_values: np.ndarray, flip: np.ndarray, use_ramp: np.ndarray,
                  shape: tuple[int, int]) -> np.ndarray:
    """``(n, H, W)`` darkening in [0, 1]: the product of two smooth profiles through random knots, or,
    where ``use_ramp``, a left-to-right lighting ramp (right-to-left where not ``flip``)."""
    h, w = shape
    texture = smooth_profile(row_values, h)[:, :, None] * smooth_profile(col_values, w)[:, None, :]
    ramp = np.linspace(0, 1, w, dtype=np.float32)
    ramp = np.where(flip[:, None], ramp, ramp[::-1])[:, None, :]
    return np.where(use_ramp[:, None, None], ramp, texture)


def streak_profile(columns: np.ndarray, depth: np.ndarray, width: int) -> np.ndarray:
    """``(n, W)`` factors: 1, lowered by ``depth`` at each streak's column (the deepest wins)."""
    streak = np.ones((len(columns), width), np.float32)
    np.minimum.at(streak, (np.arange(len(columns))[:, None], columns), 1 - depth)
    return streak
