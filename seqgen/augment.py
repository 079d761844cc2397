"""Augmenters: make composed sequences vary like real handwriting and real scans.

Two levels, applied by :func:`seqgen.compose.render_batch` between the stages of
:mod:`seqgen.layout` and :mod:`seqgen.raster`:

* glyph level, to each sampled digit before layout, on ``(n, 28, 28)`` uint8
  glyphs (ink high): :class:`Affine`, :class:`Size`, :class:`Elastic`
  (geometric: combined into one resampling per glyph) and
  :class:`StrokeWidth`;
* image level, after composition, on ``(B, 28, W)`` float32 images
  (1.0 white): :class:`GaussianNoise`, :class:`SaltPepper`,
  :class:`GaussianBlur`, :class:`Contrast`, :class:`Background`,
  :class:`ScanDegradation`.

Every augmenter has a probability ``p`` (per glyph or per image) and a
``strength`` that scales all its magnitudes (0 = no change, 1 = the documented
defaults).  All randomness comes from the ``numpy.random.Generator`` handed to
it.  A :class:`Pipeline` composes augmenters; :data:`PRESETS` names three.
Labels never change; boxes are measured after the glyph transforms.
"""

from __future__ import annotations

import functools

import numpy as np

from .data import ink_bounds

_GLYPH = 28
_GLYPH_BATCH = 512  # glyphs resampled per scipy call: keeps the coordinate arrays in cache


class Augmenter:
    """Base class: ``p`` is the chance each glyph/image is changed, ``strength`` scales magnitudes."""

    level = "image"

    def __init__(self, p: float = 0.5, strength: float = 1.0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p}")
        if strength < 0:
            raise ValueError(f"strength: expected a number >= 0, got {strength}")
        self.p = float(p)
        self.strength = float(strength)

    @property
    def active(self) -> bool:
        """False when the augmenter cannot change anything (``p`` or ``strength`` is 0)."""
        return self.p > 0 and self.strength > 0

    def select(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Indices of the items this augmenter changes."""
        return np.flatnonzero(rng.random(n) < self.p)

    def _params(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in ("p", "strength")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in {"p": self.p, "strength": self.strength, **self._params()}.items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------- glyph level


class GeometricAugmenter(Augmenter):
    """A glyph-level geometric transform, expressed as a sampling map (output -> source pixel)."""

    level = "glyph"

    def matrices(self, m: int, rng: np.random.Generator) -> np.ndarray | None:
        """``(m, 2, 2)`` linear maps and ``(m, 2)`` shifts about the glyph centre, or None."""
        return None

    def displacements(self, m: int, rng: np.random.Generator) -> np.ndarray | None:
        """``(m, 2, 28, 28)`` per-pixel source offsets, or None."""
        return None


class Affine(GeometricAugmenter):
    """Rotation, shear, anisotropic scale and a small shift (with baseline jitter).

    Parameters
    ----------
    rotation : float
        Maximum rotation in degrees (uniform in ``±rotation``).
    shear : float
        Maximum horizontal shear (slant), as a tangent.
    scale : float
        Maximum relative change of width and of height, drawn independently.
    translate : float
        Maximum horizontal shift in pixels.
    baseline : float
        Maximum vertical shift in pixels (the digit rides above or below the line).
    """

    def __init__(self, rotation=10.0, shear=0.2, scale=0.1, translate=1.5, baseline=2.0, p=0.5, strength=1.0):
        super().__init__(p, strength)
        self.rotation, self.shear, self.scale = rotation, shear, scale
        self.translate, self.baseline = translate, baseline

    def matrices(self, m, rng):
        s = self.strength
        angle = np.deg2rad(rng.uniform(-1, 1, m) * self.rotation * s)
        shear = rng.uniform(-1, 1, m) * self.shear * s
        sy, sx = (1 + rng.uniform(-1, 1, (2, m)) * self.scale * s)
        cos, sin = np.cos(angle), np.sin(angle)
        scaling = np.zeros((m, 2, 2))
        scaling[:, 0, 0], scaling[:, 1, 1] = sy, sx
        slant = np.broadcast_to(np.eye(2), (m, 2, 2)).copy()
        slant[:, 1, 0] = shear  # (row, col): the column shifts in proportion to the row
        rotate = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)
        forward = rotate @ slant @ scaling
        shift = np.stack([rng.uniform(-1, 1, m) * self.baseline * s, rng.uniform(-1, 1, m) * self.translate * s], 1)
        return forward, shift


class Size(GeometricAugmenter):
    """Uniform size variation between the digits of one sequence.

    Parameters
    ----------
    variation : float
        Maximum relative change of size (the same factor for width and height).
    """

    def __init__(self, variation=0.15, p=0.5, strength=1.0):
        super().__init__(p, strength)
        self.variation = variation

    def matrices(self, m, rng):
        factor = 1 + rng.uniform(-1, 1, m) * self.variation * self.strength
        return factor[:, None, None] * np.eye(2), np.zeros((m, 2))


class Elastic(GeometricAugmenter):
    """Elastic distortion (Simard, Steinkraus & Platt, 2003): smoothed random displacement fields.

    Parameters
    ----------
    alpha : float
        Displacement scale in pixels.
    sigma : float
        Smoothness (Gaussian sigma, pixels) of the field.
    """

    def __init__(self, alpha=8.0, sigma=3.0, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.alpha, self.sigma = alpha, sigma

    def displacements(self, m, rng):
        noise = rng.uniform(-1, 1, (m, 2, _GLYPH, _GLYPH)).astype(np.float32)
        smooth = _smoothing_matrix(float(self.sigma))
        # the Gaussian filter along rows then columns, as two matrix products
        field = smooth @ (noise.reshape(-1, _GLYPH) @ smooth.T).reshape(noise.shape)
        return field * np.float32(self.alpha * self.strength)


@functools.lru_cache(maxsize=16)
def _smoothing_matrix(sigma: float) -> np.ndarray:
    """``(28, 28)`` float32 matrix of ``scipy.ndimage.gaussian_filter1d`` (zero outside, truncated
    at 2.5 sigma) on a 28-pixel line: ``K @ x`` filters ``x``."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.eye(_GLYPH), sigma, axis=0, mode="constant", truncate=2.5).astype(np.float32)


class StrokeWidth(Augmenter):
    """Thicker or thinner strokes: grey-level dilation or erosion (scipy.ndimage) with a 3x3 cross.

    Parameters
    ----------
    growth : float
        Pixels added to each side of a stroke at strength 1; a fraction blends
        the last step in, so the change grows smoothly with ``strength``.
    thin : float
        Share of the changed glyphs that get thinner instead of thicker (by
        half as much: MNIST strokes are only 2-3 pixels wide).
    """

    level = "glyph"

    def __init__(self, growth=1.0, thin=0.4, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.growth, self.thin = growth, thin

    def apply(self, glyphs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.ndimage import grey_dilation, grey_erosion

        chosen = self.select(len(glyphs), rng)
        thinner = rng.random(len(chosen)) < self.thin
        cross = np.zeros((1, 3, 3), bool)
        cross[0, 1, :] = cross[0, :, 1] = True
        for op, idx, amount in ((grey_dilation, chosen[~thinner], self.growth * self.strength),
                                (grey_erosion, chosen[thinner], 0.5 * self.growth * self.strength)):
            if not len(idx) or amount <= 0:
                continue
            part = glyphs[idx]
            for _ in range(int(amount)):
                part = op(part, footprint=cross)
            fraction = amount - int(amount)
            if fraction > 0:
                part = np.rint(part + fraction * (op(part, footprint=cross).astype(np.float32) - part)).astype(np.uint8)
            glyphs[idx] = part
        return glyphs


def _warp_glyphs(glyphs: np.ndarray, forward: np.ndarray, shift: np.ndarray, field: np.ndarray | None) -> np.ndarray:
    """Resample ``(m, 28, 28)`` glyphs: output pixel q shows the source at ``A^-1 (q + d(q) - c - t) + c``.

    One ``scipy.ndimage.map_coordinates`` call (bilinear) for the whole stack:
    the glyphs are laid out as one tall 2-D image with a blank border around
    each, and coordinates that leave a glyph are clamped onto that border.
    ``field`` (the displacements ``d``, ``(m, 2, 28, 28)``) may be None, and
    is only applied to the glyphs where it is not all zero.
    """
    from scipy.ndimage import map_coordinates

    m = len(glyphs)
    centre = (_GLYPH - 1) / 2
    inverse = np.linalg.inv(forward)
    # source (in the bordered glyph) = inverse @ (q - c - t) + c + 1: linear in the pixel's row and column
    constant = (centre + 1) - np.einsum("mij,mj->mi", inverse, shift + centre)
    inverse, constant = inverse.astype(np.float32), constant.astype(np.float32)
    grid = np.arange(_GLYPH, dtype=np.float32)
    coords = np.empty((2, m, _GLYPH, _GLYPH), np.float32)  # (row, col) in the stacked, bordered glyphs
    for axis in (0, 1):
        by_row = inverse[:, axis, 0, None, None] * grid[:, None] + constant[:, axis, None, None]
        np.add(by_row, inverse[:, axis, 1, None, None] * grid, out=coords[axis])
    if field is not None:
        bent = np.flatnonzero(field.any(axis=(1, 2, 3)))
        coords[:, bent] += np.einsum("mij,mjyx->imyx", inverse[bent], field[bent])
    np.clip(coords, 0, _GLYPH + 1, out=coords)
    # Only pixels that sample next to the source ink can be nonzero: [first, last + 1) in bordered
    # coordinates, per axis (bilinear reads floor(c) and floor(c) + 1).  The rest stay 0.
    rows, cols = ink_bounds(glyphs.max(axis=2))[:, :, None, None], ink_bounds(glyphs.max(axis=1))[:, :, None, None]
    inked = (coords[0] >= rows[:, 0]) & (coords[0] < rows[:, 1] + 1) & (coords[1] >= cols[:, 0]) & (coords[1] < cols[:, 1] + 1)
    coords[0] += (np.arange(m, dtype=np.float32) * (_GLYPH + 2))[:, None, None]
    padded = np.zeros((m, _GLYPH + 2, _GLYPH + 2), np.uint8)
    padded[:, 1:-1, 1:-1] = glyphs
    out = np.zeros((m, _GLYPH, _GLYPH), np.uint8)
    sampled = map_coordinates(padded.reshape(-1, _GLYPH + 2), coords[:, inked], order=1, output=np.float32, prefilter=False)
    out[inked] = np.rint(sampled)
    return out


# --------------------------------------------------------------------------- image level


class GaussianNoise(Augmenter):
    """Additive Gaussian noise; ``sigma`` is the maximum standard deviation (drawn per image)."""

    def __init__(self, sigma=0.06, p=0.5, strength=1.0):
        super().__init__(p, strength)
        self.sigma = sigma

    def apply(self, images, rng):
        idx = self.select(len(images), rng)
        scale = (rng.uniform(0.3, 1.0, len(idx)) * self.sigma * self.strength).astype(np.float32)
        noise = rng.standard_normal((len(idx),) + images.shape[1:], dtype=np.float32)
        images[idx] += noise * scale[:, None, None]
        return images


class SaltPepper(Augmenter):
    """Salt-and-pepper noise: a share ``amount`` of the pixels turns white or black."""

    def __init__(self, amount=0.02, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.amount = amount

    def apply(self, images, rng):
        idx = self.select(len(images), rng)
        u = rng.random((len(idx),) + images.shape[1:], dtype=np.float32)
        amount = np.float32(self.amount * self.strength)
        sub = images[idx]
        sub[u < amount / 2] = 0.0
        sub[(u >= amount / 2) & (u < amount)] = 1.0
        images[idx] = sub
        return images


class GaussianBlur(Augmenter):
    """Gaussian blur (scipy.ndimage) with a sigma drawn per image up to ``sigma`` (quantised to 0.1 px)."""

    def __init__(self, sigma=1.0, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.sigma = sigma

    def apply(self, images, rng):
        from scipy.ndimage import gaussian_filter

        idx = self.select(len(images), rng)
        sigmas = np.round(rng.uniform(0.3, 1.0, len(idx)) * self.sigma * self.strength, 1)
        for s in np.unique(sigmas):
            group = idx[sigmas == s]
            if s > 0:
                images[group] = gaussian_filter(images[group], sigma=(0, s, s), mode="nearest")
        return images


class Contrast(Augmenter):
    """Ink darkness, contrast and brightness changes (pen pressure, exposure).

    Parameters
    ----------
    ink : float
        Maximum share by which the ink gets lighter (0.4: ink at 60% to 100%).
    contrast : float
        Maximum relative change of contrast about mid-grey.
    brightness : float
        Maximum shift of brightness.
    """

    def __init__(self, ink=0.4, contrast=0.3, brightness=0.1, p=0.5, strength=1.0):
        super().__init__(p, strength)
        self.ink, self.contrast, self.brightness = ink, contrast, brightness

    def apply(self, images, rng):
        idx = self.select(len(images), rng)
        s = self.strength
        darkness = 1 - rng.uniform(0, 1, len(idx)) * self.ink * s
        contrast = 1 + rng.uniform(-1, 1, len(idx)) * self.contrast * s
        brightness = rng.uniform(-1, 1, len(idx)) * self.brightness * s
        # image = 1 - ink; lighter ink, then contrast about 0.5 and a shift, in one affine map
        gain = (darkness * contrast).astype(np.float32)[:, None, None]
        offset = ((1 - darkness) * contrast + 0.5 * (1 - contrast) + brightness).astype(np.float32)[:, None, None]
        images[idx] = images[idx] * gain + offset
        return images


class Background(Augmenter):
    """Paper texture (smooth, low-frequency noise) or a lighting gradient darkening the page.

    Parameters
    ----------
    amplitude : float
        Maximum darkening of the background.
    gradient : float
        Share of the changed images that get a gradient instead of texture.
    """

    def __init__(self, amplitude=0.2, gradient=0.5, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.amplitude, self.gradient = amplitude, gradient

    def apply(self, images, rng):
        idx = self.select(len(images), rng)
        n, (h, w) = len(idx), images.shape[1:]
        # texture: the product of two smooth 1-D profiles (random knots, linear in between)
        rows = _smooth_profile(rng, n, h, knots=4)
        cols = _smooth_profile(rng, n, w, knots=max(2, w // 12))
        texture = rows[:, :, None] * cols[:, None, :]
        ramp = np.linspace(0, 1, w, dtype=np.float32)
        ramp = np.where((rng.random(n) < 0.5)[:, None], ramp, ramp[::-1])[:, None, :]
        use_ramp = (rng.random(n) < self.gradient)[:, None, None]
        texture = np.where(use_ramp, ramp, texture)
        amplitude = (rng.uniform(0.3, 1.0, n) * self.amplitude * self.strength).astype(np.float32)
        images[idx] *= 1 - amplitude[:, None, None] * texture
        return images


def _smooth_profile(rng: np.random.Generator, n: int, length: int, knots: int) -> np.ndarray:
    """``(n, length)`` float32 curves in [0, 1], linear between ``knots`` random values."""
    values = rng.random((n, knots), dtype=np.float32)
    position = np.linspace(0, knots - 1, length, dtype=np.float32)
    left = np.minimum(position.astype(np.intp), knots - 2)
    frac = position - left
    return values[:, left] * (1 - frac) + values[:, left + 1] * frac


class ScanDegradation(Augmenter):
    """A light scanner look: row banding, faint vertical streaks and coarse grey levels.

    Parameters
    ----------
    banding : float
        Maximum per-row brightness jitter.
    streaks : int
        Maximum number of faint vertical streaks.
    levels : int
        Grey levels kept at strength 1 (fewer = coarser quantisation).
    """

    def __init__(self, banding=0.04, streaks=3, levels=16, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.banding, self.streaks, self.levels = banding, streaks, levels

    def apply(self, images, rng):
        idx = self.select(len(images), rng)
        n, (h, w) = len(idx), images.shape[1:]
        s = self.strength
        sub = images[idx]
        sub *= (1 - rng.uniform(0, self.banding * s, (n, h, 1))).astype(np.float32)
        n_streaks = int(round(self.streaks * s))
        if n_streaks:
            cols = rng.integers(0, w, (n, n_streaks))
            depth = rng.uniform(0.05, 0.15, (n, n_streaks)).astype(np.float32)
            streak = np.ones((n, w), np.float32)
            np.minimum.at(streak, (np.arange(n)[:, None], cols), 1 - depth)
            sub *= streak[:, None, :]
        levels = max(2, int(round(256 - (256 - self.levels) * min(s, 1.0))))
        sub[:] = np.round(sub * (levels - 1)) / (levels - 1)
        images[idx] = sub
        return images


# --------------------------------------------------------------------------- pipeline


class Pipeline:
    """A sequence of augmenters, applied in order within their level.

    Geometric glyph augmenters (:class:`Affine`, :class:`Size`,
    :class:`Elastic`) are combined into one resampling per glyph, so a glyph
    is interpolated once however many of them fire.
    """

    def __init__(self, augmenters):
        augmenters = list(augmenters)
        for a in augmenters:
            if not isinstance(a, Augmenter):
                raise TypeError(f"augmenters: expected Augmenter instances, got {type(a).__name__}")
        self.augmenters = augmenters

    def __repr__(self) -> str:
        return "Pipeline([" + ", ".join(map(repr, self.augmenters)) + "])"

    def augment_glyphs(self, glyphs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment ``(n, 28, 28)`` uint8 glyphs; returns a new array (the source stays untouched)."""
        glyphs = glyphs.copy()
        geometric = [a for a in self.augmenters if isinstance(a, GeometricAugmenter) and a.active]
        if geometric:
            for start in range(0, len(glyphs), _GLYPH_BATCH):
                part = glyphs[start : start + _GLYPH_BATCH]
                part[:] = self._warp(part, geometric, rng)
        for a in self.augmenters:
            if a.level == "glyph" and a.active and not isinstance(a, GeometricAugmenter):
                glyphs = a.apply(glyphs, rng)
        return glyphs

    @staticmethod
    def _warp(glyphs, geometric, rng) -> np.ndarray:
        m = len(glyphs)
        forward = np.broadcast_to(np.eye(2), (m, 2, 2)).copy()
        shift = np.zeros((m, 2))
        field = None
        touched = np.zeros(m, bool)
        for a in geometric:  # image order: the first augmenter acts first
            chosen = a.select(m, rng)
            touched[chosen] = True
            maps = a.matrices(len(chosen), rng)
            if maps is not None:
                lin, t = maps
                forward[chosen] = lin @ forward[chosen]
                shift[chosen] = np.einsum("mij,mj->mi", lin, shift[chosen]) + t
            d = a.displacements(len(chosen), rng)
            if d is not None:
                # displacements act last in image order: they sample the already transformed glyph
                field = np.zeros((m, 2, _GLYPH, _GLYPH), np.float32) if field is None else field
                field[chosen] += d
        idx = np.flatnonzero(touched)
        if len(idx):
            glyphs[idx] = _warp_glyphs(glyphs[idx], forward[idx], shift[idx], None if field is None else field[idx])
        return glyphs

    def augment_images(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment ``(B, 28, W)`` float32 images in place; the result is clipped to [0, 1]."""
        changed = False
        for a in self.augmenters:
            if a.level == "image" and a.active:
                images = a.apply(images, rng)
                changed = True
        if changed:
            np.clip(images, 0.0, 1.0, out=images)
        return images


def _light() -> Pipeline:
    return Pipeline([
        Affine(rotation=5, shear=0.1, scale=0.05, translate=1, baseline=1, p=0.5),
        StrokeWidth(p=0.15),
        Contrast(ink=0.2, contrast=0.15, brightness=0.05, p=0.5),
        GaussianNoise(sigma=0.03, p=0.3),
    ])


def _default() -> Pipeline:
    return Pipeline([
        Affine(p=0.6),
        Size(p=0.5),
        Elastic(p=0.2),
        StrokeWidth(p=0.3),
        Contrast(p=0.5),
        Background(p=0.3),
        GaussianBlur(p=0.3),
        GaussianNoise(p=0.5),
        SaltPepper(p=0.1),
    ])


def _heavy() -> Pipeline:
    return Pipeline([
        Affine(rotation=15, shear=0.3, scale=0.15, translate=2, baseline=3, p=0.8),
        Size(variation=0.25, p=0.7),
        Elastic(alpha=10, p=0.4),
        StrokeWidth(growth=1.5, p=0.5),
        Contrast(ink=0.5, contrast=0.4, brightness=0.15, p=0.7),
        Background(amplitude=0.3, p=0.5),
        GaussianBlur(sigma=1.3, p=0.4),
        GaussianNoise(sigma=0.1, p=0.7),
        SaltPepper(amount=0.03, p=0.3),
        ScanDegradation(p=0.4),
    ])


#: Preset name -> factory of a new Pipeline.
PRESETS = {"light": _light, "default": _default, "heavy": _heavy}


def resolve(augment) -> Pipeline:
    """A preset name, a Pipeline, a single Augmenter or a list of augmenters, as a Pipeline."""
    if isinstance(augment, Pipeline):
        return augment
    if isinstance(augment, str):
        if augment not in PRESETS:
            raise ValueError(f"augment: expected None, a Pipeline or one of {', '.join(map(repr, PRESETS))}, got {augment!r}")
        return PRESETS[augment]()
    if isinstance(augment, Augmenter):
        return Pipeline([augment])
    if isinstance(augment, (list, tuple)):
        return Pipeline(augment)
    raise TypeError(f"augment: expected None, a preset name or a Pipeline, got {type(augment).__name__}")
