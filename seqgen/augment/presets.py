"""Presets: three named pipelines, and :func:`resolve`, which turns what users pass as ``augment=`` into one."""

from __future__ import annotations

from .base import Augmenter, Pipeline
from .glyph import Affine, Elastic, Size, StrokeWidth, WriterStyle
from .image import (Background, Contrast, FormField, GaussianBlur, GaussianNoise, JpegArtefacts, SaltPepper,
                    ScanDegradation)


def _light() -> Pipeline:
    return Pipeline([
        WriterStyle(slant=0.15, size=0.08, stroke=0.5, ink=0.2, p=0.5),
        Affine(rotation=5, shear=0.05, scale=0.05, translate=1, baseline=1, p=0.3),
        Contrast(ink=0.2, contrast=0.15, brightness=0.05, p=0.5),
        GaussianNoise(sigma=0.03, p=0.3),
    ])


def _default() -> Pipeline:
    return Pipeline([
        WriterStyle(p=0.5),
        Affine(p=0.4),
        Size(p=0.3),
        Elastic(p=0.2),
        StrokeWidth(p=0.15),
        Contrast(p=0.5),
        Background(p=0.3),
        GaussianBlur(p=0.3),
        GaussianNoise(p=0.5),
        SaltPepper(p=0.1),
    ])


def _heavy() -> Pipeline:
    return Pipeline([
        WriterStyle(slant=0.35, size=0.2, stroke=1.5, ink=0.5, jitter=0.3, p=0.7),
        Affine(rotation=15, shear=0.3, scale=0.15, translate=2, baseline=3, p=0.6),
        Size(variation=0.25, p=0.5),
        Elastic(alpha=10, p=0.4),
        StrokeWidth(growth=1.5, p=0.3),
        Contrast(ink=0.5, contrast=0.4, brightness=0.15, p=0.7),
        Background(amplitude=0.3, p=0.5),
        FormField(p=0.3),
        GaussianBlur(sigma=1.3, p=0.4),
        GaussianNoise(sigma=0.1, p=0.7),
        SaltPepper(amount=0.03, p=0.3),
        ScanDegradation(p=0.4),
        JpegArtefacts(quality=(10, 50), p=0.3),
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
