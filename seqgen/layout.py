"""Where each digit goes: sampled glyphs -> a :class:`Layout` on a strip -> a :class:`Placement` in the image.

Plain numpy over the whole batch, no performance tuning (that lives in
:mod:`seqgen.raster`):

1. :func:`sample_glyphs` picks one glyph of the right class per digit;
2. :func:`lay_out` trims each glyph to its ink columns and puts neighbours an
   integer ink-to-ink gap apart, drawn uniformly from ``spacing_range``: a
   *strip* per sequence, at native scale;
3. :func:`fit_to_width` applies the fit policy and alignment: the scale and the
   offset that map each strip into the output width;
4. :func:`boxes` maps each digit's ink box through the same placement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .digits import DigitSet, ink_bounds

HEIGHT = 28
#: Vertical scales are rounded to this many steps per octave (aspect within 0.6%),
#: so that the rasteriser can share one row matrix per step.
STEPS = 64
_FAR = np.iinfo(np.intp).max // 4  # beyond any strip position


@dataclass(frozen=True)
class Glyphs:
    """The glyphs drawn for a batch, flat in reading order (one per digit).

    Attributes
    ----------
    ids : ndarray, shape (n,)
        Each glyph's index in the table the rasteriser reads pixels from.
    columns, rows : ndarray, shape (n, 2)
        First and one-past-last ink column / row of each glyph.
    """

    ids: np.ndarray
    columns: np.ndarray
    rows: np.ndarray

    @classmethod
    def of_source(cls, source: DigitSet, picks: np.ndarray) -> "Glyphs":
        """Glyphs ``picks`` of ``source``, as they are."""
        return cls(picks, source.ink_extents[picks], source.ink_rows[picks])

    @classmethod
    def of_images(cls, images: np.ndarray, like: "Glyphs | None" = None, changed: np.ndarray | None = None
                  ) -> "Glyphs":
        """Glyphs given as ``(n, 28, 28)`` images (augmented copies), numbered in order.

        With ``like`` (the glyphs they were copied from) and a ``changed`` mask, only the
        changed glyphs' ink is measured again.
        """
        if like is None or changed is None:
            return cls(np.arange(len(images)), *ink_bounds_of(images))
        columns, rows = like.columns.copy(), like.rows.copy()
        which = np.flatnonzero(changed)
        columns[which], rows[which] = ink_bounds_of(images[which])
        return cls(np.arange(len(images)), columns, rows)


def ink_bounds_of(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ink column and row bounds ``(n, 2)`` of ``(n, 28, 28)`` uint8 glyphs, as :func:`ink_bounds`."""
    words = np.ascontiguousarray(images).reshape(len(images), 28, 28).view(np.uint32)  # 4 pixels a word
    columns = _or_over_axis_1(words).view(np.uint8)  # nonzero where a column holds ink
    rows = words[:, :, 0].copy()  # nonzero where a row holds ink: any of its 7 words
    for k in range(1, words.shape[2]):
        rows |= words[:, :, k]
    return ink_bounds(columns), ink_bounds(rows != 0)


def _or_over_axis_1(words: np.ndarray) -> np.ndarray:
    """Bitwise OR of ``(n, k, m)`` words over axis 1, by folding it in halves: a few whole-array
    operations instead of a reduction whose inner loop is only ``m`` long."""
    while words.shape[1] > 1:
        half = words.shape[1] // 2
        folded = words[:, :half] | words[:, half : 2 * half]
        if words.shape[1] % 2:
            folded[:, 0] |= words[:, -1]
        words = folded
    return words[:, 0]


@dataclass(frozen=True)
class Layout:
    """A batch of sequences laid out on strips at native scale, as ``(B, L)`` grids.

    Where ``valid`` is False, ``width`` is 0 and the other grids are not meaningful.

    Attributes
    ----------
    valid : bool
        Which positions hold a digit (rows are left-aligned, shorter ones padded).
    glyph : int
        The glyph at each position (:attr:`Glyphs.ids`).
    ink_start : int
        The glyph's first ink column (its strip column 0).
    x, width : int
        First strip column and ink width of each glyph.
    rows : (B, L, 2) int
        Ink rows of each glyph.
    strip : (B,) int
        Width of each strip (at least 1).
    overlapping : bool
        Whether gaps may be negative (then neighbours can share columns).
    """

    valid: np.ndarray
    glyph: np.ndarray
    ink_start: np.ndarray
    x: np.ndarray
    width: np.ndarray
    rows: np.ndarray
    strip: np.ndarray
    overlapping: bool


@dataclass(frozen=True)
class Placement:
    """How each strip maps into the ``image_width`` output: ``(B,)`` scales and left offsets.

    ``scale_x == 1`` means native scale at ``offset``; otherwise the strip's centre
    goes to the image's centre, scaled by ``scale_x`` across and ``scale_y`` down.
    """

    image_width: int
    scale_x: np.ndarray
    scale_y: np.ndarray
    offset: np.ndarray

    @property
    def native(self) -> np.ndarray:
        """Strips drawn one glyph column per output column."""
        return self.scale_x == 1.0


def sample_glyphs(codes: np.ndarray, source: DigitSet, rng: np.random.Generator) -> np.ndarray:
    """One random glyph index of ``source`` per digit of ``codes`` (``-1`` padding skipped), in reading order."""
    digits = codes[codes >= 0].astype(np.intp)
    counts = source.class_counts
    if not counts[digits].all():
        missing = sorted(set(digits[counts[digits] == 0].tolist()))
        raise ValueError(f"source: {source!r} has no glyph for digit(s) {missing}")
    offsets = (rng.random(len(digits)) * counts[digits]).astype(np.intp)
    return source.class_order[source.class_starts[digits] + offsets]


def lay_out(glyphs: Glyphs, valid: np.ndarray, spacing_range: tuple[int, int], rng: np.random.Generator) -> Layout:
    """Trim each glyph to its ink and place neighbours a gap drawn from ``spacing_range`` apart."""
    n_seq, length = valid.shape
    width = _where_valid(glyphs.columns[:, 1] - glyphs.columns[:, 0], valid)
    lo, hi = spacing_range
    gaps = rng.integers(lo, hi + 1, size=(n_seq, max(length - 1, 0)))
    advance = np.where(valid[:, 1:], width[:, :-1] + gaps, 0)
    x = np.zeros((n_seq, length), np.intp)
    np.cumsum(advance, axis=1, out=x[:, 1:])
    left = np.where(valid, x, _FAR).min(axis=1)
    right = np.where(valid, x + width, -_FAR).max(axis=1)
    x -= left[:, None]
    return Layout(valid, _where_valid(glyphs.ids, valid), _where_valid(glyphs.columns[:, 0], valid), x, width,
                  _where_valid(glyphs.rows, valid), np.maximum(right - left, 1), lo < 0)


def fit_to_width(layout: Layout, image_width: int, fit: str, align: str, rng: np.random.Generator) -> Placement:
    """Apply the fit policy (``shrink``, ``stretch``, ``error``) and the alignment of narrow strips."""
    strip = layout.strip
    scale_x = np.ones(len(strip))
    scale_y = np.ones(len(strip))
    too_wide = strip > image_width
    if fit == "error" and too_wide.any():
        raise ValueError(
            f"image_width: a composed strip is {int(strip.max())} px wide, more than "
            f"image_width={image_width}; use fit='shrink' or 'stretch', a larger width or "
            "a smaller spacing_range"
        )
    if fit == "shrink":
        scale_x[too_wide] = image_width / strip[too_wide]
        scale_y[too_wide] = quantise(scale_x[too_wide])
    elif fit == "stretch":
        scale_x = image_width / strip
    return Placement(image_width, scale_x, scale_y, _align_offsets(image_width - strip, align, rng))


def quantise(scale: np.ndarray) -> np.ndarray:
    """Vertical scales rounded to :data:`STEPS` steps per octave, at most 1."""
    return np.minimum(1.0, 2.0 ** (np.rint(np.log2(scale) * STEPS) / STEPS))


def boxes(layout: Layout, placement: Placement) -> np.ndarray:
    """Ink boxes ``(x0, y0, x1, y1)`` in output pixels, ``(B, L, 4)`` int16, ``-1`` where there is no digit.

    A resampled glyph's ink spreads by less than one output pixel beyond its
    mapped extent (the filter's reach), so those boxes grow by one pixel.
    """
    x, width, rows, strip = layout.x, layout.width, layout.rows, layout.strip
    image_width = placement.image_width
    sx, sy = placement.scale_x[:, None], placement.scale_y[:, None]
    native = (placement.scale_x == 1.0) & (placement.scale_y == 1.0)
    pad = np.where(native, 0.0, 1.0)[:, None]
    centre = np.where(native, 0.0, strip / 2)[:, None]  # the strip's centre goes to the image's
    target = np.where(native, placement.offset, image_width / 2)[:, None]
    out = np.empty(x.shape + (4,), np.float64)
    out[..., 0] = np.floor((x - centre) * sx + target) - pad
    out[..., 2] = np.ceil((x + width - centre) * sx + target) + pad
    out[..., 1] = np.floor((rows[..., 0] - HEIGHT / 2) * sy + HEIGHT / 2) - pad
    out[..., 3] = np.ceil((rows[..., 1] - HEIGHT / 2) * sy + HEIGHT / 2) + pad
    out = np.minimum(np.maximum(out, 0, out=out), [image_width, HEIGHT, image_width, HEIGHT], out=out).astype(np.int16)
    out[~layout.valid] = -1
    return out


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
