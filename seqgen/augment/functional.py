"""Plain augmentation functions: parameters in, pixels out, no randomness.

Each augmenter draws its parameters (``params``), then calls one of these. They
work on any array of the stated layout: glyphs ``(n, 28, 28)`` uint8 with ink
high, images ``(n, H, W)`` float32 with 1.0 white paper.  They leave their input
alone; those with ``out=`` write there instead (it may be the input itself: the
augmenters change their images in place, without another copy of them).
"""

from __future__ import annotations

import numbers

import cv2
import numpy as np

GLYPH = 28
#: Cross steps after which dilation or erosion changes a glyph no more: its Manhattan diameter.
SATURATING_STEPS = 2 * (GLYPH - 1)
#: The widest blur: ten times :class:`~seqgen.augment.GaussianBlur`'s largest ``sigma``, its largest ``strength``.
MAX_BLUR_SIGMA = 100
#: Glyphs processed at once by the functions that lay them side by side: their working set
#: stays in the CPU's cache, and their row under OpenCV's 32,767-pixel limit.
GLYPH_BATCH = 512
_WARP_PAD = 8  # blank pixels on each side of a glyph in the row that cv2.remap reads


def warp_glyphs(glyphs: np.ndarray, forward: np.ndarray, shift: np.ndarray, field: np.ndarray | None = None,
                bent: np.ndarray | None = None, *, index: np.ndarray | None = None,
                out: np.ndarray | None = None) -> np.ndarray:
    """Resample ``(m, 28, 28)`` glyphs: output pixel q shows the source at ``A^-1 (q + d(q) - c - t) + c``.

    ``forward`` ``(m, 2, 2)`` and ``shift`` ``(m, 2)`` act about the glyph centre in (row, col);
    ``field`` (the displacements ``d``, ``(k, 2, 28, 28)``) may be None; it belongs to the glyphs
    ``bent`` (sorted positions among the ``m``; default all).  Bilinear, through OpenCV's ``remap``;
    source pixels outside a glyph read zero.  With ``index`` (distinct), only ``glyphs[index]`` are warped
    (``forward`` and ``shift`` follow ``index``); ``out`` (default: a new array) receives them and
    may be ``glyphs`` itself.  Returns ``out``.
    """
    m = len(glyphs) if index is None else len(index)
    if out is None:
        out = np.empty((len(glyphs), GLYPH, GLYPH), np.uint8)
    if field is not None and bent is None:
        bent = np.arange(m)
    centre = (GLYPH - 1) / 2
    inverse = inverse_2x2(forward)
    origin = centre - np.einsum("mij,mj->mi", inverse, shift + centre)  # the source of pixel (0, 0)
    straight = np.ones(m, bool)
    if field is not None:
        straight[bent] = False
    # the glyphs with and without displacements go separately, so that adding them needs no scatter
    groups = [(np.flatnonzero(straight), None), (bent, field)] if field is not None else [(np.arange(m), None)]
    for which, displacement in groups:
        for start in range(0, len(which), GLYPH_BATCH):
            part = which[start : start + GLYPH_BATCH]
            d = None if displacement is None else displacement[start : start + GLYPH_BATCH]
            ids = part if index is None else index[part]
            out[ids] = _remap_row(glyphs[ids], inverse[part], origin[part], d)
    return out


def inverse_2x2(matrices: np.ndarray) -> np.ndarray:
    """The inverses of ``(n, 2, 2)`` matrices, in closed form (``np.linalg.inv`` makes one LAPACK call
    per matrix, ten times slower on thousands of them)."""
    a, b, c, d = (matrices[:, i, j] for i in (0, 1) for j in (0, 1))
    det = a * d - b * c
    return np.stack([d, -b, -c, a], axis=1).reshape(-1, 2, 2) / det[:, None, None]


#: One row of a glyph (28 bytes) as one item: glyphs move between glyph order ``(n, 28, 28)`` and
#: side by side ``(28, n, 28)`` as whole rows, 2.5x faster than byte by byte.
_GLYPH_ROW = np.dtype((np.void, GLYPH))


def _rows(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``pixels`` whose last axis is 28 contiguous bytes, as an array of glyph rows (a view)."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"glyphs: expected uint8 pixels (0-255, ink high), got {pixels.dtype}")
    return pixels.view(_GLYPH_ROW)[..., 0]


def _glyph_order(side_by_side: np.ndarray) -> np.ndarray:
    """``(28, n, 28)`` uint8 glyphs side by side (last axis contiguous) as a new ``(n, 28, 28)`` array."""
    n = side_by_side.shape[1]
    return np.ascontiguousarray(_rows(side_by_side).T).view(np.uint8).reshape(n, GLYPH, GLYPH)


_ROW_AND_ONE = np.stack([np.arange(GLYPH), np.ones(GLYPH)], axis=1).astype(np.float32)  # [r, 1] for each row r


def _remap_row(glyphs: np.ndarray, inverse: np.ndarray, origin: np.ndarray, field: np.ndarray | None) -> np.ndarray:
    """:func:`warp_glyphs` of up to :data:`GLYPH_BATCH` glyphs laid side by side in one row.

    OpenCV's ``remap`` is several times faster on one wide image than on a tall stack
    28 pixels wide.  The coordinate maps are one matrix product: row ``r``, column ``c``
    of glyph ``g`` reads ``[r, 1] @ [inverse[g][:, 0], inverse[g][:, 1] c + origin[g]]``.
    Source rows outside the image read zero; source columns that could reach a
    neighbouring glyph are clipped onto the blank pixels around their own.
    """
    k, pad = len(glyphs), _WARP_PAD
    slot = GLYPH + 2 * pad
    column = np.arange(GLYPH)
    left = pad + slot * np.arange(k)  # where each glyph's column 0 lies in the source row
    maps = np.empty((2, GLYPH, k * GLYPH), np.float32)  # source row, then column, of each output pixel
    for axis, offset in ((0, pad), (1, left)):
        terms = np.empty((2, k, GLYPH), np.float32)
        terms[0] = inverse[:, axis, 0, None]
        terms[1] = inverse[:, axis, 1, None] * column + (origin[:, axis] + offset)[:, None]
        np.matmul(_ROW_AND_ONE, terms.reshape(2, -1), out=maps[axis])
    # the source columns each glyph reaches, from the corners of its map
    lowest = origin[:, 1] + np.minimum(inverse[:, 1], 0).sum(axis=1) * (GLYPH - 1)
    highest = origin[:, 1] + np.maximum(inverse[:, 1], 0).sum(axis=1) * (GLYPH - 1)
    if field is not None:  # the displacements, through the inverse map: one 2x2 product per glyph
        bend = np.matmul(inverse.astype(np.float32), field.reshape(k, 2, GLYPH * GLYPH))
        maps.reshape(2, GLYPH, k, GLYPH)[...] += bend.reshape(k, 2, GLYPH, GLYPH).transpose(1, 2, 0, 3)
        reach = np.abs(bend[:, 1]).max(axis=1)
        lowest, highest = lowest - reach, highest + reach
    near = np.flatnonzero((lowest < 1 - 2 * pad) | (highest > GLYPH - 2 + 2 * pad))
    if len(near):  # only those glyphs: a clip over the whole row costs more than its remap
        # onto the first blank column on either side, which reads zero as any column beyond it would
        columns = maps[1].reshape(GLYPH, k, GLYPH)
        columns[:, near] = np.clip(columns[:, near], (left[near] - 1)[:, None], (left[near] + GLYPH)[:, None])
    source = np.zeros((slot, k, slot), np.uint8)
    _rows(source[pad : pad + GLYPH, :, pad : pad + GLYPH])[...] = _rows(glyphs).T
    warped = cv2.remap(source.reshape(slot, k * slot), maps[1], maps[0], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return _glyph_order(warped.reshape(GLYPH, k, GLYPH))


def smooth_planes(noise: np.ndarray, sigma: float, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """``scale * f + offset`` for each plane ``f`` of ``(c, H, W)`` float32 ``noise`` Gaussian-filtered by
    ``sigma`` pixels (OpenCV), as ``scipy.ndimage.gaussian_filter`` with ``mode="reflect"`` and
    ``truncate=2.5`` filters it (the scale and offset ride along in the same pass)."""
    radius = int(2.5 * sigma + 0.5)
    kernel = cv2.getGaussianKernel(2 * radius + 1, sigma, cv2.CV_32F)
    return np.stack([cv2.sepFilter2D(plane, cv2.CV_32F, kernel * np.float32(scale), kernel, delta=offset,
                                     borderType=cv2.BORDER_REFLECT) for plane in noise])


def windows(planes: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``(n, c, 28, 28)``: the 28x28 window of every plane of ``(c, H, W)`` ``planes`` at each
    top-left corner ``(rows[i], columns[i])``."""
    view = np.lib.stride_tricks.sliding_window_view(planes, (GLYPH, GLYPH), axis=(1, 2))
    return view[np.arange(len(planes)), rows[:, None], columns[:, None]]


def stroke_width(glyphs: np.ndarray, amount: float, thinner: bool = False) -> np.ndarray:
    """Grey-level dilation (or erosion when ``thinner``) of ``(n, 28, 28)`` uint8 glyphs by a 3x3 cross,
    ``amount`` times; a fractional part blends the last step in (to 1/256, rounded half up)."""
    return stroke_widths(glyphs, np.full(len(glyphs), -amount if thinner else amount))


def stroke_widths(glyphs: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """:func:`stroke_width` with one signed amount per glyph (negative: thinner)."""
    # after as many cross steps as a glyph's Manhattan diameter every pixel holds the glyph's extreme:
    # more steps change nothing, and would only widen the row that _morph_row lays out
    amounts = np.clip(amounts, -SATURATING_STEPS, SATURATING_STEPS)
    out = glyphs.copy()
    for sign, which in ((1, np.flatnonzero(amounts > 0)), (-1, np.flatnonzero(amounts < 0))):
        for start in range(0, len(which), GLYPH_BATCH):
            part = which[start : start + GLYPH_BATCH]
            out[part] = _morph_row(glyphs[part], np.abs(amounts[part]), thicker=sign > 0)
    return out


def _morph_row(glyphs: np.ndarray, amount: np.ndarray, thicker: bool) -> np.ndarray:
    """Dilate (or erode) each glyph by its ``amount`` (> 0) of cross steps, the last one blended.

    OpenCV's morphology, on the glyphs laid side by side in one row (several times faster
    than on a tall stack 28 pixels wide), with as many columns of the operation's neutral
    value between them as there are steps, so glyphs never reach each other.  Those
    columns, like the image border, act as ``scipy.ndimage``'s reflecting border does for a
    3x3 element: a pixel's copy of itself never changes a maximum (or minimum).  Every step
    is kept, and each glyph blends the two steps around its amount (to 1/256, rounded half up).
    """
    n, steps = len(glyphs), int(np.ceil(amount.max()))
    operation, neutral = (cv2.dilate, 0) if thicker else (cv2.erode, 255)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    levels = np.empty((steps + 1, GLYPH, n, GLYPH + steps), np.uint8)  # each step writes all of its level
    levels[0, :, :, GLYPH:] = neutral
    _rows(levels[0, :, :, :GLYPH])[...] = _rows(glyphs).T
    for k in range(1, steps + 1):
        operation(levels[k - 1].reshape(GLYPH, -1), cross, dst=levels[k].reshape(GLYPH, -1))
    whole = np.floor(amount).astype(np.intp)
    share = np.rint((amount - whole) * 256).astype(np.uint16)[:, None, None]
    here = _level(levels, whole)  # (n, 28, 28): back in glyph order
    step = _level(levels, np.minimum(whole + 1, steps))
    # here + share * (step - here), rounded half up; a dilation only raises pixels, an erosion lowers
    change = (step - here if thicker else here - step).astype(np.uint16)
    change *= share
    change += 128 if thicker else 127
    change >>= 8
    if thicker:
        here += change.astype(np.uint8)
    else:
        here -= change.astype(np.uint8)
    return here


def _level(levels: np.ndarray, level: np.ndarray) -> np.ndarray:
    """``(n, 28, 28)``: glyph i of ``levels[level[i]]`` (``levels``: ``(steps + 1, 28, n, 28 + steps)``)."""
    n = len(level)
    return _rows(levels[..., :GLYPH])[level, :, np.arange(n)].view(np.uint8).reshape(n, GLYPH, GLYPH)


def lighten(glyphs: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """``(n, 28, 28)`` uint8 glyphs with their ink scaled by ``ink`` ``(n,)`` in [0, 1] (in 8.8 fixed
    point, rounded half up: an ink of 1 changes nothing)."""
    gain = np.rint(ink * 256).astype(np.uint16)[:, None, None]
    scaled = glyphs.astype(np.uint16)  # then same-type products: several times faster than mixed
    scaled *= gain
    scaled += 128
    scaled >>= 8
    return scaled.astype(np.uint8)


def _output(images: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``out`` holding ``images`` (a copy of them when ``out`` is None), for a function that changes part of it."""
    if out is None:
        return images.copy()
    if out is not images:
        np.copyto(out, images)
    return out


def add_noise(images: np.ndarray, noise: np.ndarray, scale: np.ndarray, out: np.ndarray | None = None
              ) -> np.ndarray:
    """``images + noise * scale`` per image (``scale`` ``(n,)``), into ``out`` (default a new array)."""
    return np.add(images, noise * scale[:, None, None], out=out)


def salt_pepper(images: np.ndarray, counts: np.ndarray, positions: np.ndarray, white: np.ndarray,
                out: np.ndarray | None = None) -> np.ndarray:
    """Set ``counts[i]`` pixels of image i (flat ``positions``, in image order) to white or black, in
    ``out`` (default a copy of ``images``)."""
    out = _output(images, out)
    n, h, w = out.shape
    rows = np.repeat(np.arange(n), counts)
    out.reshape(n, h * w)[rows, positions] = np.where(white, 1.0, 0.0)
    return out


def noise_from_bank(bank: np.ndarray, offsets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(n, H, W)`` noise: image i reads ``H * W`` consecutive values of ``bank`` from ``offsets[i]``."""
    size = shape[0] * shape[1]
    windows = np.lib.stride_tricks.sliding_window_view(bank, size)
    return windows[offsets].reshape(len(offsets), *shape)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Blur each image by ``sigma`` pixels (OpenCV, edges repeated as ``scipy.ndimage``'s ``nearest``).

    The images are stacked into one, each padded with copies of its edge rows as far as the
    kernel reaches, so one call blurs them all without mixing neighbours.  ``sigma`` is at
    most :data:`MAX_BLUR_SIGMA`: the padding grows with it.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 <= sigma <= MAX_BLUR_SIGMA:
        raise ValueError(f"sigma: expected a number from 0 to {MAX_BLUR_SIGMA}, got {sigma!r}")
    n, h, w = images.shape
    radius = int(4.0 * sigma + 0.5)  # scipy's reach at its default truncate=4
    kernel = cv2.getGaussianKernel(2 * radius + 1, sigma, cv2.CV_32F)
    padded = images.take(np.clip(np.arange(-radius, h + radius), 0, h - 1), axis=1).reshape(-1, w)
    blurred = cv2.sepFilter2D(padded, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
    return blurred.reshape(n, h + 2 * radius, w)[:, radius : radius + h]


def contrast(images: np.ndarray, darkness: np.ndarray, contrast: np.ndarray, brightness: np.ndarray,
             out: np.ndarray | None = None) -> np.ndarray:
    """Ink lightened to ``darkness``, contrast scaled about mid-grey, brightness shifted: one affine map per
    image, into ``out`` (default a new array)."""
    gain = (darkness * contrast).astype(np.float32)[:, None, None]
    offset = ((1 - darkness) * contrast + 0.5 * (1 - contrast) + brightness).astype(np.float32)[:, None, None]
    out = np.multiply(images, gain, out=out)
    out += offset
    return out


def smooth_profile(values: np.ndarray, length: int) -> np.ndarray:
    """``(n, length)`` curves, linear between the ``(n, knots)`` ``values``."""
    knots = values.shape[1]
    position = np.linspace(0, knots - 1, length, dtype=np.float32)
    left = np.minimum(position.astype(np.intp), knots - 2)
    frac = position - left.astype(np.float32)  # float32 throughout: the texture is as large as the images
    return values[:, left] * (1 - frac) + values[:, left + 1] * frac


def darken(images: np.ndarray, texture: np.ndarray, amplitude: np.ndarray, out: np.ndarray | None = None
           ) -> np.ndarray:
    """Paper darkened by ``amplitude`` ``(n,)`` times a texture in [0, 1] (``(n, H, W)`` or broadcastable),
    into ``out`` (default a new array)."""
    factor = texture * -amplitude[:, None, None]
    factor += 1
    return np.multiply(images, factor, out=out)


def scan(images: np.ndarray, banding: np.ndarray, streaks: np.ndarray | None, levels: int,
         out: np.ndarray | None = None) -> np.ndarray:
    """Row banding ``(n, H, 1)`` and column streaks ``(n, W)`` as factors, then ``levels`` grey levels,
    into ``out`` (default a new array)."""
    out = np.multiply(images, banding, out=out)
    if streaks is not None:
        out *= streaks[:, None, :]
    out *= levels - 1
    np.round(out, out=out)
    out /= levels - 1
    return out


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


def print_under(images: np.ndarray, line: np.ndarray, value: np.ndarray, out: np.ndarray | None = None
                ) -> np.ndarray:
    """Images with a printed ``line`` mask ``(n, H, W)`` of grey ``value`` ``(n,)`` under the ink, in ``out``
    (default a copy of ``images``)."""
    out = _output(images, out)
    return np.minimum(out, value[:, None, None], out=out, where=line)


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """``(n, H, W)`` float images through JPEG at ``quality`` (OpenCV), as float32 again (values outside
    [0, 1] saturate on the way into 8 bits).

    The images are stacked into one tall image, each padded to whole 8x8 blocks with
    copies of its last row (what the encoder does to a lone image), so one encoder call
    serves them all and no block spans two images.
    """
    from ..io import to_uint8

    if isinstance(quality, bool) or not isinstance(quality, numbers.Integral) or not 0 <= quality <= 100:
        raise ValueError(f"quality: expected an int from 0 to 100, got {quality!r}")
    n, h, w = images.shape
    tall = -(-h // 8) * 8
    out = np.empty(images.shape, np.float32)
    per_call = 65000 // tall  # JPEG images are at most 65,535 rows high
    for start in range(0, n, per_call):
        part = to_uint8(images[start : start + per_call])
        padded = part.take(np.minimum(np.arange(tall), h - 1), axis=1).reshape(-1, w)
        ok, data = cv2.imencode(".jpg", padded, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE).reshape(len(part), tall, w)[:, :h]
        out[start : start + per_call] = decoded * np.float32(1 / 255)
    return out
