"""Layout and rendering of digit-sequence batches.

One call renders a whole batch in array operations:

1. sample one glyph per digit from the :class:`~seqgen.data.DigitSet`;
2. (optionally) augment the glyphs;
3. lay them out on a *strip*: each glyph trimmed to its ink columns, neighbours
   separated by an integer ink-to-ink gap drawn uniformly from ``[lo, hi]``;
4. fit the strip to the output width (see :func:`render_batch`): a strip that
   fits is copied at native scale, one that does not is resampled with a
   separable tent filter (antialiased when shrinking);
5. convert to float32 once, at the end, then (optionally) augment the images.

The glyphs are handled as 28-pixel *columns*: the strip is a table of column
ids, so placing glyphs is a gather, never a loop over pixels or images.
Overlapping neighbours (negative gaps) go to separate layers that combine so
that overlapping ink keeps the darker of the two.  The composed strips stay
``uint8`` (ink high) until they are scaled or, at native scale, converted to
the output.  Resampling is a sparse matrix product over the batch's strip
columns with integer weights (exact sums), then one small matrix per image
for the rows.  Images are drawn in blocks of :data:`BLOCK`, so that each
block's working set stays in the CPU's cache.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .data import DigitSet, ink_bounds, read_only
from .parallel import in_parts

HEIGHT = 28
#: Fewest images a thread draws (see :func:`render_batch`'s ``threads``).
MIN_PART = 64
#: Images drawn at once: a block's working set (about 1.4 MB at width 200) stays in
#: a core's 2 MB cache.  Blocks of 32 were as fast on a quiet machine but up to
#: 2x slower when neighbours loaded the shared cache; blocks of 8 cost more in
#: per-block overhead on large batches.
BLOCK = 16
_ONE = 256  # fixed-point unit of the resampling weights
_STEPS = 64  # vertical scales per octave
_FAR = np.iinfo(np.intp).max // 4  # beyond any strip position
_BANK_STEP = 64  # strip widths are tabulated in ranges rounded to this


@dataclass
class Batch:
    """A rendered batch.

    Attributes
    ----------
    images : ndarray, shape (B, 28, W), float32
        1.0 background, 0.0 full ink.
    boxes : ndarray, shape (B, L, 4), int16
        Each digit's ink box ``(x0, y0, x1, y1)`` in output pixels, ends
        exclusive; rows of ``-1`` pad sequences shorter than ``L``.
    """

    images: np.ndarray
    boxes: np.ndarray


def render_batch(
    codes: np.ndarray,
    source: DigitSet,
    image_width: int,
    spacing_range: tuple[int, int],
    *,
    fit: str,
    align: str,
    rng: np.random.Generator,
    augment=None,
    out: np.ndarray | None = None,
    threads: int = 1,
) -> Batch:
    """Render a batch of digit sequences (arguments already validated).

    Parameters
    ----------
    codes : ndarray, shape (B, L), int8
        Digits 0..9, each row left-aligned and padded with -1.
    source : DigitSet
        Where glyphs are drawn from.
    image_width : int
        Output width W.
    spacing_range : (int, int)
        Inclusive range of the ink-to-ink gap in native pixels.
    fit : {"shrink", "stretch", "error"}
        ``shrink``: native scale when the strip fits (the free columns become
        margins placed by ``align``), otherwise scaled down uniformly to the
        width and centred vertically.  ``stretch``: the strip is resized
        horizontally to exactly W (height kept).  ``error``: a strip wider
        than W raises ``ValueError``.
    align : {"center", "left", "right", "random"}
        Where a strip narrower than W goes (``shrink`` and ``error``).
    rng : numpy.random.Generator
        Source of every random choice.
    augment : Pipeline, optional
        Glyph- and image-level augmentation.
    out : ndarray, shape (B, 28, W), float32, optional
        Where to write the images (saves a copy when filling a larger array).
    threads : int
        Threads drawing the images once the layout is drawn (parts of at
        least :data:`MIN_PART` images); the result does not depend on it.
    """
    valid = codes >= 0
    n_seq, length = codes.shape
    digits = codes[valid].astype(np.intp)

    # 1. sample glyphs
    counts = source.class_counts
    if not counts[digits].all():
        missing = sorted(set(digits[counts[digits] == 0].tolist()))
        raise ValueError(f"source: {source!r} has no glyph for digit(s) {missing}")
    offsets = (rng.random(len(digits)) * counts[digits]).astype(np.intp)
    picks = source.class_order[source.class_starts[digits] + offsets]

    # 2. glyph augmentation, from a child generator: the layout draws stay those of no augmentation.
    #    Glyphs are read column by column: glyph g's column c is row ``g * 28 + c`` of `columns`,
    #    and glyph `blank` is empty.  Without augmentation that is the DigitSet's own table.
    if augment is not None:
        augment_rng = rng.spawn(1)[0]
        glyphs = augment.augment_glyphs(source.images[picks], augment_rng)
        col_extent, row_extent = ink_bounds(glyphs.max(axis=1)), ink_bounds(glyphs.max(axis=2))
        columns = np.zeros((len(picks) + 1, HEIGHT, HEIGHT), np.uint8)
        columns[:-1] = glyphs.transpose(0, 2, 1)
        columns = columns.reshape(-1, HEIGHT)
        glyph_ids, blank = np.arange(len(picks)), len(picks)
    else:
        col_extent, row_extent = source.ink_extents[picks], source.ink_rows[picks]
        columns = source.glyph_columns.reshape(-1, HEIGHT)
        glyph_ids, blank = picks, len(source)

    # 3. layout on the strip
    width = _where_valid(col_extent[:, 1] - col_extent[:, 0], valid)
    lo, hi = spacing_range
    gaps = rng.integers(lo, hi + 1, size=(n_seq, max(length - 1, 0)))
    advance = np.where(valid[:, 1:], width[:, :-1] + gaps, 0)
    x = np.zeros((n_seq, length), np.intp)
    np.cumsum(advance, axis=1, out=x[:, 1:])
    left = np.where(valid, x, _FAR).min(axis=1)
    right = np.where(valid, x + width, -_FAR).max(axis=1)
    x -= left[:, None]
    strip = np.maximum(right - left, 1)

    # 4. fit to the width
    scale_x = np.ones(n_seq)
    scale_y = np.ones(n_seq)
    too_wide = strip > image_width
    if fit == "error" and too_wide.any():
        raise ValueError(
            f"image_width: a composed strip is {int(strip.max())} px wide, more than "
            f"image_width={image_width}; use fit='shrink' or 'stretch', a larger width or "
            "a smaller spacing_range"
        )
    if fit == "shrink":
        scale_x[too_wide] = image_width / strip[too_wide]
        scale_y[too_wide] = _quantise(scale_x[too_wide])
    elif fit == "stretch":
        scale_x = image_width / strip
    offset = _align_offsets(image_width - strip, align, rng)
    native = scale_x == 1.0

    # 5. render: a column-id table per layer, gathered into the output columns
    first_column = _where_valid(glyph_ids * HEIGHT + col_extent[:, 0], valid)
    tables = _column_tables(x, width, valid, first_column, int(strip.max()), blank * HEIGHT,
                            overlapping=lo < 0)
    images = np.empty((n_seq, HEIGHT, image_width), np.float32) if out is None else out
    scaled = not native.all()  # then strips that fit go through the resampler too, with one-to-one taps

    def draw(part: slice) -> None:
        part_tables = [table[part] for table in tables]
        if scaled:
            _render_scaled(part_tables, columns, strip[part], scale_x[part], scale_y[part], offset[part],
                           image_width, images[part])
        else:
            _render_native(part_tables, columns, strip[part], offset[part], image_width, images[part])

    in_parts(draw, n_seq, threads, MIN_PART)
    if augment is not None:
        augment.augment_images(images, augment_rng)

    # 6. boxes follow the same mapping
    rows = _where_valid(row_extent, valid)
    boxes = _boxes(x, width, valid, rows, strip, scale_x, scale_y, offset, image_width)
    return Batch(images, boxes)


def _quantise(scale: np.ndarray) -> np.ndarray:
    """Vertical scales rounded to :data:`_STEPS` steps per octave (within 0.6%), so that the
    row matrices can be computed once and shared."""
    return np.minimum(1.0, 2.0 ** (np.rint(np.log2(scale) * _STEPS) / _STEPS))


def _where_valid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Spread per-glyph ``values`` onto the ``(B, L)`` grid of valid positions (0 elsewhere)."""
    if len(values) == valid.size:  # every position holds a digit (a fixed length)
        return values.astype(np.intp, copy=False).reshape(valid.shape + values.shape[1:])
    grid = np.zeros(valid.shape + values.shape[1:], np.intp)
    grid[valid] = values
    return grid


def _align_offsets(free: np.ndarray, align: str, rng: np.random.Generator) -> np.ndarray:
    """Left margin of each strip in the output (0 where it does not fit)."""
    free = np.maximum(free, 0)
    if align == "random":
        return rng.integers(0, free + 1)
    return {"left": np.zeros_like(free), "right": free, "center": free // 2}[align]


def _layers(x: np.ndarray, width: np.ndarray, valid: np.ndarray) -> int:
    """Smallest K such that positions p and p + jK never overlap (K = 1 when nothing overlaps)."""
    length = x.shape[1]
    end = x + width
    for k in range(1, length + 1):
        clash = False
        for d in range(k, length, k):
            both = valid[:, d:] & valid[:, :-d]
            overlap = (x[:, d:] < end[:, :-d]) & (x[:, :-d] < end[:, d:])
            if (both & overlap).any():
                clash = True
                break
        if not clash:
            return k
    return length


def _column_tables(x, width, valid, first_column, strip_max, blank, overlapping) -> list[np.ndarray]:
    """Per layer, a ``(B, strip_max + 1)`` int32 table of column ids (``blank`` where no ink).

    Without negative gaps (``overlapping`` False) no two glyphs share a column: one layer.
    """
    n_seq, length = x.shape
    k_layers = _layers(x, width, valid) if overlapping else 1
    stride = strip_max + 1
    start = x + (np.arange(n_seq) * stride)[:, None]  # each glyph's first column in the flat table
    tables = []
    for k in range(k_layers):
        sel = valid & (width > 0)
        if k_layers > 1:  # layer k holds positions k, k + K, k + 2K, ...
            sel &= np.arange(length) % k_layers == k
        w = width[sel]
        # flat positions of every ink column, and the column id each holds (id - position is constant per glyph)
        where = np.repeat(start[sel] - (np.cumsum(w) - w), w) + np.arange(w.sum())
        table = np.full(n_seq * stride, blank, np.int32)
        table[where] = where + np.repeat(first_column[sel] - start[sel], w)
        tables.append(table.reshape(n_seq, stride))
    return tables


def _render_native(tables, columns, strip, offset, image_width, out) -> None:
    """Strips that keep their native scale (one glyph column per output column), drawn into ``out``."""
    strip_col = np.arange(image_width)[None, :] - offset[:, None]
    outside = (strip_col < 0) | (strip_col >= strip[:, None])
    strip_col = np.where(outside, tables[0].shape[1] - 1, strip_col)  # the last column is blank
    for b in _blocks(len(strip)):
        ink = _darkest(columns, [np.take_along_axis(table[b], strip_col[b], axis=1) for table in tables])
        # uint8 ink (high = dark) -> float32 image, exactly (255 - ink) / 255
        ink = np.ascontiguousarray(ink.transpose(0, 2, 1))
        np.divide(np.subtract(255, ink, out=ink), np.float32(255), dtype=np.float32, out=out[b])


def _darkest(columns: np.ndarray, layer_ids: list[np.ndarray]) -> np.ndarray:
    """The ``uint8`` ink columns ``columns[ids]`` of each layer, combined: overlapping ink keeps the darker."""
    ink = columns.take(layer_ids[0], axis=0)
    for ids in layer_ids[1:]:
        np.maximum(ink, columns.take(ids, axis=0), out=ink)
    return ink


def _blocks(n: int) -> list[slice]:
    """``range(n)`` in slices of at most :data:`BLOCK`."""
    return [slice(start, min(start + BLOCK, n)) for start in range(0, n, BLOCK)]


def _taps(out_len: int, in_len, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tent-filter taps mapping ``in_len`` source pixels onto ``out_len`` output pixels.

    Centres map onto centres.  The filter's radius is ``max(1, 1/scale)``
    source pixels, so shrinking averages (antialiases) and enlarging
    interpolates linearly.  Returns each output pixel's first source index
    ``(B, out_len)`` (tap ``t`` reads ``first + t``; taps outside
    ``[0, in_len)`` read background) and integer weights ``(B, out_len, T)``
    summing exactly to :data:`_ONE`, as float32.
    """
    radius = np.maximum(1.0, 1.0 / scale)[:, None, None]
    centre = ((np.arange(out_len) + 0.5 - out_len / 2)[None, :] / scale[:, None]
              + np.asarray(in_len)[..., None] / 2 - 0.5)[:, :, None]
    first = np.floor(centre - radius) + 1
    offsets = first - centre + np.arange(int(np.ceil(2 * radius.max())))
    w = np.maximum(1.0 - np.abs(offsets) / radius, 0.0)
    cumulative = np.rint(np.cumsum(w, axis=2) * (_ONE / w.sum(axis=2, keepdims=True)))
    return first[:, :, 0].astype(np.intp), np.diff(cumulative, axis=2, prepend=0).astype(np.float32)


def _render_scaled(tables, columns, strip, scale_x, scale_y, offset, image_width, out) -> None:
    """Strips resampled to exactly ``image_width`` columns (and, where ``scale_y`` < 1, fewer rows).

    The strips are first composed at native scale, as ``uint8`` ink columns
    (overlapping glyphs keep the darker ink), into one small float32 table
    per block.  Horizontally, each output column is then a weighted sum of a few
    strip columns (tent taps): one sparse matrix product over that table.
    Vertically, one small matrix per image (its quantised scale) maps those
    28 values onto the 28 output rows, and the product's transposed operand
    puts the rows in image order.  Weights are integers summing to 256 in
    each direction, so every sum is an exact integer in float32; the image is
    ``(C - ink) / C`` with ``C = 255 * 256 * 256``, exactly 1.0 on the
    background.  Strips at scale 1 (``scale_x == 1``) are placed at
    ``offset`` with one tap of weight 256: the same bytes as :func:`_render_native`.
    """
    from scipy.sparse import csr_matrix

    n_img, stride = len(strip), tables[0].shape[1]
    position, weights = _strip_taps(strip, scale_x, offset, image_width)
    n_taps = weights.shape[2]
    # into the block's table of strip columns, whose row 0 is blank: -1 (off the strip) lands on
    # the previous strip's last column, which is blank, or on row 0
    position += (1 + np.arange(n_img, dtype=np.int32) % BLOCK * stride)[:, None, None]
    steps = np.rint(-np.log2(scale_y) * _STEPS).astype(np.intp)  # the quantised vertical scales
    rows = _row_matrices(-(-int(steps.max() + 1) // _STEPS) * _STEPS)[steps]  # (n, 28, 28)
    ink = np.empty((1 + min(n_img, BLOCK) * stride, HEIGHT), np.float32)
    ink[0] = 0  # blank; the rows after a block's strips are never read
    row_starts = np.arange(0, min(n_img, BLOCK) * image_width * n_taps + 1, n_taps, dtype=np.int32)
    full = np.float32(255 * _ONE * _ONE)
    for b in _blocks(n_img):
        n = b.stop - b.start
        ink[1 : 1 + n * stride] = _darkest(columns, [table[b] for table in tables]).reshape(-1, HEIGHT)
        taps = csr_matrix((weights[b].ravel(), position[b].ravel(), row_starts[: n * image_width + 1]),
                          shape=(n * image_width, len(ink)))
        images = out[b]
        np.matmul(rows[b], (taps @ ink).reshape(n, image_width, HEIGHT).transpose(0, 2, 1), out=images)
        np.divide(np.subtract(full, images, out=images), full, out=images)


def _strip_taps(strip, scale_x, offset, image_width) -> tuple[np.ndarray, np.ndarray]:
    """Each output column's taps on its strip: positions ``(B, W, T)`` int32 (-1 off the strip)
    and integer weights ``(B, W, T)`` float32 summing to 256."""
    native = scale_x == 1.0
    scaled = strip[~native]
    if len(scaled):
        widest = int(scaled.max())
        n_taps = max(2, -(-2 * widest // image_width))  # what the widest strip needs
        first = max(1, int(scaled.min()) // _BANK_STEP * _BANK_STEP)  # a few ranges serve all batches
        last = min(-(-widest // _BANK_STEP) * _BANK_STEP, n_taps * image_width // 2)
        positions, weights = _tap_bank(image_width, n_taps, first, last)
        index = np.clip(strip - first, 0, last - first)  # strips at scale 1 get their own taps below
        position, weights = positions.take(index, axis=0), weights.take(index, axis=0)
    else:  # a part of a batch with nothing scaled in it
        position = np.empty((len(strip), image_width, 1), np.int32)
        weights = np.empty((len(strip), image_width, 1), np.float32)
    one_to_one = np.flatnonzero(native)
    if len(one_to_one):
        at = np.arange(image_width) - offset[one_to_one, None]
        position[one_to_one] = -1
        position[one_to_one, :, 0] = np.where((at >= 0) & (at < strip[one_to_one, None]), at, -1)
        weights[one_to_one] = 0
        weights[one_to_one, :, 0] = _ONE
    return position, weights


@functools.lru_cache(maxsize=8)
def _tap_bank(image_width: int, n_taps: int, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Taps resampling each strip width ``s`` in ``first..last`` (none needs more than ``n_taps``)
    to ``image_width``: positions ``[s - first]`` ``(W, n_taps)`` int32 (-1 off the strip) and
    weights ``[s - first]`` ``(W, n_taps)`` float32, padded with zero-weight taps (read-only, cached)."""
    widths = np.arange(first, last + 1)
    first_tap, weights = _taps(image_width, widths, image_width / widths)
    weights = np.pad(weights, ((0, 0), (0, 0), (0, n_taps - weights.shape[2])))
    position = first_tap[:, :, None] + np.arange(n_taps)
    position[(position < 0) | (position >= widths[:, None, None])] = -1
    return read_only(position.astype(np.int32)), read_only(weights)


@functools.lru_cache(maxsize=16)
def _row_matrices(n_steps: int) -> np.ndarray:
    """``(n_steps, 28, 28)`` float32 integer weights: entry ``k`` shrinks a 28-row column by
    ``2 ** (-k / 64)`` about its centre.

    Each row's weights sum to 256; taps that fall outside the glyph read blank
    (no ink), so they are left out.
    """
    scales = 2.0 ** (-np.arange(n_steps) / _STEPS)
    first, weights = _taps(HEIGHT, HEIGHT, scales)
    source = first[:, :, None] + np.arange(weights.shape[2])
    inside = (source >= 0) & (source < HEIGHT)
    matrices = np.zeros((n_steps, HEIGHT, HEIGHT), np.float32)
    step, row = np.meshgrid(np.arange(n_steps), np.arange(HEIGHT), indexing="ij")
    step, row = np.broadcast_to(step[:, :, None], source.shape), np.broadcast_to(row[:, :, None], source.shape)
    np.add.at(matrices, (step[inside], row[inside], source[inside]), weights[inside])
    return read_only(matrices)


def _boxes(x, width, valid, rows, strip, scale_x, scale_y, offset, image_width) -> np.ndarray:
    """Ink boxes in output pixels, ``(B, L, 4)`` int16, -1 where there is no digit.

    A resampled glyph's ink spreads by less than one output pixel beyond its
    mapped extent (the filter's reach), so those boxes grow by one pixel.
    """
    sx, sy = scale_x[:, None], scale_y[:, None]
    native = (scale_x == 1.0) & (scale_y == 1.0)
    pad = np.where(native, 0.0, 1.0)[:, None]
    centre = np.where(native, 0.0, strip / 2)[:, None]  # the strip's centre goes to the image's
    target = np.where(native, offset, image_width / 2)[:, None]
    boxes = np.empty(x.shape + (4,), np.float64)
    boxes[..., 0] = np.floor((x - centre) * sx + target) - pad
    boxes[..., 2] = np.ceil((x + width - centre) * sx + target) + pad
    boxes[..., 1] = np.floor((rows[..., 0] - HEIGHT / 2) * sy + HEIGHT / 2) - pad
    boxes[..., 3] = np.ceil((rows[..., 1] - HEIGHT / 2) * sy + HEIGHT / 2) + pad
    boxes = np.minimum(np.maximum(boxes, 0, out=boxes), [image_width, HEIGHT, image_width, HEIGHT],
                       out=boxes).astype(np.int16)
    boxes[~valid] = -1
    return boxes
