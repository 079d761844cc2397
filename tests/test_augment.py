"""Augmenters: identity when off, seeded, effective when on, always in range; boxes follow glyphs."""

from __future__ import annotations

import numpy as np
import pytest

from seqgen import generate_numbers_sequence, generate_phone_numbers
from seqgen.augment import (
    PRESETS,
    Affine,
    Background,
    Contrast,
    Elastic,
    FormField,
    GaussianBlur,
    GaussianNoise,
    JpegArtefacts,
    Pipeline,
    SaltPepper,
    ScanDegradation,
    Size,
    StrokeWidth,
    WriterStyle,
    resolve,
)
from seqgen.augment.base import ImageAugmenter

ALL = [Affine, Size, Elastic, StrokeWidth, WriterStyle, GaussianNoise, SaltPepper, GaussianBlur, Contrast, Background,
       ScanDegradation, FormField, JpegArtefacts]
GLYPH_LEVEL = [Affine, Size, Elastic, StrokeWidth, WriterStyle]


def phones(source, augment, seed=0, n=40, width=160):
    return generate_phone_numbers(n, width, source=source, seed=seed, augment=augment, return_boxes=True)


@pytest.mark.parametrize("cls", ALL)
def test_probability_or_strength_zero_is_the_identity(train_digits, cls):
    plain, labels, boxes = phones(train_digits, None)
    for off in (cls(p=0.0), cls(p=1.0, strength=0.0)):
        images, labels2, boxes2 = phones(train_digits, Pipeline([off]))
        assert images.tobytes() == plain.tobytes()
        assert labels2 == labels and boxes2.tobytes() == boxes.tobytes()


@pytest.mark.parametrize("cls", ALL)
def test_each_augmenter_changes_the_image_when_on(train_digits, cls):
    plain, _, _ = phones(train_digits, None)
    images, _, _ = phones(train_digits, Pipeline([cls(p=1.0)]))
    changed = np.mean([not np.array_equal(a, b) for a, b in zip(images, plain)])
    assert changed > 0.9


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_keep_shape_dtype_range_and_labels(train_digits, preset):
    for seed in range(6):
        plain_labels = generate_phone_numbers(30, 150, source=train_digits, seed=seed)[1]
        images, labels = generate_phone_numbers(30, 150, source=train_digits, seed=seed, augment=preset)
        assert images.shape == (30, 28, 150) and images.dtype == np.float32
        assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
        assert labels == plain_labels


def test_same_seed_same_bytes_different_seed_different(train_digits):
    a = generate_numbers_sequence("0123456789", 200, source=train_digits, seed=5, augment="heavy")
    b = generate_numbers_sequence("0123456789", 200, source=train_digits, seed=5, augment="heavy")
    c = generate_numbers_sequence("0123456789", 200, source=train_digits, seed=6, augment="heavy")
    assert a.tobytes() == b.tobytes() != c.tobytes()


def test_boxes_follow_the_glyph_transforms(train_digits):
    pipeline = Pipeline([WriterStyle(p=1.0), Affine(p=1.0, strength=1.5), Size(p=1.0), Elastic(p=1.0),
                         StrokeWidth(p=1.0)])
    images, _, boxes = phones(train_digits, pipeline, n=60, width=300)
    for img, box in zip(images, boxes):
        inside = np.zeros(img.shape, bool)
        for x0, y0, x1, y1 in box:
            inside[y0:y1, x0:x1] = True
        assert (img[~inside] == 1.0).all()


def test_glyph_warp_matches_scipy_affine_transform(train_digits):
    """The stacked, masked resampling equals one bilinear affine_transform per glyph (zero outside)."""
    from scipy.ndimage import affine_transform

    from seqgen.augment.functional import warp_glyphs

    rng = np.random.default_rng(1)
    glyphs = train_digits.images[rng.integers(0, len(train_digits), 64)]
    params = Affine(rotation=20, shear=0.3, scale=0.2, translate=3, baseline=3, p=1.0).params(glyphs.shape, rng)
    forward, shift = params["forward"], params["shift"]
    warped = warp_glyphs(glyphs, forward, shift)
    centre = np.full(2, 13.5)
    for glyph, a, t, out in zip(glyphs, forward, shift, warped):
        inverse = np.linalg.inv(a)
        expected = affine_transform(glyph.astype(np.float64), inverse, offset=centre - inverse @ (centre + t),
                                    order=1, mode="grid-constant", cval=0.0, prefilter=False)
        # OpenCV interpolates at 1/32 pixel: within one grey level of the exact bilinear value
        assert np.abs(out.astype(int) - np.rint(expected)).max() <= 1
    assert (warped != glyphs).any()


def test_glyph_warp_of_some_glyphs_in_place(train_digits):
    """``index`` and ``out``: the chosen glyphs get exactly their warp, written into the same array,
    with and without displacement fields; the others stay as they were."""
    from seqgen.augment.functional import warp_glyphs

    rng = np.random.default_rng(2)
    glyphs = train_digits.images[rng.integers(0, len(train_digits), 700)].copy()
    index = np.sort(rng.choice(len(glyphs), 600, replace=False))  # more than one row of glyphs
    params = Affine(rotation=10, shear=0.2, p=1.0).params((len(index), 28, 28), rng)
    bent = np.sort(rng.choice(len(index), 150, replace=False))
    field = rng.normal(0, 1.5, (len(bent), 2, 28, 28)).astype(np.float32)
    for f, b in ((None, None), (field, bent)):
        expected = warp_glyphs(glyphs[index], params["forward"], params["shift"], f, b)
        changed = glyphs.copy()
        assert warp_glyphs(changed, params["forward"], params["shift"], f, b, index=index, out=changed) is changed
        np.testing.assert_array_equal(changed[index], expected)
        others = np.setdiff1d(np.arange(len(glyphs)), index)
        np.testing.assert_array_equal(changed[others], glyphs[others])
        assert (expected != glyphs[index]).any()


def test_glyph_warp_side_by_side_equals_each_glyph_alone(train_digits):
    """Glyphs warped together in one row (where strong warps reach towards their neighbours, with
    and without displacement fields) get what each gets warped alone: nothing of a neighbour's ink,
    and within one grey level (a glyph's coordinates in the row are rounded to float32 further from 0)."""
    from seqgen.augment.functional import warp_glyphs

    rng = np.random.default_rng(5)
    glyphs = train_digits.images[rng.integers(0, len(train_digits), 300)]
    params = Affine(rotation=40, shear=0.6, scale=0.4, translate=8, baseline=8, p=1.0).params(glyphs.shape, rng)
    forward, shift = params["forward"], params["shift"]
    field = rng.normal(0, 3, (len(glyphs), 2, 28, 28)).astype(np.float32)
    for f in (None, field):
        together = warp_glyphs(glyphs, forward, shift, f)
        alone = np.stack([warp_glyphs(glyphs[i : i + 1], forward[i : i + 1], shift[i : i + 1],
                                      None if f is None else f[i : i + 1])[0] for i in range(len(glyphs))])
        assert np.abs(together.astype(int) - alone).max() <= 1
        assert (together != alone).mean() < 0.01


def test_stroke_width_equals_scipy_grey_morphology(train_digits):
    """OpenCV on the stacked, edge-padded glyphs gives exactly scipy.ndimage's grey dilation and erosion."""
    from scipy.ndimage import grey_dilation, grey_erosion

    from seqgen.augment.functional import stroke_width

    rng = np.random.default_rng(3)
    glyphs = train_digits.images[rng.integers(0, len(train_digits), 50)].copy()
    glyphs[:5, 0, :] = 200  # ink on the edge rows: where stacked glyphs would touch
    glyphs[5:10, -1, :] = 180
    cross = np.zeros((3, 3), bool)
    cross[1, :] = cross[:, 1] = True
    for amount in (0.5, 1.0, 1.5, 2.0, 3.0):
        for thin, op in ((False, grey_dilation), (True, grey_erosion)):
            expected = glyphs.copy()
            for _ in range(int(amount)):
                expected = np.stack([op(g, footprint=cross) for g in expected])
            if amount % 1:
                last = np.stack([op(g, footprint=cross) for g in expected]).astype(np.float32)
                expected = np.floor(expected + (amount % 1) * (last - expected) + 0.5).astype(np.uint8)
            np.testing.assert_array_equal(stroke_width(glyphs, amount, thinner=thin), expected)


def test_stroke_widths_per_glyph_equal_each_glyph_alone(train_digits):
    """One signed amount per glyph (whole steps mixed within a batch, both signs, zero), with and
    without ink scaling, gives each glyph exactly what it gets alone."""
    from seqgen.augment.functional import lighten, stroke_width, stroke_widths

    rng = np.random.default_rng(4)
    glyphs = train_digits.images[rng.integers(0, len(train_digits), 600)].copy()  # more than one row
    amounts = rng.choice([-2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 1.7, 2.0, 2.9], len(glyphs))
    ink = rng.uniform(0.3, 1.0, len(glyphs))
    expected = np.stack([stroke_width(g[None], abs(a), thinner=a < 0)[0] for g, a in zip(glyphs, amounts)])
    np.testing.assert_array_equal(stroke_widths(glyphs, amounts), expected)
    np.testing.assert_array_equal(lighten(stroke_widths(glyphs, amounts), ink),
                                  np.stack([lighten(g[None], i[None])[0] for g, i in zip(expected, ink)]))


def test_glyph_functions_want_uint8(train_digits):
    """Glyph functions move pixels as bytes: other dtypes get a clear error, not misread rows."""
    from seqgen.augment.functional import stroke_width, warp_glyphs

    glyphs = train_digits.images[:4].astype(np.float32)
    with pytest.raises(TypeError, match="glyphs: expected uint8"):
        warp_glyphs(glyphs, np.broadcast_to(np.eye(2), (4, 2, 2)), np.zeros((4, 2)))
    with pytest.raises(TypeError, match="glyphs: expected uint8"):
        stroke_width(glyphs, 1.0)


def test_blur_matches_scipy_gaussian_filter(train_digits):
    """OpenCV's separable blur of the stacked images agrees with scipy's gaussian_filter (nearest edges)."""
    from scipy.ndimage import gaussian_filter

    from seqgen.augment.functional import gaussian_blur

    images = generate_phone_numbers(8, 160, source=train_digits, seed=4)[0]
    for sigma in (0.3, 0.7, 1.3):
        expected = gaussian_filter(images, sigma=(0, sigma, sigma), mode="nearest")
        np.testing.assert_allclose(gaussian_blur(images, sigma), expected, atol=2e-6)


def test_elastic_field_is_gaussian_filtered_noise():
    from scipy.ndimage import gaussian_filter

    field = Elastic(alpha=2.0, sigma=3.0, p=1.0).params((6, 28, 28), np.random.default_rng(2))["field"]
    reference = np.random.default_rng(2)
    reference.random(6)  # the selection draw comes first, then one sheet of noise and each glyph's place in it
    height = width = Elastic.sheet_rows
    noise = 2 * reference.random((2, height, width), dtype=np.float32) - 1
    sheet = 2.0 * gaussian_filter(noise, sigma=(0, 3.0, 3.0), mode="reflect", truncate=2.5)
    rows, columns = reference.integers(0, height - 27, 6), reference.integers(0, width - 27, 6)
    expected = np.stack([sheet[:, r : r + 28, c : c + 28] for r, c in zip(rows, columns)])
    assert field.shape == (6, 2, 28, 28)
    np.testing.assert_allclose(field, expected, atol=1e-6)
    # smoothing by sigma divides the std of uniform noise (0.577) by about sqrt(4 pi sigma^2) = 10.6,
    # and neighbouring pixels differ by about sqrt(2 (1 - exp(-1 / (4 sigma^2)))) = 0.235 of the field
    big = Elastic(alpha=1.0, sigma=3.0, p=1.0).params((2000, 28, 28), np.random.default_rng(3))["field"]
    assert 0.050 < big.std() < 0.060
    for axis in (2, 3):
        assert 0.2 < np.abs(np.diff(big, axis=axis)).mean() / np.abs(big).mean() < 0.27


def test_stroke_width_thickens_and_thins(train_digits):
    plain = generate_numbers_sequence("8888", 200, source=train_digits, seed=1)
    thick = generate_numbers_sequence("8888", 200, source=train_digits, seed=1, augment=StrokeWidth(p=1.0, thin=0.0))
    thin = generate_numbers_sequence("8888", 200, source=train_digits, seed=1, augment=StrokeWidth(p=1.0, thin=1.0))
    assert (thick < 0.5).sum() > (plain < 0.5).sum() > (thin < 0.5).sum()


def test_contrast_lightens_ink_and_noise_is_unbiased(train_digits):
    plain = generate_numbers_sequence("5555", 200, source=train_digits, seed=2)
    light = generate_numbers_sequence("5555", 200, source=train_digits, seed=2,
                                      augment=Contrast(ink=0.5, contrast=0.0, brightness=0.0, p=1.0))
    assert light.min() > plain.min() + 0.05
    noisy = generate_numbers_sequence("5555", 200, source=train_digits, seed=2, augment=GaussianNoise(p=1.0))
    ink = plain < 0.5
    assert abs(float(noisy[ink].mean() - plain[ink].mean())) < 0.02


def test_resolve_and_bad_arguments():
    assert isinstance(resolve("light"), Pipeline)
    assert resolve([Affine()]).augmenters[0].p == 0.5
    with pytest.raises(ValueError, match="augment: expected None, a Pipeline or one of 'light', 'default', 'heavy', got 'wild'"):
        resolve("wild")
    with pytest.raises(TypeError, match="augment: expected None, a preset name or a Pipeline, got int"):
        resolve(3)
    with pytest.raises(ValueError, match=r"p: expected a probability in \[0, 1\], got 1.5"):
        Affine(p=1.5)
    with pytest.raises(ValueError, match="strength: expected a number from 0 to 10, got -1"):
        GaussianBlur(strength=-1)
    with pytest.raises(TypeError, match="augmenters: expected Augmenter instances, got str"):
        Pipeline(["blur"])
    with pytest.raises(TypeError, match="augmenters: expected a list of Augmenter instances, got Affine; wrap it"):
        Pipeline(Affine())
    with pytest.raises(TypeError, match="augmenters: expected a list of Augmenter instances, got int$"):
        Pipeline(3)


@pytest.mark.parametrize("call, error, message", [
    (lambda p, g: p.augment_glyphs(np.zeros((28, 28), np.uint8), g), ValueError,
     r"^glyphs: expected shape \(n, 28, 28\), got \(28, 28\)$"),
    (lambda p, g: p.augment_glyphs(np.zeros((2, 28, 28), np.float32), g), TypeError,
     r"^glyphs: expected uint8 pixels \(0-255, ink high\), got float32$"),
    (lambda p, g: p.augment_glyphs([[0] * 28] * 28, g), TypeError, "^glyphs: expected a numpy array, got list$"),
    (lambda p, g: p.augment_glyphs(np.zeros((2, 28, 28), np.uint8), 0), TypeError,
     r"^rng: expected a numpy.random.Generator \(np.random.default_rng\(seed\)\), got int$"),
    (lambda p, g: p.augment_glyphs(np.zeros((3, 28, 28), np.uint8), g, writers=[0, 1]), ValueError,
     r"^writers: expected 3 ints >= 0 \(one sequence number per glyph\), got shape \(2,\)$"),
    (lambda p, g: p.augment_glyphs(np.zeros((3, 28, 28), np.uint8), g, writers=[0, -1, 1]), ValueError,
     r"^writers: expected 3 ints >= 0 .*, got -1$"),
    (lambda p, g: p.augment_glyphs(np.zeros((2, 28, 28), np.uint8), g, writers=[0.0, 1.0]), ValueError,
     r"^writers: expected 2 ints >= 0 .*, got dtype float64$"),
    (lambda p, g: p.augment_images(np.zeros((2, 28, 90), np.uint8), g), TypeError,
     r"^images: expected float pixels \(1.0 white paper\), got uint8$"),
    (lambda p, g: p.augment_images(np.ones((28, 90), np.float32), g), ValueError,
     r"^images: expected shape \(B, 28, W\), got \(28, 90\)$"),
    (lambda p, g: p.augment_images(np.broadcast_to(np.ones((28, 90), np.float32), (2, 28, 90)), g), ValueError,
     r"^images: expected a writable array \(they are augmented in place\), got a read-only one$"),
])
def test_a_pipeline_names_what_it_cannot_augment(call, error, message):
    with pytest.raises(error, match=message):
        call(resolve("heavy"), np.random.default_rng(0))


def test_params_then_a_plain_function_on_any_array():
    from seqgen.augment import functional

    images = np.ones((5, 28, 40), np.float32)
    noise = GaussianNoise(p=1.0)
    params = noise.params(images.shape, np.random.default_rng(0))
    assert params["index"].tolist() == [0, 1, 2, 3, 4] and params["offsets"].shape == (5,)
    noise_of = functional.noise_from_bank(params["bank"], params["offsets"], (28, 40))
    assert noise_of.shape == (5, 28, 40)
    expected = functional.add_noise(images, noise_of, params["scale"])
    np.testing.assert_array_equal(noise.transform(images.copy(), params), expected)
    np.testing.assert_array_equal(noise.apply(images.copy(), np.random.default_rng(0)), expected)  # the same draws


def test_glyph_and_image_augmenters_are_two_base_classes():
    from seqgen.augment import GeometricAugmenter, GlyphAugmenter, ImageAugmenter

    assert all(issubclass(c, GlyphAugmenter) and not issubclass(c, ImageAugmenter) for c in GLYPH_LEVEL)
    assert all(issubclass(c, ImageAugmenter) for c in ALL if c not in GLYPH_LEVEL)
    assert {c for c in ALL if issubclass(c, GeometricAugmenter)} == {Affine, Size, Elastic, WriterStyle}


@pytest.mark.parametrize("make, message", [
    (lambda: Affine(rotation=float("inf")), "rotation: expected a finite number >= 0 and <= 180, got inf"),
    (lambda: Affine(scale=1.5), "scale: expected a finite number >= 0 and <= 0.9, got 1.5"),
    (lambda: Elastic(sigma=0), "sigma: expected a finite number > 0 and <= 28, got 0"),
    (lambda: GaussianNoise(sigma=-1), "sigma: expected a finite number >= 0 and <= 1, got -1"),
    (lambda: ScanDegradation(levels=1), r"levels: expected an int in \[2, 256\], got 1"),
    (lambda: GaussianBlur(strength=float("nan")), "strength: expected a number from 0 to 10, got nan"),
    (lambda: GaussianBlur(strength=10.5), "strength: expected a number from 0 to 10, got 10.5"),
    (lambda: StrokeWidth(strength=1e5), "strength: expected a number from 0 to 10, got 100000.0"),
    (lambda: Contrast(ink="a lot"), "ink: expected a finite number >= 0 and <= 1, got 'a lot'"),
])
def test_settings_are_checked_when_an_augmenter_is_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# --------------------------------------------------------------------------- writer style, forms, JPEG


def slants(glyphs: np.ndarray) -> np.ndarray:
    """Each glyph's slant: the regression of ink column on ink row (second moments)."""
    y, x = np.mgrid[:28, :28].astype(np.float64)
    w = glyphs.astype(np.float64)
    total = w.sum(axis=(1, 2))
    my, mx = (w * y).sum(axis=(1, 2)) / total, (w * x).sum(axis=(1, 2)) / total
    dy, dx = y - my[:, None, None], x - mx[:, None, None]
    return (w * dx * dy).sum(axis=(1, 2)) / (w * dy * dy).sum(axis=(1, 2))


def test_writer_style_gives_the_digits_of_a_sequence_one_slant(train_digits):
    rng = np.random.default_rng(5)
    glyphs = train_digits.images[rng.integers(0, len(train_digits), 600)]
    writers = np.repeat(np.arange(60), 10)  # 60 sequences of 10 digits
    before = slants(glyphs)
    per_sequence = Pipeline([WriterStyle(slant=0.3, size=0, stroke=0, ink=0, p=1.0)])
    per_glyph = Pipeline([Affine(rotation=0, shear=0.3, scale=0, translate=0, baseline=0, p=1.0)])
    spread = {}
    for name, pipeline in (("sequence", per_sequence), ("glyph", per_glyph)):
        change = (slants(pipeline.augment_glyphs(glyphs, np.random.default_rng(1), writers)) - before).reshape(60, 10)
        spread[name] = (change.std(axis=1).mean(), change.mean(axis=1).std())  # within, between sequences
    assert spread["sequence"][0] < 0.4 * spread["glyph"][0]  # one hand: the digits agree
    assert spread["sequence"][1] > 1.5 * spread["glyph"][1]  # and hands differ


def test_writer_style_strokes_and_ink_follow_the_writer(train_digits):
    rng = np.random.default_rng(6)
    glyphs = train_digits.images[rng.integers(0, len(train_digits), 400)]
    writers = np.repeat(np.arange(40), 10)
    style = WriterStyle(slant=0, size=0, stroke=1.0, ink=0.5, jitter=0.1, p=1.0)
    out = Pipeline([style]).augment_glyphs(glyphs, np.random.default_rng(2), writers)
    ink_area = ((out > 64).sum(axis=(1, 2)) / np.maximum((glyphs > 64).sum(axis=(1, 2)), 1)).reshape(40, 10)
    darkest = out.reshape(40, 10, -1).max(axis=2)
    assert ink_area.std(axis=1).mean() < 0.5 * ink_area.mean(axis=1).std()  # thick or thin per writer
    assert darkest.std(axis=1).mean() < 0.5 * darkest.mean(axis=1).std()  # dark or light ink per writer


@pytest.mark.parametrize("kind", FormField.KINDS)
def test_form_fields_are_printed_under_and_between_the_digits(train_digits, kind):
    plain, labels, boxes = phones(train_digits, None, n=30, width=220)
    form = Pipeline([FormField(kinds=(kind,), darkness=1.0, p=1.0)])
    images, labels2, boxes2 = phones(train_digits, form, n=30, width=220)
    assert labels2 == labels and boxes2.tobytes() == boxes.tobytes()  # labels and boxes stay
    for before, after, box in zip(plain, images, boxes):
        changed = before != after
        assert changed.any() and (after <= before).all()  # printed below the ink: only darker
        rows = np.flatnonzero(changed.any(axis=1))
        base = rows.max()
        lowest = int(box[:, 3].max())  # one past the lowest ink row; the line goes 0-2 rows lower, on the image
        assert min(lowest, 27) <= base <= min(lowest + 2, 27)
        line = np.flatnonzero(changed[base])
        if kind == "dotted":
            assert (line % 3 == 0).all() and len(line) > 0.25 * 220
        if kind == "comb":
            ticks = np.flatnonzero(changed[base - 5])
            assert len(ticks) >= 10  # between the 11 digits, and at the ends
            for x in ticks:  # between boxes: at most a box's edge columns, where resampled boxes overlap
                assert not ((box[:, 0] + 2 < x) & (x < box[:, 2] - 3)).any()
        else:
            assert list(rows) == [base]


def test_jpeg_of_the_stack_equals_one_image_at_a_time(train_digits):
    import cv2

    from seqgen.augment.functional import jpeg

    images = generate_phone_numbers(12, 150, source=train_digits, seed=3)[0]
    for quality in (10, 50, 90):
        stacked = jpeg(images, quality)
        for image, out in zip(images, stacked):
            ok, data = cv2.imencode(".jpg", np.rint(image * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert np.array_equal(np.rint(out * 255).astype(np.uint8), cv2.imdecode(data, cv2.IMREAD_GRAYSCALE))
    error = {q: np.abs(jpeg(images, q) - images).mean() for q in (10, 50, 90)}
    assert error[10] > error[50] > error[90] > 0  # lower quality, more artefacts


def test_jpeg_saturates_values_outside_the_page_instead_of_wrapping_them(train_digits):
    """Noise or brightness before JPEG leaves pixels above 1 or below 0; they are encoded as white and
    black (the same as the clipped image), not wrapped around to the other end of the grey scale."""
    from seqgen.augment.functional import jpeg

    images = generate_phone_numbers(6, 150, source=train_digits, seed=3)[0]
    noisy = images + np.random.default_rng(0).normal(0, 0.1, images.shape).astype(np.float32)
    assert (noisy > 1).mean() > 0.2 and (noisy < 0).any()
    np.testing.assert_array_equal(jpeg(noisy, 90), jpeg(np.clip(noisy, 0, 1), 90))
    paper = images == 1
    assert jpeg(noisy, 90)[paper].mean() > 0.95  # white stays white (0.957; wrapped, it averaged 0.507)


@pytest.mark.parametrize("preset, most", [("light", 0.005), ("default", 0.02), ("heavy", 0.03)])
def test_presets_keep_the_paper_light(train_digits, preset, most):
    """Paper stays paper: only salt-and-pepper, form lines and the darkest backgrounds turn a pixel of
    the blank page darker than 0.3 (measured 0.14%, 0.75%, 1.2%; heavy's JPEG once wrapped noisy paper to
    black: 10%)."""
    blank = generate_phone_numbers(500, 200, (2, 10), source=train_digits, seed=4)[0] == 1
    images = generate_phone_numbers(500, 200, (2, 10), source=train_digits, seed=4, augment=preset)[0]
    assert (images[blank] < 0.3).mean() < most


def test_new_augmenters_are_seeded(train_digits):
    for augmenter in (WriterStyle(p=0.7), FormField(p=0.7), JpegArtefacts(p=0.7)):
        a, b, c = (phones(train_digits, Pipeline([augmenter]), seed=s)[0] for s in (3, 3, 4))
        assert a.tobytes() == b.tobytes() != c.tobytes()


@pytest.mark.parametrize(("make", "message"), [
    (lambda: FormField(kinds=("grid",)), "kinds: expected some of 'baseline', 'dotted', 'comb'"),
    (lambda: JpegArtefacts(quality=(50, 10)), "quality: expected 1 <= lo <= hi <= 100"),
    (lambda: JpegArtefacts(quality="high"), "quality: expected a pair"),
    (lambda: WriterStyle(size=1.5), "size: expected a finite number >= 0 and <= 0.9"),
])
def test_new_settings_are_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_augmented_bytes_do_not_depend_on_threads(train_digits):
    from seqgen.generate import CHUNK_SIZE

    for n in (300, 2 * CHUNK_SIZE + 5):  # parts of one chunk, then whole chunks, on two threads
        one = generate_phone_numbers(n, 150, (-2, 8), source=train_digits, seed=8, augment="heavy", threads=1)[0]
        two = generate_phone_numbers(n, 150, (-2, 8), source=train_digits, seed=8, augment="heavy", threads=2)[0]
        assert one.tobytes() == two.tobytes()


IMAGE_LEVEL = [GaussianNoise, SaltPepper, GaussianBlur, Contrast, Background, ScanDegradation, FormField, JpegArtefacts]


class _Stripe(ImageAugmenter):  # does not name its per-image params
    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        return {"index": index, "column": rng.integers(0, shape[2], len(index))}

    def transform(self, images, params):
        images[params["index"], :, params["column"]] = 0.5
        return images


def test_image_augmenters_by_block_equal_the_whole_batch(train_digits, monkeypatch):
    """Blocks of 1, 3 and 7 images give the bytes of one block for the whole batch, with every
    image augmenter on, a custom one that cannot be split in the middle, or at the end."""
    from seqgen.augment import base

    images, _, boxes = phones(train_digits, None, n=23, width=120)
    for pipeline in (Pipeline([cls(p=0.6) for cls in IMAGE_LEVEL]),
                     Pipeline([Contrast(p=0.7), _Stripe(p=0.5), SaltPepper(p=0.6, amount=0.2), GaussianBlur(p=0.5)]),
                     Pipeline([GaussianNoise(p=0.7), _Stripe(p=0.5, strength=1.0)])):
        results = []
        for block in (1, 3, 7, 10**9):
            monkeypatch.setattr(base, "IMAGE_BLOCK_PIXELS", block * 28 * 120)
            results.append(pipeline.augment_images(images.copy(), np.random.default_rng(11), boxes))
        assert all(r.tobytes() == results[-1].tobytes() for r in results)
        assert results[-1].min() >= 0.0 and results[-1].max() <= 1.0
        assert results[-1].tobytes() != images.tobytes()


def test_stroke_steps_past_saturation_change_nothing_and_cost_nothing(train_digits):
    from seqgen.augment import functional as F

    glyphs = train_digits.images[:64]
    for thinner, extreme in ((False, glyphs.max(axis=(1, 2))), (True, glyphs.min(axis=(1, 2)))):
        saturated = F.stroke_width(glyphs, F.SATURATING_STEPS, thinner=thinner)
        assert np.array_equal(saturated, np.broadcast_to(extreme[:, None, None], glyphs.shape))
        assert np.array_equal(F.stroke_width(glyphs, F.SATURATING_STEPS - 0.5, thinner=thinner), saturated)
        # a million steps: the same glyphs, not a row a million columns wide per glyph
        assert np.array_equal(F.stroke_width(glyphs, 1e6, thinner=thinner), saturated)


@pytest.mark.parametrize("call, message", [
    (lambda F, x: F.gaussian_blur(x, 101), "sigma: expected a number from 0 to 100, got 101"),
    (lambda F, x: F.gaussian_blur(x, -1.0), "sigma: expected a number from 0 to 100, got -1.0"),
    (lambda F, x: F.gaussian_blur(x, float("nan")), "sigma: expected a number from 0 to 100, got nan"),
    (lambda F, x: F.jpeg(x, 101), "quality: expected an int from 0 to 100, got 101"),
    (lambda F, x: F.jpeg(x, 50.5), "quality: expected an int from 0 to 100, got 50.5"),
])
def test_functional_kernels_check_their_scalar_settings(call, message):
    from seqgen.augment import functional as F

    images = np.full((2, 28, 40), 0.5, np.float32)
    with pytest.raises(ValueError, match=f"^{message}$"):
        call(F, images)
    assert F.jpeg(images, np.int64(100)).shape == F.gaussian_blur(images, 100).shape == images.shape
