"""One batch of digit-sequence images, stage by stage: the whole data flow of the generator.

``codes -> glyphs -> (glyph augmentation) -> Layout -> Placement -> raster -> (image augmentation)
-> images, boxes``.  :mod:`seqgen.layout` decides where every digit goes, in plain numpy;
:mod:`seqgen.raster` draws it, fast; :mod:`seqgen.augment` varies glyphs and images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layout, raster
from . import validation as check
from .digits import DigitSet


@dataclass
class Batch:
    """A rendered batch.

    Attributes
    ----------
    images : ndarray, shape (B, 28, W), float32
        1.0 background, 0.0 full ink.
    boxes : ndarray, shape (B, L, 4), int16
        Each digit's ink box ``(x0, y0, x1, y1)`` in output pixels, ends
        exclusive; rows of ``-1`` pad sequences shorter than ``L``.
    """

    images: np.ndarray
    boxes: np.ndarray


def render_batch(codes: np.ndarray, source: DigitSet, image_width: int, spacing_range: tuple[int, int], *,
                 fit: str, align: str, rng: np.random.Generator, augment=None, out: np.ndarray | None = None,
                 threads: int = 1) -> Batch:
    """Render a batch of digit sequences (arguments already validated).

    ``codes`` is ``(B, L)`` int8: digits 0..9, each row left-aligned and padded
    with -1.  ``fit``, ``align``, ``spacing_range`` and ``image_width`` are as in
    :func:`seqgen.generate_numbers_sequence`; ``augment`` is a Pipeline or None;
    ``out`` an optional ``(B, 28, W)`` float32 array to draw into; ``threads``
    draw parts of the batch without changing the result.
    """
    picks = layout.sample_glyphs(codes, source, rng)
    glyphs = layout.Glyphs.of_source(source, picks)
    if augment is None:
        columns = raster.source_table(source)
    else:  # a child generator, so that the layout draws stay those of no augmentation
        augment_rng = rng.spawn(1)[0]
        writers = np.repeat(np.arange(len(codes)), (codes >= 0).sum(axis=1))  # the sequence of each glyph
        varied, changed = augment.vary_glyphs(source.images[picks], augment_rng, writers, in_place=True)
        glyphs, columns = layout.Glyphs.of_images(varied, glyphs, changed), raster.column_table(varied)
    strips = layout.lay_out(glyphs, codes >= 0, spacing_range, rng)
    placement = layout.fit_to_width(strips, image_width, fit, align, rng)
    images = raster.draw(strips, placement, columns, out=out, threads=threads)
    boxes = layout.boxes(strips, placement)
    if augment is not None:
        augment.augment_images(images, augment_rng, boxes)
    return Batch(images, boxes)


def resolve_augment(augment):
    """None, a preset name or a Pipeline, as a Pipeline (or None)."""
    if augment is None:
        return None
    from .augment import resolve

    return resolve(augment)


@dataclass(frozen=True)
class Options:
    """Validated rendering options shared by every generation entry point."""

    image_width: int
    spacing_range: tuple[int, int]
    fit: str
    align: str

    @classmethod
    def check(cls, image_width, spacing_range, fit, align) -> "Options":
        return cls(
            check.image_width(image_width),
            check.spacing(spacing_range),
            check.choice(fit, "fit", check.FITS),
            check.choice(align, "align", check.ALIGNS),
        )

    def check_digits(self, n_digits: int, name: str = "digits") -> None:
        """Refuse sequences of ``n_digits`` that could compose wider than ``MAX_STRIP_WIDTH``."""
        check.strip_width(n_digits, self.spacing_range, name)

    def render(self, codes: np.ndarray, source: DigitSet, rng, augment=None, out=None, threads: int = 1) -> Batch:
        self.check_digits(codes.shape[1])  # bounded memory, whoever calls
        return render_batch(codes, source, self.image_width, self.spacing_range, fit=self.fit,
                            align=self.align, rng=rng, augment=augment, out=out, threads=threads)
