"""Base classes: an augmenter draws its parameters (``params``), then applies them (``apply``).

Glyph augmenters work on ``(n, 28, 28)`` uint8 glyphs before layout; image
augmenters on ``(B, 28, W)`` float32 images after drawing.  Every augmenter has
a probability ``p`` (per glyph or image) and a ``strength`` scaling its
magnitudes (0 = no change, 1 = the documented defaults).
"""

from __future__ import annotations

import numbers

import numpy as np

from . import functional as F

_GLYPH_BATCH = 512  # glyphs resampled per scipy call: keeps the coordinate arrays in cache


def magnitude(value, name: str, high: float = float("inf"), positive: bool = False) -> float:
    """A finite setting ``value`` in ``[0, high]`` (``(0, high]`` when ``positive``), or a ValueError naming it."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and 0 <= value <= high
    if not ok or value == float("inf") or (positive and value == 0):
        allowed = f"a finite number {'>' if positive else '>='} 0" + ("" if high == float("inf") else f" and <= {high:g}")
        raise ValueError(f"{name}: expected {allowed}, got {value!r}")
    return float(value)


class Augmenter:
    """Base class: ``p`` is the chance each item is changed, ``strength`` scales magnitudes.

    Subclasses implement ``params(shape, rng)``, which draws everything random
    (the changed items' ``index`` first) into a dict, and ``transform(x, params)``,
    which applies it through :mod:`seqgen.augment.functional` and returns ``x``.
    """

    def __init__(self, p: float = 0.5, strength: float = 1.0):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p}")
        if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 <= strength < float("inf"):
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

    def params(self, shape: tuple[int, ...], rng: np.random.Generator) -> dict:
        """Draw the parameters for a batch of ``shape``; ``"index"`` lists the items changed."""
        raise NotImplementedError

    def transform(self, x: np.ndarray, params: dict) -> np.ndarray:
        """Apply drawn ``params`` to ``x`` (in place where possible); returns the result."""
        raise NotImplementedError

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw parameters, then apply them."""
        return self.transform(x, self.params(x.shape, rng))

    def _params(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in ("p", "strength")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in {"p": self.p, "strength": self.strength, **self._params()}.items())
        return f"{type(self).__name__}({args})"


class GlyphAugmenter(Augmenter):
    """Changes ``(n, 28, 28)`` uint8 glyphs (ink high) before they are laid out."""


class ImageAugmenter(Augmenter):
    """Changes ``(B, 28, W)`` float32 images (1.0 white) after they are drawn."""


class GeometricAugmenter(GlyphAugmenter):
    """A glyph warp; its params hold ``forward`` ``(m, 2, 2)`` and ``shift`` ``(m, 2)`` maps about the
    glyph centre, or a displacement ``field`` ``(m, 2, 28, 28)``, for the ``m`` glyphs in ``index``.

    A :class:`Pipeline` combines all its geometric augmenters into one resampling per glyph.
    """

    def transform(self, glyphs, params):
        m = len(params["index"])
        forward = params.get("forward", np.broadcast_to(np.eye(2), (m, 2, 2)))
        shift = params.get("shift", np.zeros((m, 2)))
        glyphs[params["index"]] = F.warp_glyphs(glyphs[params["index"]], forward, shift, params.get("field"))
        return glyphs


class Pipeline:
    """A sequence of augmenters, applied in order within their level.

    Geometric glyph augmenters are combined into one resampling per glyph, so a
    glyph is interpolated once however many of them fire.
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
                part[:] = _warp_together(part, geometric, rng)
        for a in self.augmenters:
            if isinstance(a, GlyphAugmenter) and a.active and not isinstance(a, GeometricAugmenter):
                glyphs = a.apply(glyphs, rng)
        return glyphs

    def augment_images(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment ``(B, 28, W)`` float32 images in place; the result is clipped to [0, 1]."""
        changed = False
        for a in self.augmenters:
            if isinstance(a, ImageAugmenter) and a.active:
                images = a.apply(images, rng)
                changed = True
        if changed:
            np.clip(images, 0.0, 1.0, out=images)
        return images


def _warp_together(glyphs: np.ndarray, geometric: list[GeometricAugmenter], rng: np.random.Generator) -> np.ndarray:
    """Compose the warps of several geometric augmenters (in order), then resample each glyph once."""
    m = len(glyphs)
    forward = np.broadcast_to(np.eye(2), (m, 2, 2)).copy()
    shift = np.zeros((m, 2))
    field = None
    touched = np.zeros(m, bool)
    for a in geometric:  # image order: the first augmenter acts first
        params = a.params(glyphs.shape, rng)
        chosen = params["index"]
        touched[chosen] = True
        if "forward" in params:
            lin, t = params["forward"], params["shift"]
            forward[chosen] = lin @ forward[chosen]
            shift[chosen] = np.einsum("mij,mj->mi", lin, shift[chosen]) + t
        if "field" in params:
            # displacements act last in image order: they sample the already transformed glyph
            field = np.zeros((m, 2, F.GLYPH, F.GLYPH), np.float32) if field is None else field
            field[chosen] += params["field"]
    idx = np.flatnonzero(touched)
    if len(idx):
        glyphs[idx] = F.warp_glyphs(glyphs[idx], forward[idx], shift[idx], None if field is None else field[idx])
    return glyphs
