"""Drawing placed strips into images: every speed trick of the generator lives here, behind :func:`draw`.

The glyphs are handled as 28-pixel *columns*: a strip is a table of column ids
into a glyph column table, so placing glyphs is a gather, never a loop over
pixels or images.  Overlapping neighbours (negative gaps) go to separate layers
that combine so that overlapping ink keeps the darker of the two.  Strips stay
``uint8`` (ink high) until they are scaled or, at native scale, converted to the
output.  Resampling is a separable tent filter (antialiased when shrinking): a
sparse matrix product over the batch's strip columns with integer weights
(exact sums), then one small matrix per image for the rows.  Images are drawn
in blocks of :data:`BLOCK`, so that each block's working set stays in the CPU's
cache, and in parts of at least :data:`MIN_PART` images on several threads.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np

from .digits import DigitSet, read_only
from .layout import HEIGHT, STEPS, Layout, Placement
from .parallel import in_parts

#: Fewest images a thread draws (see :func:`draw`'s ``threads``).
MIN_PART = 64
#: Images drawn at once: a block's working set (about 1.4 MB at width 200) stays in
#: a core's 2 MB cache.  Blocks of 32 were as fast on a quiet machine but up to
#: 2x slower when neighbours loaded the shared cache; blocks of 8 cost more in
#: per-block overhead on large batches.
BLOCK = 16
_ONE = 256  # fixed-point unit of the resampling weights
_BANK_STEP = 64  # strip widths are tabulated in ranges rounded to this
_SOURCE_TABLES: "weakref.WeakKeyDictionary[DigitSet, np.ndarray]" = weakref.WeakKeyDictionary()


def column_table(glyphs: np.ndarray) -> np.ndarray:
    """``(n, 28, 28)`` glyph images as the table :func:`draw` reads: ``((n + 1) * 28, 28)`` uint8,
    row ``g * 28 + c`` is column ``c`` of glyph ``g``, and glyph ``n`` is blank."""
    columns = np.zeros((len(glyphs) + 1, HEIGHT, HEIGHT), np.uint8)
    columns[:-1] = glyphs.transpose(0, 2, 1)
    return columns.reshape(-1, HEIGHT)


def source_table(source: DigitSet) -> np.ndarray:
    """:func:`column_table` of all of ``source``'s glyphs, built once per DigitSet (read-only)."""
    table = _SOURCE_TABLES.get(source)
    if table is None:
        table = _SOURCE_TABLES[source] = read_only(column_table(source.images))
    return table


def draw(layout: Layout, placement: Placement, columns: np.ndarray, out: np.ndarray | None = None,
         threads: int = 1) -> np.ndarray:
    """Draw each placed strip into a ``(B, 28, W)`` float32 image (1.0 paper, 0.0 full ink).

    Parameters
    ----------
    layout, placement
        From :func:`seqgen.layout.lay_out` and :func:`seqgen.layout.fit_to_width`.
    columns : ndarray
        The glyph column table (:func:`column_table`, :func:`source_table`) that
        ``layout.glyph`` indexes; its last glyph is blank.
    out : ndarray, optional
        Where to write the images.
    threads : int
        Threads drawing parts of at least :data:`MIN_PART` images; the result does not depend on it.
    """
    n_seq, image_width = len(layout.strip), placement.image_width
    blank = len(columns) - HEIGHT
    tables = _column_tables(layout.x, layout.width, layout.valid, layout.glyph * HEIGHT + layout.ink_start,
                            int(layout.strip.max()), blank, overlapping=layout.overlapping)
    images = np.empty((n_seq, HEIGHT, image_width), np.float32) if out is None else out
    strip, scale_x, scale_y, offset = layout.strip, placement.scale_x, placement.scale_y, placement.offset
    scaled = not placement.native.all()  # then strips that fit go through the resampler too, with one-to-one taps

    def draw_part(part: slice) -> None:
        part_tables = [table[part] for table in tables]
        if scaled:
            _render_scaled(part_tables, columns, strip[part], scale_x[part], scale_y[part], offset[part],
                           image_width, images[part])
        else:
            _render_native(part_tables, columns, strip[part], offset[part], image_width, images[part])

    in_parts(draw_part, n_seq, threads, MIN_PART)
    return images


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
    steps = np.rint(-np.log2(scale_y) * STEPS).astype(np.intp)  # the quantised vertical scales
    rows = _row_matrices(-(-int(steps.max() + 1) // STEPS) * STEPS)[steps]  # (n, 28, 28)
    ink = np.empty((1 + min(n_img, BLOCK) * stride, HEIGHT), np.float32)
    ink[0] = 0  # blank; the rows after a block's strips are never read
    row_starts = np.arange(0, min(n_img, BLOCK) * image_width * n_taps + 1, n_taps, dtype=np.int32)
    full = np.float32(255 * _ONE * _ONE)
    taps = None
    for b in _blocks(n_img):
        n = b.stop - b.start
        ink[1 : 1 + n * stride] = _darkest(columns, [table[b] for table in tables]).reshape(-1, HEIGHT)
        if taps is not None and taps.shape[0] == n * image_width:
            # the last block's matrix with this block's entries: building one checks its arrays each
            # time, which cost about a third of the product itself
            taps.data, taps.indices = weights[b].ravel(), position[b].ravel()
        else:
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
    """Taps resampling each strip width ``s`` in ``first..last`` to ``image_width``: positions
    ``[s - first]`` ``(W, T)`` int32 (-1 off the strip) and weights ``[s - first]`` ``(W, T)``
    float32, padded with zero-weight taps to ``T = n_taps`` (read-only, cached).

    ``T`` is one more where ``last`` needs exactly ``n_taps`` and the filter's radius,
    computed in floating point, comes out a hair wider.
    """
    widths = np.arange(first, last + 1)
    first_tap, weights = _taps(image_width, widths, image_width / widths)
    n_taps = max(n_taps, weights.shape[2])
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
    scales = 2.0 ** (-np.arange(n_steps) / STEPS)
    first, weights = _taps(HEIGHT, HEIGHT, scales)
    source = first[:, :, None] + np.arange(weights.shape[2])
    inside = (source >= 0) & (source < HEIGHT)
    matrices = np.zeros((n_steps, HEIGHT, HEIGHT), np.float32)
    step, row = np.meshgrid(np.arange(n_steps), np.arange(HEIGHT), indexing="ij")
    step, row = np.broadcast_to(step[:, :, None], source.shape), np.broadcast_to(row[:, :, None], source.shape)
    np.add.at(matrices, (step[inside], row[inside], source[inside]), weights[inside])
    return read_only(matrices)
