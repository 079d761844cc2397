"""Layout and placement, read directly: gaps, strips, fit policies, alignment, boxes."""

from __future__ import annotations

import numpy as np
import pytest

from seqgen import layout
from seqgen.digits import DigitSet


def blocks(width: int = 10) -> DigitSet:
    """One glyph per class: a block of ink ``width`` columns wide, rows 4..24."""
    images = np.zeros((10, 28, 28), np.uint8)
    images[:, 4:24, 14 - width // 2: 14 - width // 2 + width] = 255
    return DigitSet(images, np.arange(10), name="blocks")


def laid_out(codes, spacing, seed=0):
    source = blocks()
    codes = np.array(codes, np.int8)
    rng = np.random.default_rng(seed)
    picks = layout.sample_glyphs(codes, source, rng)
    return layout.lay_out(layout.Glyphs.of_source(source, picks), codes >= 0, spacing, rng)


def test_glyphs_sit_their_gap_apart_on_the_strip():
    strips = laid_out([[1, 2, 3, 4], [5, 6, -1, -1]], (3, 3))
    assert strips.x[strips.valid].tolist() == [0, 13, 26, 39, 0, 13]
    assert strips.width.tolist() == [[10] * 4, [10, 10, 0, 0]]
    assert strips.strip.tolist() == [49, 23]
    assert strips.rows[0, 0].tolist() == [4, 24] and not strips.overlapping


def test_negative_gaps_overlap_and_the_strip_starts_at_the_leftmost_ink():
    strips = laid_out([[1, 2]], (-4, -4))
    assert strips.x.tolist() == [[0, 6]] and strips.strip.tolist() == [16] and strips.overlapping


def test_gaps_cover_the_whole_inclusive_range():
    strips = laid_out([[1, 2]] * 400, (-2, 3), seed=1)
    assert set((strips.x[:, 1] - 10).tolist()) == {-2, -1, 0, 1, 2, 3}


@pytest.mark.parametrize("fit, align, scale, offset", [
    ("shrink", "center", [1.0, 0.5], [25, 0]), ("shrink", "left", [1.0, 0.5], [0, 0]),
    ("shrink", "right", [1.0, 0.5], [51, 0]), ("stretch", "center", [100 / 49, 0.5], [25, 0]),
])
def test_fit_to_width(fit, align, scale, offset):
    strips = laid_out([[1, 2, 3, 4, -1, -1, -1, -1], [1, 2, 3, 4, 5, 6, 7, 8]], (3, 3))  # 49 and 101 px
    strips = layout.Layout(**{**strips.__dict__, "strip": np.array([49, 200])})
    placement = layout.fit_to_width(strips, 100, fit, align, np.random.default_rng(0))
    np.testing.assert_allclose(placement.scale_x, scale)
    assert placement.offset.tolist() == offset
    assert placement.scale_y.tolist() == ([1.0, 0.5] if fit == "shrink" else [1.0, 1.0])


def test_fit_error_names_the_width():
    strips = laid_out([[1, 2, 3]], (3, 3))
    with pytest.raises(ValueError, match="image_width: a composed strip is 36 px wide, more than image_width=30"):
        layout.fit_to_width(strips, 30, "error", "center", np.random.default_rng(0))


def test_boxes_follow_the_placement():
    strips = laid_out([[1, 2, -1]], (3, 3))
    native = layout.fit_to_width(strips, 43, "shrink", "center", np.random.default_rng(0))
    assert layout.boxes(strips, native).tolist() == [[[10, 4, 20, 24], [23, 4, 33, 24], [-1, -1, -1, -1]]]
    half = layout.fit_to_width(strips, 23 // 2, "shrink", "center", np.random.default_rng(0))
    x0, y0, x1, y1 = layout.boxes(strips, half)[0, 0]
    assert x0 == 0 and 4 <= x1 <= 7 and y0 <= 9 and y1 >= 19  # about half size, one pixel of filter reach


def test_vertical_scales_are_quantised_to_64_steps_per_octave():
    q = layout.quantise(np.array([1.0, 0.5, 0.7, 1.3]))
    assert q[0] == 1.0 and q[1] == 0.5 and q[3] == 1.0
    assert abs(np.log2(q[2]) * 64 - np.rint(np.log2(q[2]) * 64)) < 1e-9 and abs(q[2] / 0.7 - 1) < 0.006


def test_ink_bounds_of_glyphs_match_a_plain_reference(train_digits):
    """The folded word-wise ORs give the bounds that ``any`` over pixels gives: MNIST glyphs, sparse
    noise, blank glyphs and glyphs with one inked corner pixel."""
    from seqgen.digits import ink_bounds
    from seqgen.layout import ink_bounds_of

    rng = np.random.default_rng(4)
    noise = (rng.integers(1, 256, (400, 28, 28)) * (rng.random((400, 28, 28)) < 0.02)).astype(np.uint8)
    noise[:20] = 0
    noise[20:40] = 0
    noise[20:30, 0, 0] = 9
    noise[30:40, 27, 27] = 1
    for glyphs in (train_digits.images[:500], noise):
        ink = glyphs > 0
        columns, rows = ink_bounds_of(glyphs)
        np.testing.assert_array_equal(columns, ink_bounds(ink.any(axis=1)))
        np.testing.assert_array_equal(rows, ink_bounds(ink.any(axis=2)))
    assert ink_bounds_of(noise[20:21])[0].tolist() == [[0, 1]] and ink_bounds_of(noise[30:31])[1].tolist() == [[27, 28]]
