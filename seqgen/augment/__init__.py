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
defaults).  Each first draws its parameters, ``params(shape, rng)``, from the
``numpy.random.Generator`` handed to it, then applies them through a plain
function of :mod:`seqgen.augment.functional`, usable on any array.  Glyph and
image augmenters derive from :class:`GlyphAugmenter` and :class:`ImageAugmenter`.
A :class:`Pipeline` composes augmenters; :data:`PRESETS` names three.
Labels never change; boxes are measured after the glyph transforms.
"""

from . import functional
from .base import Augmenter, GeometricAugmenter, GlyphAugmenter, ImageAugmenter, Pipeline
from .glyph import Affine, Elastic, Size, StrokeWidth
from .image import Background, Contrast, GaussianBlur, GaussianNoise, SaltPepper, ScanDegradation
from .presets import PRESETS, resolve

__all__ = ["Affine", "Augmenter", "Background", "Contrast", "Elastic", "GaussianBlur", "GaussianNoise",
           "GeometricAugmenter", "GlyphAugmenter", "ImageAugmenter", "PRESETS", "Pipeline", "SaltPepper",
           "ScanDegradation", "Size", "StrokeWidth", "functional", "resolve"]
