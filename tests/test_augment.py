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
    GaussianBlur,
    GaussianNoise,
    Pipeline,
    SaltPepper,
    ScanDegradation,
    Size,
    StrokeWidth,
    resolve,
)

ALL = [Affine, Size, Elastic, StrokeWidth, GaussianNoise, SaltPepper, GaussianBlur, Contrast, Background, ScanDegradation]
GLYPH_LEVEL = [Affine, Size, Elastic, StrokeWidth]


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
    pipeline = Pipeline([Affine(p=1.0, strength=1.5), Size(p=1.0), Elastic(p=1.0), StrokeWidth(p=1.0)])
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
        assert np.abs(out.astype(int) - np.rint(expected)).max() <= 1  # float32 coordinates
    assert (warped != glyphs).any()


def test_elastic_field_is_gaussian_filtered_noise():
    from scipy.ndimage import gaussian_filter

    field = Elastic(alpha=1.0, sigma=3.0, p=1.0).params((6, 28, 28), np.random.default_rng(2))["field"]
    reference = np.random.default_rng(2)
    reference.random(6)  # the selection draw comes first
    noise = reference.uniform(-1, 1, (6, 2, 28, 28)).astype(np.float32)
    expected = gaussian_filter(noise, sigma=(0, 0, 3.0, 3.0), mode="constant", truncate=2.5)
    np.testing.assert_allclose(field, expected, atol=1e-6)


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
    with pytest.raises(ValueError, match="strength: expected a number >= 0, got -1"):
        GaussianBlur(strength=-1)
    with pytest.raises(TypeError, match="augmenters: expected Augmenter instances, got str"):
        Pipeline(["blur"])


def test_params_then_a_plain_function_on_any_array():
    from seqgen.augment import functional

    images = np.ones((5, 28, 40), np.float32)
    noise = GaussianNoise(p=1.0)
    params = noise.params(images.shape, np.random.default_rng(0))
    assert params["index"].tolist() == [0, 1, 2, 3, 4] and params["noise"].shape == (5, 28, 40)
    expected = functional.add_noise(images, params["noise"], params["scale"])
    np.testing.assert_array_equal(noise.transform(images.copy(), params), expected)
    np.testing.assert_array_equal(noise.apply(images.copy(), np.random.default_rng(0)), expected)  # the same draws


def test_glyph_and_image_augmenters_are_two_base_classes():
    from seqgen.augment import GeometricAugmenter, GlyphAugmenter, ImageAugmenter

    assert all(issubclass(c, GlyphAugmenter) and not issubclass(c, ImageAugmenter) for c in GLYPH_LEVEL)
    assert all(issubclass(c, ImageAugmenter) for c in ALL if c not in GLYPH_LEVEL)
    assert {c for c in ALL if issubclass(c, GeometricAugmenter)} == {Affine, Size, Elastic}


@pytest.mark.parametrize("make, message", [
    (lambda: Affine(rotation=float("inf")), "rotation: expected a finite number >= 0 and <= 180, got inf"),
    (lambda: Affine(scale=1.5), "scale: expected a finite number >= 0 and <= 0.9, got 1.5"),
    (lambda: Elastic(sigma=0), "sigma: expected a finite number > 0 and <= 28, got 0"),
    (lambda: GaussianNoise(sigma=-1), "sigma: expected a finite number >= 0 and <= 1, got -1"),
    (lambda: ScanDegradation(levels=1), r"levels: expected an int in \[2, 256\], got 1"),
    (lambda: GaussianBlur(strength=float("nan")), "strength: expected a number >= 0, got nan"),
    (lambda: Contrast(ink="a lot"), "ink: expected a finite number >= 0 and <= 1, got 'a lot'"),
])
def test_settings_are_checked_when_an_augmenter_is_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()
