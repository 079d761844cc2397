"""Augmenters: make composed sequences vary like real handwriting and real scans.

Two levels, applied by :func:`seqgen.compose.render_batch` between the stages of
:mod:`seqgen.layout` and :mod:`seqgen.raster`:

* glyph level, to each sampled digit before layout, on ``(n, 28, 28)`` uint8
  glyphs (ink high): :class:`Affine`, :class:`Size`, :class:`Elastic`
  (geometric: combined into one resampling per glyph), :class:`WriterStyle`
  (one slant, size, stroke and ink per sequence, a little jitter per digit)
  and :class:`StrokeWidth`;
* image level, after composition, on ``(B, 28, W)`` float32 images
  (1.0 white): :class:`GaussianNoise`, :class:`SaltPepper`,
  :class:`GaussianBlur`, :class:`Contrast`, :class:`Background`,
  :class:`ScanDegradation`, :class:`FormField` (ruled, dotted or comb
  forms under the ink) and :class:`JpegArtefacts`.

Warps, morphology, blur and JPEG run through OpenCV.

Every augmenter has a probability ``p`` (per glyph or per image) and a
``strength`` that scales all its magnitudes (0 = no change, 1 = the documented
defaults, at most 10).  Each first draws its parameters, ``params(shape, rng)``, from the
``numpy.random.Generator`` handed to it, then applies them through a plain
function of :mod:`seqgen.augment.functional`, usable on any array.  Glyph and
image augmenters derive from :class:`GlyphAugmenter` and :class:`ImageAugmenter`.
A :class:`Pipeline` composes augmenters; :data:`PRESETS` names three.
Labels never change; boxes are measured after the glyph transforms.
"""

from . import functional
from .base import Augmenter, GeometricAugmenter, GlyphAugmenter, ImageAugmenter, Pipeline, SequenceAugmenter
from .glyph import Affine, Elastic, Size, StrokeWidth, WriterStyle
from .image import (Background, Contrast, FormField, GaussianBlur, GaussianNoise, JpegArtefacts, SaltPepper,
                    ScanDegradation)
from .presets import PRESETS, resolve

__all__ = ["Affine", "Augmenter", "Background", "Contrast", "Elastic", "FormField", "GaussianBlur",
           "GaussianNoise", "GeometricAugmenter", "GlyphAugmenter", "ImageAugmenter", "JpegArtefacts", "PRESETS",
           "Pipeline", "SaltPepper", "ScanDegradation", "SequenceAugmenter", "Size", "StrokeWidth", "WriterStyle",
           "functional", "resolve"]
