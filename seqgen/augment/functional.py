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


_WARP_BATCH = 512  # glyphs per cv2.remap call: the coordinate maps stay in cache


def warp_glyphs(glyphs: np.ndarray, forward: np.ndarray, shift: np.ndarray, field: np.ndarray | None = None,
                bent: np.ndarray | None = None) -> np.ndarray:
    """Resample ``(m, 28, 28)`` glyphs: output pixel q shows the source at ``A^-1 (q + d(q) - c - t) + c``.

    ``forward`` ``(m, 2, 2)`` and ``shift`` ``(m, 2)`` act about the glyph centre in (row, col);
    ``field`` (the displacements ``d``, ``(k, 2, 28, 28)``) may be None; it belongs to the glyphs
    ``bent`` (sorted indices; default all ``m``).  Bilinear, through
    OpenCV's ``remap`` on the glyphs stacked into one tall image with a blank border around each:
    coordinates that leave a glyph are clamped onto its border, so they read zero.
    """
    import cv2

    m = len(glyphs)
    if field is not None and bent is None:
        bent = np.arange(m)
    centre = (GLYPH - 1) / 2
    inverse = np.linalg.inv(forward)
    # source (in the bordered glyph) = inverse @ (q - c - t) + c + 1: linear in the pixel's row and column
    constant = ((centre + 1) - np.einsum("mij,mj->mi", inverse, shift + centre)).astype(np.float32)
    inverse = inverse.astype(np.float32)
    grid = np.arange(GLYPH, dtype=np.float32)
    out = np.empty((m, GLYPH, GLYPH), np.uint8)
    for start in range(0, m, _WARP_BATCH):
        part = slice(start, min(start + _WARP_BATCH, m))
        k = part.stop - part.start
        inv, const = inverse[part], constant[part]
        coords = np.empty((2, k, GLYPH, GLYPH), np.float32)  # (row, col) in the bordered glyph
        for axis in (0, 1):
            by_row = inv[:, axis, 0, None, None] * grid[:, None] + const[:, axis, None, None]
            np.add(by_row, inv[:, axis, 1, None, None] * grid, out=coords[axis])
        if field is not None:  # the displacements, through the inverse map
            lo, hi = np.searchsorted(bent, [part.start, part.stop])
            here, d = bent[lo:hi] - part.start, field[lo:hi]
            for axis in (0, 1):
                coords[axis, here] += inv[here, axis, 0, None, None] * d[:, 0] + inv[here, axis, 1, None, None] * d[:, 1]
        np.clip(coords, 0, GLYPH + 1, out=coords)
        coords[0] += (np.arange(k, dtype=np.float32) * (GLYPH + 2))[:, None, None]
        padded = np.zeros((k, GLYPH + 2, GLYPH + 2), np.uint8)
        padded[:, 1:-1, 1:-1] = glyphs[part]
        warped = cv2.remap(padded.reshape(-1, GLYPH + 2), coords[1].reshape(-1, GLYPH), coords[0].reshape(-1, GLYPH),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out[part] = warped.reshape(k, GLYPH, GLYPH)
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
    ``amount`` times; a fractional part blends the last step in (to 1/256, rounded half up)."""
    return stroke_widths(glyphs, np.full(len(glyphs), -amount if thinner else amount))


def stroke_widths(glyphs: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """:func:`stroke_width` with one signed amount per glyph (negative: thinner).

    OpenCV's morphology on the glyphs stacked into one image, each padded with copies of its edge
    rows (what ``scipy.ndimage``'s reflecting border gives a 3x3 element), so glyphs never touch;
    every step is kept, and each glyph blends the two steps around its amount.
    """
    import cv2

    out = glyphs.copy()
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    for op, which in ((cv2.dilate, np.flatnonzero(amounts > 0)), (cv2.erode, np.flatnonzero(amounts < 0))):
        if not len(which):
            continue
        amount = np.abs(amounts[which])
        steps = int(np.ceil(amount.max()))
        n = len(which)
        current = np.pad(glyphs[which], ((0, 0), (steps, steps), (0, 0)), mode="edge").reshape(-1, GLYPH)
        levels = np.empty((steps + 1, n, GLYPH, GLYPH), np.uint8)
        levels[0] = glyphs[which]
        for k in range(1, steps + 1):
            current = op(current, cross, borderType=cv2.BORDER_REPLICATE)
            levels[k] = current.reshape(n, -1, GLYPH)[:, steps : steps + GLYPH]
        whole = np.floor(amount).astype(np.intp)
        share = np.rint((amount - whole) * 256).astype(np.uint16)[:, None, None]
        rows = np.arange(n)
        here, step = levels[whole, rows], levels[np.minimum(whole + 1, steps), rows]
        # here + share * (step - here), rounded half up; a dilation only raises pixels, an erosion lowers
        if op is cv2.dilate:
            change = (step - here).astype(np.uint16)
            change *= share
            change += 128
            here += (change >> 8).astype(np.uint8)
        else:
            change = (here - step).astype(np.uint16)
            change *= share
            change += 127
            here -= (change >> 8).astype(np.uint8)
        out[which] = here
    return out


def add_noise(images: np.ndarray, noise: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``images + noise * scale`` per image (``scale`` ``(n,)``)."""
    return images + noise * scale[:, None, None]


def salt_pepper(images: np.ndarray, counts: np.ndarray, positions: np.ndarray, white: np.ndarray) -> np.ndarray:
    """Set ``counts[i]`` pixels of image i (flat ``positions``, in image order) to white or black."""
    images = images.copy()
    n, h, w = images.shape
    rows = np.repeat(np.arange(n), counts)
    images.reshape(n, h * w)[rows, positions] = np.where(white, 1.0, 0.0)
    return images


def noise_from_bank(bank: np.ndarray, offsets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(n, H, W)`` noise: image i reads ``H * W`` consecutive values of ``bank`` from ``offsets[i]``."""
    size = shape[0] * shape[1]
    windows = np.lib.stride_tricks.sliding_window_view(bank, size)
    return windows[offsets].reshape(len(offsets), *shape)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Blur each image by ``sigma`` pixels (OpenCV, edges repeated as ``scipy.ndimage``'s ``nearest``).

    The images are stacked into one, each padded with copies of its edge rows as far as the
    kernel reaches, so one call blurs them all without mixing neighbours.
    """
    import cv2

    n, h, w = images.shape
    radius = int(4.0 * sigma + 0.5)  # scipy's reach at its default truncate=4
    kernel = cv2.getGaussianKernel(2 * radius + 1, sigma, cv2.CV_32F)
    padded = np.pad(images, ((0, 0), (radius, radius), (0, 0)), mode="edge").reshape(-1, w)
    blurred = cv2.sepFilter2D(padded, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
    return blurred.reshape(n, h + 2 * radius, w)[:, radius : radius + h]


def contrast(images: np.ndarray, darkness: np.ndarray, contrast: np.ndarray, brightness: np.ndarray) -> np.ndarray:
    """Ink lightened to ``darkness``, contrast scaled about mid-grey, brightness shifted: one affine map per image."""
    gain = (darkness * contrast).astype(np.float32)[:, None, None]
    offset = ((1 - darkness) * contrast + 0.5 * (1 - contrast) + brightness).astype(np.float32)[:, None, None]
    out = images * gain
    out += offset
    return out


def smooth_profile(values: np.ndarray, length: int) -> np.ndarray:
    """``(n, length)`` curves, linear between the ``(n, knots)`` ``values``."""
    knots = values.shape[1]
    position = np.linspace(0, knots - 1, length, dtype=np.float32)
    left = np.minimum(position.astype(np.intp), knots - 2)
    frac = position - left
    return values[:, left] * (1 - frac) + values[:, left + 1] * frac


def darken(images: np.ndarray, texture: np.ndarray, amplitude: np.ndarray) -> np.ndarray:
    """Paper darkened by ``amplitude`` ``(n,)`` times a texture in [0, 1] (``(n, H, W)`` or broadcastable)."""
    factor = texture * -amplitude[:, None, None]
    factor += 1
    return images * factor


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
    ramp = np.linspace(0, 1, w, dtype=np.float32)
    # a ramp is a texture whose row profile is 1 and whose column profile is the ramp
    rows = np.where(use_ramp[:, None], np.float32(1), smooth_profile(row_values, h))
    cols = np.where(use_ramp[:, None], np.where(flip[:, None], ramp, ramp[::-1]), smooth_profile(col_values, w))
    return rows[:, :, None] * cols[:, None, :]


def streak_profile(columns: np.ndarray, depth: np.ndarray, width: int) -> np.ndarray:
    """``(n, W)`` factors: 1, lowered by ``depth`` at each streak's column (the deepest wins)."""
    streak = np.ones((len(columns), width), np.float32)
    np.minimum.at(streak, (np.arange(len(columns))[:, None], columns), 1 - depth)
    return streak


def comb_ticks(boxes: np.ndarray, width: int) -> np.ndarray:
    """``(n, W)`` columns of a comb's ticks: halfway between neighbouring digit boxes ``(n, L, 4)``
    (``-1`` where there is no digit), and just outside the first and last."""
    n = len(boxes)
    valid = boxes[:, :, 0] >= 0
    x0 = np.where(valid, boxes[:, :, 0], width)
    x1 = np.where(valid, boxes[:, :, 2], -1)
    between = (x1[:, :-1] + x0[:, 1:]) // 2
    ok = valid[:, :-1] & valid[:, 1:]
    ends = np.stack([x0.min(axis=1) - 2, x1.max(axis=1) + 1], axis=1)
    ticks = np.zeros((n, width), bool)
    rows, cols = np.nonzero(ok)
    ticks[rows, np.clip(between[rows, cols], 0, width - 1)] = True
    inside = (ends >= 0) & (ends < width)
    rows, cols = np.nonzero(inside)
    ticks[rows, ends[rows, cols]] = True
    return ticks


def print_under(images: np.ndarray, line: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Images with a printed ``line`` mask ``(n, H, W)`` of grey ``value`` ``(n,)`` under the ink."""
    return np.where(line, np.minimum(images, value[:, None, None]), images)


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """``(n, H, W)`` float images through JPEG at ``quality`` (OpenCV), as float32 again.

    The images are stacked into one tall image, each padded to whole 8x8 blocks with
    copies of its last row (what the encoder does to a lone image), so one encoder call
    serves them all and no block spans two images.
    """
    import cv2

    from ..io import to_uint8

    n, h, w = images.shape
    tall = -(-h // 8) * 8
    out = np.empty(images.shape, np.float32)
    per_call = 65000 // tall  # JPEG images are at most 65,535 rows high
    for start in range(0, n, per_call):
        part = to_uint8(images[start : start + per_call])
        padded = np.pad(part, ((0, 0), (0, tall - h), (0, 0)), mode="edge").reshape(-1, w)
        ok, data = cv2.imencode(".jpg", padded, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE).reshape(len(part), tall, w)[:, :h]
        out[start : start + per_call] = decoded * np.float32(1 / 255)
    return out
