"""The public generation API: sequences, spacing, fitting, boxes, seeds, phone numbers, files, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from seqgen import DigitSet, generate_numbers_sequence, generate_phone_numbers
from seqgen.generate import CHUNK_SIZE, iter_phone_numbers
from seqgen.validation import MIN_SPACING


def block_digits(width: int = 8, height: tuple[int, int] = (4, 24)) -> DigitSet:
    """One solid glyph per class: ``width`` ink columns centred, ink level 25 * (class + 1)."""
    images = np.zeros((10, 28, 28), np.uint8)
    left = (28 - width) // 2
    for d in range(10):
        images[d, height[0] : height[1], left : left + width] = 25 * (d + 1)
    return DigitSet(images, np.arange(10), name="blocks")


def ink_columns(image: np.ndarray) -> np.ndarray:
    return np.flatnonzero((image < 1.0).any(axis=0))


def paint_reference(digits: str, source: DigitSet, boxes: np.ndarray, width: int) -> np.ndarray:
    """A naive painter: each digit's only glyph at its box, overlapping ink keeps the darker."""
    ink = np.zeros((28, width), np.uint8)
    for d, (x0, _, x1, _) in zip(digits, boxes):
        glyph = source.images[int(d)]
        e0, e1 = source.ink_extents[int(d)]
        ink[:, x0:x1] = np.maximum(ink[:, x0:x1], glyph[:, e0:e1])
    return ((255 - ink) / np.float32(255)).astype(np.float32)


# --------------------------------------------------------------------------- basics


def test_shape_dtype_range_and_white_background(train_digits):
    img, boxes = generate_numbers_sequence("4110", 120, (2, 10), source=train_digits, seed=0, return_boxes=True)
    assert img.shape == (28, 120) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() == 1.0 and img.min() < 0.05
    assert boxes.shape == (4, 4) and boxes.dtype == np.int16
    outside = np.ones(img.shape, bool)
    for x0, y0, x1, y1 in boxes:
        outside[y0:y1, x0:x1] = False
    assert (img[outside] == 1.0).all()  # exactly white wherever no digit is


def test_digits_as_string_list_or_array_are_the_same(train_digits):
    a = generate_numbers_sequence("305", 100, source=train_digits, seed=3)
    b = generate_numbers_sequence([3, 0, 5], 100, source=train_digits, seed=3)
    c = generate_numbers_sequence(np.array([3, 0, 5]), 100, source=train_digits, seed=3)
    assert a.tobytes() == b.tobytes() == c.tobytes()


@pytest.mark.parametrize("fit", ["shrink", "stretch"])
def test_exact_width_for_many_widths_and_lengths(train_digits, fit):
    rng = np.random.default_rng(7)
    for _ in range(40):
        length, width = int(rng.integers(1, 31)), int(rng.integers(1, 700))
        digits = "".join(map(str, rng.integers(0, 10, length)))
        img = generate_numbers_sequence(digits, width, (-3, 12), fit=fit, source=train_digits, seed=int(rng.integers(1000)))
        assert img.shape == (28, width) and img.dtype == np.float32
        assert 0.0 <= img.min() and img.max() <= 1.0


def test_phone_numbers_draw_at_every_narrow_width(train_digits):
    # a batch whose widest strip needed a whole number of taps (245 columns in 10: 49) raised inside the
    # rasteriser, "index can't contain negative values": 10 of these 120 batches did
    for width, seed in itertools.product((1, 2, 5, 10), range(30)):
        images, labels = generate_phone_numbers(3, width, source=train_digits, seed=seed)
        assert images.shape == (3, 28, width) and len(labels) == 3
        assert 0.0 <= images.min() and images.max() <= 1.0


def test_fit_error_raises_only_when_too_wide(train_digits):
    img = generate_numbers_sequence("12", 200, fit="error", source=train_digits, seed=0)
    assert img.shape == (28, 200)
    with pytest.raises(ValueError, match=r"image_width: a composed strip is \d+ px wide, more than image_width=50"):
        generate_numbers_sequence("123456", 50, fit="error", source=train_digits, seed=0)


# --------------------------------------------------------------------------- spacing


@pytest.mark.parametrize("gap", [0, 3, 17])
def test_constant_gap_is_measured_exactly(train_digits, gap):
    img, boxes = generate_numbers_sequence("0123456789", 400, (gap, gap), source=train_digits, seed=1, return_boxes=True)
    assert (boxes[1:, 0] - boxes[:-1, 2] == gap).all()
    for (_, _, x1, _), (x0, _, _, _) in zip(boxes[:-1], boxes[1:]):
        assert (img[:, x1 - 1] < 1).any() and (img[:, x0] < 1).any()  # boxes are tight on ink
        assert (img[:, x1:x0] == 1.0).all()  # the gap is blank paper


def test_gaps_cover_the_inclusive_range(train_digits):
    lo, hi = 2, 6
    seen = []
    for seed in range(40):
        _, boxes = generate_numbers_sequence("84729", 300, (lo, hi), source=train_digits, seed=seed, return_boxes=True)
        seen += (boxes[1:, 0] - boxes[:-1, 2]).tolist()
    assert set(seen) == set(range(lo, hi + 1))


def test_overlapping_digits_keep_the_darker_ink():
    blocks = block_digits(width=8)
    for gap in (-3, -6, MIN_SPACING):
        img, boxes = generate_numbers_sequence("1928", 80, (gap, gap), source=blocks, seed=0, return_boxes=True)
        assert (boxes[1:, 0] - boxes[:-1, 2] == gap).all()
        np.testing.assert_array_equal(img, paint_reference("1928", blocks, boxes, 80))


def test_narrow_glyphs_overlapping_several_neighbours():
    blocks = block_digits(width=3)  # a -8 gap reaches past the previous glyph entirely
    img, boxes = generate_numbers_sequence("0918273645", 60, (-8, -2), source=blocks, seed=5, return_boxes=True)
    np.testing.assert_array_equal(img, paint_reference("0918273645", blocks, boxes, 60))


# --------------------------------------------------------------------------- fitting


@pytest.mark.parametrize("align", ["left", "center", "right"])
def test_align_places_a_narrow_strip(train_digits, align):
    img = generate_numbers_sequence("77", 200, source=train_digits, seed=0, align=align)
    cols = ink_columns(img)
    left, right = cols[0], 199 - cols[-1]
    if align == "left":
        assert left == 0 and right > 100
    elif align == "right":
        assert right == 0 and left > 100
    else:
        assert abs(left - right) <= 1


def test_random_align_varies_with_the_seed(train_digits):
    source = block_digits()
    starts = {ink_columns(generate_numbers_sequence("5", 100, source=source, seed=s, align="random"))[0] for s in range(20)}
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 92


def test_native_pixels_are_kept_when_the_strip_fits(train_digits):
    img = generate_numbers_sequence("3", 28, (0, 0), source=block_digits(), seed=0, align="left")
    np.testing.assert_array_equal(img[:, :8], (255 - block_digits().images[3][:, 10:18]) / np.float32(255))


def test_shrink_scales_uniformly_when_too_wide(train_digits):
    blocks = block_digits(width=20, height=(0, 28))
    img = generate_numbers_sequence("5555", 40, (0, 0), source=blocks, seed=0)  # strip 80 px -> half size
    rows = np.flatnonzero((img < 0.5).any(axis=1))
    cols = ink_columns(img)
    assert cols[0] <= 1 and cols[-1] >= 38  # the whole width is used
    assert 12 <= len(rows) <= 16 and abs(rows[0] - (27 - rows[-1])) <= 1  # half height, centred


def tent_filter(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """Dense ``(n_out, n_in)`` tent filter mapping pixel centres onto centres, radius max(1, 1/scale),
    normalised over every tap (taps off the input read background, so they are dropped after)."""
    radius = max(1.0, 1.0 / scale)
    centre = (np.arange(n_out) + 0.5 - n_out / 2) / scale + n_in / 2 - 0.5
    first = int(np.floor(min(centre.min() - radius, 0)))  # every tap any output pixel reaches
    taps = np.arange(first, int(np.ceil(max(centre.max() + radius, n_in))) + 1)
    weights = np.maximum(1 - np.abs(taps[None, :] - centre[:, None]) / radius, 0)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights[:, -first : -first + n_in]


@pytest.mark.parametrize("digits, width, spacing", [("0123456789", 150, (2, 6)), ("31415926", 61, (-3, 4)),
                                                    ("07", 30, (0, 0)), ("8675309", 300, (4, 9)),
                                                    ("0123456789" * 2, 120, (-2, 3)), ("5", 400, (2, 2))])
def test_shrink_and_stretch_match_a_float64_tent_filter(train_digits, digits, width, spacing):
    strip = generate_numbers_sequence(digits, 1000, spacing, source=train_digits, seed=3, align="left")
    ink = 255 - 255 * strip[:, : ink_columns(strip)[-1] + 1].astype(np.float64)  # the native strip
    for fit in ("shrink", "stretch"):
        img = generate_numbers_sequence(digits, width, spacing, fit=fit, source=train_digits, seed=3, align="left")
        scale = width / ink.shape[1]
        if fit == "shrink" and scale >= 1:
            continue  # fits: native pixels, tested above
        # the vertical scale is the horizontal one rounded to 64 steps per octave (documented)
        vertical = min(1.0, 2 ** (np.rint(np.log2(scale) * 64) / 64)) if fit == "shrink" else 1.0
        expected = 1 - tent_filter(28, 28, vertical) @ ink @ tent_filter(ink.shape[1], width, scale).T / 255
        np.testing.assert_allclose(img, expected, atol=1.5 / 255)
        assert np.abs(img - expected).mean() < 0.1 / 255
        assert (img[expected == 1.0] == 1.0).all()  # background stays exactly white


def test_stretch_keeps_the_height_and_fills_the_width():
    blocks = block_digits(width=20, height=(0, 28))
    img = generate_numbers_sequence("55", 100, (0, 0), fit="stretch", source=blocks, seed=0)
    assert (img[:, 2:98] < 0.5).all()  # 40 px of ink stretched over 100 columns, all rows


def test_boxes_contain_the_ink_after_shrinking(train_digits):
    img, boxes = generate_numbers_sequence("01234567890123", 150, (-2, 8), source=train_digits, seed=4, return_boxes=True)
    inside = np.zeros(img.shape, bool)
    for x0, y0, x1, y1 in boxes:
        assert x1 > x0 and y1 > y0
        inside[y0:y1, x0:x1] = True
    assert (img[~inside] == 1.0).all()
    assert (np.diff(boxes[:, 0]) > 0).all()  # left to right


# --------------------------------------------------------------------------- randomness


def test_same_seed_same_bytes_and_generators_accepted(train_digits):
    a = generate_numbers_sequence("2024", 150, source=train_digits, seed=11)
    b = generate_numbers_sequence("2024", 150, source=train_digits, seed=11)
    c = generate_numbers_sequence("2024", 150, source=train_digits, seed=np.random.default_rng(11))
    assert a.tobytes() == b.tobytes() == c.tobytes()
    assert a.tobytes() != generate_numbers_sequence("2024", 150, source=train_digits, seed=12).tobytes()


def test_no_seed_gives_variety_and_leaves_global_state_alone(train_digits):
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    images = {generate_numbers_sequence("2024", 150, source=train_digits).tobytes() for _ in range(5)}
    assert len(images) == 5
    assert (np.random.get_state()[1] == state).all()


# --------------------------------------------------------------------------- phone numbers


def test_phone_numbers_are_distinct_and_well_formed(train_digits):
    images, labels = generate_phone_numbers(500, 200, source=train_digits, seed=0)
    assert images.shape == (500, 28, 200) and images.dtype == np.float32
    assert len(set(labels)) == 500
    assert all(len(l) == 11 and l[0] == "0" and l.isdigit() for l in labels)


def test_phone_numbers_are_deterministic_and_chunk_independent(train_digits):
    n = CHUNK_SIZE + 37
    images, labels, boxes = generate_phone_numbers(n, 120, source=train_digits, seed=3, return_boxes=True, threads=2)
    again, labels2 = generate_phone_numbers(n, 120, source=train_digits, seed=3, threads=1)
    assert labels == labels2 and images.tobytes() == again.tobytes()
    parts = list(iter_phone_numbers(n, 120, source=train_digits, seed=3))
    assert [len(p[1]) for p in parts] == [CHUNK_SIZE, 37]
    assert np.concatenate([p[0] for p in parts]).tobytes() == images.tobytes()
    assert sum((p[1] for p in parts), []) == labels
    assert boxes.shape == (n, 11, 4)
    other, labels3 = generate_phone_numbers(n, 120, source=train_digits, seed=4)
    assert labels3 != labels


def test_phone_images_match_a_single_sequence_render(train_digits):
    """Each phone image shows its label: composing it with the same glyphs gives the same ink layout."""
    blocks = block_digits(width=6)
    images, labels, boxes = generate_phone_numbers(20, 300, (4, 4), source=blocks, seed=1, return_boxes=True)
    for img, label, box in zip(images, labels, boxes):
        np.testing.assert_array_equal(img, paint_reference(label, blocks, box, 300))


# --------------------------------------------------------------------------- files


def test_png_round_trip_and_no_overwrite(train_digits, tmp_path):
    img = generate_numbers_sequence("78677", 150, source=train_digits, seed=0, output_path=tmp_path)
    generate_numbers_sequence("78677", 150, source=train_digits, seed=0, output_path=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["78677.png", "78677_1.png"]
    with Image.open(tmp_path / "78677.png") as png:
        assert png.mode == "L" and png.size == (150, 28)
        np.testing.assert_array_equal(np.asarray(png), np.rint(img * 255).astype(np.uint8))
    assert (tmp_path / "78677.png").read_bytes() == (tmp_path / "78677_1.png").read_bytes()


def test_phone_export_writes_pngs_and_labels(train_digits, tmp_path):
    images, labels = generate_phone_numbers(5, 100, source=train_digits, seed=2, output_path=tmp_path / "out")
    out = tmp_path / "out"
    rows = (out / "labels.csv").read_text().splitlines()
    assert rows[0] == "file,label" and rows[1:] == [f"{l}.png,{l}" for l in labels]
    for img, label in zip(images, labels):
        with Image.open(out / f"{label}.png") as png:
            np.testing.assert_array_equal(np.asarray(png), np.rint(img * 255).astype(np.uint8))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".png"}
    generate_phone_numbers(5, 100, source=train_digits, seed=2, output_path=out)  # the same export: kept
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".png"} == before
    assert sorted(p.name for p in out.iterdir()) == sorted([*before, "labels.csv", "manifest.json"])
    with pytest.raises(ValueError, match=r"output: .* holds a different export \(manifest.json differs in seed\); "
                                         r"choose another folder"):
        generate_phone_numbers(5, 100, source=train_digits, seed=3, output_path=out)
    assert len(list(out.glob("*.png"))) == 5 and not list(out.glob(".tmp-*"))


def test_threads_within_one_chunk_give_the_same_bytes(train_digits):
    one, labels = generate_phone_numbers(300, 150, (-4, 8), source=train_digits, seed=6, threads=1)
    two, labels2 = generate_phone_numbers(300, 150, (-4, 8), source=train_digits, seed=6, threads=2)
    assert labels == labels2 and one.tobytes() == two.tobytes()


def test_threads_write_the_same_files(train_digits, tmp_path):
    n = 2 * CHUNK_SIZE + 5
    for threads in (1, 2):
        generate_phone_numbers(n, 60, source=train_digits, seed=5, threads=threads, output_path=tmp_path / str(threads))
    one, two = (sorted((tmp_path / str(t)).iterdir()) for t in (1, 2))
    assert len(one) == n + 2 and [p.name for p in one] == [p.name for p in two]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two))  # labels.csv and manifest.json included


def test_output_path_that_is_a_file_fails_before_work(train_digits, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    with pytest.raises(NotADirectoryError, match="output_path: .* is a file"):
        generate_phone_numbers(3, 100, source=train_digits, output_path=target)
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("call, name", [
    (lambda d: generate_numbers_sequence("12", 60, source=d, return_boxes="False"), "return_boxes"),
    (lambda d: generate_phone_numbers(2, 200, source=d, return_boxes="False"), "return_boxes"),
    (lambda d: generate_phone_numbers(2, 200, source=d, progress="no"), "progress"),
])
def test_flags_take_a_bool_only(train_digits, call, name):
    with pytest.raises(TypeError, match=f"^{name}: expected True or False, got '(False|no)'$"):
        call(train_digits)


@pytest.mark.parametrize("url", ["s3://bucket/phones", "memory://x", "file:///tmp/x"])
def test_an_output_path_url_is_refused_not_made_into_a_folder(train_digits, tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=rf"^output_path: expected a local folder, got the URL '{url}'; only the "
                                         "webdataset and parquet exports write to URLs$"):
        generate_phone_numbers(3, 100, source=train_digits, seed=1, output_path=url)
    with pytest.raises(ValueError, match="output_path: expected a local folder, got the URL"):
        generate_numbers_sequence("12", 60, source=train_digits, seed=1, output_path=url)
    assert list(tmp_path.iterdir()) == []  # no folder named 's3:', 'memory:' or 'file:'


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(digits="12a"), ValueError, "digits: expected only the characters 0-9, got 'a'"),
        (dict(digits=[1, 10]), ValueError, "digits: expected ints 0-9, got 10"),
        (dict(digits=""), ValueError, "digits: expected at least one digit"),
        (dict(digits=3.5), TypeError, "digits: expected a digit string"),
        ({"digits": b"12"}, TypeError, r"digits: .*got bytes b'12'; decode it to a str first"),  # was "got 49"
        ({"digits": np.array([[1, 2], [3, 4]])}, ValueError, r"digits: expected a 1-d array of ints 0-9, got shape \(2, 2\)"),
        ({"digits": np.array(5)}, ValueError, r"digits: expected a 1-d array of ints 0-9, got shape \(\)"),
        ({"digits": itertools.repeat(7)}, ValueError, r"digits: more than 146 digits, which no image can hold"),
        (dict(image_width=0), ValueError, "image_width: expected a positive int, got 0"),
        (dict(image_width=12.5), TypeError, "image_width: expected a positive int"),
        (dict(spacing_range=(5, 2)), ValueError, r"spacing_range: lo must not exceed hi, got \(5, 2\)"),
        (dict(spacing_range=(-9, 0)), ValueError, "spacing_range: lo must be >= -8"),
        (dict(spacing_range=5), TypeError, r"spacing_range: expected a pair \(lo, hi\) of ints"),
        (dict(spacing_range=(1.5, 3)), TypeError, r"spacing_range: expected a pair"),
        (dict(fit="squash"), ValueError, "fit: expected one of 'shrink', 'stretch', 'error', got 'squash'"),
        (dict(align="middle"), ValueError, "align: expected one of 'center', 'left', 'right', 'random'"),
        (dict(seed=-1), ValueError, "seed: expected a non-negative int"),
        (dict(seed="x"), TypeError, "seed: expected an int, a numpy.random.Generator or None"),
        (dict(source=3), TypeError, "source: expected a DigitSet"),
    ],
)
def test_bad_input_names_the_argument(train_digits, kwargs, error, pattern):
    args = dict(digits="123", image_width=100, source=train_digits) | kwargs
    with pytest.raises(error, match=pattern):
        generate_numbers_sequence(**args)


def test_digits_may_be_any_flat_iterable(train_digits):
    expected = generate_numbers_sequence([1, 4, 6], 100, source=train_digits, seed=3)
    for digits in ("146", np.array([1, 4, 6], np.uint8), (d for d in (1, 4, 6)), iter([1, 4, 6])):
        np.testing.assert_array_equal(generate_numbers_sequence(digits, 100, source=train_digits, seed=3), expected)
    longest = generate_numbers_sequence(itertools.repeat(0, 146), 4096, (0, 0), source=train_digits, seed=0)
    assert longest.shape == (28, 4096)


def test_missing_class_in_a_custom_source():
    only_ones = DigitSet(block_digits().images[[1]], [1])
    with pytest.raises(ValueError, match=r"source: .* has no glyph for digit\(s\) \[2, 3\]"):
        generate_numbers_sequence("1231", 100, source=only_ones)


def test_phone_numbers_bad_count(train_digits):
    with pytest.raises(ValueError, match="num_images: expected a positive int, got 0"):
        generate_phone_numbers(0, 100, source=train_digits)
    with pytest.raises(ValueError, match="threads: expected a positive int, got 0"):
        generate_phone_numbers(3, 100, source=train_digits, threads=0)


def test_a_batch_larger_than_memory_is_refused_up_front(train_digits):
    with pytest.raises(ValueError, match=r"num_images, image_width: 9,000,000 images of width 8192 need "
                                         r"[\d,.]+ GiB in memory, more than this machine's .* seqgen.export.export"):
        generate_phone_numbers(9_000_000, 8192, source=train_digits, seed=0)
