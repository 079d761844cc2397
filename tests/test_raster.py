"""The rasteriser, read directly: placed strips drawn against a float64 tent filter, blocks, threads."""

from __future__ import annotations

import numpy as np
import pytest

from seqgen import layout, raster


def placed(source, codes, spacing, image_width, fit="shrink", seed=3):
    codes = np.array(codes, np.int8)
    rng = np.random.default_rng(seed)
    picks = layout.sample_glyphs(codes, source, rng)
    strips = layout.lay_out(layout.Glyphs.of_source(source, picks), codes >= 0, spacing, rng)
    return strips, layout.fit_to_width(strips, image_width, fit, "left", rng)


def tent_filter(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """Dense ``(n_out, n_in)`` tent filter, centres onto centres, radius max(1, 1/scale), normalised
    over every tap it reaches (taps off the input read background)."""
    radius = max(1.0, 1.0 / scale)
    centre = (np.arange(n_out) + 0.5 - n_out / 2) / scale + n_in / 2 - 0.5
    first = int(np.floor(min(centre.min() - radius, 0)))
    taps = np.arange(first, int(np.ceil(max(centre.max() + radius, n_in))) + 1)
    weights = np.maximum(1 - np.abs(taps[None, :] - centre[:, None]) / radius, 0)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights[:, -first : -first + n_in]


@pytest.mark.parametrize("codes, spacing, width, seed, tolerance", [
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], (2, 6), 150, 3, (1.5, 0.1)), ([3, 1, 4, 1, 5, 9, 2, 6], (-3, 4), 61, 3, (1.5, 0.1)),
    ([0, 7], (0, 0), 30, 3, (1.5, 0.1)), ([5], (2, 2), 400, 3, (1.5, 0.1)),
    # a 245-column strip in 10 columns: 49 taps exactly, one more in floating point (this draw raised).
    # Each tap's weight is rounded to 1/256; over 49 taps the errors add up across the strokes (strips of
    # 200-250 columns in 10-12 gave errors up to 1.8 / 255, 0.32 / 255 on average)
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0], (2, 6), 10, 6, (2.5, 0.5))])
@pytest.mark.parametrize("fit", ["shrink", "stretch"])
def test_draw_matches_a_float64_tent_filter(train_digits, codes, spacing, width, seed, tolerance, fit):
    columns = raster.source_table(train_digits)
    strips, placement = placed(train_digits, [codes], spacing, width, fit, seed)
    native = layout.Placement(int(strips.strip[0]), np.ones(1), np.ones(1), np.zeros(1, np.intp))
    ink = 255 - 255 * raster.draw(strips, native, columns)[0].astype(np.float64)
    image = raster.draw(strips, placement, columns)[0]
    if placement.native[0]:
        np.testing.assert_array_equal(image[:, : ink.shape[1]], 1 - ink / 255)
        return
    scale, vertical = placement.scale_x[0], placement.scale_y[0]
    expected = 1 - tent_filter(28, 28, vertical) @ ink @ tent_filter(ink.shape[1], width, scale).T / 255
    np.testing.assert_allclose(image, expected, atol=tolerance[0] / 255)
    assert np.abs(image - expected).mean() < tolerance[1] / 255
    assert (image[expected == 1.0] == 1.0).all()  # the background stays exactly white


def test_the_source_table_is_built_once_per_digit_set(train_digits):
    table = raster.source_table(train_digits)
    assert raster.source_table(train_digits) is table and not table.flags.writeable
    assert table.shape == ((len(train_digits) + 1) * 28, 28) and not table[-28:].any()  # the blank glyph
    np.testing.assert_array_equal(table[5 * 28 + 10], train_digits.images[5][:, 10])  # glyph 5, column 10


def test_threads_draw_the_same_bytes(train_digits):
    strips, placement = placed(train_digits, np.random.default_rng(0).integers(0, 10, (300, 11)), (-4, 8), 150)
    columns = raster.source_table(train_digits)
    one = raster.draw(strips, placement, columns, threads=1)
    assert raster.draw(strips, placement, columns, threads=2).tobytes() == one.tobytes()


@pytest.mark.parametrize("fit", ["shrink", "stretch"])
def test_block_size_never_changes_the_bytes(train_digits, monkeypatch, fit):
    from seqgen import DataGenerator, raster

    # lengths 1 to 14 at width 150: some strips fit, some are scaled, some overlap, in one batch
    gen = DataGenerator(batch_size=45, image_width=150, spacing_range=(-4, 8), length=(1, 14), fit=fit,
                        source=train_digits, seed=2, threads=1)
    reference, labels = gen[0]
    for block in (1, 7):
        monkeypatch.setattr(raster, "BLOCK", block)
        images, same_labels = gen[0]
        assert (same_labels == labels).all() and images.tobytes() == reference.tobytes()
