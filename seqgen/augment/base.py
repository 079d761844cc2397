"""Base classes: an augmenter draws its parameters (``params``), then applies them (``apply``).

Glyph augmenters work on ``(n, 28, 28)`` uint8 glyphs before layout; image
augmenters on ``(B, 28, W)`` float32 images after drawing.  Every augmenter has
a probability ``p`` (per glyph or image) and a ``strength`` scaling its
magnitudes (0 = no change, 1 = the documented defaults, at most :data:`MAX_STRENGTH`).
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Iterable

import numpy as np

from . import functional as F

#: The largest ``strength``: ten times the documented magnitudes, past which the kernels' memory
#: (blur padding, stroke steps) would grow without bound for no visible change.
MAX_STRENGTH = 10


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
        if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 <= strength <= MAX_STRENGTH:
            raise ValueError(f"strength: expected a number from 0 to {MAX_STRENGTH}, got {strength}")
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
    """Changes ``(B, 28, W)`` float32 images (1.0 white) after they are drawn.

    Each image is changed on its own.  A :class:`Pipeline` draws the parameters for a whole batch,
    then applies its augmenters to one block of images after another; an augmenter that names
    its per-image params in :attr:`per_image` can be split so (see :meth:`part`).
    """

    uses_boxes = False  # True: params(shape, rng, boxes) also gets the digit boxes
    #: The params holding one entry per changed image, in ``index`` order; None (an augmenter that
    #: does not say) keeps the whole batch together for it.
    per_image: tuple[str, ...] | None = None

    def part(self, params: dict, start: int, stop: int) -> dict:
        """``params`` of images ``start..stop-1`` alone, numbered from 0, for :meth:`transform` on
        ``images[start:stop]``; params not named in :attr:`per_image` are shared."""
        index = params["index"]
        lo, hi = np.searchsorted(index, [start, stop])
        own = {key: params[key][lo:hi] for key in self.per_image if params.get(key) is not None}
        return {**params, **own, "index": index[lo:hi] - start}

    @staticmethod
    def apply_to(images: np.ndarray, index: np.ndarray, op, *args) -> np.ndarray:
        """``images[index] = op(images[index], *args)``: ``op`` (a functional op taking ``out=``) changes the
        gathered copy in place, and it is put back; returns ``images``."""
        changed = images[index]
        images[index] = op(changed, *args, out=changed)
        return images


class GeometricAugmenter(GlyphAugmenter):
    """A glyph warp; its params hold ``forward`` ``(m, 2, 2)`` and ``shift`` ``(m, 2)`` maps about the
    glyph centre, or a displacement ``field`` ``(m, 2, 28, 28)``, for the ``m`` glyphs in ``index``.

    A :class:`Pipeline` combines all its geometric augmenters into one resampling per glyph.
    """

    def transform(self, glyphs, params):
        m = len(params["index"])
        forward = params.get("forward", np.broadcast_to(np.eye(2), (m, 2, 2)))
        shift = params.get("shift", np.zeros((m, 2)))
        F.warp_glyphs(glyphs, forward, shift, params.get("field"), index=params["index"], out=glyphs)
        self.finish(glyphs, params)
        return glyphs

    def finish(self, glyphs: np.ndarray, params: dict) -> None:
        """What follows the warp, in place (stroke width, ink): nothing here."""


class SequenceAugmenter(GeometricAugmenter):
    """A glyph warp (and finish) whose parameters are drawn per sequence: ``params(shape, rng, writers)``
    gets the sequence (writer) of each glyph, so the glyphs of one sequence share a style."""

    def apply(self, x: np.ndarray, rng: np.random.Generator, writers: np.ndarray | None = None) -> np.ndarray:
        writers = np.arange(len(x)) if writers is None else writers
        return self.transform(x, self.params(x.shape, rng, writers))


class Pipeline:
    """A sequence of augmenters, applied in order within their level.

    Geometric glyph augmenters are combined into one resampling per glyph, so a
    glyph is interpolated once however many of them fire.
    """

    def __init__(self, augmenters):
        if isinstance(augmenters, Augmenter) or not isinstance(augmenters, Iterable):
            raise TypeError(f"augmenters: expected a list of Augmenter instances, got {type(augmenters).__name__}"
                            + ("; wrap it in a list" if isinstance(augmenters, Augmenter) else ""))
        augmenters = list(augmenters)
        for a in augmenters:
            if not isinstance(a, Augmenter):
                raise TypeError(f"augmenters: expected Augmenter instances, got {type(a).__name__}")
        self.augmenters = augmenters

    def __repr__(self) -> str:
        return "Pipeline([" + ", ".join(map(repr, self.augmenters)) + "])"

    def augment_glyphs(self, glyphs: np.ndarray, rng: np.random.Generator, writers: np.ndarray | None = None
                       ) -> np.ndarray:
        """Augment ``(n, 28, 28)`` uint8 glyphs; returns a new array (the source stays untouched).

        ``writers`` (optional, ``(n,)`` ints) says which sequence each glyph belongs to, for
        augmenters that give all the glyphs of one sequence one style; by default each
        glyph is its own.
        """
        return self.vary_glyphs(glyphs, rng, writers)[0]

    def vary_glyphs(self, glyphs: np.ndarray, rng: np.random.Generator, writers: np.ndarray | None = None,
                    *, in_place: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`augment_glyphs`, and a mask of the glyphs that were changed; ``in_place`` lets the
        augmenters change ``glyphs`` itself (a copy the caller owns) instead of a copy of it."""
        _check_rng(rng)
        _check_glyphs(glyphs)
        if not in_place:
            glyphs = glyphs.copy()
        writers = np.arange(len(glyphs)) if writers is None else _checked_writers(writers, len(glyphs))
        changed = np.zeros(len(glyphs), bool)
        geometric = [a for a in self.augmenters if isinstance(a, GeometricAugmenter) and a.active]
        if geometric:
            changed |= _warp_together(glyphs, geometric, rng, writers)
        for a in self.augmenters:
            if isinstance(a, GlyphAugmenter) and a.active and not isinstance(a, GeometricAugmenter):
                params = a.params(glyphs.shape, rng)
                glyphs = a.transform(glyphs, params)
                changed[params["index"]] = True
        return glyphs, changed

    def augment_images(self, images: np.ndarray, rng: np.random.Generator, boxes: np.ndarray | None = None
                       ) -> np.ndarray:
        """Augment ``(B, 28, W)`` float32 images in place; the result is clipped to [0, 1].

        ``boxes`` (``(B, L, 4)``, optional) are the digits' boxes, for augmenters that draw
        around the digits (comb boxes); the pipeline of a generator passes them.
        """
        _check_rng(rng)
        _check_images(images)
        drawn = [(a, a.params(images.shape, rng, boxes) if a.uses_boxes else a.params(images.shape, rng))
                 for a in self.augmenters if isinstance(a, ImageAugmenter) and a.active]
        if not drawn:
            return images
        # runs of augmenters whose params split by image go block by block, every step of the run
        # on one block before the next, so that each block stays in the CPU's cache
        stages = [(by_block, list(run)) for by_block, run in itertools.groupby(drawn, lambda d: d[0].per_image is not None)]
        step = max(1, IMAGE_BLOCK_PIXELS // (images.shape[1] * images.shape[2]))
        for number, (by_block, run) in enumerate(stages):
            last = number == len(stages) - 1
            if not by_block:
                for a, params in run:
                    images = a.transform(images, params)
                if last:
                    np.clip(images, 0.0, 1.0, out=images)
                continue
            for start in range(0, len(images), step):
                stop = min(start + step, len(images))
                block = images[start:stop]
                for a, params in run:
                    block = a.transform(block, a.part(params, start, stop))
                images[start:stop] = np.clip(block, 0.0, 1.0, out=block) if last else block
        return images


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")


def _check_glyphs(glyphs) -> None:
    """Refuse what :meth:`Pipeline.vary_glyphs` cannot augment: anything but ``(n, 28, 28)`` uint8."""
    if not isinstance(glyphs, np.ndarray):
        raise TypeError(f"glyphs: expected a numpy array, got {type(glyphs).__name__}")
    if glyphs.shape[1:] != (28, 28) or glyphs.ndim != 3:
        raise ValueError(f"glyphs: expected shape (n, 28, 28), got {glyphs.shape}")
    if glyphs.dtype != np.uint8:
        raise TypeError(f"glyphs: expected uint8 pixels (0-255, ink high), got {glyphs.dtype}")


def _check_images(images) -> None:
    """Refuse what :meth:`Pipeline.augment_images` cannot augment: anything but a writable
    ``(B, H, W)`` float array (they change in place)."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images: expected a numpy array, got {type(images).__name__}")
    if images.ndim != 3:
        raise ValueError(f"images: expected shape (B, 28, W), got {images.shape}")
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"images: expected float pixels (1.0 white paper), got {images.dtype}")
    if not images.flags.writeable:
        raise ValueError("images: expected a writable array (they are augmented in place), got a read-only one")


def _checked_writers(writers, n: int) -> np.ndarray:
    """``writers`` as ``(n,)`` ints >= 0, or an error naming them."""
    writers = np.asarray(writers)
    expected = f"writers: expected {n:,} ints >= 0 (one sequence number per glyph), got"
    if writers.shape != (n,):
        raise ValueError(f"{expected} shape {writers.shape}")
    if n and not np.issubdtype(writers.dtype, np.integer):
        raise ValueError(f"{expected} dtype {writers.dtype}")
    if n and writers.min() < 0:
        raise ValueError(f"{expected} {writers.min()}")
    return writers


#: Pixels in a block of images that :meth:`Pipeline.augment_images` changes at once (2 MB of float32,
#: so that a block stays in a core's cache between steps).
IMAGE_BLOCK_PIXELS = 1 << 19


def _warp_together(glyphs: np.ndarray, geometric: list[GeometricAugmenter], rng: np.random.Generator,
                   writers: np.ndarray) -> np.ndarray:
    """Compose the warps of several geometric augmenters (in order), resample each glyph once, then
    let each finish (stroke, ink); in place.  Returns the mask of glyphs changed."""
    m = len(glyphs)
    forward = np.broadcast_to(np.eye(2), (m, 2, 2)).copy()
    shift = np.zeros((m, 2))
    fields: list[tuple[np.ndarray, np.ndarray]] = []
    touched = np.zeros(m, bool)
    drawn = []
    for a in geometric:  # image order: the first augmenter acts first
        params = a.params(glyphs.shape, rng, writers) if isinstance(a, SequenceAugmenter) else \
            a.params(glyphs.shape, rng)
        drawn.append((a, params))
        chosen = params["index"]
        touched[chosen] = True
        if "forward" in params:
            lin, t = params["forward"], params["shift"]
            forward[chosen] = lin @ forward[chosen]
            shift[chosen] = np.einsum("mij,mj->mi", lin, shift[chosen]) + t
        if "field" in params:  # displacements act last in image order: they sample the transformed glyph
            fields.append((chosen, params["field"]))
    idx = np.flatnonzero(touched)
    field = bent = None
    if len(fields) == 1:
        bent, field = fields[0]
    elif fields:
        bent = np.unique(np.concatenate([chosen for chosen, _ in fields]))
        field = np.zeros((len(bent), 2, F.GLYPH, F.GLYPH), np.float32)
        for chosen, values in fields:
            field[np.searchsorted(bent, chosen)] += values
    if fields:
        bent = np.searchsorted(idx, bent)  # as positions among the warped glyphs
    if len(idx):
        F.warp_glyphs(glyphs, forward[idx], shift[idx], field, bent, index=idx, out=glyphs)
    for a, params in drawn:
        a.finish(glyphs, params)
    return touched
